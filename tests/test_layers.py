"""The import direction of the package: lower layers never import higher ones."""
from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "artvc"

# Each module's layer; a module may import only modules of its own layer or below.
LAYERS = {
    "errors": 0, "varint": 0, "fsutil": 0, "progress": 0, "names": 0,
    "chunker": 1,
    "packs": 2, "manifest": 2, "records": 2, "trees": 2, "index": 2,
    "store": 3, "refs": 3,
    "repository": 4, "specs": 4, "provenance": 4,
    "workspace": 5, "checkout": 6,
    "artifact": 7, "api": 7,
    "__init__": 8, "cli": 9, "__main__": 10,
}
ONLY_CLI_IMPORTS = {"click"}
ONLY_BACKENDS_IMPORT = {"fsspec", "paramiko", "s3fs"}


def imports_of(path: pathlib.Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    internal, external = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    internal.add(node.module.split(".")[0])
                else:
                    internal.update(a.name for a in node.names)
            elif node.module:
                (internal if node.module.startswith("artvc") else external).add(node.module.split(".")[0] if not node.module.startswith("artvc.") else node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                external.add(alias.name.split(".")[0])
    return internal, external


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= set(LAYERS), f"give these modules a layer in tests/test_layers.py: {modules - set(LAYERS)}"


def test_lower_layers_never_import_higher_ones() -> None:
    for path in PACKAGE.glob("*.py"):
        internal, external = imports_of(path)
        mine = LAYERS[path.stem]
        for other in internal:
            assert LAYERS.get(other, -1) <= mine, f"{path.stem} (layer {mine}) imports {other} (layer {LAYERS.get(other)})"
        if path.stem != "cli":
            assert not external & ONLY_CLI_IMPORTS, f"{path.stem} imports click; only the CLI may"
        assert not external & ONLY_BACKENDS_IMPORT, f"{path.stem} imports a remote library; only backends may"
