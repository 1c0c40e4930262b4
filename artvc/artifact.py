"""The W&B-shaped objects of the Python API: Artifact (to log) and Version (logged)."""
from __future__ import annotations

import io
import os
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Iterable, Iterator

from . import restore
from .errors import EntryNotFoundError, PathError
from .manifest import KIND_FILE, KIND_SYMLINK, Entry
from .names import check_name
from .workspace import ALWAYS_IGNORED
from .records import VersionRecord

if TYPE_CHECKING:
    from .api import Repo


@dataclass
class Artifact:
    """A set of files to log as a new version of artifact `name`."""

    name: str
    type: str = "dataset"
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    sources: list[tuple[str, str, bool]] = field(default_factory=list, init=False)
    references: list[dict[str, Any]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        check_name(self.name)

    def add_file(self, local_path: str, name: str | None = None) -> None:
        """Add one file; its entry path is `name`, else its path relative to the repository root."""
        path = os.path.abspath(local_path)
        if not os.path.lexists(path):
            raise PathError(f"no such file: {local_path}")
        if os.path.isdir(path) and not os.path.islink(path):
            raise PathError(f"{local_path} is a folder; use add_dir")
        self.sources.append((name or "", path, False))

    def add_dir(self, local_path: str, name: str | None = None) -> None:
        """Add every file below a folder; entry paths are under `name`, else the folder's repository path."""
        path = os.path.abspath(local_path)
        if not os.path.isdir(path):
            raise PathError(f"no such folder: {local_path}")
        self.sources.append((name or "", path, True))

    def add_reference(self, uri: str, name: str | None = None, checksum: bool = True, max_objects: int | None = None) -> None:
        """Track data by URI and the checksum its source gives, never its bytes.

        The entry path is `name`, else the URI's last path component; a URI naming a prefix or
        folder becomes one entry per object below it (more than `max_objects` is an error).
        """
        if "://" not in uri and not os.path.isabs(uri):
            raise PathError(f"reference {uri!r} is not a URI; use file://, s3://, sftp://, http(s):// or another fsspec URL")
        self.references.append({"uri": uri, "as": name, "checksum": checksum, "max_objects": max_objects})

    def files(self, root: str) -> dict[str, str]:
        """Entry path -> file on disk, for everything added (folders walked, symlinks kept as links)."""
        files: dict[str, str] = {}
        for name, source, is_dir in self.sources:
            if not is_dir:
                files[_entry_path(root, source, name)] = source
                continue
            prefix = _entry_path(root, source, name)
            for folder, dirs, names in os.walk(source):
                dirs[:] = sorted(d for d in dirs if d not in ALWAYS_IGNORED and not os.path.islink(os.path.join(folder, d)))
                names += [d for d in os.listdir(folder) if os.path.islink(os.path.join(folder, d)) and os.path.isdir(os.path.join(folder, d))]
                for fname in names:
                    rel = os.path.relpath(os.path.join(folder, fname), source).replace(os.sep, "/")
                    files[posixpath.join(prefix, rel) if prefix != "." else rel] = os.path.join(folder, fname)
        return files


def _entry_path(root: str, source: str, name: str) -> str:
    if name:
        return name.strip("/")
    rel = os.path.relpath(source, root)
    if rel.startswith(os.pardir) or os.path.isabs(rel):
        return os.path.basename(source)
    return rel.replace(os.sep, "/")


@dataclass
class Version:
    """One immutable version of an artifact."""

    repo: "Repo"
    name: str
    number: int
    id: str
    _record: VersionRecord | None = field(default=None, repr=False)
    _entries: list[Entry] | None = field(default=None, repr=False)

    @property
    def spec(self) -> str:
        return f"{self.name}:v{self.number}"

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def record(self) -> VersionRecord:
        if self._record is None:
            self._record = self.repo._repository.load_record(bytes.fromhex(self.id))
        return self._record

    @property
    def type(self) -> str:
        return self.record.type

    @property
    def metadata(self) -> dict[str, Any]:
        return self.record.metadata

    @property
    def message(self) -> str:
        return self.record.message

    @property
    def created(self) -> str:
        return self.record.created

    @property
    def inputs(self) -> list[str]:
        return list(self.record.inputs)

    @property
    def aliases(self) -> list[str]:
        return self.repo._aliases_of(self.name, bytes.fromhex(self.id), self.number)

    @property
    def entries(self) -> list[Entry]:
        if self._entries is None:
            self._entries = self.repo._repository.load_manifest(bytes.fromhex(self.record.manifest))
        return self._entries

    def get_entry(self, path: str) -> Entry:
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise EntryNotFoundError(self.spec, path)

    def open(self, path: str) -> BinaryIO:
        """The bytes of one file entry, verified, as a binary file object."""
        entry = self.get_entry(path)
        if entry.kind == KIND_SYMLINK:
            return io.BytesIO(entry.target.encode("utf-8", "surrogateescape"))
        if entry.kind != KIND_FILE:
            raise PathError(f"{path} is an external reference; read it from {entry.uri}")
        return io.BufferedReader(_ChunkStream(self.iter_bytes(entry)), buffer_size=1 << 20)

    def iter_bytes(self, entry: Entry) -> Iterator[bytes]:
        return self.repo._repository.store.iter_file(entry.chunks)

    def download(self, root: str | None = None, force: bool = False) -> str:
        """Materialize every entry under `root` (default: ./artifacts/NAME-vN); returns the folder."""
        target = os.path.abspath(root or os.path.join("artifacts", f"{self.name}-v{self.number}"))
        os.makedirs(target, exist_ok=True)
        restore.materialize(self.repo, self, target, self.entries, {}, force)
        return target

    def verify(self) -> list[str]:
        """Re-read and re-hash every chunk of this version; returns the damaged entry paths."""
        return self.repo._verify_entries(self.entries)

    def to_json(self) -> dict[str, Any]:
        rec = self.record
        return {
            "artifact": self.name,
            "version": f"v{self.number}",
            "spec": self.spec,
            "id": self.id,
            "type": rec.type,
            "aliases": self.aliases,
            "created": rec.created,
            "author": rec.author,
            "message": rec.message,
            "metadata": rec.metadata,
            "inputs": list(rec.inputs),
            "git": rec.git,
            "job_type": rec.job_type,
            "files": rec.stats.get("files", 0),
            "bytes": rec.stats.get("bytes", 0),
            "entries": rec.stats.get("entries", 0),
            "manifest": rec.manifest,
            "paths": list(rec.paths),
        }


class _ChunkStream(io.RawIOBase):
    """A read-only stream over verified chunks, so large entries are never held in memory whole."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not len(self._current):
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._current = memoryview(nxt)
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


@dataclass
class Run:
    repo: Repo
    job_type: str | None
    inputs: list[Version] = field(default_factory=list)
    outputs: list[Version] = field(default_factory=list)

    def use_artifact(self, spec: str) -> Version:
        return self.repo.use_artifact(spec)

    def log_artifact(self, artifact: Artifact, aliases: Iterable[str] = (), message: str = "", inputs: Iterable[str] = ()) -> Version:
        return self.repo.log_artifact(artifact, aliases=aliases, message=message, inputs=inputs)


def entry_json(entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {"path": entry.path, "kind": entry.kind_name, "size": entry.size}
    if entry.kind == KIND_FILE:
        out.update(digest=entry.digest.hex(), executable=entry.executable, chunks=len(entry.chunks))
    elif entry.kind == KIND_SYMLINK:
        out.update(target=entry.target)
    else:
        out.update(uri=entry.uri, checksums=dict(entry.checksums))
    return out


__all__ = ["Artifact", "Run", "Version", "entry_json"]
