"""artvc.lock for the API: write it from the checked-out versions, compare, and restore from it."""
from __future__ import annotations

from typing import TYPE_CHECKING

import os

from . import lockfile, sharing
from .errors import ArtvcError, PathError
from .lock import file_lock
from .manifest import KIND_FILE

if TYPE_CHECKING:
    from .api import Repo
    from .artifact import Version


def write_lock(repo: "Repo") -> None:
    """Rewrite artvc.lock from the versions checked out here.

    Reading the heads and writing the file happen under one file lock: two processes that commit at
    once would otherwise each write a snapshot, and the older one could land last.
    """
    refs = repo._repository.refs
    with file_lock(os.path.join(repo._repository.artvc_dir, "lockfile.lock")):
        entries = []
        with repo._repository.index.read() as txn:
            for name in refs.artifact_names(txn):
                vid = refs.get_head(txn, name)
                located = refs.locate_version(txn, vid) if vid else None
                if located:
                    entries.append(lockfile.LockEntry(name, located[1], vid.hex()))
        if entries or lockfile.read(repo.root) is not None:
            lockfile.write(repo.root, entries, temp_dir=repo._repository.store.tmp_dir)


def lock_differences(repo: "Repo") -> list[tuple[str, lockfile.LockEntry | None, "Version | None"]]:
    """(artifact, what artvc.lock names, what is checked out) for every artifact where they differ."""
    lock = lockfile.read(repo.root)
    if lock is None:
        return []
    out = []
    for name in sorted(set(lock) | set(repo.artifacts())):
        entry = lock.get(name)
        head = repo.head(name)
        if (entry.version_id if entry else None) != (head.id if head else None):
            out.append((name, entry, head))
    return out

def checkout_lock(repo: "Repo", force: bool = False, remote: str | None = None) -> list:
    """Bring every artifact artvc.lock names to that version, fetching what is not here."""
    lock = lockfile.read(repo.root)
    if lock is None:
        raise PathError(f"no {lockfile.LOCK_NAME} in {repo.root}; commit or check out a version to write one")
    missing = [e for e in lock.values() if not _has_version_data(repo, e)]
    if missing:
        if not repo._repository.remotes():
            names = ", ".join(e.spec for e in missing)
            raise ArtvcError(f"{names} not in this repository and no remote is configured; add one and run 'artvc fetch'")
        sharing.fetch(repo, remote, [f"{e.name}:{e.version_id}" for e in missing], False, 4)
    return [repo.checkout(f"{e.name}:{e.version_id}", force=force) for e in sorted(lock.values(), key=lambda e: e.name)]

def _has_version_data(repo: "Repo", entry: lockfile.LockEntry) -> bool:
    refs = repo._repository.refs
    store = repo._repository.store
    vid = bytes.fromhex(entry.version_id)
    with repo._repository.index.read() as txn:
        if refs.locate_version(txn, vid) is None:
            return False
    try:
        entries = repo._repository.version_manifest(vid)
    except ArtvcError:
        return False
    with repo._repository.index.read() as txn:
        return all(store.locate(c, txn) is not None for e in entries if e.kind == KIND_FILE for c, _ in e.chunks)
