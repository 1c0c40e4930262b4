"""gc: drop data that no version references, and repack packs that are mostly garbage.

Runs under the exclusive repository lock, so no commit, fetch or checkout is in flight. Order:
live blobs of a repacked pack are written to a new pack and indexed first; only then is the old
pack deleted and forgotten. A crash at any point leaves every version's data reachable; an old pack
left behind is an orphan (a file no index names) that the next gc removes.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from . import trees
from .manifest import KIND_FILE
from .packs import BlobLocation, decode_blob, pack_path
from .repository import Repository
from .storewriter import StoreWriter

REPACK_GARBAGE_RATIO = 0.5


@dataclass
class GcReport:
    live_blobs: int = 0
    dead_blobs: int = 0
    packs_deleted: list[str] = field(default_factory=list)
    packs_repacked: list[str] = field(default_factory=list)
    orphan_packs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    dry_run: bool = False


def reachable(repo: Repository) -> set[bytes]:
    """Every blob a version needs: its record, its manifest tree, and its chunks (when fetched)."""
    live: set[bytes] = set()
    for vid in repo.all_version_ids():
        live.add(vid)
        record = repo.load_record(vid)
        tree_id = bytes.fromhex(record.manifest)
        live.update(trees.tree_blob_ids(tree_id, lambda b: repo.store.get_blob(b, "manifest")))
        for entry in repo.load_manifest(tree_id):
            if entry.kind == KIND_FILE:
                live.update(c for c, _ in entry.chunks)
    return live


def collect(repo: Repository, dry_run: bool = False) -> GcReport:
    report = GcReport(dry_run=dry_run)
    live = reachable(repo)
    db = repo.index.db
    packs: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
    with repo.index.read() as txn:
        for blob_id, loc in repo.store.blob_locations(txn):
            packs.setdefault(loc.pack_id, []).append((blob_id, loc))
        indexed = {key for key, _ in txn.cursor(db=db["packs"])}
    report.live_blobs = sum(1 for blobs in packs.values() for b, _ in blobs if b in live)
    report.dead_blobs = sum(1 for blobs in packs.values() for b, _ in blobs if b not in live)
    for path in repo.store.list_pack_files():
        pack_id = bytes.fromhex(os.path.basename(path)[: -len(".pack")])
        if pack_id not in indexed:
            report.orphan_packs.append(pack_id.hex())
            report.bytes_freed += os.path.getsize(path)
            if not dry_run:
                os.unlink(path)
    for pack_id, blobs in packs.items():
        dead = [(b, loc) for b, loc in blobs if b not in live]
        if not dead:
            continue
        size = os.path.getsize(pack_path(repo.store.packs_dir, pack_id)) if os.path.exists(pack_path(repo.store.packs_dir, pack_id)) else 0
        dead_bytes = sum(loc.stored_len for _, loc in dead)
        if len(dead) == len(blobs):
            report.packs_deleted.append(pack_id.hex())
            report.bytes_freed += size
            if not dry_run:
                _drop_pack(repo, pack_id, [b for b, _ in blobs])
        elif dead_bytes > REPACK_GARBAGE_RATIO * size:
            report.packs_repacked.append(pack_id.hex())
            report.bytes_freed += dead_bytes
            if not dry_run:
                _repack(repo, pack_id, [(b, loc) for b, loc in blobs if b in live], [b for b, _ in dead])
    if not dry_run:
        shutil.rmtree(repo.store.tmp_dir, ignore_errors=True)
        os.makedirs(repo.store.tmp_dir, exist_ok=True)
    return report


def _drop_pack(repo: Repository, pack_id: bytes, blob_ids: list[bytes]) -> None:
    db = repo.index.db
    with repo.index.write() as txn:
        for blob_id in blob_ids:
            repo.store.unindex_blob(txn, blob_id, pack_id)
        txn.delete(pack_id, db=db["packs"])
    repo.store.close()
    try:
        os.unlink(pack_path(repo.store.packs_dir, pack_id))
    except FileNotFoundError:
        pass  # an earlier, interrupted gc removed it already


def _repack(repo: Repository, pack_id: bytes, keep: list[tuple[bytes, BlobLocation]], dead: list[bytes]) -> None:
    """Copy the live blobs (verified, still compressed) into a new pack, index it, then drop the old pack."""
    with StoreWriter(repo.store, relocate=True) as writer:
        for blob_id, loc in keep:
            stored = repo.store.read_stored(loc)
            decode_blob(stored, loc.compression, loc.raw_len, blob_id)
            writer.add_verified(blob_id, loc.blob_type, loc.compression, stored, loc.raw_len)
    _drop_pack(repo, pack_id, dead)
