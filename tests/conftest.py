"""Shared fixtures for the end-to-end tests: run the CLI as a user would, in a fresh repository per test.

Nothing here is autouse, so other test modules are not affected unless they ask for a fixture.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from artvc.cli import main
from artvc.index import close_indexes

COMMIT_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*):v(\d+) ([0-9a-f]{12})$")


@dataclass
class Result:
    code: int
    outb: bytes
    errb: bytes

    @property
    def out(self) -> str:
        return self.outb.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.errb.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.out)

    def commit_lines(self) -> list[tuple[str, int, str]]:
        """(name, number, short id) for every `NAME:vN <12-hex id>` line on stdout."""
        found = []
        for line in self.out.splitlines():
            m = COMMIT_LINE.match(line.strip())
            if m:
                found.append((m.group(1), int(m.group(2)), m.group(3)))
        return found

    def __str__(self) -> str:  # shown by pytest when an assertion fails
        return f"exit={self.code}\n--- stdout ---\n{self.out}\n--- stderr ---\n{self.err}"


def _code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    return 1


@pytest.fixture
def cli(capsysbinary):
    """cli("commit", "-m", "x") runs `artvc commit -m x` in-process and returns a Result."""

    def run(*args: str) -> Result:
        capsysbinary.readouterr()
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = _code(exc)
        captured = capsysbinary.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_error(result: Result, *fragments: str) -> None:
    """Exit 1, exactly one line on stderr that starts `error: `, no traceback."""
    assert result.code == 1, str(result)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, str(result)
    assert lines[0].startswith("error: "), str(result)
    assert "Traceback" not in result.err, str(result)
    for fragment in fragments:
        assert fragment in lines[0], str(result)


def assert_ok(result: Result) -> Result:
    assert result.code == 0, str(result)
    assert "Traceback" not in result.err, str(result)
    return result


def _close_indexes(top: Path) -> None:
    """Close the LMDB environments opened below `top` (each maps a lot of address space)."""
    for folder, dirs, _ in os.walk(top):
        if ".artvc" in dirs:
            close_indexes(os.path.join(folder, ".artvc"))
        dirs[:] = [d for d in dirs if d not in (".artvc", ".git")]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty folder (not a repository) as the current folder."""
    path = tmp_path / "work"
    path.mkdir()
    monkeypatch.chdir(path)
    yield path
    _close_indexes(tmp_path)


@pytest.fixture
def tmp(tmp_path):
    """A temporary folder whose repositories' LMDB environments are closed afterwards."""
    yield tmp_path
    _close_indexes(tmp_path)


@pytest.fixture
def repo(tmp_path, monkeypatch, cli):
    """A fresh repository created with `artvc init`, as the current folder."""
    path = tmp_path / "repo"
    path.mkdir()
    monkeypatch.chdir(path)
    assert_ok(cli("init"))
    yield path
    _close_indexes(tmp_path)


# ---- files ------------------------------------------------------------------------------------------
def write(path: Path | str, data: bytes | str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def sha(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(top: Path | str, skip: tuple[str, ...] = (".artvc", ".git")) -> dict[str, tuple]:
    """Everything below `top`: path -> ("file", sha256, executable) / ("link", target) / ("dir",)."""
    top = Path(top)
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(top):
        rel_folder = os.path.relpath(folder, top)
        keep = []
        for d in dirs:
            rel = os.path.normpath(os.path.join(rel_folder, d))
            full = os.path.join(folder, d)
            if rel.split(os.sep)[0] in skip:
                continue
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            else:
                out[rel] = ("dir",)
                keep.append(d)
        dirs[:] = keep
        for f in files:
            rel = os.path.normpath(os.path.join(rel_folder, f))
            full = os.path.join(folder, f)
            if os.path.islink(full):
                out[rel] = ("link", os.readlink(full))
            else:
                out[rel] = ("file", sha(full), os.access(full, os.X_OK))
    return out


def files_only(snap: dict[str, tuple]) -> dict[str, tuple]:
    return {k: v for k, v in snap.items() if v[0] != "dir"}


# ---- subprocess ---------------------------------------------------------------------------------------
def run_subprocess(*args: str, cwd: Path | str) -> subprocess.CompletedProcess:
    """`python -m artvc ARGS` in `cwd`, as a separate process (no TTY)."""
    env = dict(os.environ)
    env.pop("ARTVC_AUTHOR", None)
    return subprocess.run(
        [sys.executable, "-m", "artvc", *map(str, args)],
        cwd=str(cwd), env=env, capture_output=True, timeout=120,
    )


def git(*args: str, cwd: Path | str) -> str:
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0")
    done = subprocess.run(
        ["git", "-c", "user.name=Ada Tester", "-c", "user.email=ada@example.com", "-c", "init.defaultBranch=main",
         "-c", "commit.gpgsign=false", *args],
        cwd=str(cwd), env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout

# Real sshd / moto S3 fixtures for the remote-backend tests; tests/ is on sys.path (pytest's default prepend import mode).
from servers import *  # noqa: E402,F401,F403
