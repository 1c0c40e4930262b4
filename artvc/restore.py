"""Checking out a version for the Python API: plan (or stream into an empty folder), check that the
store holds the data, write, and remember what was written in the stat cache."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable, Iterator

from . import checkout as materialize_mod
from . import manifest as manifest_codec
from . import referencing
from .errors import MissingDataError
from .manifest import KIND_FILE, KIND_REFERENCE, Entry
from .workspace import REMEMBER_BATCH, DiskFile, hash_path

if TYPE_CHECKING:
    from .api import Repo
    from .artifact import Version


def materialize(repo: "Repo", version: Version, root: str, target: list[Entry], current: dict[str, Entry], force: bool,
                workspace: bool = False, strict: bool = False) -> tuple[materialize_mod.Plan, list[str]]:
    """Plan against `current` (what the folder is taken to hold), refuse conflicts and missing data,
    then write; returns the plan and the references skipped."""
    ws = repo.workspace
    digests_of = ws.digests if workspace else (lambda files: {f.path: hash_path(root, f.path) for f in files})
    ref_written = ws.reference_written if workspace else (lambda path, st: None)
    plan = materialize_mod.make_plan(root, target, current, force, digests_of, ref_written, referencing.signature)
    materialize_mod.check_plan(plan)
    require_data(repo, version, plan.writes)
    total = sum(e.size for e in plan.writes) + sum(e.size for e in plan.refs)
    temp_dir = _checkout_temp_dir(repo, workspace)
    with repo.reporter.task(f"checkout {version.spec}", total) as task:
        written = materialize_mod.apply_plan(root, plan, repo._repository.store, task.advance, temp_dir, hash_whole=workspace)
        if workspace:
            ws.remember([(DiskFile.from_stat(e.path, st), e.digest) for e, st in written if e.kind == KIND_FILE])
        skipped = _materialize_references(repo, root, plan.refs, strict, task.advance, temp_dir, workspace)
    return plan, skipped


def _checkout_temp_dir(repo: "Repo", workspace: bool) -> str | None:
    """Where workspace files are assembled before the rename (None: beside the file, for --to)."""
    if not workspace:
        return None
    temp_dir = os.path.join(repo._repository.store.tmp_dir, "checkout")
    os.makedirs(temp_dir, exist_ok=True)
    return temp_dir


def _materialize_references(repo: "Repo", root: str, refs: list[Entry], strict: bool, progress, temp_dir: str | None,
                            workspace: bool) -> list[str]:
    """Write the files of external references; returns the paths skipped (warned, unless strict)."""
    outcome = referencing.materialize(root, refs, strict, progress, temp_dir) if refs else referencing.RefOutcome()
    if workspace:
        by_path = {e.path: e for e in refs}
        repo.workspace.remember_references([(p, os.lstat(os.path.join(root, *p.split("/"))), referencing.signature(by_path[p]))
                                            for p, _ in outcome.written])
    for path, problem in outcome.skipped:
        repo.reporter.warn(f"skipped external reference {path}: {problem} (use --strict to make this an error)")
    return [p for p, _ in outcome.skipped]


def materialize_fresh(repo: "Repo", version: Version, root: str, in_scope, workspace: bool, strict: bool) -> tuple[int, list[str]]:
    """materialize() into an empty folder, streaming the manifest: read twice (check, then
    write), never held as entries, so memory stays flat with the file count. Returns how many
    entries were written or tried, and the references skipped."""
    data = repo._repository.manifest_bytes(bytes.fromhex(version.record.manifest))

    def entries() -> Iterator[Entry]:
        return (e for e in manifest_codec.iter_decode(data) if in_scope(e))

    total = count = 0
    refs: list[Entry] = []

    def tallied() -> Iterator[Entry]:
        """The first pass, counted on the way: how many entries, how many bytes, which references."""
        nonlocal total, count
        for e in entries():
            count += 1
            total += e.size
            if e.kind == KIND_REFERENCE:
                refs.append(e)
            yield e

    require_data(repo, version, tallied())
    store = repo._repository.store
    temp_dir = _checkout_temp_dir(repo, workspace)
    ws = repo.workspace
    with repo.reporter.task(f"checkout {version.spec}", total) as task:
        fresh: list[tuple[DiskFile, bytes]] = []
        for e, st in materialize_mod.write_entries(root, (e for e in entries() if e.kind != KIND_REFERENCE), store,
                                                   task.advance, temp_dir=temp_dir, hash_whole=workspace):
            if workspace and e.kind == KIND_FILE:
                fresh.append((DiskFile.from_stat(e.path, st), e.digest))
                if len(fresh) >= REMEMBER_BATCH:
                    ws.remember(fresh)
                    fresh.clear()
        if workspace:
            ws.remember(fresh)
        skipped = _materialize_references(repo, root, refs, strict, task.advance, temp_dir, workspace)
    return count, skipped


def require_data(repo: "Repo", version: Version, entries: Iterable[Entry]) -> None:
    """Refuse, before anything is written, a checkout whose data is not in the local store."""
    store = repo._repository.store
    with repo._repository.index.read() as txn:
        missing = sum(1 for e in entries if e.kind == KIND_FILE for c, _ in e.chunks if store.locate(c, txn) is None)
    if missing:
        raise MissingDataError(version.spec, version.id, missing)
