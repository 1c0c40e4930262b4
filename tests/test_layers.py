"""The import direction of the package: lower layers never import higher ones."""
from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "artvc"

# Each module's layer; a module may import only modules of its own layer or below.
LAYERS = {
    "errors": 0, "varint": 0, "fsutil": 0, "progress": 0, "names": 0, "lock": 1,
    "chunker": 1,
    "packs": 2, "manifest": 2, "records": 2, "trees": 2, "index": 2,
    "store": 3, "storewriter": 3, "refs": 3,
    "remote": 3, "remote.backend": 3, "remote.layout": 3, "remote.state": 3, "remote.ssh": 3,
    "repository": 4, "specs": 4, "provenance": 4, "remote.fsspec_backend": 4,
    "lockfile": 4,
    "workspace": 5, "remote.transfer": 5, "lineage": 5, "verify": 5, "gc": 5, "repair": 5, "remote.references": 5,
    "checkout": 6, "remote.sync": 6,
    "artifact": 7, "api": 7, "restore": 7, "sharing": 7, "referencing": 7, "lockstate": 7,
    "__init__": 8, "cli": 9, "__main__": 10,
}
ONLY_CLI_IMPORTS = {"click"}
REMOTE_LIBRARIES = {"fsspec", "paramiko", "s3fs", "botocore", "boto3"}
BACKENDS = {"remote.fsspec_backend", "remote.ssh", "remote.references"}


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path) -> tuple[set[str], set[str]]:
    """(artvc modules, third-party top-level packages) that a file imports, anywhere in it."""
    package_parts = list(path.relative_to(PACKAGE).parent.parts)
    internal, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                if node.module:
                    internal.add(_known(".".join(base + node.module.split("."))))
                else:
                    internal.update(_known(".".join(base + [a.name])) for a in node.names)
            elif node.module and node.module.split(".")[0] == "artvc":
                internal.add(_known(node.module.split(".", 1)[1] if "." in node.module else "__init__"))
            elif node.module:
                external.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            external.update(alias.name.split(".")[0] for alias in node.names)
    return internal, external


def _known(name: str) -> str:
    """The longest prefix of a dotted name that is a module with a layer (a package attribute: its __init__)."""
    parts = name.split(".")
    while parts and ".".join(parts) not in LAYERS:
        parts.pop()
    return ".".join(parts) or "__init__"


def test_every_module_has_a_layer() -> None:
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    assert modules <= set(LAYERS), f"give these modules a layer in tests/test_layers.py: {modules - set(LAYERS)}"


def test_lower_layers_never_import_higher_ones() -> None:
    for path in PACKAGE.rglob("*.py"):
        me = module_name(path)
        internal, external = imports_of(path)
        for other in internal:
            assert LAYERS.get(other, 99) <= LAYERS[me], f"{me} (layer {LAYERS[me]}) imports {other} (layer {LAYERS.get(other)})"
        if me != "cli":
            assert not external & ONLY_CLI_IMPORTS, f"{me} imports click; only the CLI may"
        if me not in BACKENDS:
            assert not external & REMOTE_LIBRARIES, f"{me} imports a remote library; only the backends may"


def test_local_commands_do_not_import_remote_libraries() -> None:
    import subprocess
    import sys

    code = "import sys, artvc.cli; print(sorted(m for m in ('fsspec', 'paramiko', 's3fs') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
