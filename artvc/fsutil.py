"""Atomic, durable file writes: temp file in the same folder, fsync, rename, fsync the folder."""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from typing import BinaryIO, Iterator

TEMP_MARK = ".artvc-tmp-"


def fsync_dir(path: str) -> None:
    """Make a rename or create inside `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_name_for(path: str) -> str:
    folder, base = os.path.split(path)
    return os.path.join(folder, f".{base}{TEMP_MARK}{secrets.token_hex(4)}")


@contextmanager
def atomic_writer(path: str, *, durable: bool = True, mode: int | None = None) -> Iterator[BinaryIO]:
    """Yield a file that replaces `path` only when the block ends without an error.

    durable=False skips the fsyncs: used for workspace files that the store can always recreate.
    """
    tmp = temp_name_for(path)
    f = open(tmp, "xb")
    try:
        yield f
        f.flush()
        if durable:
            os.fsync(f.fileno())
        f.close()
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            f.close()
        except OSError:
            pass  # closing flushes; on a full disk that fails too, and the temp file goes anyway
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(os.path.dirname(path) or ".")


def write_file_atomic(path: str, data: bytes, *, durable: bool = True) -> None:
    with atomic_writer(path, durable=durable) as f:
        f.write(data)
