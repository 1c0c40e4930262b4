"""Sharing through remotes, for the Python API: push, fetch, pull, clone, get and remote settings.

Remote libraries are imported only when a remote is used, so local commands start fast.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterable, Iterator

from . import checkout as materialize
from . import lockfile
from . import specs as specs_mod
from .errors import ArtvcError, ConfigError, PathError
from .index import close_indexes
from .manifest import KIND_FILE
from .names import check_name
from .repository import RemoteConfig, Repository

if TYPE_CHECKING:
    from .api import Repo
    from .remote.sync import FetchResult, PushResult, Sync


def pick_remote(repository: Repository, name: str | None) -> RemoteConfig:
    remotes = repository.remotes()
    if name is not None:
        if name not in remotes:
            raise ConfigError(f"no remote named '{name}'; 'artvc remote list' shows them")
        return remotes[name]
    if not remotes:
        raise ConfigError("no remote is configured; add one with 'artvc remote add NAME URL'")
    for remote in remotes.values():
        if remote.default:
            return remote
    raise ConfigError(
        f"several remotes are configured ({', '.join(remotes)}); name one, or mark one with 'artvc remote add --default'"
    )


def split_remote_and_specs(repository: Repository, args: Iterable[str]) -> tuple[str | None, list[str]]:
    """The contract's rule: the first argument is a REMOTE only if a remote of that name is configured."""
    args = list(args)
    if args and args[0] in repository.remotes():
        return args[0], args[1:]
    return None, args


@contextmanager
def open_sync(repo: "Repo", remote: RemoteConfig, jobs: int, label: str) -> Iterator["Sync"]:
    from .remote.backend import CountingBackend, RetryingBackend
    from .remote.fsspec_backend import open_backend
    from .remote.sync import Sync

    backend = CountingBackend(RetryingBackend(open_backend(remote.url, remote.options)))
    try:
        with repo.reporter.task(label, None) as task:
            yield Sync(repo._repository, remote.name, backend, jobs, task.advance, repo.reporter.warn)
    finally:
        backend.close()


def push(repo: "Repo", remote: str | None, specs: Iterable[str], force: bool, jobs: int) -> "PushResult":
    config = pick_remote(repo._repository, remote)
    wanted: dict[str, int | None] | None = None
    specs = list(specs)
    if specs:
        wanted = {}
        for spec in specs:
            version = repo.resolve(spec)
            wanted[version.name] = max(wanted.get(version.name) or 0, version.number)
    with open_sync(repo, config, jobs, f"push to {config.name}") as sync:
        result = sync.push(wanted, force)
        result.requests = sync.backend.requests
    return result


def _versions_for_data(repo: "Repo", specs: list[str], every: bool, local: dict[str, list[tuple[int, bytes]]], only: set[str] | None = None) -> list[bytes]:
    if every:
        return [vid for vs in local.values() for _, vid in vs]
    if specs:
        return [bytes.fromhex(repo.resolve(s).id) for s in specs]
    names = only if only is not None else set(local)
    chosen = [vs[-1][1] for n, vs in local.items() if vs and n in names]
    known = {vid for vs in local.values() for _, vid in vs}
    locked = lockfile.read(repo.root) or {}
    chosen += [bytes.fromhex(e.version_id) for e in locked.values() if bytes.fromhex(e.version_id) in known]
    return list(dict.fromkeys(chosen))


def fetch(repo: "Repo", remote: str | None, specs: Iterable[str], every: bool, jobs: int, only: set[str] | None = None) -> "FetchResult":
    config = pick_remote(repo._repository, remote)
    specs = list(specs)
    for spec in specs:
        specs_mod.parse(spec)
    with open_sync(repo, config, jobs, f"fetch from {config.name}") as sync:
        result = sync.fetch(lambda local: _data_blobs(sync, _versions_for_data(repo, specs, every, local, only)))
        result.requests = sync.backend.requests
    if result.renumbered:
        repo.write_lock()
    return result


def _data_blobs(sync: "Sync", version_ids: list[bytes], paths: list[str] | None = None) -> list[bytes]:
    from .workspace import under

    blobs: list[bytes] = []
    repository = sync.repo
    for vid in version_ids:
        for entry in repository.version_manifest(vid):
            if entry.kind == KIND_FILE and (not paths or under(entry.path, paths)):
                blobs.extend(chunk_id for chunk_id, _ in entry.chunks)
    return blobs


def pull(repo: "Repo", remote: str | None, specs: Iterable[str], force: bool, jobs: int):
    """fetch, then check out the SPECs (default: latest of every artifact checked out here; in a fresh clone, all)."""
    specs = list(specs)
    with repo._repository.index.read() as txn:
        checked_out = {n for n in repo._repository.refs.artifact_names(txn) if repo._repository.refs.get_head(txn, n)}
    result = fetch(repo, remote, specs, False, jobs, only=checked_out or None)
    targets = specs or [n for n in repo.artifacts() if not checked_out or n in checked_out]
    outcomes = []
    for spec in targets:
        try:
            repo.resolve(spec)
        except ArtvcError:
            continue
        outcomes.append(repo.checkout(spec, force=force))
    return result, outcomes


def clone(repo_cls: type["Repo"], url: str, directory: str | None, options: dict[str, str], jobs: int, reporter=None) -> "Repo":
    target = directory or _default_clone_dir(url)
    if os.path.exists(target) and os.listdir(target):
        raise PathError(f"{target} exists and is not empty; clone into a new folder")
    created_dir = not os.path.exists(target)
    repo = repo_cls.init(target, reporter=reporter)
    try:
        repo._repository.add_remote("origin", url, options, default=True)
        fetch(repo, "origin", [], False, jobs, only=set())
    except BaseException:
        repo.close()
        close_indexes(os.path.join(repo.root, ".artvc"))
        shutil.rmtree(os.path.join(repo.root, ".artvc"), ignore_errors=True)
        if created_dir:
            shutil.rmtree(repo.root, ignore_errors=True)
        raise
    return repo


def _default_clone_dir(url: str) -> str:
    base = posixpath.basename(url.rstrip("/").split("://", 1)[-1]) or "artvc-clone"
    return base


@contextmanager
def scratch_repo(url: str, options: dict[str, str], reporter=None) -> Iterator["Repo"]:
    """A throwaway repository with `url` as its remote 'origin', removed afterwards (get, verify --remote)."""
    from .api import Repo

    work = tempfile.mkdtemp(prefix="artvc-scratch-")
    try:
        repo = Repo.init(work, reporter=reporter)
        repo._repository.add_remote("origin", url, options, default=True)
        try:
            yield repo
        finally:
            repo.close()
    finally:
        close_indexes(os.path.join(work, ".artvc"))
        shutil.rmtree(work, ignore_errors=True)


def get(url: str, spec: str, path: str | None, dest: str | None, options: dict[str, str], jobs: int, reporter=None) -> str:
    """Materialize a version (or one entry, file or folder) from a remote, with no repository."""
    name, _ = specs_mod.parse(spec)
    check_name(name)
    with scratch_repo(url, options, reporter) as repo:
        prefix = path.strip("/") if path else None
        with open_sync(repo, repo._repository.remotes()["origin"], jobs, f"get {spec}") as sync:
            sync.fetch(lambda local: _data_blobs(sync, [bytes.fromhex(repo.resolve(spec).id)], [prefix] if prefix else None))
        version = repo.resolve(spec)
        if prefix is None:
            target_root = os.path.abspath(dest or name)
            entries = version.entries
        else:
            matching = [e for e in version.entries if e.path == prefix or e.path.startswith(prefix + "/")]
            if not matching:
                raise PathError(f"'{prefix}' is not an entry or folder of {version.spec}")
            target = os.path.abspath(dest or posixpath.basename(prefix))
            if len(matching) == 1 and matching[0].path == prefix:
                target_root = os.path.dirname(target)
                entries = [matching[0]._replace(path=os.path.basename(target))]
            else:
                target_root = target
                entries = [e._replace(path=e.path[len(prefix) + 1 :]) for e in matching]
        os.makedirs(target_root, exist_ok=True)
        plan = materialize.make_plan(target_root, entries, {}, False, lambda files: {})
        materialize.check_plan(plan)
        materialize.apply_plan(target_root, plan, repo._repository.store)
        if plan.refs:
            from . import referencing

            outcome = referencing.materialize(target_root, plan.refs, strict=False)
            for ref_path, problem in outcome.skipped:
                repo.reporter.warn(f"skipped external reference {ref_path}: {problem}")
        return target if prefix is not None else target_root



def blob_fetcher(repo: "Repo", remote: str | None):
    """A function that fetches given blobs back from a remote (for repair); returns how many it found."""
    from .storewriter import StoreWriter

    config = pick_remote(repo._repository, remote)

    def fetch(blob_ids: list[bytes]) -> int:
        with open_sync(repo, config, 4, "repair from remote") as sync:
            sync.transfer.refresh_index()
            with repo._repository.index.read() as txn:
                there = [b for b in blob_ids if sync.state.locate(txn, b) is not None]
            with StoreWriter(repo._repository.store) as writer:
                sync.transfer.download_blobs(there, writer)
            return len(there)

    return fetch


def verify_remote(repo: "Repo", remote: str | None, read_data: bool = False) -> list[tuple[str, str]]:
    """Check a remote by its indexes and metadata: every version's blobs are named by a pack index,
    every indexed pack exists, and records and manifests hash right. With read_data, every chunk is
    also read by byte range and re-hashed (nothing is kept)."""
    from .remote import layout
    from .storewriter import StoreWriter

    config = pick_remote(repo._repository, remote)
    problems: list[tuple[str, str]] = []
    with scratch_repo(config.url, config.options) as scratch:
        with open_sync(scratch, scratch._repository.remotes()["origin"], 4, f"verify {config.name}") as sync:
            sync.check_remote(create=False)
            sync.transfer.refresh_index()
            packs_there = {n for n in sync.backend.list("packs") if n.endswith(".pack")}
            for name in sync.backend.list("index"):
                m = layout.INDEX_FILE.match(name)
                if m and layout.pack_name(bytes.fromhex(m.group(1))) not in packs_there:
                    problems.append((f"pack {m.group(1)[:12]}", "its index is on the remote but the pack is not"))
            remote_versions = sync._remote_versions_listed()
            for artifact, versions in sorted(remote_versions.items()):
                for number, vid in sorted(versions.items()):
                    spec = f"{artifact}:v{number}"
                    try:
                        with StoreWriter(scratch._repository.store) as writer:
                            sync._fetch_metadata([vid], writer)
                        entries = scratch._repository.version_manifest(vid)
                    except ArtvcError as exc:
                        problems.append((spec, f"record or manifest: {exc}"))
                        continue
                    with scratch._repository.index.read() as txn:
                        absent = sum(1 for e in entries if e.kind == KIND_FILE for c, _ in e.chunks if sync.state.locate(txn, c) is None)
                    if absent:
                        problems.append((spec, f"{absent} chunks are in no pack index of the remote"))
                    elif read_data:
                        try:
                            sync.transfer.check_blobs(c for e in entries if e.kind == KIND_FILE for c, _ in e.chunks)
                        except ArtvcError as exc:
                            problems.append((spec, f"data: {exc}"))
    return problems
