"""Version records: the immutable description of one version, stored as a blob; its hash is the version id.

Canonical JSON (sorted keys, no spaces, UTF-8). The record names its manifest tree, so the id
covers content, metadata, message, author, time and inputs, but never the version number.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import CorruptObjectError, FormatError

RECORD_FORMAT = 1
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class VersionRecord:
    artifact: str
    type: str
    manifest: str
    created: str
    author: str = ""
    message: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    git: dict[str, Any] | None = None
    job_type: str | None = None
    stats: dict[str, int] = field(default_factory=dict)
    paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "kind": "artvc.version",
            "artifact": self.artifact,
            "type": self.type,
            "manifest": self.manifest,
            "created": self.created,
            "author": self.author,
            "message": self.message,
            "metadata": self.metadata,
            "inputs": list(self.inputs),
            "git": self.git,
            "job_type": self.job_type,
            "stats": self.stats,
            "paths": list(self.paths),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes) -> VersionRecord:
    """Parse and validate a record (it may come from an untrusted remote)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CorruptObjectError("version record is not valid JSON") from None
    if not isinstance(data, dict) or data.get("kind") != "artvc.version":
        raise CorruptObjectError("not an artvc version record")
    if data.get("format") != RECORD_FORMAT:
        raise FormatError(f"version record format {data.get('format')!r} is not supported by this artvc")
    try:
        record = VersionRecord(
            artifact=_str(data, "artifact"),
            type=_str(data, "type"),
            manifest=_str(data, "manifest"),
            created=_str(data, "created"),
            author=_str(data, "author"),
            message=_str(data, "message"),
            metadata=dict(data["metadata"]),
            inputs=tuple(data["inputs"]),
            git=data["git"],
            job_type=data["job_type"],
            stats=dict(data["stats"]),
            paths=tuple(str(p) for p in data["paths"]),
        )
    except (KeyError, TypeError, ValueError):
        raise CorruptObjectError("version record is missing fields") from None
    if not HEX64.match(record.manifest) or not all(isinstance(i, str) and HEX64.match(i) for i in record.inputs):
        raise CorruptObjectError("version record has malformed ids")
    return record


def _str(data: dict, key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value
