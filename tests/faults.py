"""A Backend wrapper that injects faults, for the tests of interrupted pushes and fetches.

It is stacked on a real backend like the wrappers of artvc.remote.backend (RetryingBackend, CountingBackend):

    FaultyBackend(open_backend(url), fail_write=3)     the 3rd store/create raises (and, by default, every
                                                       call after it: the connection is gone)
    FaultyBackend(open_backend(url), fail_load=5)      the 5th load raises, and every call after it

`sticky=False` makes the fault a one-off (a single failed request on a connection that stays up).
Every call is recorded in `calls` as (operation, name), in order, whether it succeeded or not.
"""
from __future__ import annotations

import threading

from artvc.errors import RemoteError, RemoteUnreachableError


class InjectedFault(RemoteUnreachableError):
    """The error a FaultyBackend raises by default (a dropped connection: retryable)."""


class FaultyBackend:
    def __init__(self, inner, fail_write: int | None = None, fail_load: int | None = None,
                 error: type[RemoteError] = InjectedFault, sticky: bool = True) -> None:
        self.inner = inner
        self.url = inner.url
        self.fail_write = fail_write
        self.fail_load = fail_load
        self.error = error
        self.sticky = sticky
        self.writes = 0
        self.loads = 0
        self.dead = False
        self.tripped = False
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _enter(self, op: str, name: str) -> None:
        with self._lock:
            self.calls.append((op, name))
            fail = self.dead
            if op in ("store", "create"):
                self.writes += 1
                fail = fail or self.writes == self.fail_write
            elif op == "load":
                self.loads += 1
                fail = fail or self.loads == self.fail_load
            if fail:
                self.tripped = True
                if self.sticky:
                    self.dead = True
        if fail:
            raise self.error(f"injected fault: {op} {name} on {self.url}")

    # ---- the Backend interface ------------------------------------------------------------------
    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        self._enter("load", name)
        return self.inner.load(name, offset, length)

    def load_file(self, name: str, local_path: str) -> None:
        self._enter("load", name)
        self.inner.load_file(name, local_path)

    def store(self, name: str, data: bytes) -> None:
        self._enter("store", name)
        self.inner.store(name, data)

    def store_file(self, name: str, local_path: str) -> None:
        self._enter("store", name)
        self.inner.store_file(name, local_path)

    def create(self, name: str, data: bytes) -> None:
        self._enter("create", name)
        self.inner.create(name, data)

    def list(self, prefix: str) -> dict[str, int]:
        self._enter("list", prefix)
        return self.inner.list(prefix)

    def info(self, name: str) -> int | None:
        self._enter("info", name)
        return self.inner.info(name)

    def delete(self, name: str) -> None:
        self._enter("delete", name)
        self.inner.delete(name)

    def close(self) -> None:
        self.inner.close()

    # ---- what happened ----------------------------------------------------------------------------
    def written(self, op: str | None = None, prefix: str = "") -> list[str]:
        """Names passed to store/create (or to `op` only), optionally only those starting with `prefix`."""
        ops = (op,) if op else ("store", "create")
        return [n for o, n in self.calls if o in ops and n.startswith(prefix)]
