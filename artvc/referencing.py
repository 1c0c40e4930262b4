"""External references for the API: turning tracked URIs into entries, materializing and checking them.

The URI machinery (and the remote libraries it needs) is imported only when references are used.
"""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import unquote, urlsplit

from . import chunker
from .checkout import safe_mkdirs
from .errors import (
    ArtvcError,
    CorruptObjectError,
    PathError,
    RemoteAuthError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnreachableError,
)
from .fsutil import atomic_writer
from .manifest import KIND_REFERENCE, Entry, check_entry_path

DEFAULT_MAX_OBJECTS = 10_000


def default_entry_path(uri: str) -> str:
    """The URI's last path component (query strings such as ?versionId= are not part of it)."""
    path = urlsplit(uri).path if "://" in uri else uri
    base = posixpath.basename(unquote(path).rstrip("/"))
    if not base:
        raise PathError(f"cannot name an entry after {uri!r}; give one with --as")
    return base


INFORMATIONAL = {"mtime"}


def entries_for(refs: Iterable[dict[str, Any]], previous: dict[str, Entry] | None = None) -> list[Entry]:
    """Resolve tracked references to entries: one per object, with the checksums their source gives.

    An object that differs from its `previous` entry only in informational fields (mtime) keeps
    the previous entry, so touching a file makes no new version.
    """
    refs = list(refs)
    if not refs:
        return []
    from .remote import references  # fsspec and urllib: only when something is referenced

    previous = previous or {}
    out: dict[str, Entry] = {}
    for ref in refs:
        base = (ref.get("as") or default_entry_path(ref["uri"])).strip("/")
        limit = ref.get("max_objects") or DEFAULT_MAX_OBJECTS
        for obj in references.resolve(ref["uri"], checksum=ref.get("checksum", True), max_objects=limit):
            path = f"{base}/{obj.relative}" if obj.relative else base
            try:
                check_entry_path(path)
            except CorruptObjectError:
                raise PathError(f"reference {obj.uri} would be stored at the invalid path {path!r}; give another with --as") from None
            if path in out:
                raise PathError(f"two references would be stored at {path!r}; give one of them another path with --as")
            entry = Entry(path, KIND_REFERENCE, size=obj.size, uri=obj.uri, checksums=obj.checksums)
            before = previous.get(path)
            if before is not None and before.kind == KIND_REFERENCE and _same_but_informational(before, entry):
                entry = before
            out[path] = entry
    return [out[p] for p in sorted(out)]


def _same_but_informational(a: Entry, b: Entry) -> bool:
    strip = lambda e: tuple((k, v) for k, v in e.checksums if k not in INFORMATIONAL)  # noqa: E731
    return a.uri == b.uri and a.size == b.size and strip(a) == strip(b)


def signature(entry: Entry) -> bytes:
    """What a file written from a reference was written from: its URI and checksums, hashed."""
    text = entry.uri + "\0" + "\0".join(f"{k}={v}" for k, v in entry.checksums)
    return chunker.hash_bytes(text.encode("utf-8", "surrogateescape"))


@dataclass
class RefOutcome:
    written: list[tuple[str, bytes]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def materialize(root: str, entries: list[Entry], strict: bool, progress: Callable[[int], None] = lambda n: None,
                temp_dir: str | None = None) -> RefOutcome:
    """Download, verify and atomically write each reference; unreachable ones are skipped unless strict."""
    from .remote import references

    outcome = RefOutcome()
    for entry in entries:
        target = os.path.join(root, *entry.path.split("/"))
        safe_mkdirs(root, posixpath.dirname(entry.path))
        hasher = chunker.new_hasher()
        try:
            with atomic_writer(target, durable=False, temp_dir=temp_dir) as f:
                for block in references.read_verified(entry.uri, entry.size, dict(entry.checksums)):
                    f.write(block)
                    hasher.update(block)
                    progress(len(block))
        except references.ReferenceDrift as exc:
            raise ArtvcError(f"reference {entry.path} ({entry.uri}) no longer matches this version: {exc}; nothing was written for it") from None
        except RemoteNotFoundError as exc:
            raise ArtvcError(f"reference {entry.path} is gone from its source ({exc}); nothing was written for it") from None
        except (RemoteUnreachableError, RemoteAuthError) as exc:
            if strict:
                raise ArtvcError(f"reference {entry.path} could not be read: {exc}") from None
            outcome.skipped.append((entry.path, str(exc)))
            continue
        except RemoteError as exc:
            if strict:
                raise ArtvcError(f"reference {entry.path} could not be read: {exc}") from None
            outcome.skipped.append((entry.path, str(exc)))
            continue
        outcome.written.append((entry.path, hasher.digest()))
    return outcome


def drifted(entries: Iterable[Entry]) -> list[tuple[str, str, str]]:
    """(path, uri, what changed) for every reference that no longer matches what was recorded."""
    from .remote import references

    out = []
    for entry in entries:
        if entry.kind != KIND_REFERENCE or not entry.checksums:
            continue
        try:
            problem = references.drift(entry.uri, entry.size, dict(entry.checksums))
        except ArtvcError as exc:
            problem = f"cannot be checked: {exc}"
        if problem:
            out.append((entry.path, entry.uri, problem))
    return out
