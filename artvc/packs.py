"""Pack files: many compressed blobs in one file, with the pack's own index at its end.

Layout (docs/format.md, "Pack files"):
    header   b"ARTVCPK" + format byte (1)
    blobs    stored bytes, back to back
    index    one 50-byte record per blob: type u8, compression u8, raw_len u32, stored_len u32,
             offset u64, id 32 bytes (all little-endian)
    trailer  index_len u32, count u32, blake3(index) 32 bytes, b"ARTVCIX" + format byte (1)
A pack's name is the hex BLAKE3 of the whole file, so a pack is immutable and self-checking,
and any LMDB index can be rebuilt from the packs alone.
"""
from __future__ import annotations

import heapq
import io
import os
import struct
import threading
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterable, Iterator

import zstandard

from . import chunker
from .errors import CorruptObjectError, FormatError
from .fsutil import fsync_dir

PACK_FORMAT = 1
PACK_MAGIC = b"ARTVCPK" + bytes([PACK_FORMAT])
INDEX_MAGIC = b"ARTVCIX" + bytes([PACK_FORMAT])
HEADER_SIZE = len(PACK_MAGIC)
INDEX_RECORD = struct.Struct("<BBIIQ32s")
TRAILER = struct.Struct("<II32s8s")
MAX_BLOB_SIZE = 64 << 20

BLOB_DATA = 0
BLOB_TREE = 1
BLOB_RECORD = 2
BLOB_TYPES = (BLOB_DATA, BLOB_TREE, BLOB_RECORD)

COMPRESSION_NONE = 0
COMPRESSION_ZSTD = 1


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where one blob lives: which pack, at what offset, how it is stored."""

    pack_id: bytes
    offset: int
    stored_len: int
    raw_len: int
    blob_type: int
    compression: int

    _STRUCT = struct.Struct("<32sQIIBB")

    def encode(self) -> bytes:
        return self._STRUCT.pack(
            self.pack_id, self.offset, self.stored_len, self.raw_len, self.blob_type, self.compression
        )

    @classmethod
    def decode(cls, raw: bytes) -> "BlobLocation":
        return cls(*cls._STRUCT.unpack(raw))


@dataclass(frozen=True, slots=True)
class PackIndexEntry:
    blob_id: bytes
    blob_type: int
    compression: int
    raw_len: int
    stored_len: int
    offset: int


def compress_blob(data: bytes | memoryview, level: int, compressor: zstandard.ZstdCompressor | None = None) -> tuple[int, bytes]:
    """zstd-compress `data` unless that saves under 1/32 of it (then keep it raw)."""
    raw = bytes(data)
    if level <= 0 or len(raw) < 64:
        return COMPRESSION_NONE, raw
    packed = (compressor or zstandard.ZstdCompressor(level=level)).compress(raw)
    if len(packed) + (len(raw) >> 5) >= len(raw):
        return COMPRESSION_NONE, raw
    return COMPRESSION_ZSTD, packed


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor: making one costs 25 times what decompressing a small chunk does,
    and one instance must not be shared between threads."""
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def decode_blob(stored: bytes, compression: int, raw_len: int, blob_id: bytes) -> bytes:
    """Decompress (bounded by raw_len) and check the content hash before anything trusts it."""
    if compression == COMPRESSION_ZSTD:
        try:
            declared = zstandard.frame_content_size(stored)
            if declared not in (-1, raw_len):
                raise CorruptObjectError(f"blob {blob_id.hex()[:12]} would inflate to {declared} bytes, not {raw_len}")
            if declared == raw_len:
                raw = _decompressor().decompress(stored, max_output_size=raw_len)
            else:
                # No size in the frame: read through a stream, never more than one byte past raw_len.
                with _decompressor().stream_reader(io.BytesIO(stored)) as reader:
                    raw = reader.read(raw_len + 1)
        except zstandard.ZstdError as exc:
            raise CorruptObjectError(f"blob {blob_id.hex()[:12]} does not decompress: {exc}") from None
    elif compression == COMPRESSION_NONE:
        raw = bytes(stored)
    else:
        raise CorruptObjectError(f"blob {blob_id.hex()[:12]} has unknown compression {compression}")
    if len(raw) != raw_len:
        raise CorruptObjectError(f"blob {blob_id.hex()[:12]} has wrong size", str(raw_len), str(len(raw)))
    got = chunker.hash_bytes(raw)
    if got != blob_id:
        raise CorruptObjectError(f"blob {blob_id.hex()[:12]}", blob_id.hex(), got.hex())
    return raw


class PackWriter:
    """Appends blobs to a temporary pack; `finish` seals it under its hash name, durably."""

    def __init__(self, tmp_path: str) -> None:
        self.tmp_path = tmp_path
        self._file: BinaryIO = open(tmp_path, "xb")
        self._hasher = chunker.new_hasher()
        self._entries: list[PackIndexEntry] = []
        self._ids: set[bytes] = set()
        self._size = 0
        self._write(PACK_MAGIC)

    def _write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self._hasher.update(data)
        self._size += len(data)

    @property
    def size(self) -> int:
        return self._size

    @property
    def count(self) -> int:
        return len(self._entries)

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._ids

    def add(self, blob_id: bytes, blob_type: int, compression: int, raw_len: int, stored: bytes | memoryview) -> PackIndexEntry:
        entry = PackIndexEntry(blob_id, blob_type, compression, raw_len, len(stored), self._size)
        self._write(stored)
        self._entries.append(entry)
        self._ids.add(blob_id)
        return entry

    def add_many(self, blobs: list[tuple[bytes, int, int, int, bytes | memoryview]]) -> None:
        """add() for (blob id, type, compression, raw length, stored bytes) tuples: one write for all."""
        offset = self._size
        for blob_id, blob_type, compression, raw_len, stored in blobs:
            self._entries.append(PackIndexEntry(blob_id, blob_type, compression, raw_len, len(stored), offset))
            self._ids.add(blob_id)
            offset += len(stored)
        self._write(b"".join(b[4] for b in blobs))

    def finish(self, packs_dir: str) -> tuple[bytes, list[PackIndexEntry]]:
        """Write the index and trailer, fsync, and rename to packs/<xx>/<id>.pack. Returns (id, entries)."""
        index = encode_index(self._entries)
        self._write(index)
        self._write(TRAILER.pack(len(index), len(self._entries), chunker.hash_bytes(index), INDEX_MAGIC))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        pack_id = self._hasher.digest()
        final = pack_path(packs_dir, pack_id)
        folder = os.path.dirname(final)
        os.makedirs(folder, exist_ok=True)
        os.replace(self.tmp_path, final)
        fsync_dir(folder)
        return pack_id, self._entries

    def abort(self) -> None:
        self._file.close()
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass  # never created, or already removed: nothing is left behind


def pack_path(packs_dir: str, pack_id: bytes) -> str:
    name = pack_id.hex()
    return os.path.join(packs_dir, name[:2], name + ".pack")


ROW_SIZE = 32 + BlobLocation._STRUCT.size


def location_rows(pack_id: bytes, entries: Iterable[PackIndexEntry]) -> bytes:
    """A pack's blobs as index rows, blob id + encoded BlobLocation, sorted by id: 82 bytes a blob
    and no Python object each, the form in which sealed packs wait for their index transaction."""
    return b"".join(sorted(
        e.blob_id + BlobLocation(pack_id, e.offset, e.stored_len, e.raw_len, e.blob_type, e.compression).encode()
        for e in entries
    ))


def row_count(rows: bytes) -> int:
    return len(rows) // ROW_SIZE


def iter_rows(rows: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(blob id, encoded location) of each row, in order."""
    for i in range(0, len(rows), ROW_SIZE):
        yield rows[i : i + 32], rows[i + 32 : i + ROW_SIZE]


def merge_rows(many: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """The rows of several packs in one id order, decoded a row at a time."""
    return heapq.merge(*(iter_rows(rows) for rows in many))


def encode_index(entries: list[PackIndexEntry]) -> bytes:
    return b"".join(
        INDEX_RECORD.pack(e.blob_type, e.compression, e.raw_len, e.stored_len, e.offset, e.blob_id) for e in entries
    )


def parse_trailer(tail: bytes, pack_size: int) -> tuple[int, int, bytes]:
    """Validate the trailer; return (index offset, count, index hash)."""
    if len(tail) != TRAILER.size:
        raise CorruptObjectError("pack too short for a trailer")
    index_len, count, index_hash, magic = TRAILER.unpack(tail)
    if magic[:7] != INDEX_MAGIC[:7]:
        raise CorruptObjectError("pack trailer magic is wrong")
    if magic[7] != PACK_FORMAT:
        raise FormatError(f"pack index format {magic[7]} is not supported by this artvc (knows {PACK_FORMAT})")
    if index_len != count * INDEX_RECORD.size or HEADER_SIZE + index_len + TRAILER.size > pack_size:
        raise CorruptObjectError("pack trailer sizes are inconsistent")
    return pack_size - TRAILER.size - index_len, count, index_hash


def parse_index(index: bytes, count: int, index_hash: bytes, data_end: int) -> list[PackIndexEntry]:
    """Decode and validate a pack index read from `data_end` bytes of blob area."""
    if chunker.hash_bytes(index) != index_hash:
        raise CorruptObjectError("pack index does not match its hash")
    entries = []
    for i in range(count):
        btype, comp, raw_len, stored_len, offset, blob_id = INDEX_RECORD.unpack_from(index, i * INDEX_RECORD.size)
        if btype not in BLOB_TYPES or comp not in (COMPRESSION_NONE, COMPRESSION_ZSTD):
            raise CorruptObjectError(f"pack index entry {i} has unknown type or compression")
        if offset < HEADER_SIZE or offset + stored_len > data_end or raw_len > MAX_BLOB_SIZE:
            raise CorruptObjectError(f"pack index entry {i} points outside the pack")
        entries.append(PackIndexEntry(blob_id, btype, comp, raw_len, stored_len, offset))
    return entries


def read_pack_index(f: BinaryIO, pack_size: int) -> list[PackIndexEntry]:
    """Read and validate the index of an open pack file."""
    if pack_size < HEADER_SIZE + TRAILER.size:
        raise CorruptObjectError("pack too short")
    f.seek(0)
    header = f.read(HEADER_SIZE)
    if header[:7] != PACK_MAGIC[:7]:
        raise CorruptObjectError("not an artvc pack (bad header)")
    if header[7] != PACK_FORMAT:
        raise FormatError(f"pack format {header[7]} is not supported by this artvc (knows {PACK_FORMAT})")
    f.seek(pack_size - TRAILER.size)
    index_offset, count, index_hash = parse_trailer(f.read(TRAILER.size), pack_size)
    f.seek(index_offset)
    return parse_index(f.read(index_offset and pack_size - TRAILER.size - index_offset), count, index_hash, index_offset)


def verify_pack_file(path: str, pack_id: bytes) -> list[PackIndexEntry]:
    """check_pack_file, and every blob decodes to its id; CorruptObjectError otherwise."""
    entries = check_pack_file(path, pack_id=pack_id)
    with open(path, "rb") as f:
        for e in sorted(entries, key=lambda e: e.offset):
            f.seek(e.offset)
            decode_blob(f.read(e.stored_len), e.compression, e.raw_len, e.blob_id)
    return entries


def check_pack_file(path: str, progress: Callable[[int], None] | None = None, pack_id: bytes | None = None) -> list[PackIndexEntry]:
    """The index of a pack file whose content hashes to `pack_id` (by default, the id in its file
    name); CorruptObjectError otherwise."""
    name = pack_id.hex() if pack_id is not None else os.path.basename(path)[: -len(".pack")]
    with open(path, "rb") as f:
        if chunker.hash_stream(f, progress, block_size=1 << 20).hex() != name:
            raise CorruptObjectError(f"pack {name[:12]} does not match its name")
        return read_pack_index(f, os.fstat(f.fileno()).st_size)
