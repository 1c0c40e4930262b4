"""Manifests: the canonical, compact binary list of a version's entries.

Encoding (docs/format.md, "Manifests"): magic b"ARTVCMF" + format byte, varint entry count,
then entries sorted by path bytes, each path front-coded against the previous one.
Decoding validates everything: a manifest from a remote may be hostile.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Iterable

from . import varint
from .errors import CorruptObjectError, FormatError

MANIFEST_FORMAT = 1
MAGIC = b"ARTVCMF" + bytes([MANIFEST_FORMAT])
DIGEST = 32

KIND_FILE = 0
KIND_SYMLINK = 1
KIND_REFERENCE = 2
KIND_NAMES = {KIND_FILE: "file", KIND_SYMLINK: "symlink", KIND_REFERENCE: "reference"}

FLAG_EXECUTABLE = 1
EMPTY_DIGEST = bytes.fromhex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")


@dataclass(frozen=True)
class Entry:
    """One path of a version: a file (digest + chunks), a symlink (target), or an external reference."""

    path: str
    kind: int = KIND_FILE
    size: int = 0
    executable: bool = False
    digest: bytes = b""
    chunks: tuple[tuple[bytes, int], ...] = ()
    target: str = ""
    uri: str = ""
    checksums: tuple[tuple[str, str], ...] = field(default=())

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]

    def same_content(self, other: "Entry") -> bool:
        """Equal for the purpose of diff/status (the chunk list follows from the digest)."""
        return (
            self.kind == other.kind
            and self.digest == other.digest
            and self.executable == other.executable
            and self.target == other.target
            and self.uri == other.uri
            and self.checksums == other.checksums
            and self.size == other.size
        )


def check_entry_path(path: str) -> str:
    """Refuse any path that could escape a checkout folder or alias another entry."""
    if not path or "\x00" in path or "\\" in path:
        raise CorruptObjectError(f"invalid entry path {path!r}")
    if path.startswith("/") or posixpath.normpath(path) != path:
        raise CorruptObjectError(f"entry path {path!r} is not relative and normalised")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or parts[0] == ".artvc":
        raise CorruptObjectError(f"entry path {path!r} is not allowed")
    return path


def _str(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    return varint.encode(len(raw)) + raw


def encode(entries: Iterable[Entry]) -> bytes:
    """Canonical bytes: the same entries always give the same bytes (and so the same id)."""
    items = sorted(entries, key=lambda e: e.path.encode("utf-8", "surrogateescape"))
    out = bytearray(MAGIC)
    out += varint.encode(len(items))
    prev = b""
    for e in items:
        path = e.path.encode("utf-8", "surrogateescape")
        if path == prev:
            raise ValueError(f"duplicate entry path {e.path!r}")
        shared = 0
        limit = min(len(prev), len(path))
        while shared < limit and prev[shared] == path[shared]:
            shared += 1
        out += varint.encode(shared)
        out += varint.encode(len(path) - shared)
        out += path[shared:]
        out.append(e.kind)
        if e.kind == KIND_FILE:
            out.append(FLAG_EXECUTABLE if e.executable else 0)
            out += varint.encode(e.size)
            out += varint.encode(len(e.chunks))
            if e.chunks:
                out += e.digest
            if len(e.chunks) > 1:
                for chunk_id, length in e.chunks:
                    out += chunk_id
                    out += varint.encode(length)
        elif e.kind == KIND_SYMLINK:
            out += _str(e.target)
        elif e.kind == KIND_REFERENCE:
            out += _str(e.uri)
            out += varint.encode(e.size)
            out += varint.encode(len(e.checksums))
            for key, value in sorted(e.checksums):
                out += _str(key)
                out += _str(value)
        else:
            raise ValueError(f"unknown entry kind {e.kind}")
        prev = path
    return bytes(out)


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def varint(self) -> int:
        value, self.pos = varint.decode(self.buf, self.pos)
        return value

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise CorruptObjectError("manifest is truncated")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def string(self) -> str:
        return self.take(self.varint()).decode("utf-8", "surrogateescape")


def decode(buf: bytes) -> list[Entry]:
    """Entries of a manifest, validated (paths safe, sorted and unique; sizes consistent)."""
    if buf[:7] != MAGIC[:7]:
        raise CorruptObjectError("not an artvc manifest")
    if len(buf) < 8 or buf[7] != MANIFEST_FORMAT:
        raise FormatError(f"manifest format {buf[7] if len(buf) > 7 else '?'} is not supported by this artvc")
    r = _Reader(buf)
    r.pos = len(MAGIC)
    count = r.varint()
    if count > len(buf):
        raise CorruptObjectError("manifest entry count is impossible")
    entries: list[Entry] = []
    prev = b""
    leaves: set[str] = set()
    folders: set[str] = set()
    for _ in range(count):
        shared = r.varint()
        if shared > len(prev):
            raise CorruptObjectError("manifest path prefix is out of range")
        path_bytes = prev[:shared] + r.take(r.varint())
        if path_bytes <= prev:
            raise CorruptObjectError("manifest paths are not sorted and unique")
        path = check_entry_path(path_bytes.decode("utf-8", "surrogateescape"))
        parent = path.rpartition("/")[0]
        while parent and parent not in folders:
            if parent in leaves:
                raise CorruptObjectError(f"entry {path!r} lies below the file entry {parent!r}")
            folders.add(parent)
            parent = parent.rpartition("/")[0]
        leaves.add(path)
        kind = r.byte()
        if kind == KIND_FILE:
            flags = r.byte()
            if flags & ~FLAG_EXECUTABLE:
                raise CorruptObjectError(f"unknown flags on {path!r}")
            size = r.varint()
            nchunks = r.varint()
            digest = r.take(DIGEST) if nchunks else EMPTY_DIGEST
            if nchunks == 0:
                if size:
                    raise CorruptObjectError(f"entry {path!r} has a size but no chunks")
                chunks: tuple[tuple[bytes, int], ...] = ()
            elif nchunks == 1:
                chunks = ((digest, size),)
            else:
                if nchunks > size:
                    raise CorruptObjectError(f"entry {path!r} has more chunks than bytes")
                chunk_list = []
                for _ in range(nchunks):
                    chunk_list.append((r.take(DIGEST), r.varint()))
                if sum(length for _, length in chunk_list) != size:
                    raise CorruptObjectError(f"chunk sizes of {path!r} do not add up to its size")
                chunks = tuple(chunk_list)
            if nchunks == 1 and size == 0:
                raise CorruptObjectError(f"entry {path!r} has an empty chunk")
            entries.append(Entry(path, KIND_FILE, size, bool(flags & FLAG_EXECUTABLE), digest, chunks))
        elif kind == KIND_SYMLINK:
            target = r.string()
            if not target or "\x00" in target:
                raise CorruptObjectError(f"symlink {path!r} has an invalid target")
            entries.append(Entry(path, KIND_SYMLINK, target=target))
        elif kind == KIND_REFERENCE:
            uri = r.string()
            size = r.varint()
            fields = tuple((r.string(), r.string()) for _ in range(r.varint()))
            entries.append(Entry(path, KIND_REFERENCE, size=size, uri=uri, checksums=fields))
        else:
            raise CorruptObjectError(f"entry {path!r} has unknown kind {kind}")
        prev = path_bytes
    if r.pos != len(buf):
        raise CorruptObjectError("manifest has trailing bytes")
    return entries
