"""The LMDB environments of a repository: the store's indexes and refs in `.artvc/index`, and the
workspace's stat cache in `.artvc/cache` (a cache of this checkout, rebuilt by rescanning, never shared).

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
STORE_DBS = (
    b"blobs",      # blob id -> BlobLocation
    b"blobs_recent",  # the same, for blobs indexed since the last merge (a small table: few pages to copy)
    b"packs",      # pack id -> blob count u32 + pack size u64
    b"versions",   # artifact \0 number(u32 BE) -> version id
    b"vids",       # version id -> artifact \0 number(u32 BE)
    b"aliases",    # artifact \0 alias -> version id
    b"artifacts",  # artifact -> JSON: type, tracked paths
    b"heads",      # artifact -> version id checked out in the workspace
    b"meta",       # format version and other store-wide facts
    b"remote_blobs",     # remote \0 blob id -> BlobLocation on that remote
    b"remote_packs",     # remote \0 pack id -> blob count u32 (its index has been read)
    b"remote_versions",  # remote \0 artifact \0 number(u32 BE) -> version id, as last seen there
    b"remote_aliases",   # remote \0 artifact \0 alias -> version id, as last seen there (the lease)
)
CACHE_DBS = (
    b"statcache",  # workspace path -> stat facts + digest; also clean marks and reference signatures
)

_lock = threading.Lock()
_envs: dict[str, "Index"] = {}


class Index:
    """One LMDB environment and its named databases."""

    def __init__(self, path: str, names: tuple[bytes, ...]) -> None:
        os.makedirs(path, exist_ok=True)
        try:
            self.env = lmdb.open(
                path, map_size=MAP_SIZE, max_dbs=len(names) + 4, subdir=True, readahead=False, max_readers=256
            )
        except lmdb.Error as exc:
            raise ArtvcError(f"cannot open the index at {path}: {exc}") from None
        self.db = {name.decode(): self.env.open_db(name) for name in names}

    def read(self) -> lmdb.Transaction:
        return self.env.begin()

    def write(self) -> lmdb.Transaction:
        return self.env.begin(write=True)


def open_index(path: str, names: tuple[bytes, ...] = STORE_DBS) -> Index:
    """The process-wide Index for `path`, opened once."""
    key = os.path.realpath(path)
    with _lock:
        index = _envs.get(key)
        if index is None:
            index = Index(key, names)
            _envs[key] = index
        return index


def close_index(path: str) -> None:
    """Close the environment for `path` (tests and tools that delete repositories use this)."""
    key = os.path.realpath(path)
    with _lock:
        index = _envs.pop(key, None)
    if index is not None:
        index.env.close()


def close_indexes(artvc_dir: str) -> None:
    """Close both environments of the repository whose `.artvc` folder is `artvc_dir`."""
    close_index(os.path.join(artvc_dir, "index"))
    close_index(os.path.join(artvc_dir, "cache"))
