"""artvc.lock: per artifact, the version checked out in this workspace, meant to be committed to git.

Plain text, one artifact per line, sorted by name: `NAME vN ID`. The id is authoritative (numbers
can change when never-pushed versions are renumbered on pull); the number is for people.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import ArtvcError
from .fsutil import atomic_writer

LOCK_NAME = "artvc.lock"
HEADER = (
    "# artvc.lock: the version of each artifact checked out in this workspace.\n"
    "# Commit it with your code; 'artvc checkout --lock' restores exactly these versions.\n"
)
LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127}) v(\d+) ([0-9a-f]{64})$")


@dataclass(frozen=True)
class LockEntry:
    name: str
    number: int
    version_id: str

    @property
    def spec(self) -> str:
        return f"{self.name}:v{self.number}"


def read(root: str) -> dict[str, LockEntry] | None:
    """The entries of the lock file, or None when there is none."""
    path = os.path.join(root, LOCK_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise ArtvcError(f"{LOCK_NAME} line {number} is not 'NAME vN ID': {line[:80]!r}; fix or delete the line")
        entries[m.group(1)] = LockEntry(m.group(1), int(m.group(2)), m.group(3))
    return entries


def write(root: str, entries: list[LockEntry], temp_dir: str | None = None) -> None:
    """Rewrite the lock file atomically; its temporary file goes to `temp_dir` (same filesystem,
    e.g. .artvc/tmp) so a kill -9 never leaves one in the workspace."""
    body = "".join(f"{e.name} v{e.number} {e.version_id}\n" for e in sorted(entries, key=lambda e: e.name))
    path = os.path.join(root, LOCK_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == HEADER + body:
                return
    except FileNotFoundError:
        pass  # no lock file yet: write one
    if temp_dir is not None:
        os.makedirs(temp_dir, exist_ok=True)
    with atomic_writer(path, temp_dir=temp_dir) as f:
        f.write((HEADER + body).encode())
