"""verify --repair: rebuild what LMDB knows from the packs, and recover damaged data.

1. Every pack file is read: intact packs have their blobs (re)indexed; a damaged pack has each blob
   checked on its own, good blobs copied into a new pack, bad ones dropped, and the pack removed.
2. When the index has lost an artifact's versions, the version records found in packs get numbers
   again, in the order of their creation time. A record of an artifact the index still numbers is an
   interrupted commit's garbage and stays unnumbered. Aliases and checked-out heads live only in
   LMDB and cannot be rebuilt.
3. Chunks that versions need but the store lacks are fetched back from a remote when one is given.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

from . import records
from .errors import ArtvcError
from .manifest import KIND_FILE
from .packs import BLOB_RECORD, BlobLocation, check_pack_file, decode_blob, read_pack_index
from .repository import Repository
from .storewriter import StoreWriter
from .verify import LOST, lost_blobs


@dataclass
class RepairReport:
    packs_reindexed: int = 0
    packs_salvaged: list[str] = field(default_factory=list)
    blobs_dropped: int = 0
    versions_renumbered: list[str] = field(default_factory=list)
    chunks_missing: int = 0
    chunks_fetched: int = 0
    dropped_ids: set[bytes] = field(default_factory=set)


def repair(repo: Repository, fetch: Callable[[list[bytes]], int] | None = None) -> RepairReport:
    report = RepairReport()
    store = repo.store
    record_ids: list[bytes] = []
    for path in store.list_pack_files():
        pack_id = bytes.fromhex(os.path.basename(path)[: -len(".pack")])
        size = os.path.getsize(path)
        try:
            entries = check_pack_file(path)
            intact = True
        except ArtvcError:
            intact = False
            entries = _readable_index(path, size)
        if intact:
            store.index_packs([(pack_id, entries, size)], overwrite=False)
            record_ids += [e.blob_id for e in entries if e.blob_type == BLOB_RECORD]
            report.packs_reindexed += 1
            continue
        record_ids += _salvage(repo, pack_id, entries, report)
    _renumber_lost_versions(repo, record_ids, report)
    dropped = report.dropped_ids | lost_blobs(repo)
    missing = _missing_chunks(repo, dropped)
    report.chunks_missing = len(missing)
    if missing and fetch is not None:
        report.chunks_fetched = fetch(missing)
        missing = _missing_chunks(repo, dropped)
        report.chunks_missing = len(missing)
    with repo.index.write() as txn:
        for blob_id in dropped:
            txn.delete(LOST + blob_id, db=repo.index.db["meta"])
        for blob_id in missing:
            txn.put(LOST + blob_id, b"", db=repo.index.db["meta"])
    return report


def _readable_index(path: str, size: int) -> list:
    """The index of a damaged pack, if it still reads (its blobs are then checked one by one)."""
    try:
        with open(path, "rb") as f:
            return read_pack_index(f, size)
    except ArtvcError:
        return []


def _salvage(repo: Repository, pack_id: bytes, entries, report: RepairReport) -> list[bytes]:
    """Copy every blob of a damaged pack that still hashes right into a new pack; drop the pack."""
    store = repo.store
    db = repo.index.db
    kept: list[bytes] = []
    with StoreWriter(store, relocate=True) as writer:
        for e in entries:
            loc = BlobLocation(pack_id, e.offset, e.stored_len, e.raw_len, e.blob_type, e.compression)
            try:
                stored = store.read_stored(loc)
                decode_blob(stored, loc.compression, loc.raw_len, e.blob_id)
            except ArtvcError:
                continue
            writer.add_verified(e.blob_id, e.blob_type, e.compression, stored, e.raw_len)
            if e.blob_type == BLOB_RECORD:
                kept.append(e.blob_id)
    with repo.index.write() as txn:
        for blob_id, loc in list(store.blob_locations(txn)):
            if loc.pack_id == pack_id and store.unindex_blob(txn, blob_id, pack_id):
                report.blobs_dropped += 1
                report.dropped_ids.add(blob_id)
        txn.delete(pack_id, db=db["packs"])
    store.close()
    os.unlink(os.path.join(store.packs_dir, pack_id.hex()[:2], pack_id.hex() + ".pack"))
    report.packs_salvaged.append(pack_id.hex())
    return kept


def _renumber_lost_versions(repo: Repository, record_ids: list[bytes], report: RepairReport) -> None:
    refs = repo.refs
    lost: dict[str, list[tuple[str, bytes]]] = {}
    with repo.index.read() as txn:
        for vid in dict.fromkeys(record_ids):
            if refs.locate_version(txn, vid) is None:
                try:
                    record = records.decode(repo.store.get_blob(vid, "version record"))
                except ArtvcError:
                    continue
                lost.setdefault(record.artifact, []).append((record.created, vid))
    with repo.index.write() as txn:
        for name, found in sorted(lost.items()):
            if refs.latest_number(txn, name) is not None:
                # The index knows this artifact: an unnumbered record is an interrupted commit's garbage.
                continue
            for _, vid in sorted(found):
                number = refs.add_version(txn, name, vid)
                report.versions_renumbered.append(f"{name}:v{number}")
            if refs.get_artifact(txn, name) is None:
                refs.put_artifact(txn, name, {"type": records.decode(repo.store.get_blob(found[0][1])).type, "paths": []})


def _missing_chunks(repo: Repository, dropped: set[bytes]) -> list[bytes]:
    """Chunks a version needs but the store lacks: of versions whose data was here (some chunks
    present, or some dropped as damaged). Versions never fetched are not missing anything."""
    store = repo.store
    missing: list[bytes] = []
    for vid in repo.all_version_ids():
        try:
            entries = repo.version_manifest(vid)
        except ArtvcError:
            continue
        with repo.index.read() as txn:
            chunks = [c for e in entries if e.kind == KIND_FILE for c, _ in e.chunks]
            absent = [c for c in chunks if store.locate(c, txn) is None]
        if absent and (len(absent) < len(chunks) or dropped.intersection(absent)):
            missing.extend(absent)
    return list(dict.fromkeys(missing))
