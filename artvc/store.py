"""The object store: blobs in pack files, located through the LMDB `blobs` index.

Readers verify every blob against its id before returning it. Writers add blobs through a
StoreWriter (artvc/storewriter.py). A pack is durable on disk before its blobs enter the index,
so the index never names a blob that is not on disk.
"""
from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterator

from . import chunker
from .errors import CorruptObjectError, MissingObjectError
from .fsutil import fsync_dir
from .index import Index
from .packs import BlobLocation, PackIndexEntry, decode_blob, location_rows, merge_rows, pack_path, read_pack_index, row_count

if TYPE_CHECKING:
    from .storewriter import StoreWriter

PACK_TARGET_SIZE = 16 << 20
PACK_INFO = struct.Struct("<IQ")
WORKERS = max(2, min(4, os.cpu_count() or 2))
# Reading a file back: runs of chunks of about this size per worker task, this many runs ahead.
READ_BATCH = 1 << 20
READ_AHEAD = 2
RUN_LOOKUP = 256
# Packs written or fetched are indexed together, in one transaction per this many blobs and at the end.
INDEX_BATCH_BLOBS = 1 << 16
# blobs_recent holds at most this many blobs before they are merged into blobs.
RECENT_BLOBS = 4096


@dataclass(frozen=True)
class StoreSettings:
    data_chunker: chunker.ChunkerParams
    tree_chunker: chunker.ChunkerParams
    compression_level: int
    pack_size: int = PACK_TARGET_SIZE


class Store:
    def __init__(self, root: str, index: Index, settings: StoreSettings) -> None:
        self.root = root
        self.packs_dir = os.path.join(root, "packs")
        self.tmp_dir = os.path.join(root, "tmp")
        self.index = index
        self.settings = settings
        self.data_chunker = chunker.Chunker(settings.data_chunker)
        self.tree_chunker = chunker.Chunker(settings.tree_chunker)
        self._handles: OrderedDict[bytes, BinaryIO] = OrderedDict()
        self._handles_lock = threading.Lock()

    # ---- reading -------------------------------------------------------------------------
    def locate(self, blob_id: bytes, txn=None) -> BlobLocation | None:
        if txn is None:
            with self.index.read() as txn:
                raw = self._raw_location(txn, blob_id)
        else:
            raw = self._raw_location(txn, blob_id)
        return BlobLocation.decode(raw) if raw is not None else None

    def _raw_location(self, txn, blob_id: bytes) -> bytes | None:
        raw = txn.get(blob_id, db=self.index.db["blobs_recent"])
        return raw if raw is not None else txn.get(blob_id, db=self.index.db["blobs"])

    def blob_locations(self, txn) -> Iterator[tuple[bytes, BlobLocation]]:
        """Every indexed blob and where it lies (both tables; a blob is in one of them)."""
        for name in ("blobs", "blobs_recent"):
            for blob_id, raw in txn.cursor(db=self.index.db[name]):
                yield blob_id, BlobLocation.decode(raw)

    def unindex_blob(self, txn, blob_id: bytes, pack_id: bytes) -> bool:
        """Forget a blob's location if it lies in `pack_id`; True if it did."""
        for name in ("blobs_recent", "blobs"):
            db = self.index.db[name]
            raw = txn.get(blob_id, db=db)
            if raw is not None and BlobLocation.decode(raw).pack_id == pack_id:
                txn.delete(blob_id, db=db)
                return True
        return False

    def has_blob(self, blob_id: bytes) -> bool:
        return self.locate(blob_id) is not None

    def get_blob(self, blob_id: bytes, what: str = "blob") -> bytes:
        """The verified raw bytes of a blob."""
        loc = self.locate(blob_id)
        if loc is None:
            raise MissingObjectError(blob_id.hex(), what)
        return self.read_located(blob_id, loc)

    def read_located(self, blob_id: bytes, loc: BlobLocation) -> bytes:
        stored = self._pread(loc.pack_id, loc.offset, loc.stored_len)
        if len(stored) != loc.stored_len:
            raise CorruptObjectError(f"pack {loc.pack_id.hex()[:12]} is truncated")
        return decode_blob(stored, loc.compression, loc.raw_len, blob_id)

    def _pread(self, pack_id: bytes, offset: int, length: int) -> bytes:
        with self._handles_lock:
            f = self._handles.get(pack_id)
            if f is None:
                path = pack_path(self.packs_dir, pack_id)
                try:
                    f = open(path, "rb")
                except FileNotFoundError:
                    raise CorruptObjectError(f"pack {pack_id.hex()[:12]} is missing from {self.packs_dir}") from None
                self._handles[pack_id] = f
                if len(self._handles) > 64:
                    _, old = self._handles.popitem(last=False)
                    old.close()
            else:
                self._handles.move_to_end(pack_id)
            fd = f.fileno()
        return os.pread(fd, length, offset)

    def read_stored(self, loc: BlobLocation) -> bytes:
        """A blob's bytes as stored (compressed), unverified: for copying into another pack."""
        stored = self._pread(loc.pack_id, loc.offset, loc.stored_len)
        if len(stored) != loc.stored_len:
            raise CorruptObjectError(f"pack {loc.pack_id.hex()[:12]} is truncated")
        return stored

    def iter_file(self, chunks: tuple[tuple[bytes, int], ...], what: str = "chunk") -> Iterator[bytes]:
        """The verified bytes of a file's chunks, in order; decompression runs ahead on threads.

        Chunks go to the workers in runs of about READ_BATCH bytes, each run read with as few
        preads as its layout allows, so threads hand over work once per run, not once per chunk.
        """
        if len(chunks) == 1:
            yield self.get_blob(chunks[0][0], what)
            return
        pool = shared_pool()
        pending: deque[Future] = deque()
        for run in self._runs(chunks, what):
            pending.append(pool.submit(self._read_run, run))
            if len(pending) > READ_AHEAD:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()

    def _runs(self, chunks: tuple[tuple[bytes, int], ...], what: str) -> Iterator[list[tuple[bytes, BlobLocation]]]:
        """Located chunks in runs of about READ_BATCH bytes, located one run at a time (memory stays
        flat however long the file)."""
        for start in range(0, len(chunks), RUN_LOOKUP):
            located = self._locate_all([chunk_id for chunk_id, _ in chunks[start : start + RUN_LOOKUP]], what)
            run: list[tuple[bytes, BlobLocation]] = []
            run_bytes = 0
            for item in located:
                run.append(item)
                run_bytes += item[1].raw_len
                if run_bytes >= READ_BATCH:
                    yield run
                    run, run_bytes = [], 0
            if run:
                yield run

    def read_blobs(self, blob_ids: list[bytes], what: str = "chunk") -> list[bytes]:
        """The verified bytes of several blobs, in order, read on the calling thread: located in one
        transaction, neighbours in one pack read with one pread (a checkout's batch of small files,
        written one after another, lie side by side)."""
        return self._read_run(self._locate_all(blob_ids, what))

    def _locate_all(self, blob_ids: list[bytes], what: str) -> list[tuple[bytes, BlobLocation]]:
        """Each blob with its location, looked up in one transaction; a missing one is an error."""
        with self.index.read() as txn:
            located = []
            for blob_id in blob_ids:
                loc = self.locate(blob_id, txn)
                if loc is None:
                    raise MissingObjectError(blob_id.hex(), what)
                located.append((blob_id, loc))
        return located

    def _read_run(self, run: list[tuple[bytes, BlobLocation]]) -> list[bytes]:
        """Verified bytes of consecutive chunks; neighbours in one pack are read with one pread."""
        out = []
        i = 0
        while i < len(run):
            first = run[i][1]
            j = i + 1
            end = first.offset + first.stored_len
            while j < len(run) and run[j][1].pack_id == first.pack_id and run[j][1].offset == end:
                end += run[j][1].stored_len
                j += 1
            data = self._pread(first.pack_id, first.offset, end - first.offset)
            if len(data) != end - first.offset:
                raise CorruptObjectError(f"pack {first.pack_id.hex()[:12]} is truncated")
            view = memoryview(data)
            for chunk_id, loc in run[i:j]:
                start = loc.offset - first.offset
                out.append(decode_blob(view[start : start + loc.stored_len], loc.compression, loc.raw_len, chunk_id))
            i = j
        return out

    def close(self) -> None:
        with self._handles_lock:
            for f in self._handles.values():
                f.close()
            self._handles.clear()

    def list_pack_files(self) -> list[str]:
        out = []
        if not os.path.isdir(self.packs_dir):
            return out
        for sub in sorted(os.listdir(self.packs_dir)):
            folder = os.path.join(self.packs_dir, sub)
            if os.path.isdir(folder):
                out.extend(os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".pack"))
        return out

    def reindex_pack(self, path: str) -> int:
        """Add every blob of one pack file to the index (used by repair); returns the blob count."""
        pack_id = bytes.fromhex(os.path.basename(path)[: -len(".pack")])
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            entries = read_pack_index(f, size)
        self.index_pack(pack_id, entries, size, overwrite=True)
        return len(entries)

    def adopt_pack(self, tmp_path: str, pack_id: bytes) -> int:
        """Move a complete, verified pack file (fetched whole) into the store; returns its size.

        Same order as a written pack: durable under its name before the caller indexes its blobs
        (index_packs with overwrite=False, so blobs already indexed keep their location).
        """
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        final = pack_path(self.packs_dir, pack_id)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        os.replace(tmp_path, final)
        fsync_dir(os.path.dirname(final))
        return os.path.getsize(final)

    def index_pack(self, pack_id: bytes, entries: list[PackIndexEntry], size: int, overwrite: bool) -> None:
        """Record a durable pack and where each of its blobs lies, in one transaction.

        overwrite=False keeps the location of blobs already indexed elsewhere.
        """
        self.index_packs([(pack_id, entries, size)], overwrite)

    def index_packs(self, packs: list[tuple[bytes, list[PackIndexEntry], int]], overwrite: bool) -> None:
        """index_pack for many durable packs (pack id, entries, size), in one transaction."""
        self.index_rows([(pack_id, location_rows(pack_id, entries), size) for pack_id, entries, size in packs], overwrite)

    def index_rows(self, packs: list[tuple[bytes, bytes, int]], overwrite: bool) -> None:
        """Index durable packs given as (pack id, location rows, size), in one transaction, ids in order.

        The ids are random, so a transaction that adds a few blobs to a large table copies a page
        per blob (LMDB never changes a page in place). Small additions go to `blobs_recent`, which
        stays small: when it would pass RECENT_BLOBS entries, what it holds moves to `blobs` first.
        Large additions go to `blobs` directly (in order, so its pages stay full).
        """
        count = sum(row_count(rows) for _, rows, _ in packs)
        main, recent = self.index.db["blobs"], self.index.db["blobs_recent"]
        with self.index.write() as txn:
            if txn.stat(recent)["entries"] + count > RECENT_BLOBS:
                moved = list(txn.cursor(db=recent))
                txn.drop(recent, delete=False)
                for blob_id, loc in moved:
                    txn.put(blob_id, loc, db=main)
            target, other = (recent, main) if count <= RECENT_BLOBS else (main, recent)
            for blob_id, loc in merge_rows(rows for _, rows, _ in packs):
                if overwrite:
                    txn.put(blob_id, loc, db=target)
                    txn.delete(blob_id, db=other)
                elif txn.get(blob_id, db=other) is None:
                    txn.put(blob_id, loc, db=target, overwrite=False)
            for pack_id, rows, size in packs:
                txn.put(pack_id, PACK_INFO.pack(row_count(rows), size), db=self.index.db["packs"])

    def writer(self) -> "StoreWriter":
        from .storewriter import StoreWriter

        return StoreWriter(self)


class IndexBatch:
    """Rows for the index, written in one transaction per INDEX_BATCH_BLOBS blobs and at the end.

    A transaction per pack rewrites most pages of a table keyed by random ids each time, and LMDB
    cannot reuse them while other threads read, so the index file grows by half again.
    """

    def __init__(self, write: Callable[[list], None]) -> None:
        self.write = write
        self.rows: list = []
        self.blobs = 0

    def add(self, row: object, blobs: int) -> None:
        self.rows.append(row)
        self.blobs += blobs
        if self.blobs >= INDEX_BATCH_BLOBS:
            self.flush()

    def flush(self) -> None:
        rows, self.rows, self.blobs = self.rows, [], 0
        if rows:
            self.write(rows)


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def shared_pool() -> ThreadPoolExecutor:
    """One worker pool per process for hashing, compression and decompression (they release the GIL)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="artvc")
            _pool_pid = os.getpid()
        return _pool
