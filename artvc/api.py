"""The Python API: everything the CLI does, as functions that return values and never print."""
from __future__ import annotations

import functools
import heapq
import os
import posixpath
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from . import checkout as materialize
from . import lineage as lineage_mod
from . import lockfile, lockstate, provenance, referencing, restore, sharing, specs
from . import gc as gc_mod
from . import repair as repair_mod
from . import verify as verify_mod
from .lock import repository_lock
from .artifact import Artifact, Run, Version
from .errors import ArtvcError, PathError, UnknownArtifactError
from .manifest import KIND_FILE, KIND_REFERENCE, KIND_SYMLINK, Entry, manifest_key
from .names import check_alias, check_name
from .progress import Reporter
from .repository import ARTVC_DIR, RemoteConfig, Repository
from .workspace import Changes, DiskFile, ScanFacts, Workspace, to_repo_path, under


def _holds_lock(method):
    """Run an API method under the shared repository lock, so gc never runs underneath it."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.locked():
            return method(self, *args, **kwargs)

    return wrapper


@dataclass
class CommitResult:
    version: Version
    created: bool


@dataclass
class DiffResult:
    added: list[str]
    removed: list[str]
    modified: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.modified)


@dataclass
class CheckoutResult:
    version: Version
    written: int
    deleted: int
    unchanged: int
    skipped_references: list[str] = field(default_factory=list)


class Repo:
    """An artvc repository: open one with Repo(path) (any folder inside it) or create one with Repo.init."""

    def __init__(self, path: str = ".", reporter: Reporter | None = None) -> None:
        self._repository = Repository.discover(path)
        self.root = self._repository.root
        self.reporter = reporter or Reporter()
        self._run: Run | None = None

    @classmethod
    def init(cls, path: str = ".", reporter: Reporter | None = None) -> "Repo":
        """Create (or open, if it exists) a repository at `path`; `.created` says which."""
        os.makedirs(path, exist_ok=True)
        _, created = Repository.init(path)
        repo = cls(path, reporter)
        repo.created = created
        return repo

    created = False

    @property
    def workspace(self) -> Workspace:
        return Workspace(self._repository)

    # ---- artifacts and tracked paths -----------------------------------------------------------
    def artifacts(self) -> list[str]:
        with self._repository.index.read() as txn:
            return self._repository.refs.artifact_names(txn)

    def tracked_paths(self, name: str) -> list[str]:
        with self._repository.index.read() as txn:
            settings = self._repository.refs.get_artifact(txn, name)
        return list(settings["paths"]) if settings else []

    def add(self, paths: Iterable[str], name: str | None = None, type: str | None = None, cwd: str | None = None) -> tuple[str, list[str]]:
        """Track paths in artifact `name` (default: the first path's basename up to its first '.')."""
        paths = list(paths)
        if not paths:
            raise PathError("nothing to add: give one or more paths")
        rel = []
        for p in paths:
            r = to_repo_path(self.root, p, cwd)
            if not os.path.lexists(os.path.join(self.root, r)):
                raise PathError(f"no such file or folder: {p}")
            rel.append(r)
        if name is None:
            base = posixpath.basename(rel[0]) if rel[0] != "." else os.path.basename(self.root)
            name = base.split(".")[0] or base
        check_name(name)
        refs = self._repository.refs
        with self._repository.index.write() as txn:
            settings = refs.get_artifact(txn, name) or {"type": type or "dataset", "paths": []}
            if type:
                settings["type"] = type
            settings["paths"] = sorted(set(settings["paths"]) | set(rel))
            refs.put_artifact(txn, name, settings)
        return name, rel

    def add_reference(self, uri: str, name: str, as_path: str | None = None, checksum: bool = True,
                      max_objects: int | None = None, type: str | None = None) -> list[Entry]:
        """Track an external reference in artifact `name`: URI and checksum only. Returns its entries now."""
        check_name(name)
        ref = {"uri": uri, "as": as_path.strip("/") if as_path else None, "checksum": checksum, "max_objects": max_objects}
        entries = referencing.entries_for([ref])
        refs = self._repository.refs
        with self._repository.index.write() as txn:
            settings = refs.get_artifact(txn, name) or {"type": type or "dataset", "paths": []}
            if type:
                settings["type"] = type
            kept = [r for r in settings.get("refs", []) if (r.get("as") or referencing.default_entry_path(r["uri"])) != (ref["as"] or referencing.default_entry_path(uri))]
            settings["refs"] = kept + [ref]
            refs.put_artifact(txn, name, settings)
        return entries

    def remove(self, paths: Iterable[str], name: str, cwd: str | None = None) -> list[str]:
        """Stop tracking paths (files stay on disk); returns the paths removed."""
        check_name(name)
        refs = self._repository.refs
        with self._repository.index.write() as txn:
            settings = refs.get_artifact(txn, name)
            if settings is None:
                raise UnknownArtifactError(name)
            removed = []
            for p in paths:
                refs_kept = [ref for ref in settings.get("refs", [])
                             if p.strip("/") not in (ref.get("as") or referencing.default_entry_path(ref["uri"]), ref["uri"])]
                if len(refs_kept) != len(settings.get("refs", [])):
                    removed.extend(ref["uri"] for ref in settings["refs"] if ref not in refs_kept)
                    settings["refs"] = refs_kept
                    continue
                r = to_repo_path(self.root, p, cwd)
                kept = [t for t in settings["paths"] if not (t == r or t.startswith(r + "/") or r == ".")]
                if len(kept) == len(settings["paths"]):
                    raise PathError(f"'{p}' is not tracked by '{name}'; tracked: {', '.join(settings['paths']) or 'nothing'}")
                removed.extend(t for t in settings["paths"] if t not in kept)
                settings["paths"] = kept
            refs.put_artifact(txn, name, settings)
        return removed

    # ---- versions ------------------------------------------------------------------------------
    def _version(self, name: str, number: int, vid: bytes) -> Version:
        return Version(self, name, number, vid.hex())

    def use_artifact(self, spec: str) -> Version:
        """The version a spec names (inside a run, it becomes an input of what the run logs)."""
        with self._repository.index.read() as txn:
            name, number, vid = specs.resolve(self._repository.refs, txn, spec)
        version = self._version(name, number, vid)
        if self._run is not None:
            self._run.inputs.append(version)
        return version

    def resolve(self, spec: str) -> Version:
        with self._repository.index.read() as txn:
            name, number, vid = specs.resolve(self._repository.refs, txn, spec)
        return self._version(name, number, vid)

    def versions(self, name: str) -> list[Version]:
        """Versions of one artifact, newest first."""
        check_name(name)
        with self._repository.index.read() as txn:
            found = self._repository.refs.list_versions(txn, name)
            if not found and self._repository.refs.get_artifact(txn, name) is None:
                raise UnknownArtifactError(name)
        return [self._version(name, n, vid) for n, vid in reversed(found)]

    def log(self, name: str | None = None) -> list[Version]:
        names = [name] if name else self.artifacts()
        return [v for n in names for v in self.versions(n)]

    def head(self, name: str) -> Version | None:
        """The version checked out in the workspace, if any."""
        refs = self._repository.refs
        with self._repository.index.read() as txn:
            vid = refs.get_head(txn, name)
            located = refs.locate_version(txn, vid) if vid else None
        return self._version(name, located[1], vid) if located else None

    def _aliases_of(self, name: str, vid: bytes, number: int) -> list[str]:
        refs = self._repository.refs
        with self._repository.index.read() as txn:
            names = sorted(a for a, v in refs.aliases(txn, name).items() if v == vid)
            if refs.latest_number(txn, name) == number:
                names.insert(0, "latest")
        return names

    def set_alias(self, spec: str, alias: str) -> Version:
        check_alias(alias)
        version = self.resolve(spec)
        with self._repository.index.write() as txn:
            self._repository.refs.set_alias(txn, version.name, alias, bytes.fromhex(version.id))
        return version

    def delete_alias(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        with self._repository.index.write() as txn:
            if not self._repository.refs.delete_alias(txn, name, alias):
                raise ArtvcError(f"'{name}' has no alias '{alias}'")

    # ---- status and commit ------------------------------------------------------------------------
    def status(self, name: str | None = None) -> dict[str, Changes]:
        """Per artifact: added / modified / deleted paths against the checked-out version."""
        names = [check_name(name)] if name else self.artifacts()
        ws = self.workspace
        out = {}
        for n in names:
            paths = self.tracked_paths(n)
            if name and not paths and not self.versions(n):
                raise UnknownArtifactError(n)
            head = self.head(n)
            head_id = bytes.fromhex(head.id) if head else b""
            scanned_at = time.time_ns()
            # The clean mark is checked on a stream of the scan: a clean workspace costs no memory per file.
            if ws.known_clean(n, head_id, ws.scan_facts(ws.iter_scan(paths, self.reporter.warn))):
                out[n] = Changes([], [], [])
                continue
            facts = ScanFacts()
            out[n] = self._compare_workspace(ws, paths, self._iter_entries(head) if head else iter(()), facts)
            if out[n].clean:
                ws.remember_clean(n, head_id, facts.result(), scanned_at)
        return out

    def _compare_workspace(self, ws: Workspace, paths: list[str], entries: Iterable[Entry], facts: ScanFacts | None = None) -> Changes:
        """Disk against a version's entries (in path order), both streamed; `facts` sees the scan go by."""
        def scanned() -> Iterator[DiskFile]:
            for f in ws.iter_scan(paths, self.reporter.warn):
                if facts is not None:
                    facts.add(f)
                yield f

        return ws.compare(scanned(), entries)

    @_holds_lock
    def commit(
        self,
        names: Iterable[str] = (),
        message: str = "",
        aliases: Iterable[str] = (),
        metadata: dict[str, Any] | None = None,
        inputs: Iterable[str] = (),
    ) -> list[CommitResult]:
        """Snapshot the tracked paths of each artifact (default: all with tracked paths)."""
        aliases = [check_alias(a) for a in aliases]
        names = [check_name(n) for n in names] or [n for n in self.artifacts() if self._tracks_something(n)]
        if not names:
            raise ArtvcError("nothing is tracked yet; run 'artvc add PATH' first")
        input_ids = [bytes.fromhex(self.resolve(s).id) for s in inputs]
        git = provenance.git_info(self.root)
        author = provenance.author(self.root)
        ws = self.workspace
        all_settings = {}
        with self._repository.index.read() as txn:
            for name in names:
                settings = self._repository.refs.get_artifact(txn, name)
                if settings is None:
                    raise UnknownArtifactError(name)
                if not settings["paths"] and not settings.get("refs"):
                    raise ArtvcError(f"'{name}' tracks no paths; run 'artvc add PATH -a {name}'")
                all_settings[name] = settings
        results = []
        for name in names:
            settings = all_settings[name]
            versions = list({v.id: v for v in (self.head(name), self._latest(name)) if v is not None}.values())
            previous = {e.path: e for v in versions for e in self._iter_entries(v) if e.kind == KIND_REFERENCE} if settings.get("refs") else {}
            ref_entries = sorted(referencing.entries_for(settings.get("refs", []), previous), key=lambda e: manifest_key(e.path))
            ref_paths = {e.path for e in ref_entries}
            facts = ScanFacts()

            def files() -> Iterator[DiskFile]:
                """The scan, streamed: its facts are taken on the way; references own their paths."""
                for f in ws.iter_scan(settings["paths"], self.reporter.warn):
                    facts.add(f)
                    if f.path not in ref_paths:
                        yield f

            # The total costs a second walk of the folders: paid only when a progress bar shows it.
            total = sum(f.size for f in ws.iter_scan(settings["paths"])) if self.reporter.shows_progress else None
            scanned_at = time.time_ns()
            with self._repository.store.writer() as writer, self.reporter.task(f"commit {name}", total) as task:
                entries = ws.commit_entries(
                    files(), self._iter_entries(versions[0]) if versions else None,
                    lambda: (e for v in versions for e in self._iter_entries(v)), writer, task.advance,
                )
                if ref_entries:
                    entries = heapq.merge(entries, ref_entries, key=lambda e: manifest_key(e.path))
                made = self._repository.create_version(
                    name, settings["type"], entries, writer, message=message, author=author, aliases=aliases,
                    metadata=metadata, inputs=input_ids, git=git, paths=settings["paths"], set_head=True,
                )
            # The workspace now is this version, as scanned: the next status can say so at once.
            ws.remember_clean(name, made.version_id, facts.result(), scanned_at)
            results.append(CommitResult(self._version(name, made.number, made.version_id), made.created))
        self.write_lock()
        return results

    def _iter_entries(self, version: Version) -> Iterator[Entry]:
        """A version's entries streamed from its manifest, not kept (Version.entries keeps them)."""
        return self._repository.iter_manifest(bytes.fromhex(version.record.manifest))

    def _tracks_something(self, name: str) -> bool:
        with self._repository.index.read() as txn:
            settings = self._repository.refs.get_artifact(txn, name)
        return bool(settings and (settings["paths"] or settings.get("refs")))

    def _latest(self, name: str) -> Version | None:
        latest = self._repository.latest_version(name)
        return self._version(name, *latest) if latest else None

    @_holds_lock
    def log_artifact(self, artifact: Artifact, aliases: Iterable[str] = (), message: str = "", inputs: Iterable[str] = ()) -> Version:
        """Store the artifact's files as its next version (identical content returns the latest version)."""
        aliases = [check_alias(a) for a in aliases]
        input_ids = [bytes.fromhex(self.resolve(s).id) for s in inputs]
        job_type = None
        if self._run is not None:
            input_ids += [bytes.fromhex(v.id) for v in self._run.inputs]
            job_type = self._run.job_type
        files = artifact.files(self.root) if artifact.sources else {}
        ref_entries = referencing.entries_for(artifact.references)
        if not files and not ref_entries:
            raise PathError(f"artifact '{artifact.name}' has no files; add some with add_file, add_dir or add_reference")
        with self._repository.index.write() as txn:
            refs = self._repository.refs
            if refs.get_artifact(txn, artifact.name) is None:
                refs.put_artifact(txn, artifact.name, {"type": artifact.type, "paths": []})
        with self._repository.store.writer() as writer:
            entries = []
            for path, source in sorted(files.items()):
                if os.path.islink(source):
                    entries.append(Entry(path, KIND_SYMLINK, target=os.readlink(source)))
                    continue
                with open(source, "rb") as fh:
                    stored = writer.add_file(fh)
                entries.append(Entry(path, KIND_FILE, stored.size, os.access(source, os.X_OK), stored.digest, stored.chunks))
            clash = {e.path for e in entries} & {e.path for e in ref_entries}
            if clash:
                raise PathError(f"a file and a reference both want the entry path {sorted(clash)[0]!r}")
            entries = sorted(entries + ref_entries, key=lambda e: manifest_key(e.path))
            made = self._repository.create_version(
                artifact.name, artifact.type, entries, writer, message=message or artifact.description,
                author=provenance.author(self.root), aliases=aliases, metadata=artifact.metadata,
                inputs=input_ids, git=provenance.git_info(self.root), job_type=job_type,
            )
        version = self._version(artifact.name, made.number, made.version_id)
        if self._run is not None:
            self._run.outputs.append(version)
        return version

    @contextmanager
    def run(self, job_type: str | None = None) -> Iterator["Run"]:
        """Lineage without bookkeeping: what the run uses becomes an input of what it logs."""
        run = Run(self, job_type)
        previous, self._run = self._run, run
        try:
            yield run
        finally:
            self._run = previous

    # ---- diff and checkout ----------------------------------------------------------------------
    def diff(self, spec_a: str, spec_b: str | None = None) -> DiffResult:
        a = self.resolve(spec_a)
        before = {e.path: e for e in a.entries}
        if spec_b is not None:
            after = {e.path: e for e in self.resolve(spec_b).entries}
            modified = sorted(p for p in before.keys() & after.keys() if not before[p].same_content(after[p]))
            return DiffResult(sorted(after.keys() - before.keys()), sorted(before.keys() - after.keys()), modified)
        changes = self._compare_workspace(self.workspace, self.tracked_paths(a.name) or list(a.record.paths), self._iter_entries(a))
        return DiffResult(changes.added, changes.deleted, changes.modified)

    @_holds_lock
    def checkout(self, spec: str, paths: Iterable[str] = (), to: str | None = None, force: bool = False, cwd: str | None = None,
                 strict: bool = False) -> CheckoutResult:
        """Materialize a version in the workspace (or under `to`), never losing unsaved work without `force`."""
        version = self.resolve(spec)
        paths = list(paths)
        if to is not None:
            root = os.path.abspath(to)
            scope = [posixpath.normpath(p.replace(os.sep, "/")).strip("/") for p in paths]
            os.makedirs(root, exist_ok=True)
            current: dict[str, Entry] = {}
        else:
            root = self.root
            scope = [to_repo_path(self.root, p, cwd) for p in paths]
            head = self.head(version.name)
            current = {e.path: e for e in head.entries if not scope or under(e.path, scope)} if head else {}
        in_scope = (lambda e: under(e.path, scope)) if scope else (lambda e: True)
        if not current and materialize.is_empty_folder(root, frozenset() if to is not None else frozenset({ARTVC_DIR})):
            # Nothing there to plan around (a clone, or --to an empty folder): stream the entries.
            written, skipped = restore.materialize_fresh(self, version, root, in_scope, workspace=to is None, strict=strict)
            if scope and not written and not skipped:
                raise PathError(f"{', '.join(paths)} matches no entry of {version.spec}")
            result = CheckoutResult(version, written - len(skipped), 0, 0, skipped)
        else:
            target = [e for e in version.entries if in_scope(e)]
            if scope and not target:
                raise PathError(f"{', '.join(paths)} matches no entry of {version.spec}")
            plan, skipped = restore.materialize(self, version, root, target, current, force, workspace=to is None, strict=strict)
            result = CheckoutResult(version, len(plan.writes) + len(plan.refs) - len(skipped), len(plan.deletes), plan.unchanged, skipped)
        if to is None and not scope:
            with self._repository.index.write() as txn:
                refs = self._repository.refs
                refs.set_head(txn, version.name, bytes.fromhex(version.id))
                settings = refs.get_artifact(txn, version.name) or {"type": version.type, "paths": []}
                if not settings["paths"]:
                    settings["paths"] = list(version.record.paths) or sorted({e.path for e in version.entries if e.kind != KIND_REFERENCE})
                    refs.put_artifact(txn, version.name, settings)
            self.write_lock()
        return result

    def _verify_entries(self, entries: list[Entry]) -> list[str]:
        damaged = []
        store = self._repository.store
        for e in entries:
            if e.kind != KIND_FILE:
                continue
            try:
                for _ in store.iter_file(e.chunks):
                    pass
            except ArtvcError:
                damaged.append(e.path)
        return damaged

    # ---- garbage collection ------------------------------------------------------------------------
    def gc(self, dry_run: bool = False) -> "gc_mod.GcReport":
        """Remove data no version references; repack mostly-garbage packs. Waits for running writers."""
        with self.locked(exclusive=True):
            return gc_mod.collect(self._repository, dry_run)

    @contextmanager
    def locked(self, exclusive: bool = False) -> Iterator[None]:
        """Hold the repository lock (shared for commits, fetches and checkouts; exclusive for gc)."""
        held = getattr(self, "_lock_depth", 0)
        if held:
            self._lock_depth = held + 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with repository_lock(self._repository.artvc_dir, exclusive, self.reporter.info):
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0

    # ---- integrity ------------------------------------------------------------------------------
    def verify_references(self, specs: Iterable[str] = ()) -> list[tuple[str, str, str, str]]:
        """(spec, entry path, uri, what changed) for every external reference that drifted."""
        specs = list(specs)
        versions = [self.resolve(s) for s in specs] if specs else self.log()
        return [(v.spec, path, uri, problem) for v in versions for path, uri, problem in referencing.drifted(v.entries)]

    @_holds_lock
    def verify(self, specs: Iterable[str] = ()) -> "verify_mod.VerifyReport":
        """Re-hash every pack and every chunk of the versions (all of them by default)."""
        report = verify_mod.VerifyReport()
        specs = list(specs)
        versions = [self.resolve(s) for s in specs] if specs else self.log()
        total = sum(os.path.getsize(p) for p in self._repository.store.list_pack_files())
        with self.reporter.task("verify", total) as task:
            if not specs:
                verify_mod.verify_packs(self._repository, report, task.advance)
            for v in versions:
                verify_mod.verify_version(self._repository, v.spec, bytes.fromhex(v.id), report, lambda n: None)
        return report

    def repair(self, remote: str | None = None) -> "repair_mod.RepairReport":
        """Rebuild indexes from the packs, salvage damaged packs, and re-fetch lost chunks from a remote."""
        fetch = sharing.blob_fetcher(self, remote) if remote is not None or self._repository.remotes() else None
        with self.locked(exclusive=True):
            return repair_mod.repair(self._repository, fetch)

    def verify_remote(self, remote: str | None = None, read_data: bool = False) -> list[tuple[str, str]]:
        """(what, problem) for every remote version whose record, manifest or chunks are missing or damaged."""
        return sharing.verify_remote(self, remote, read_data)

    # ---- lineage and the lock -------------------------------------------------------------------
    def lineage(self, spec: str, down: bool = False, depth: int | None = None) -> lineage_mod.Graph:
        """The versions `spec` was made from, transitively (down: the versions made from it)."""
        if depth is not None and depth < 0:
            raise ArtvcError("--depth must be 0 or more")
        return lineage_mod.build(self._repository, bytes.fromhex(self.resolve(spec).id), down, depth)

    def write_lock(self) -> None:
        """Rewrite artvc.lock from the versions checked out here."""
        lockstate.write_lock(self)

    def lock_differences(self) -> list[tuple[str, lockfile.LockEntry | None, Version | None]]:
        """(artifact, what artvc.lock names, what is checked out) for every artifact where they differ."""
        return lockstate.lock_differences(self)

    @_holds_lock
    def checkout_lock(self, force: bool = False, remote: str | None = None) -> list[CheckoutResult]:
        """Bring every artifact artvc.lock names to that version, fetching what is not here."""
        return lockstate.checkout_lock(self, force, remote)

    # ---- sharing --------------------------------------------------------------------------------
    def remotes(self) -> list[RemoteConfig]:
        return list(self._repository.remotes().values())

    def add_remote(self, name: str, url: str, options: dict[str, str] | None = None, default: bool = False) -> RemoteConfig:
        """Add a remote; a local folder given as a relative path is stored absolute (relative to where you are)."""
        check_name(name)
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        self._repository.add_remote(name, url, dict(options or {}), default)
        return self._repository.remotes()[name]

    def remove_remote(self, name: str) -> None:
        from .remote.state import RemoteState

        self._repository.remove_remote(name)
        RemoteState(self._repository.index, name).forget()

    def split_remote(self, args: Iterable[str]) -> tuple[str | None, list[str]]:
        """push/fetch/pull's first argument is a REMOTE only if a remote of that name exists."""
        return sharing.split_remote_and_specs(self._repository, args)

    @_holds_lock
    def push(self, remote: str | None = None, specs: Iterable[str] = (), force: bool = False, jobs: int = 4):
        """Upload versions and aliases the remote lacks (data first, then exclusive version creates)."""
        return sharing.push(self, remote, specs, force, jobs)

    @_holds_lock
    def fetch(self, remote: str | None = None, specs: Iterable[str] = (), all: bool = False, jobs: int = 4):
        """Records, aliases and manifests of every remote version; data of the SPECs (default: each latest)."""
        return sharing.fetch(self, remote, specs, all, jobs)

    @_holds_lock
    def pull(self, remote: str | None = None, specs: Iterable[str] = (), force: bool = False, jobs: int = 4):
        """fetch, then check out; returns (fetch result, checkout results)."""
        return sharing.pull(self, remote, specs, force, jobs)

    @classmethod
    def clone(cls, url: str, directory: str | None = None, options: dict[str, str] | None = None, jobs: int = 4,
              reporter: Reporter | None = None) -> "Repo":
        """A new repository with `url` as its default remote `origin`: records and aliases, data on fetch/pull."""
        return sharing.clone(cls, url, directory, dict(options or {}), jobs, reporter)

    def close(self) -> None:
        self._repository.store.close()


def get(url: str, spec: str, path: str | None = None, to: str | None = None, options: dict[str, str] | None = None,
        jobs: int = 4, reporter: Reporter | None = None) -> str:
    """A version's entries (or one entry PATH) from a remote, without a repository; returns where they went."""
    return sharing.get(url, spec, path, to, dict(options or {}), jobs, reporter)
