"""The one small interface every remote storage implements, and the wrappers stacked on it.

Names are relative POSIX paths below the remote's root ("packs/ab/ab12….pack"), validated
before any use. Errors are ArtvcError subclasses with fixed meanings:
    RemoteNotFoundError      the object does not exist (load, info, delete)
    RemoteExistsError        create found the object already there
    RemoteUnreachableError   transient or network: the operation may succeed when retried
    RemoteAuthError, RemotePermissionError, RemoteError   permanent: retrying will not help
"""
from __future__ import annotations

import os
import posixpath
import re
import threading
import time
from typing import Callable, Protocol

from ..errors import RemoteError, RemoteUnreachableError

NAME_PART = re.compile(r"^[A-Za-z0-9._-]+$")


def check_name(name: str) -> str:
    """Refuse any object name that could escape the remote's root."""
    if not name or name.startswith("/") or posixpath.normpath(name) != name:
        raise RemoteError(f"invalid remote object name {name!r}")
    for part in name.split("/"):
        if part in (".", "..") or not NAME_PART.match(part):
            raise RemoteError(f"invalid remote object name {name!r}")
    return name


class Backend(Protocol):
    """Plain storage. Implementations must be safe to call from several threads at once."""

    url: str

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        """Bytes of an object (or of a range of it)."""

    def load_file(self, name: str, local_path: str) -> None:
        """Copy a whole object into a new local file, streamed (never held in memory whole)."""

    def store(self, name: str, data: bytes) -> None:
        """Write an object atomically: readers see the old content or the new, never a part."""

    def store_file(self, name: str, local_path: str) -> None:
        """Like store, from a local file, streamed: a 16 MiB pack is never held in memory whole."""

    def create(self, name: str, data: bytes) -> None:
        """Write an object only if none exists under that name; RemoteExistsError otherwise."""

    def list(self, prefix: str) -> dict[str, int]:
        """Every object below the folder `prefix` (recursive): name -> size. Missing folder: {}."""

    def info(self, name: str) -> int | None:
        """Size of an object, or None when it does not exist."""

    def delete(self, name: str) -> None:
        """Remove an object; RemoteNotFoundError when it is not there."""

    def close(self) -> None:
        """Release connections."""


class RetryingBackend:
    """Retries operations that failed for a transient reason, with exponential back-off."""

    def __init__(self, inner: Backend, attempts: int = 3, delay: float = 0.5) -> None:
        self.inner = inner
        self.url = inner.url
        self.attempts = attempts
        self.delay = delay

    def __getattr__(self, name: str):
        """Backend-specific extras (root, protocol, check_bucket) pass through the wrapper."""
        return getattr(self.inner, name)

    def _call(self, fn: Callable, *args):
        for attempt in range(self.attempts):
            try:
                return fn(*args)
            except RemoteUnreachableError:
                if attempt == self.attempts - 1:
                    raise
                time.sleep(self.delay * (2**attempt))
        raise AssertionError("unreachable")

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call(self.inner.load, name, offset, length)

    def load_file(self, name: str, local_path: str) -> None:
        self._call(self.inner.load_file, name, local_path)

    def store(self, name: str, data: bytes) -> None:
        self._call(self.inner.store, name, data)

    def store_file(self, name: str, local_path: str) -> None:
        self._call(self.inner.store_file, name, local_path)

    def create(self, name: str, data: bytes) -> None:
        # Not retried blindly: a create that reached the remote before the connection dropped
        # would report "exists" on the retry. The caller compares the content it finds instead.
        self.inner.create(name, data)

    def list(self, prefix: str) -> dict[str, int]:
        return self._call(self.inner.list, prefix)

    def info(self, name: str) -> int | None:
        return self._call(self.inner.info, name)

    def delete(self, name: str) -> None:
        self._call(self.inner.delete, name)

    def close(self) -> None:
        self.inner.close()


class CountingBackend:
    """Counts requests by operation (for `push` reports, benchmarks and tests)."""

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.counts: dict[str, int] = {}
        self.bytes_sent = 0
        self.bytes_received = 0
        self._lock = threading.Lock()

    def _count(self, op: str, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.counts[op] = self.counts.get(op, 0) + 1
            self.bytes_sent += sent
            self.bytes_received += received

    @property
    def requests(self) -> int:
        return sum(self.counts.values())

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        data = self.inner.load(name, offset, length)
        self._count("load", received=len(data))
        return data

    def load_file(self, name: str, local_path: str) -> None:
        self.inner.load_file(name, local_path)
        self._count("load", received=os.path.getsize(local_path))

    def store(self, name: str, data: bytes) -> None:
        self.inner.store(name, data)
        self._count("store", sent=len(data))

    def store_file(self, name: str, local_path: str) -> None:
        self.inner.store_file(name, local_path)
        self._count("store", sent=os.path.getsize(local_path))

    def create(self, name: str, data: bytes) -> None:
        try:
            self.inner.create(name, data)
        finally:
            self._count("create", sent=len(data))

    def list(self, prefix: str) -> dict[str, int]:
        self._count("list")
        return self.inner.list(prefix)

    def info(self, name: str) -> int | None:
        self._count("info")
        return self.inner.info(name)

    def delete(self, name: str) -> None:
        self._count("delete")
        self.inner.delete(name)

    def close(self) -> None:
        self.inner.close()
