"""The documentation is checked like code: the tutorial runs, the CLI reference is current, the API is covered.

- docs/tutorial.md: every ```sh block, in order, runs with bash in a fresh temporary folder with its own
  HOME (git identity configured there); lines starting with `pip install` are skipped, since the package
  is installed in the test environment. ```python blocks run in place, with `python3 -`, as the
  tutorial tells the reader to run them. The tutorial must prove its promise itself, with
  `sha256sum -c` or `cmp`.
- docs/cli-reference.md must equal what docs/generate_cli_reference.py makes from the click commands.
- docs/python-api.md must mention every public name of `artvc.__all__`, and its ```python examples,
  which form one script, must run in an empty folder.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import artvc

DOCS = Path(__file__).resolve().parent.parent / "docs"
TUTORIAL = DOCS / "tutorial.md"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def tutorial_script(text: str) -> str:
    """The tutorial's sh blocks (and python blocks, run with `python3 -`) as one bash script."""
    parts = ["set -euo pipefail"]
    for n, (lang, body) in enumerate(fenced_blocks(text)):
        if lang == "sh":
            lines = [line for line in body.splitlines() if not line.lstrip().startswith("pip install")]
            parts.append(f"# --- block {n}\n" + "\n".join(lines))
        elif lang == "python":
            assert "ARTVC_TUTORIAL_PY" not in body
            parts.append(f"# --- block {n}\npython3 - <<'ARTVC_TUTORIAL_PY'\n{body}ARTVC_TUTORIAL_PY")
    return "\n".join(parts) + "\n"


def test_tutorial_blocks_are_found():
    blocks = fenced_blocks(TUTORIAL.read_text(encoding="utf-8"))
    langs = [lang for lang, _ in blocks]
    assert langs.count("sh") >= 10 and "python" in langs
    script = tutorial_script(TUTORIAL.read_text(encoding="utf-8"))
    assert "pip install" not in script
    for needed in ("artvc init", "artvc add", "artvc commit", "artvc status", "--alias best", "artvc log",
                   "artvc diff", "--input", "artvc lineage", "--format mermaid", "artvc remote add", "artvc push",
                   "artvc clone", "artvc pull", "artvc checkout", "git init", "artvc checkout --lock"):
        assert needed in script, needed
    assert "repo.run(" in TUTORIAL.read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("sha256sum") is None or shutil.which("cmp") is None,
                    reason="the tutorial needs git, sha256sum and cmp")
def test_tutorial_runs_as_written(tmp_path):
    text = TUTORIAL.read_text(encoding="utf-8")
    script = tutorial_script(text)
    assert "sha256sum -c" in script or re.search(r"\bcmp\b", script), "the tutorial must check its outcome itself"

    home = tmp_path / "home"
    work = tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = _clean_env(home)  # the test environment's artvc and python3 come first on PATH
    for key, value in (("user.name", "Ada Lovelace"), ("user.email", "ada@example.com"),
                       ("init.defaultBranch", "main"), ("commit.gpgsign", "false")):
        subprocess.run(["git", "config", "--global", key, value], env=env, check=True)

    (tmp_path / "tutorial.sh").write_text(script, encoding="utf-8")
    done = subprocess.run(["bash", str(tmp_path / "tutorial.sh")], cwd=work, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=600)
    report = f"exit {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
    assert done.returncode == 0, report
    assert "Traceback" not in done.stderr, report
    out = done.stdout
    # What the tutorial promises, step by step.
    assert re.search(r"^animals:v0 [0-9a-f]{12}$", out, re.M), report
    assert re.search(r"^animals:v1 [0-9a-f]{12}$", out, re.M), report
    assert re.search(r"^classifier:v1 [0-9a-f]{12} \['latest', 'candidate'\] inputs: \['[0-9a-f]{12}'\]$", out, re.M), report
    assert "└── animals:v1 (dataset)" in out and "graph LR" in out, report
    assert "checked out animals:v0: 1 written, 1 deleted, 1 unchanged" in out, report
    assert "data/test.csv: OK" in out and "data/train.csv: OK" in out, report
    assert "artvc.lock names animals:v1, checked out: animals:v0" in out, report
    assert out.rstrip().endswith("animals (at animals:v1): clean\nclassifier (at classifier:v0): clean"), report
    tutorial = work / "artvc-tutorial"
    assert not (tutorial / "share").exists() and (tutorial / "share-unplugged").is_dir()
    assert (tutorial / "teammate" / "artvc.lock").read_text().splitlines()[-2].startswith("animals v0 ")


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "ARTVC_", "AWS_"))}
    env.update(HOME=str(home), PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
               GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", LC_ALL="C.UTF-8", PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def _generator():
    spec = importlib.util.spec_from_file_location("generate_cli_reference", DOCS / "generate_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current():
    expected = _generator().generate()
    current = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli-reference.md is stale: run `python docs/generate_cli_reference.py`"


def test_cli_reference_covers_every_command():
    from artvc.cli import cli

    text = _generator().generate()
    for name, command in cli.commands.items():
        assert f"## artvc {name}\n" in text, name
        for sub in getattr(command, "commands", {}):
            assert f"## artvc {name} {sub}\n" in text, f"{name} {sub}"


def test_python_api_mentions_every_public_name():
    text = (DOCS / "python-api.md").read_text(encoding="utf-8")
    missing = [name for name in artvc.__all__ if not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text)]
    assert not missing, f"docs/python-api.md does not mention {', '.join(missing)}"


def test_python_api_examples_run(tmp_path):
    blocks = [body for lang, body in fenced_blocks((DOCS / "python-api.md").read_text(encoding="utf-8")) if lang == "python"]
    assert len(blocks) >= 10
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    script = "\n".join(f"# --- example {n}\n{body}" for n, body in enumerate(blocks))
    (tmp_path / "examples.py").write_text(script, encoding="utf-8")
    env = _clean_env(home)
    env["ARTVC_AUTHOR"] = "Ada Lovelace <ada@example.com>"
    done = subprocess.run([sys.executable, str(tmp_path / "examples.py")], cwd=work, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
