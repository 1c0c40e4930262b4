"""verify: re-read and re-hash what the store holds, and say which versions any damage affects."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from . import chunker, trees
from .errors import ArtvcError, CorruptObjectError
from .manifest import KIND_FILE
from .packs import check_pack_file
from .repository import Repository

LOST = b"lost:"


def lost_blobs(repo: Repository) -> set[bytes]:
    """Blobs that repair dropped as damaged and could not fetch back."""
    with repo.index.read() as txn:
        cur = txn.cursor(db=repo.index.db["meta"])
        found = set()
        if cur.set_range(LOST):
            for key, _ in cur:
                if not key.startswith(LOST):
                    break
                found.add(key[len(LOST) :])
    return found


@dataclass
class VerifyReport:
    packs_checked: int = 0
    versions_checked: int = 0
    chunks_checked: int = 0
    damaged_packs: list[tuple[str, str]] = field(default_factory=list)
    damaged_versions: list[tuple[str, str]] = field(default_factory=list)
    not_fetched: list[str] = field(default_factory=list)
    unindexed_packs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged_packs and not self.damaged_versions


def verify_packs(repo: Repository, report: VerifyReport, progress: Callable[[int], None]) -> None:
    """Every pack's content must hash to its name, carry a valid index, and be known to the index."""
    with repo.index.read() as txn:
        indexed = {key for key, _ in txn.cursor(db=repo.index.db["packs"])}
    for path in repo.store.list_pack_files():
        name = os.path.basename(path)[: -len(".pack")]
        report.packs_checked += 1
        if bytes.fromhex(name) not in indexed:
            report.unindexed_packs.append(name)
        try:
            check_pack_file(path, progress)
        except (ArtvcError, OSError) as exc:
            report.damaged_packs.append((name, str(exc)))


def verify_version(repo: Repository, spec: str, version_id: bytes, report: VerifyReport, progress: Callable[[int], None]) -> None:
    """Record, manifest and every chunk of one version, re-hashed; data never fetched is listed, not an error."""
    report.versions_checked += 1
    store = repo.store
    try:
        record = repo.load_record(version_id)
        tree_id = bytes.fromhex(record.manifest)
        trees.tree_blob_ids(tree_id, lambda b: store.get_blob(b, "manifest"))
        entries = repo.load_manifest(tree_id)
    except ArtvcError as exc:
        report.damaged_versions.append((spec, f"record or manifest: {exc}"))
        return
    with repo.index.read() as txn:
        absent = {c for e in entries if e.kind == KIND_FILE for c, _ in e.chunks if store.locate(c, txn) is None}
    if absent:
        lost = absent & lost_blobs(repo)
        if lost:
            report.damaged_versions.append((spec, f"{len(lost)} chunks were damaged and no remote had a copy: this version cannot be restored"))
        else:
            report.not_fetched.append(spec)
        return
    for entry in entries:
        if entry.kind != KIND_FILE:
            continue
        hasher = chunker.new_hasher()
        try:
            for data in store.iter_file(entry.chunks):
                hasher.update(data)
                report.chunks_checked += 1
                progress(len(data))
            if hasher.digest() != entry.digest:
                raise CorruptObjectError(f"content of {entry.path} does not match its digest")
        except ArtvcError as exc:
            report.damaged_versions.append((spec, f"{entry.path}: {exc}"))
