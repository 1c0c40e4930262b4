"""A repository on disk: the `.artvc/` folder, its config, store, indexes and refs.

This layer knows versions and objects; it knows nothing of workspaces, remotes or the CLI.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from dulwich.config import ConfigFile

from . import manifest as manifest_codec
from . import records, trees
from .chunker import DATA_CHUNKER, HASH_ALGORITHM, TREE_CHUNKER, ChunkerParams
from .errors import ArtvcError, ConfigError, FormatError, MissingObjectError, NotARepositoryError
from .fsutil import atomic_writer
from .index import CACHE_DBS, Index, open_index
from .manifest import Entry
from .packs import BLOB_RECORD, BLOB_TREE
from .records import VersionRecord
from .refs import Refs
from .store import PACK_TARGET_SIZE, Store, StoreSettings
from .storewriter import StoreWriter

ARTVC_DIR = ".artvc"
STORE_FORMAT = 1
DEFAULT_COMPRESSION_LEVEL = 1


@dataclass(frozen=True)
class RemoteConfig:
    name: str
    url: str
    options: dict[str, str]
    default: bool


OPTION_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class NewVersion:
    """What a commit made: the number and id, and whether it is new (False: identical content)."""

    name: str
    number: int
    version_id: bytes
    created: bool


def find_root(start: str) -> str:
    """The nearest folder at or above `start` holding `.artvc/`."""
    path = os.path.abspath(start)
    while True:
        if os.path.isdir(os.path.join(path, ARTVC_DIR)):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise NotARepositoryError(os.path.abspath(start))
        path = parent


def _default_config() -> ConfigFile:
    cf = ConfigFile()
    cf.set((b"core",), b"format", str(STORE_FORMAT).encode())
    cf.set((b"hash",), b"algorithm", HASH_ALGORITHM.encode())
    for section, params in ((b"data", DATA_CHUNKER), (b"tree", TREE_CHUNKER)):
        cf.set((b"chunker", section), b"algorithm", b"fastcdc2020")
        cf.set((b"chunker", section), b"min", str(params.min_size).encode())
        cf.set((b"chunker", section), b"avg", str(params.avg_size).encode())
        cf.set((b"chunker", section), b"max", str(params.max_size).encode())
    cf.set((b"compression",), b"algorithm", b"zstd")
    cf.set((b"compression",), b"level", str(DEFAULT_COMPRESSION_LEVEL).encode())
    cf.set((b"pack",), b"size", str(PACK_TARGET_SIZE).encode())
    return cf


def _int(cf: ConfigFile, section: tuple[bytes, ...], key: bytes) -> int:
    try:
        return int(cf.get(section, key))
    except (KeyError, ValueError):
        raise ConfigError(f"config value {b'.'.join(section + (key,)).decode()} is missing or not a number") from None


class Repository:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.artvc_dir = os.path.join(self.root, ARTVC_DIR)
        self.config_path = os.path.join(self.artvc_dir, "config")
        try:
            self.config = ConfigFile.from_path(self.config_path)
        except FileNotFoundError:
            raise NotARepositoryError(self.root) from None
        self._check_format()
        self.index = open_index(os.path.join(self.artvc_dir, "index"))
        self.store = Store(self.artvc_dir, self.index, self._store_settings())
        self.refs = Refs(self.index)
        self._manifest_cache: dict[bytes, list[Entry]] = {}
        self._cache: Index | None = None

    @property
    def cache(self) -> Index:
        """The workspace's stat cache environment, opened on first use (push and fetch never need it)."""
        if self._cache is None:
            self._cache = open_index(os.path.join(self.artvc_dir, "cache"), CACHE_DBS)
        return self._cache

    @classmethod
    def init(cls, path: str) -> tuple["Repository", bool]:
        """Create a repository at `path` (a no-op on an existing one). Returns (repo, created)."""
        root = os.path.abspath(path)
        artvc_dir = os.path.join(root, ARTVC_DIR)
        if os.path.isfile(os.path.join(artvc_dir, "config")):
            return cls(root), False
        try:
            os.makedirs(os.path.join(artvc_dir, "packs"), exist_ok=True)
            os.makedirs(os.path.join(artvc_dir, "tmp"), exist_ok=True)
            with atomic_writer(os.path.join(artvc_dir, "config")) as f:
                _default_config().write_to_file(f)
        except OSError as exc:
            raise ArtvcError(f"cannot create a repository in {root}: {exc.strerror}") from None
        return cls(root), True

    @classmethod
    def discover(cls, start: str = ".") -> "Repository":
        return cls(find_root(start))

    def _check_format(self) -> None:
        fmt = _int(self.config, (b"core",), b"format")
        if fmt != STORE_FORMAT:
            raise FormatError(f"this repository has format {fmt}; this artvc reads format {STORE_FORMAT}: upgrade artvc")
        try:
            algo = self.config.get((b"hash",), b"algorithm").decode()
        except KeyError:
            algo = HASH_ALGORITHM
        if algo != HASH_ALGORITHM:
            raise FormatError(f"hash algorithm {algo!r} is not supported by this artvc")

    def _store_settings(self) -> StoreSettings:
        def params(section: bytes) -> ChunkerParams:
            key = (b"chunker", section)
            return ChunkerParams(_int(self.config, key, b"min"), _int(self.config, key, b"avg"), _int(self.config, key, b"max"))

        return StoreSettings(
            data_chunker=params(b"data"),
            tree_chunker=params(b"tree"),
            compression_level=_int(self.config, (b"compression",), b"level"),
            pack_size=_int(self.config, (b"pack",), b"size"),
        )

    # ---- remotes ------------------------------------------------------------------------------
    def remotes(self) -> dict[str, RemoteConfig]:
        """Configured remotes; `default` marks the one used when a command names none."""
        found = {}
        for section in self.config.sections():
            if len(section) == 2 and section[0] == b"remote":
                name = section[1].decode()
                items = {k.decode().replace("-", "_"): v.decode() for k, v in self.config.items(section)}
                url = items.pop("url", "")
                found[name] = (url, items)
        try:
            marked = self.config.get((b"core",), b"default-remote").decode()
        except KeyError:
            marked = ""
        if marked not in found:
            marked = next(iter(found)) if len(found) == 1 else ""
        return {n: RemoteConfig(n, url, opts, n == marked) for n, (url, opts) in sorted(found.items())}

    def add_remote(self, name: str, url: str, options: dict[str, str], default: bool = False) -> None:
        if name in self.remotes():
            raise ConfigError(f"a remote named '{name}' exists already; 'artvc remote remove {name}' first")
        section = (b"remote", name.encode())
        self.config.set(section, b"url", url.encode())
        for key, value in options.items():
            if not OPTION_KEY.match(key) or key == "url":
                raise ConfigError(f"invalid remote option name {key!r}")
            self.config.set(section, key.replace("_", "-").encode(), str(value).encode())
        if default:
            self.config.set((b"core",), b"default-remote", name.encode())
        self._save_config()

    def remove_remote(self, name: str) -> None:
        if name not in self.remotes():
            raise ConfigError(f"no remote named '{name}'; 'artvc remote list' shows them")
        del self.config[(b"remote", name.encode())]
        try:
            if self.config.get((b"core",), b"default-remote").decode() == name:
                del self.config[(b"core",)][b"default-remote"]
        except KeyError:
            pass  # no default remote was set: nothing to clear
        self._save_config()

    def _save_config(self) -> None:
        with atomic_writer(self.config_path) as f:
            self.config.write_to_file(f)

    # ---- objects -----------------------------------------------------------------------------
    def _record_in(self, txn, version_id: bytes) -> VersionRecord:
        """A record read through the caller's (write) transaction: LMDB allows one per thread."""
        loc = self.store.locate(version_id, txn)
        if loc is None:
            raise MissingObjectError(version_id.hex(), "version record")
        return records.decode(self.store.read_located(version_id, loc))

    def load_record(self, version_id: bytes) -> VersionRecord:
        return records.decode(self.store.get_blob(version_id, "version record"))

    def load_manifest(self, tree_id: bytes) -> list[Entry]:
        cached = self._manifest_cache.get(tree_id)
        if cached is None:
            cached = list(self.iter_manifest(tree_id))
            if len(self._manifest_cache) > 8:
                self._manifest_cache.clear()
            self._manifest_cache[tree_id] = cached
        return cached

    def iter_manifest(self, tree_id: bytes) -> Iterator[Entry]:
        """A manifest's entries one at a time, not kept (a push of 200k files needs only their chunk ids)."""
        cached = self._manifest_cache.get(tree_id)
        if cached is not None:
            return iter(cached)
        return manifest_codec.iter_decode(self.manifest_bytes(tree_id))

    def manifest_bytes(self, tree_id: bytes) -> bytes:
        """A manifest as stored (encoded, verified): about 50 bytes per file, to decode as often as needed.
        Its pieces are read on the shared worker pool: not to be called from a task running there."""
        return trees.load_tree(tree_id, lambda blob_id: self.store.get_blob(blob_id, "manifest"),
                               lambda pieces: self.store.iter_file(tuple(pieces), "manifest"))

    def version_manifest(self, version_id: bytes) -> list[Entry]:
        return self.load_manifest(bytes.fromhex(self.load_record(version_id).manifest))

    def store_manifest(self, entries: Iterable[Entry], writer: StoreWriter) -> tuple[bytes, manifest_codec.ManifestEncoder]:
        """Encode entries given in path order as they come (none are held) and store the result as a tree."""
        encoder = manifest_codec.ManifestEncoder()
        for entry in entries:
            encoder.add(entry)
        data = encoder.finish_in_place()
        return trees.store_tree(data, self.store.tree_chunker, lambda blob: writer.add_blob(blob, BLOB_TREE)), encoder

    # ---- versions ----------------------------------------------------------------------------
    def all_version_ids(self) -> list[bytes]:
        """Every numbered version of every artifact."""
        with self.index.read() as txn:
            return [vid for name in self.refs.artifact_names(txn) for _, vid in self.refs.list_versions(txn, name)]

    def latest_version(self, name: str) -> tuple[int, bytes] | None:
        with self.index.read() as txn:
            number = self.refs.latest_number(txn, name)
            if number is None:
                return None
            return number, self.refs.version_id(txn, name, number)

    def create_version(
        self,
        name: str,
        type_: str,
        entries: Iterable[Entry],
        writer: StoreWriter,
        *,
        message: str = "",
        author: str = "",
        aliases: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
        inputs: Iterable[bytes] = (),
        git: dict[str, Any] | None = None,
        job_type: str | None = None,
        paths: Iterable[str] = (),
        set_head: bool = False,
    ) -> NewVersion:
        """Store the manifest and record, then give the version its number: data -> manifest -> record -> refs.

        `entries` come in path order and are consumed as they come. Identical content to the
        artifact's latest version makes no version; the aliases then go to that latest version.
        """
        tree_id, counted = self.store_manifest(entries, writer)
        latest = self.latest_version(name)
        if latest is not None and self.load_record(latest[1]).manifest == tree_id.hex():
            writer.flush()
            with self.index.write() as txn:
                for alias in aliases:
                    self.refs.set_alias(txn, name, alias, latest[1])
                if set_head:
                    self.refs.set_head(txn, name, latest[1])
            return NewVersion(name, latest[0], latest[1], False)
        record = VersionRecord(
            artifact=name,
            type=type_,
            manifest=tree_id.hex(),
            created=datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            author=author,
            message=message,
            metadata=dict(metadata or {}),
            inputs=tuple(dict.fromkeys(i.hex() for i in inputs)),
            git=git,
            job_type=job_type,
            paths=tuple(sorted(paths)),
            stats={
                "entries": counted.entries,
                "files": counted.files,
                "bytes": counted.bytes,
                "references": counted.references,
            },
        )
        version_id = writer.add_blob(record.encode(), BLOB_RECORD)
        writer.flush()
        with self.index.write() as txn:
            existing = self.refs.locate_version(txn, version_id)
            latest_now = self.refs.latest_number(txn, name)
            if existing is None and latest_now is not None:
                # Another process may have committed the same content since we looked: same rule.
                latest_id = self.refs.version_id(txn, name, latest_now)
                if self._record_in(txn, latest_id).manifest == tree_id.hex():
                    for alias in aliases:
                        self.refs.set_alias(txn, name, alias, latest_id)
                    if set_head:
                        self.refs.set_head(txn, name, latest_id)
                    return NewVersion(name, latest_now, latest_id, False)
            number = existing[1] if existing else self.refs.add_version(txn, name, version_id)
            for alias in aliases:
                self.refs.set_alias(txn, name, alias, version_id)
            if set_head:
                self.refs.set_head(txn, name, version_id)
        return NewVersion(name, number, version_id, True)
