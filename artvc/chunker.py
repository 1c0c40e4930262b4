"""Content-defined chunking (FastCDC 2020 via pyfastcdc) and the content hash (BLAKE3).

Files are read in large blocks; each block is cut with FastCDC and only chunks whose cut point
could not depend on bytes beyond the block are emitted. The tail is carried into the next block,
so boundaries are exactly those of chunking the whole file at once, with bounded memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import blake3

HASH_ALGORITHM = "blake3"
DIGEST_SIZE = 32
READ_BLOCK = 8 << 20


def hash_bytes(data: bytes | memoryview) -> bytes:
    """The 32-byte content id of `data`."""
    return blake3.blake3(data).digest()


def new_hasher() -> "blake3.blake3":
    return blake3.blake3()


def hash_stream(stream: BinaryIO, progress: Callable[[int], None] | None = None, block_size: int = READ_BLOCK) -> bytes:
    """BLAKE3 of everything a file object yields, read in large blocks (memory stays bounded)."""
    hasher = blake3.blake3()
    for block in iter(lambda: stream.read(block_size), b""):
        hasher.update(block)
        if progress is not None:
            progress(len(block))
    return hasher.digest()


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC sizes; recorded in the repository config so every writer cuts the same way."""

    min_size: int
    avg_size: int
    max_size: int

    def validate(self) -> None:
        if not (64 <= self.min_size < self.avg_size < self.max_size <= 64 << 20):
            raise ValueError(f"invalid chunker sizes {self}")


# Chosen by measurement (docs/format.md, "Chunking"): 64 KiB average keeps a 100-byte insertion
# in a 256 MiB file at ~1.2 MiB of new data while a 1 GiB file needs only ~16k index entries.
DATA_CHUNKER = ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)
# Manifests are cut finely so a version that changes a few entries stores a few KiB.
TREE_CHUNKER = ChunkerParams(min_size=256, avg_size=1 << 10, max_size=4 << 10)


class Chunker:
    def __init__(self, params: ChunkerParams) -> None:
        params.validate()
        self.params = params
        self._fastcdc = None

    @property
    def _cdc(self):
        """pyfastcdc is imported on first use: commands that only read never pay for it."""
        if self._fastcdc is None:
            import pyfastcdc

            self._fastcdc = pyfastcdc.FastCDC(
                avg_size=self.params.avg_size, min_size=self.params.min_size, max_size=self.params.max_size
            )
        return self._fastcdc

    def cut_bytes(self, data: bytes | memoryview) -> Iterator[memoryview]:
        """Chunks of an in-memory buffer (views into it)."""
        view = memoryview(data)
        if not len(view):
            return
        for offset, length in self._cut_offsets(view):
            yield view[offset : offset + length]

    def cut_stream(self, stream: BinaryIO, block_size: int = READ_BLOCK) -> Iterator[bytes]:
        """Chunks of a file object, read in blocks of `block_size`; each chunk is a fresh bytes."""
        max_size = self.params.max_size
        block_size = max(block_size, 2 * max_size)
        buf = bytearray(block_size)
        view = memoryview(buf)
        filled = 0
        eof = False
        while True:
            while not eof and filled < block_size:
                n = stream.readinto(view[filled:])
                if not n:
                    eof = True
                else:
                    filled += n
            if filled == 0:
                return
            consumed = 0
            for offset, length in self._cut_offsets(view[:filled]):
                # A cut closer than max_size to the block's end may move once more bytes arrive.
                if not eof and offset + max_size > filled:
                    break
                yield bytes(view[offset : offset + length])
                consumed = offset + length
            if eof:
                return
            buf[: filled - consumed] = buf[consumed:filled]
            filled -= consumed

    def _cut_offsets(self, data: memoryview) -> Iterator[tuple[int, int]]:
        if len(data) <= self.params.min_size:
            yield 0, len(data)
            return
        for chunk in self._cdc.cut_buf(data):
            yield chunk.offset, chunk.length
