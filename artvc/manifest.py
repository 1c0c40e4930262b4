"""Manifests: the canonical, compact binary list of a version's entries.

Encoding (docs/format.md, "Manifests"): magic b"ARTVCMF" + format byte, varint entry count,
then entries sorted by path bytes, each path front-coded against the previous one.
Decoding validates everything: a manifest from a remote may be hostile.
"""
from __future__ import annotations

from typing import Iterable, Iterator, NamedTuple

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


class Entry(NamedTuple):
    """One path of a version: a file (digest + chunks), a symlink (target), or an external reference.

    A NamedTuple: immutable, and cheap to build by the hundred thousand when a manifest is decoded.
    """

    path: str
    kind: int = KIND_FILE
    size: int = 0
    executable: bool = False
    digest: bytes = b""
    chunks: tuple[tuple[bytes, int], ...] = ()
    target: str = ""
    uri: str = ""
    checksums: tuple[tuple[str, str], ...] = ()

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
    """Refuse any path that could escape a checkout folder or alias another entry.

    Relative, normalised POSIX: no empty, "." or ".." component, no NUL or backslash, not under .artvc.
    """
    if not path or "\x00" in path or "\\" in path or path[0] == "/" or path[-1] == "/" or "//" in path:
        raise CorruptObjectError(f"invalid entry path {path!r}")
    wrapped = "/" + path + "/"
    if "/./" in wrapped or "/../" in wrapped or wrapped.startswith("/.artvc/"):
        raise CorruptObjectError(f"entry path {path!r} is not allowed")
    return path


def _str(value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    return varint.encode(len(raw)) + raw


def manifest_key(path: str) -> bytes:
    """Where a path sorts in a manifest: by its UTF-8 bytes (str order differs for escaped bytes)."""
    return path.encode("utf-8", "surrogateescape")


def encode(entries: Iterable[Entry]) -> bytes:
    """Canonical bytes: the same entries always give the same bytes (and so the same id)."""
    encoder = ManifestEncoder()
    for e in sorted(entries, key=lambda e: manifest_key(e.path)):
        encoder.add(e)
    return encoder.finish()


def _shared_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix, by bisection on slices (a byte loop in Python is slow)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class ManifestEncoder:
    """encode() one entry at a time, in path order, so a commit of 200k files need not hold its
    entries: only the encoded bytes grow. Counts what a version record's stats need on the way."""

    def __init__(self) -> None:
        self._body = bytearray()
        self._prev: bytes | None = b""
        self.entries = 0
        self.files = 0
        self.bytes = 0
        self.references = 0

    def add(self, e: Entry) -> None:
        path = manifest_key(e.path)
        prev = self._prev
        if prev is None:
            raise ValueError("the manifest encoder has finished")
        if path <= prev:
            raise ValueError(f"entry path {e.path!r} is a duplicate or out of order")
        out = self._body
        shared = _shared_prefix(prev, path)
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
            self.files += 1
            self.bytes += e.size
        elif e.kind == KIND_SYMLINK:
            out += _str(e.target)
        elif e.kind == KIND_REFERENCE:
            out += _str(e.uri)
            out += varint.encode(e.size)
            out += varint.encode(len(e.checksums))
            for key, value in sorted(e.checksums):
                out += _str(key)
                out += _str(value)
            self.references += 1
        else:
            raise ValueError(f"unknown entry kind {e.kind}")
        self._prev = path
        self.entries += 1

    def finish(self) -> bytes:
        return MAGIC + varint.encode(self.entries) + self._body

    def finish_in_place(self) -> bytearray:
        """finish() without a second copy of the bytes (10 MiB at 200k files): the header goes in
        front of the body itself, and the encoder is done."""
        body, self._body, self._prev = self._body, bytearray(), None
        body[0:0] = MAGIC + varint.encode(self.entries)
        return body


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
    return list(iter_decode(buf))


def iter_decode(buf: bytes) -> Iterator[Entry]:
    """decode() one entry at a time, for callers that need not hold them all (the trailing-bytes
    check comes when the last entry has been taken)."""
    if buf[:7] != MAGIC[:7]:
        raise CorruptObjectError("not an artvc manifest")
    if len(buf) < 8 or buf[7] != MANIFEST_FORMAT:
        raise FormatError(f"manifest format {buf[7] if len(buf) > 7 else '?'} is not supported by this artvc")
    end = len(buf)
    count, pos = varint.decode(buf, len(MAGIC))
    if count > end:
        raise CorruptObjectError("manifest entry count is impossible")
    uvarint = varint.decode
    prev = b""
    # The entries whose path is a prefix of the current one, shortest first. Paths come sorted, so
    # every path below an entry follows it before any path that does not start with it: a path
    # below a file is caught holding only this chain, not every path seen.
    prefixes: list[bytes] = []
    try:
        for _ in range(count):
            b = buf[pos]
            if b < 0x80:
                shared, pos = b, pos + 1
            else:
                shared, pos = uvarint(buf, pos)
            b = buf[pos]
            if b < 0x80:
                n, pos = b, pos + 1
            else:
                n, pos = uvarint(buf, pos)
            if shared > len(prev) or pos + n > end:
                raise CorruptObjectError("manifest path is out of range")
            path_bytes = prev[:shared] + buf[pos : pos + n]
            pos += n
            if path_bytes <= prev:
                raise CorruptObjectError("manifest paths are not sorted and unique")
            path = check_entry_path(path_bytes.decode("utf-8", "surrogateescape"))
            while prefixes and not path_bytes.startswith(prefixes[-1]):
                prefixes.pop()
            for above in prefixes:
                if path_bytes[len(above) : len(above) + 1] == b"/":
                    raise CorruptObjectError(
                        f"entry {path!r} lies below the file entry {above.decode('utf-8', 'surrogateescape')!r}")
            prefixes.append(path_bytes)
            kind = buf[pos]
            pos += 1
            if kind == KIND_FILE:
                flags = buf[pos]
                pos += 1
                if flags & ~FLAG_EXECUTABLE:
                    raise CorruptObjectError(f"unknown flags on {path!r}")
                b = buf[pos]
                if b < 0x80:
                    size, pos = b, pos + 1
                else:
                    size, pos = uvarint(buf, pos)
                nchunks, pos = uvarint(buf, pos)
                if nchunks == 0:
                    if size:
                        raise CorruptObjectError(f"entry {path!r} has a size but no chunks")
                    yield Entry(path, KIND_FILE, 0, bool(flags), EMPTY_DIGEST, ())
                    prev = path_bytes
                    continue
                if pos + DIGEST > end:
                    raise CorruptObjectError("manifest is truncated")
                digest = buf[pos : pos + DIGEST]
                pos += DIGEST
                if nchunks == 1:
                    if size == 0:
                        raise CorruptObjectError(f"entry {path!r} has an empty chunk")
                    chunks: tuple[tuple[bytes, int], ...] = ((digest, size),)
                else:
                    if nchunks > size:
                        raise CorruptObjectError(f"entry {path!r} has more chunks than bytes")
                    chunk_list = []
                    total = 0
                    for _ in range(nchunks):
                        if pos + DIGEST > end:
                            raise CorruptObjectError("manifest is truncated")
                        chunk_id = buf[pos : pos + DIGEST]
                        length, pos = uvarint(buf, pos + DIGEST)
                        chunk_list.append((chunk_id, length))
                        total += length
                    if total != size:
                        raise CorruptObjectError(f"chunk sizes of {path!r} do not add up to its size")
                    chunks = tuple(chunk_list)
                yield Entry(path, KIND_FILE, size, bool(flags), digest, chunks)
            elif kind == KIND_SYMLINK:
                r = _Reader(buf)
                r.pos = pos
                target = r.string()
                pos = r.pos
                if not target or "\x00" in target:
                    raise CorruptObjectError(f"symlink {path!r} has an invalid target")
                yield Entry(path, KIND_SYMLINK, target=target)
            elif kind == KIND_REFERENCE:
                r = _Reader(buf)
                r.pos = pos
                uri = r.string()
                size = r.varint()
                fields = tuple((r.string(), r.string()) for _ in range(r.varint()))
                pos = r.pos
                yield Entry(path, KIND_REFERENCE, size=size, uri=uri, checksums=fields)
            else:
                raise CorruptObjectError(f"entry {path!r} has unknown kind {kind}")
            prev = path_bytes
    except IndexError:
        raise CorruptObjectError("manifest is truncated") from None
    if pos != end:
        raise CorruptObjectError("manifest has trailing bytes")
