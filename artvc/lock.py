"""The repository lock: writers and readers share it; gc takes it alone.

flock on .artvc/lock: the kernel releases it when a process dies, so a crash never leaves a stale
lock. A process that must wait says so once and waits up to a bound, then fails with a message.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from .errors import LockTimeoutError

DEFAULT_WAIT = 600.0
POLL = 0.05


@contextmanager
def repository_lock(artvc_dir: str, exclusive: bool, notify: Callable[[str], None] = lambda m: None,
                    wait: float | None = None) -> Iterator[None]:
    wait = DEFAULT_WAIT if wait is None else wait
    fd = os.open(os.path.join(artvc_dir, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    notify("waiting for another artvc process (gc, or commits while gc waits) to finish ...")
                    told = True
                if time.monotonic() > deadline:
                    raise LockTimeoutError(
                        f"another artvc process kept {artvc_dir} busy for {wait:.0f} s; try again when it has finished"
                    ) from None
                time.sleep(POLL)
        yield
    finally:
        os.close(fd)


@contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) until the block ends.

    Used to serialise read-then-rewrite sequences between processes, so the last writer always
    writes from the newest state instead of a snapshot taken before another process's change.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
