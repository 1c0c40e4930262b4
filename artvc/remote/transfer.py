"""Moving blobs between the local store and a remote: whole or partial packs up, coalesced ranges down.

Every blob that arrives is decompressed within its recorded size and hashed before it enters the
local store; a bad blob fails the transfer and nothing of it is kept.
"""
from __future__ import annotations

import os
import secrets
import shutil
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

from ..errors import CorruptObjectError, MissingObjectError, RemoteError
from ..fsutil import start_writeback
from ..packs import (INDEX_RECORD, TRAILER, BlobLocation, PackIndexEntry, PackWriter, decode_blob, location_rows, pack_path,
                     parse_index, parse_trailer, row_count, verify_pack_file)
from ..repository import Repository
from ..store import PACK_INFO, IndexBatch
from ..storewriter import StoreWriter
from . import layout
from .backend import Backend
from .state import RemoteState

GAP = 256 << 10
MAX_RANGE = 8 << 20


class Transfer:
    def __init__(self, repo: Repository, backend: Backend, state: RemoteState, jobs: int = 4, progress: Callable[[int], None] = lambda n: None) -> None:
        self.repo = repo
        self.backend = backend
        self.state = state
        self.jobs = max(1, jobs)
        self.progress = progress
        self.bytes_up = 0
        self.bytes_down = 0

    # ---- the remote's pack indexes -----------------------------------------------------------
    def refresh_index(self) -> int:
        """Read the index of every remote pack not seen before; returns how many were new."""
        names = self.backend.list("index")
        with self.repo.index.read() as txn:
            new = []
            for name in names:
                m = layout.INDEX_FILE.match(name)
                if m and not self.state.has_pack(txn, bytes.fromhex(m.group(1))):
                    new.append(bytes.fromhex(m.group(1)))
        learned = IndexBatch(self.state.add_packs)
        with ThreadPoolExecutor(self.jobs) as pool:
            try:
                for pack_id, raw in zip(new, pool.map(lambda p: self.backend.load(layout.index_name(p)), new)):
                    rows = self._parse_remote_index(pack_id, raw)
                    learned.add((pack_id, rows), row_count(rows))
            finally:
                learned.flush()
        return len(new)

    def _parse_remote_index(self, pack_id: bytes, raw: bytes) -> bytes:
        """A remote pack's index (records + trailer), validated, as location rows."""
        if len(raw) < TRAILER.size:
            raise CorruptObjectError(f"remote index of pack {pack_id.hex()[:12]} is truncated")
        data_end = 1 << 62
        index_offset, count, index_hash = parse_trailer(raw[-TRAILER.size :], len(raw) + data_end)
        if len(raw) - TRAILER.size != count * INDEX_RECORD.size:
            raise CorruptObjectError(f"remote index of pack {pack_id.hex()[:12]} has the wrong length")
        entries = parse_index(raw[: -TRAILER.size], count, index_hash, data_end)
        return location_rows(pack_id, entries)

    # ---- upload ----------------------------------------------------------------------------
    def upload_blobs(self, blob_ids: Iterable[bytes]) -> int:
        """Upload every blob the remote lacks, in packs; each pack goes up before its index.

        The ids wanted are kept per local pack as packed 32-byte strings, 32 bytes a blob and no
        object each, so a push of 200k files holds a few MiB; duplicates are dropped per pack when
        its upload begins, and the blobs of a pack sent in part are located then."""
        store = self.repo.store
        by_pack: dict[bytes, bytearray] = {}
        with self.repo.index.read() as txn:
            for blob_id in blob_ids:
                if self.state.has_blob(txn, blob_id):
                    continue
                loc = store.locate(blob_id, txn)
                if loc is None:
                    raise MissingObjectError(blob_id.hex(), "blob needed by the push")
                wanted = by_pack.get(loc.pack_id)
                if wanted is None:
                    wanted = by_pack[loc.pack_id] = bytearray()
                wanted += blob_id
            counts = {p: PACK_INFO.unpack(txn.get(p, db=self.repo.index.db["packs"]))[0] for p in by_pack}
        work_dir = os.path.join(store.tmp_dir, f"push-{secrets.token_hex(6)}")
        os.makedirs(work_dir, exist_ok=True)
        uploaded = IndexBatch(self.state.add_packs)
        try:
            jobs = ((pack_id, by_pack.pop(pack_id), counts[pack_id]) for pack_id in list(by_pack))
            for size, pack_id, rows in bounded_map(lambda job: self._upload_pack(work_dir, *job), jobs, self.jobs):
                uploaded.add((pack_id, rows), row_count(rows))
                self.bytes_up += size
                self.progress(size)
        finally:
            uploaded.flush()
            shutil.rmtree(work_dir, ignore_errors=True)
        return len(counts)

    def _upload_pack(self, work_dir: str, pack_id: bytes, wanted: bytearray, count: int) -> tuple[int, bytes, bytes]:
        """Upload one pack, whole or the wanted part of it (then its index); returns its size, id and
        location rows. Runs on a worker thread."""
        store = self.repo.store
        ids = sorted({bytes(wanted[i : i + 32]) for i in range(0, len(wanted), 32)})
        if len(ids) == count:
            path = pack_path(store.packs_dir, pack_id)
        else:
            writer = PackWriter(os.path.join(work_dir, f"{secrets.token_hex(8)}.tmp"))
            with self.repo.index.read() as txn:
                located = [(blob_id, store.locate(blob_id, txn)) for blob_id in ids]
            located.sort(key=lambda item: item[1].offset)
            for blob_id, loc in located:
                stored = store.read_stored(loc)
                writer.add(blob_id, loc.blob_type, loc.compression, loc.raw_len, stored)
            pack_id, _ = writer.finish(work_dir)
            path = pack_path(work_dir, pack_id)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(size - TRAILER.size)
            index_offset, _, _ = parse_trailer(f.read(TRAILER.size), size)
            f.seek(index_offset)
            index = f.read()
        rows = self._parse_remote_index(pack_id, index)
        self.backend.store_file(layout.pack_name(pack_id), path)
        self.backend.store(layout.index_name(pack_id), index)
        return size, pack_id, rows

    # ---- download ----------------------------------------------------------------------------
    def download_blobs(self, blob_ids: Iterable[bytes], writer: StoreWriter) -> int:
        """Fetch the blobs the local store lacks, verified, into the store. Returns bytes read.

        A remote pack whose every blob is wanted is copied whole and kept as it is (its name is the
        hash of its content, and every blob in it is checked); the rest arrive as coalesced ranges
        and are written into new packs by `writer`.
        """
        store = self.repo.store
        with self.repo.index.read() as txn:
            todo = [b for b in dict.fromkeys(blob_ids) if store.locate(b, txn) is None and b not in writer]
            by_pack = self._by_remote_pack(txn, todo)
            whole = [(p, {b for b, _ in blobs}) for p, blobs in by_pack.items()
                     if self.state.pack_blob_count(txn, p) == len(blobs)]
        for pack_id, _ in whole:
            del by_pack[pack_id]
        total = 0
        adopted = IndexBatch(lambda packs: store.index_packs(packs, overwrite=False))
        try:
            for size, pack_id, entries in bounded_map(self._adopt_pack, whole, self.jobs):
                adopted.add((pack_id, entries, size), len(entries))
                self.bytes_down += size
                self.progress(size)
                total += size
        finally:
            adopted.flush()
        for size, blobs in self._read_verified(by_pack):
            total += size
            for blob_id, loc, stored in blobs:
                writer.add_verified(blob_id, loc.blob_type, loc.compression, stored, loc.raw_len)
        return total

    def _by_remote_pack(self, txn, blob_ids: Iterable[bytes]) -> dict[bytes, list[tuple[bytes, BlobLocation]]]:
        """Wanted blobs with their locations, grouped by the remote pack that holds them."""
        by_pack: dict[bytes, list[tuple[bytes, BlobLocation]]] = {}
        for blob_id in blob_ids:
            loc = self.state.locate(txn, blob_id)
            if loc is None:
                raise MissingObjectError(blob_id.hex(), f"blob on {self.backend.url}")
            by_pack.setdefault(loc.pack_id, []).append((blob_id, loc))
        return by_pack

    def _adopt_pack(self, job: tuple[bytes, set[bytes]]) -> tuple[int, bytes, list[PackIndexEntry]]:
        """Copy one remote pack whole, check it (its hash, its index, every blob), and move it into the
        store; returns its size, id and entries, for the caller to index. The copy starts on its way
        to disk before the checks, which overlap with it."""
        pack_id, wanted = job
        store = self.repo.store
        os.makedirs(store.tmp_dir, exist_ok=True)
        tmp = os.path.join(store.tmp_dir, f"fetch-{secrets.token_hex(8)}.pack")
        try:
            self.backend.load_file(layout.pack_name(pack_id), tmp)
            with open(tmp, "rb") as f:
                start_writeback(f.fileno())
            try:
                entries = verify_pack_file(tmp, pack_id)
            except CorruptObjectError as exc:
                raise CorruptObjectError(f"{exc.what} (fetched from {self.backend.url})", exc.expected, exc.got) from None
            if not wanted <= {e.blob_id for e in entries}:
                raise CorruptObjectError(f"pack {pack_id.hex()[:12]} on {self.backend.url} lacks blobs its index names")
            size = store.adopt_pack(tmp, pack_id)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return size, pack_id, entries

    def check_blobs(self, blob_ids: Iterable[bytes]) -> int:
        """Read and re-hash blobs on the remote without keeping them (verify --remote --read-data)."""
        with self.repo.index.read() as txn:
            by_pack = self._by_remote_pack(txn, dict.fromkeys(blob_ids))
        return sum(size for size, _ in self._read_verified(by_pack))

    def _read_verified(self, wanted: dict[bytes, list[tuple[bytes, BlobLocation]]]) -> Iterator[tuple[int, list]]:
        """Coalesced range reads of remote packs; every blob decompressed within its size and hashed."""
        ranges = []
        for pack_id, blobs in wanted.items():
            blobs.sort(key=lambda b: b[1].offset)
            current: list[tuple[bytes, BlobLocation]] = []
            for blob in blobs:
                if current:
                    start = current[0][1].offset
                    end = current[-1][1].offset + current[-1][1].stored_len
                    if blob[1].offset - end > GAP or blob[1].offset + blob[1].stored_len - start > MAX_RANGE:
                        ranges.append((pack_id, current))
                        current = []
                current.append(blob)
            ranges.append((pack_id, current))

        def load(job):
            pack_id, blobs = job
            start = blobs[0][1].offset
            end = blobs[-1][1].offset + blobs[-1][1].stored_len
            data = self.backend.load(layout.pack_name(pack_id), start, end - start)
            if len(data) != end - start:
                raise RemoteError(f"pack {pack_id.hex()[:12]} on {self.backend.url} is shorter than its index says")
            view = memoryview(data)
            out = []
            for blob_id, loc in blobs:
                stored = view[loc.offset - start : loc.offset - start + loc.stored_len]
                decode_blob(stored, loc.compression, loc.raw_len, blob_id)
                out.append((blob_id, loc, stored))
            return len(data), out

        for size, blobs in bounded_map(load, ranges, self.jobs):
            self.bytes_down += size
            self.progress(size)
            yield size, blobs


def bounded_map(fn: Callable, items: Iterable, jobs: int) -> Iterator:
    """Like Executor.map, in order, but with at most jobs + 1 results held at once (bounded memory)."""
    with ThreadPoolExecutor(jobs) as pool:
        window: deque[Future] = deque()
        try:
            for item in items:
                window.append(pool.submit(fn, item))
                if len(window) > jobs:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for fut in window:
                fut.cancel()
