"""Tree objects: a large byte string (an encoded manifest) stored as content-defined chunks.

The string is cut with the fine tree chunker, so two manifests that differ in a few entries share
all but a few KiB of chunks. The chunk list is itself a small object (a tree node); when a node
would exceed NODE_LIMIT, its encoding is stored the same way, one level up. The id of the
top node is the tree's id.

Node encoding: b"ARTVCTN" + format byte, level u8, varint total length, varint count,
count x (32-byte chunk id, varint length).
"""
from __future__ import annotations

from typing import Callable, Iterable

from . import varint
from .chunker import Chunker
from .errors import CorruptObjectError, FormatError

TREE_FORMAT = 1
NODE_MAGIC = b"ARTVCTN" + bytes([TREE_FORMAT])
NODE_LIMIT = 32 << 10
MAX_LEVEL = 4
MAX_TREE_SIZE = 4 << 30


def _encode_node(level: int, total: int, chunks: list[tuple[bytes, int]]) -> bytes:
    out = bytearray(NODE_MAGIC)
    out.append(level)
    out += varint.encode(total)
    out += varint.encode(len(chunks))
    for chunk_id, length in chunks:
        out += chunk_id
        out += varint.encode(length)
    return bytes(out)


def _decode_node(buf: bytes) -> tuple[int, int, list[tuple[bytes, int]]]:
    if buf[:7] != NODE_MAGIC[:7]:
        raise CorruptObjectError("not an artvc tree node")
    if len(buf) < 9 or buf[7] != TREE_FORMAT:
        raise FormatError("tree node format is not supported by this artvc")
    level = buf[8]
    if level > MAX_LEVEL:
        raise CorruptObjectError("tree node level is too deep")
    total, pos = varint.decode(buf, 9)
    count, pos = varint.decode(buf, pos)
    if total > MAX_TREE_SIZE or count > len(buf):
        raise CorruptObjectError("tree node sizes are impossible")
    chunks = []
    for _ in range(count):
        if pos + 32 > len(buf):
            raise CorruptObjectError("tree node is truncated")
        chunk_id = buf[pos : pos + 32]
        length, pos = varint.decode(buf, pos + 32)
        chunks.append((chunk_id, length))
    if pos != len(buf) or sum(n for _, n in chunks) != total:
        raise CorruptObjectError("tree node is inconsistent")
    return level, total, chunks


def store_tree(data: bytes | bytearray, chunker: Chunker, put: Callable[[bytes], bytes]) -> bytes:
    """Store `data`; `put` stores one blob and returns its id. Returns the tree id."""
    level = 0
    while True:
        chunks = [(put(bytes(piece)), len(piece)) for piece in chunker.cut_bytes(data)]
        node = _encode_node(level, len(data), chunks)
        if len(node) <= NODE_LIMIT or level == MAX_LEVEL:
            return put(node)
        data = node
        level += 1


def load_tree(tree_id: bytes, get: Callable[[bytes], bytes],
              get_pieces: Callable[[list[tuple[bytes, int]]], Iterable[bytes]] | None = None) -> bytes:
    """The bytes stored under `tree_id`; `get` returns a verified blob, and `get_pieces` (if given)
    the verified blobs of a node's pieces in order, so a store can read neighbours together."""
    level, total, chunks = _decode_node(get(tree_id))
    while True:
        data = b"".join(get_pieces(chunks) if get_pieces else (get(chunk_id) for chunk_id, _ in chunks))
        if len(data) != total:
            raise CorruptObjectError("tree data has the wrong length")
        if level == 0:
            return data
        next_level, total, chunks = _decode_node(data)
        if next_level != level - 1:
            raise CorruptObjectError("tree node levels are inconsistent")
        level = next_level


def tree_blob_ids(tree_id: bytes, get: Callable[[bytes], bytes]) -> list[bytes]:
    """Every blob id a tree consists of (nodes and chunks), for verify, push and fetch."""
    ids = [tree_id]
    level, total, chunks = _decode_node(get(tree_id))
    while True:
        ids.extend(chunk_id for chunk_id, _ in chunks)
        if level == 0:
            return ids
        data = b"".join(get(chunk_id) for chunk_id, _ in chunks)
        level, total, chunks = _decode_node(data)



def decode_node(blob: bytes) -> tuple[int, int, list[tuple[bytes, int]]]:
    """(level, total length, pieces) of a tree node, validated."""
    return _decode_node(blob)


def join_pieces(pieces: list[tuple[bytes, int]], get: Callable[[bytes], bytes]) -> bytes:
    return b"".join(get(piece_id) for piece_id, _ in pieces)
