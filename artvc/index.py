"""The LMDB environment of a repository: every index and ref lives in one of its named databases.

LMDB allows one environment per path per process, so environments are shared through a registry.
Write transactions are serialized across processes by LMDB itself: a second writer waits.
"""
from __future__ import annotations

import os
import threading

import lmdb

from .errors import ArtvcError

# Address space only (the file grows as needed); room for hundreds of millions of chunks.
MAP_SIZE = 32 << 30
DB_NAMES = (
    b"blobs",      # blob id -> BlobLocation
    b"packs",      # pack id -> blob count u32 + pack size u64
    b"versions",   # artifact \0 number(u32 BE) -> version id
    b"vids",       # version id -> artifact \0 number(u32 BE)
    b"aliases",    # artifact \0 alias -> version id
    b"artifacts",  # artifact -> JSON: type, tracked paths
    b"heads",      # artifact -> version id checked out in the workspace
    b"statcache",  # workspace path -> stat facts + digest + chunk list
    b"meta",       # format version and other store-wide facts
    b"remote_blobs",     # remote \0 blob id -> BlobLocation on that remote
    b"remote_packs",     # remote \0 pack id -> blob count u32 (its index has been read)
    b"remote_versions",  # remote \0 artifact \0 number(u32 BE) -> version id, as last seen there
    b"remote_aliases",   # remote \0 artifact \0 alias -> version id, as last seen there (the lease)
)

_lock = threading.Lock()
_envs: dict[str, "Index"] = {}


class Index:
    """One LMDB environment and its named databases."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        try:
            self.env = lmdb.open(
                path, map_size=MAP_SIZE, max_dbs=len(DB_NAMES) + 4, subdir=True, readahead=False, max_readers=256
            )
        except lmdb.Error as exc:
            raise ArtvcError(f"cannot open the index at {path}: {exc}") from None
        self.db = {name.decode(): self.env.open_db(name) for name in DB_NAMES}

    def read(self) -> lmdb.Transaction:
        return self.env.begin()

    def write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)


def open_index(path: str) -> Index:
    """The process-wide Index for `path`, opened once."""
    key = os.path.realpath(path)
    with _lock:
        index = _envs.get(key)
        if index is None:
            index = Index(key)
            _envs[key] = index
        return index


def close_index(path: str) -> None:
    """Close the environment for `path` (tests and tools that delete repositories use this)."""
    key = os.path.realpath(path)
    with _lock:
        index = _envs.pop(key, None)
    if index is not None:
        index.env.close()
