"""Unsigned LEB128 varints, the integer encoding of every artvc binary structure."""
from __future__ import annotations

from .errors import CorruptObjectError


def encode(value: int) -> bytes:
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, new position). Refuses truncated input and values over 64 bits."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise CorruptObjectError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CorruptObjectError("varint longer than 64 bits")
