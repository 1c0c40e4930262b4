"""push and fetch: the sharing rules of the contract over a Backend.

push:  data packs and their indexes first, then each new version created exclusively
       (versions/NAME/NNNNNNNNNN), then aliases moved under the lease rule.
fetch: pack indexes, version files and aliases; metadata (records, manifests) of every remote
       version; never-pushed local versions renumbered on top of the remote's; then the data of
       the versions asked for.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from .. import records, trees
from ..errors import ArtvcError, CorruptObjectError, PushRejectedError, RemoteError, RemoteExistsError, RemoteNotFoundError
from ..manifest import KIND_FILE
from ..repository import Repository
from ..storewriter import StoreWriter
from . import layout
from .backend import Backend
from .state import RemoteState
from .transfer import Transfer


@dataclass
class PushResult:
    versions: list[tuple[str, int, bytes]] = field(default_factory=list)
    aliases: list[tuple[str, str, bytes | None]] = field(default_factory=list)
    rejected_aliases: list[tuple[str, str]] = field(default_factory=list)
    packs: int = 0
    bytes_up: int = 0
    requests: int = 0


@dataclass
class FetchResult:
    new_versions: list[tuple[str, int, bytes]] = field(default_factory=list)
    renumbered: list[tuple[str, int, int]] = field(default_factory=list)
    aliases: list[tuple[str, str, bytes | None]] = field(default_factory=list)
    kept_local_aliases: list[tuple[str, str]] = field(default_factory=list)
    bytes_down: int = 0
    requests: int = 0


class Sync:
    def __init__(self, repo: Repository, remote_name: str, backend: Backend, jobs: int = 4,
                 progress: Callable[[int], None] = lambda n: None, warn: Callable[[str], None] = lambda m: None) -> None:
        self.repo = repo
        self.name = remote_name
        self.backend = backend
        self.state = RemoteState(repo.index, remote_name)
        self.transfer = Transfer(repo, backend, self.state, jobs, progress)
        self.warn = warn

    # ---- the marker ----------------------------------------------------------------------------
    def check_remote(self, create: bool) -> None:
        """Read (or, for a push, create) the marker; forget cached state if the remote was replaced."""
        try:
            raw = self.backend.load(layout.MARKER)
        except RemoteNotFoundError:
            check_bucket = getattr(self.backend, "check_bucket", None)
            if check_bucket is not None:
                check_bucket()
            if not create:
                root = getattr(self.backend, "root", None)
                if getattr(self.backend, "protocol", "") == "file" and root and not os.path.isdir(root):
                    raise RemoteNotFoundError(f"the remote folder {root} does not exist (moved, or a share not mounted?)") from None
                raise RemoteNotFoundError(f"{self.backend.url} is not an artvc remote (no {layout.MARKER} there); check the URL, or push to it first") from None
            try:
                self.backend.create(layout.MARKER, layout.marker_bytes())
            except RemoteExistsError:
                pass  # another push created it first: read theirs below
            raw = self.backend.load(layout.MARKER)
        self.state.set_remote_id(layout.check_marker(raw, self.backend.url))

    # ---- helpers ---------------------------------------------------------------------------------
    def _local_versions(self) -> dict[str, list[tuple[int, bytes]]]:
        with self.repo.index.read() as txn:
            return {n: self.repo.refs.list_versions(txn, n) for n in self.repo.refs.artifact_names(txn)}

    def _remote_versions_listed(self, artifact: str | None = None) -> dict[str, dict[int, bytes]]:
        """List version files on the remote, load the ones not seen before, and cache them."""
        listing = self.backend.list(f"versions/{artifact}" if artifact else "versions")
        with self.repo.index.read() as txn:
            known = self.state.versions(txn, artifact)
        todo = []
        for name in listing:
            m = layout.VERSION_FILE.match(name)
            if m and int(m.group(2)) not in known.get(m.group(1), {}):
                todo.append((m.group(1), int(m.group(2)), name))
        with ThreadPoolExecutor(self.transfer.jobs) as pool:
            loaded = list(pool.map(lambda t: layout.parse_id(self.backend.load(t[2]), t[2]), todo))
        with self.repo.index.write() as txn:
            for (art, number, _), vid in zip(todo, loaded):
                self.state.set_version(txn, art, number, vid)
                known.setdefault(art, {})[number] = vid
        return known

    def _version_blobs(self, version_id: bytes, with_data: bool) -> Iterator[bytes]:
        """The blobs a version needs: its record, its tree pieces and (with_data) its chunks, as a stream."""
        record = self.repo.load_record(version_id)
        tree_id = bytes.fromhex(record.manifest)
        yield version_id
        yield from trees.tree_blob_ids(tree_id, lambda b: self.repo.store.get_blob(b, "manifest"))
        if with_data:
            for entry in self.repo.iter_manifest(tree_id):
                if entry.kind == KIND_FILE:
                    for chunk_id, _ in entry.chunks:
                        yield chunk_id

    # ---- push --------------------------------------------------------------------------------------
    def push(self, wanted: dict[str, int | None] | None = None, force: bool = False) -> PushResult:
        """Push versions (wanted: artifact -> highest number, None = all) and aliases not yet on the remote."""
        result = PushResult()
        self.check_remote(create=True)
        local = self._local_versions()
        if wanted is not None:
            local = {n: [(num, vid) for num, vid in vs if wanted[n] is None or num <= wanted[n]] for n, vs in local.items() if n in wanted}
        with self.repo.index.read() as txn:
            seen = self.state.versions(txn)
            seen_ids = {vid for vs in seen.values() for vid in vs.values()}
            last_aliases = self.state.aliases(txn)
            local_aliases = {(n, a): vid for n in local for a, vid in self.repo.refs.aliases(txn, n).items()}
        candidates = {n: [(num, vid) for num, vid in vs if vid not in seen_ids] for n, vs in local.items()}
        candidates = {n: vs for n, vs in candidates.items() if vs}
        alias_moves = {k: v for k, v in local_aliases.items() if last_aliases.get(k) != v}
        alias_moves.update({k: None for k in last_aliases if k[0] in local and k not in local_aliases})
        if not candidates and not alias_moves:
            return result
        for name, versions in candidates.items():
            remote = self._remote_versions_listed(name).get(name, {})
            remote_ids = set(remote.values())
            versions[:] = [(num, vid) for num, vid in versions if vid not in remote_ids]
            for num, vid in versions:
                if num in remote and remote[num] != vid:
                    raise PushRejectedError(
                        f"the remote already has {name}:v{num} from someone else; run 'artvc pull' to put your "
                        f"versions on top of theirs, then push again"
                    )
            expected = max(remote) + 1 if remote else 0
            if versions and versions[0][0] > expected:
                raise PushRejectedError(f"{name}:v{expected} is missing on the remote; push {name} without a version spec")
        candidates = {n: vs for n, vs in candidates.items() if vs}
        if candidates:
            self.transfer.refresh_index()
        # Version by version, data first: what one version sent, the next finds on the remote, and
        # what is held at once is one version's wanted ids.
        for name, versions in candidates.items():
            for num, vid in versions:
                result.packs += self.transfer.upload_blobs(self._version_blobs(vid, True))
                self._create_version(name, num, vid)
                result.versions.append((name, num, vid))
        result.bytes_up = self.transfer.bytes_up
        self._push_aliases(alias_moves, last_aliases, force, result)
        return result

    def _create_version(self, name: str, number: int, vid: bytes) -> None:
        target = layout.version_name(name, number)
        try:
            self.backend.create(target, layout.id_bytes(vid))
        except RemoteExistsError:
            found = layout.parse_id(self.backend.load(target), target)
            if found != vid:
                raise PushRejectedError(
                    f"someone pushed {name}:v{number} first; run 'artvc pull' to put your versions on top, then push again"
                ) from None
        with self.repo.index.write() as txn:
            self.state.set_version(txn, name, number, vid)

    def _push_aliases(self, moves: dict[tuple[str, str], bytes | None], last: dict[tuple[str, str], bytes], force: bool, result: PushResult) -> None:
        with self.repo.index.read() as txn:
            on_remote = {vid for vs in self.state.versions(txn).values() for vid in vs.values()}
        for (name, alias), vid in sorted(moves.items()):
            if vid is not None and vid not in on_remote:
                continue
            target = layout.alias_name(name, alias)
            try:
                current: bytes | None = layout.parse_id(self.backend.load(target), target)
            except RemoteNotFoundError:
                current = None
            if current != last.get((name, alias)) and current != vid and not force:
                result.rejected_aliases.append((name, alias))
                continue
            if vid is None:
                if current is not None:
                    self.backend.delete(target)
            elif current != vid:
                self.backend.store(target, layout.id_bytes(vid))
            with self.repo.index.write() as txn:
                self.state.set_alias(txn, name, alias, vid)
            result.aliases.append((name, alias, vid))

    # ---- fetch ---------------------------------------------------------------------------------------
    def fetch(self, data_for: Callable[[dict[str, list[tuple[int, bytes]]]], Iterable[bytes]]) -> FetchResult:
        """Fetch refs and metadata of everything, renumber, then the data blobs `data_for` picks.

        `data_for` is called after renumbering with every local artifact's (number, id) list.
        """
        result = FetchResult()
        self.check_remote(create=False)
        self.transfer.refresh_index()
        remote = self._remote_versions_listed()
        with StoreWriter(self.repo.store) as writer:
            self._fetch_metadata([vid for vs in remote.values() for vid in vs.values()], writer)
        for name, versions in sorted(remote.items()):
            self._validate(name, versions)
        for name, versions in sorted(remote.items()):
            self._merge_versions(name, versions, result)
        self._fetch_aliases(result)
        local = self._local_versions()
        with StoreWriter(self.repo.store) as writer:
            self.transfer.download_blobs(data_for(local), writer)
        result.bytes_down = self.transfer.bytes_down
        return result

    def _fetch_metadata(self, version_ids: list[bytes], writer: StoreWriter) -> None:
        """Records, then manifest tree nodes level by level, verified on arrival."""
        store = self.repo.store
        missing = [v for v in version_ids if not store.has_blob(v)]
        self.transfer.download_blobs(missing, writer)
        writer.flush()
        roots = [bytes.fromhex(records.decode(store.get_blob(vid, "version record")).manifest) for vid in version_ids]
        self.transfer.download_blobs(roots, writer)
        writer.flush()
        get = lambda blob_id: store.get_blob(blob_id, "manifest")  # noqa: E731
        pending = [trees.decode_node(get(root)) for root in roots]
        while pending:
            self.transfer.download_blobs([piece for _, _, pieces in pending for piece, _ in pieces], writer)
            writer.flush()
            pending = [trees.decode_node(trees.join_pieces(pieces, get)) for level, _, pieces in pending if level > 0]

    def _validate(self, name: str, remote: dict[int, bytes]) -> None:
        """Every remote version's record and manifest must decode cleanly before any is numbered here."""
        with self.repo.index.read() as txn:
            known = {vid for vid in remote.values() if self.repo.refs.locate_version(txn, vid) is not None}
        for number, vid in sorted(remote.items()):
            if vid in known:
                continue
            try:
                record = self.repo.load_record(vid)
                if record.artifact != name:
                    raise CorruptObjectError(f"it holds a record of '{record.artifact}'")
                self.repo.load_manifest(bytes.fromhex(record.manifest))
            except ArtvcError as exc:
                raise CorruptObjectError(f"remote version {name}:v{number} on {self.backend.url} is invalid, nothing was fetched: {exc}") from None

    def _merge_versions(self, name: str, remote: dict[int, bytes], result: FetchResult) -> None:
        """Remote numbering wins; local versions the remote lacks go on top, in their order."""
        for number, vid in remote.items():
            record = self.repo.load_record(vid)
            if record.artifact != name:
                raise CorruptObjectError(f"remote version {name}:v{number} holds a record of '{record.artifact}'")
        if sorted(remote) != list(range(len(remote))):
            raise RemoteError(f"versions of {name} on {self.backend.url} are not numbered v0..v{len(remote) - 1}")
        with self.repo.index.write() as txn:
            refs = self.repo.refs
            local = refs.list_versions(txn, name)
            remote_ids = set(remote.values())
            numbering = sorted(remote.items())
            top = len(numbering)
            for number, vid in local:
                if vid in remote_ids:
                    continue
                numbering.append((top, vid))
                if number != top:
                    result.renumbered.append((name, number, top))
                top += 1
            before = dict(local)
            if numbering != sorted(before.items()):
                refs.renumber(txn, name, numbering)
            local_ids = set(before.values())
            for number, vid in sorted(remote.items()):
                if vid not in local_ids:
                    result.new_versions.append((name, number, vid))
            if refs.get_artifact(txn, name) is None:
                refs.put_artifact(txn, name, {"type": self.repo.load_record(remote[0]).type, "paths": []})

    def _fetch_aliases(self, result: FetchResult) -> None:
        names = [n for n in self.backend.list("aliases") if layout.ALIAS_FILE.match(n)]
        with ThreadPoolExecutor(self.transfer.jobs) as pool:
            values = list(pool.map(lambda n: layout.parse_id(self.backend.load(n), n), names))
        remote = {}
        for name, vid in zip(names, values):
            m = layout.ALIAS_FILE.match(name)
            remote[(m.group(1), m.group(2))] = vid
        with self.repo.index.write() as txn:
            refs = self.repo.refs
            last = self.state.aliases(txn)
            for key in sorted(set(remote) | set(last)):
                artifact, alias = key
                new = remote.get(key)
                old = last.get(key)
                mine = refs.get_alias(txn, artifact, alias)
                if new == old:
                    continue
                if mine == old or mine == new:
                    if new is None:
                        refs.delete_alias(txn, artifact, alias)
                    elif refs.locate_version(txn, new) is not None:
                        refs.set_alias(txn, artifact, alias, new)
                    result.aliases.append((artifact, alias, new))
                else:
                    result.kept_local_aliases.append((artifact, alias))
                self.state.set_alias(txn, artifact, alias, new)
