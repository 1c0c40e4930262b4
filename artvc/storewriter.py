"""Adding blobs to the store: dedup, hashing and compression on worker threads, packs written on a
writer thread and sealed (fsync, rename, index) on a sealer thread.

Work crosses threads in batches (small files, runs of a large file's chunks), because one hand-over
per chunk costs more than the hashing. A pack is durable on disk before its blobs enter the index.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

import zstandard

from . import chunker
from .errors import PathError
from .fsutil import random_hex
from .packs import BLOB_DATA, COMPRESSION_NONE, PackWriter, compress_blob, iter_rows, location_rows, pack_path
from .store import WORKERS, IndexBatch, Store, shared_pool

# Files up to this size are read whole and processed on a worker thread, many files at a time.
SMALL_FILE = 4 << 20
IN_FLIGHT_BYTES = 64 << 20
# Small files travel to the worker threads in batches of up to this many files or bytes.
BATCH_FILES = 128
BATCH_BYTES = 2 << 20
MAX_UNTRIED = 7  # raw chunks kept untried after zstd fails, at most (see _prepare_run)
# add_paths: at most this many items (files and passed-through keys) per batch, so what waits is bounded.
BATCH_ITEMS = 1024
IN_FLIGHT_RUNS = 2 * WORKERS
WRITE_QUEUE = 8


@dataclass(frozen=True)
class FileChunks:
    """A file's content digest, size and chunk list [(chunk id, length)]."""

    digest: bytes
    size: int
    chunks: tuple[tuple[bytes, int], ...]


def _read_small(path: str, expected_size: int) -> tuple[bytes, os.stat_result]:
    """A small file's bytes and its stat after reading, in as few system calls as it takes.

    Reads up to one byte more than expected: getting that byte, or a stat that differs afterwards,
    tells the caller the file changed (and nothing beyond it is read into memory). Short reads are
    continued until the end of the file, for filesystems that return them.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        want = expected_size + 1
        data = os.read(fd, want)
        if 0 < len(data) < want - 1:
            parts = [data]
            got = len(data)
            while got < want and (block := os.read(fd, want - got)):
                parts.append(block)
                got += len(block)
            data = b"".join(parts)
        return data, os.fstat(fd)
    finally:
        os.close(fd)


def _path_error(path: str, exc: OSError) -> PathError:
    if isinstance(exc, FileNotFoundError):
        return PathError(f"{path} disappeared while it was being read; run the command again")
    if isinstance(exc, PermissionError):
        return PathError(f"cannot read {path}: permission denied")
    return PathError(f"cannot read {path}: {exc.strerror or exc}")


class StoreWriter:
    """Adds blobs to new packs. Use as a context manager: on success every pack is sealed and indexed.

    Blobs of file data and blobs of trees/records go to separate packs, so metadata can be
    fetched from a remote without touching data packs. Packs are written, hashed, fsynced and
    indexed on a writer thread fed through a bounded queue, so reading and chunking go on
    meanwhile; an error there is raised by the next call here.
    """

    def __init__(self, store: Store, relocate: bool = False) -> None:
        """relocate=True (gc's repack): add blobs even if indexed, and point the index at the new pack."""
        self.store = store
        self.relocate = relocate
        self._packs: dict[bool, PackWriter] = {}
        self._pending: set[bytes] = set()
        self._retired: list[bytes] = []  # location rows of the packs indexed last
        self._local = threading.local()
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._sealer: ThreadPoolExecutor | None = None
        self._sealing: list[Future] = []
        self._sealed = IndexBatch(self._index_sealed)
        self.new_bytes = 0
        self.new_blobs = 0

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.abort()

    def _compressor(self) -> zstandard.ZstdCompressor:
        comp = getattr(self._local, "compressor", None)
        if comp is None:
            comp = zstandard.ZstdCompressor(level=self.store.settings.compression_level)
            self._local.compressor = comp
        return comp

    def _append(self, blob_id: bytes, blob_type: int, raw_len: int, prepared: tuple[int, bytes] | None, data: bytes) -> None:
        self._append_many([(blob_id, blob_type, raw_len, prepared, data)])

    def _prepare_chunk(self, data: bytes, txn) -> tuple[bytes, tuple[int, bytes] | None]:
        """(id, compressed form) of a chunk; no compressed form when the store already holds it."""
        blob_id = chunker.hash_bytes(data)
        if self._known(blob_id, txn):
            return blob_id, None
        return blob_id, compress_blob(data, self.store.settings.compression_level, self._compressor())

    def _known(self, blob_id: bytes, txn) -> bool:
        """Written by this writer already, or (unless relocating) in the store."""
        return blob_id in self._pending or (not self.relocate and self.store.locate(blob_id, txn) is not None)

    def _append_many(self, blobs: list[tuple[bytes, int, int, tuple[int, bytes] | None, bytes]]) -> None:
        """_append for many blobs at once: one hand-over to the writer thread for all of them."""
        out = []
        for blob_id, blob_type, raw_len, prepared, data in blobs:
            if blob_id in self._pending:
                continue
            if prepared is None:
                if not self.relocate and self.store.has_blob(blob_id):
                    continue
                prepared = compress_blob(data, self.store.settings.compression_level, self._compressor())
            compression, stored = prepared
            self._pending.add(blob_id)
            self.new_bytes += len(stored)
            self.new_blobs += 1
            out.append((blob_type == BLOB_DATA, blob_id, blob_type, compression, raw_len, stored))
        if out:
            self._send(("blobs", out))

    # ---- the writer thread -------------------------------------------------------------------
    def _send(self, item: tuple) -> None:
        if self._error is not None:
            raise self._error
        if self._thread is None:
            self._queue = queue.Queue(maxsize=WRITE_QUEUE)
            self._thread = threading.Thread(target=self._run, name="artvc-pack-writer", daemon=True)
            self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            kind = item[0]
            try:
                if kind == "blobs" and self._error is None:
                    self._write_blobs(item[1])
                elif kind == "flush":
                    if self._error is None:
                        for key in list(self._packs):
                            self._seal(key)
                        self._wait_sealed()
                    item[1].set()
                elif kind == "abort":
                    for pack in self._packs.values():
                        pack.abort()
                    self._packs.clear()
                    try:
                        self._wait_sealed()
                    except BaseException:  # noqa: BLE001 - aborting anyway; sealed packs are harmless garbage
                        pass
                    item[1].set()
                    return
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
                self._error = exc
                if kind in ("flush", "abort"):
                    item[1].set()

    def _write_blobs(self, blobs: list[tuple[bool, bytes, int, int, int, bytes]]) -> None:
        """Write a batch of blobs: consecutive blobs bound for one pack are written in one call."""
        run: list[tuple[bytes, int, int, int, bytes]] = []
        run_bytes = 0
        run_is_data = blobs[0][0]
        for is_data, blob_id, blob_type, compression, raw_len, stored in blobs:
            if run and (is_data != run_is_data or self._open_pack(run_is_data).size + run_bytes >= self.store.settings.pack_size):
                self._flush_run(run_is_data, run)
                run, run_bytes = [], 0
            run_is_data = is_data
            run.append((blob_id, blob_type, compression, raw_len, stored))
            run_bytes += len(stored)
        if run:
            self._flush_run(run_is_data, run)

    def _flush_run(self, is_data: bool, run: list[tuple[bytes, int, int, int, bytes]]) -> None:
        pack = self._open_pack(is_data)
        pack.add_many(run)
        if pack.size >= self.store.settings.pack_size:
            self._seal(is_data)

    def _open_pack(self, is_data: bool) -> PackWriter:
        pack = self._packs.get(is_data)
        if pack is None:
            os.makedirs(self.store.tmp_dir, exist_ok=True)
            pack = PackWriter(os.path.join(self.store.tmp_dir, f"pack-{random_hex(8)}.tmp"))
            self._packs[is_data] = pack
        return pack

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._pending

    def add_verified(self, blob_id: bytes, blob_type: int, compression: int, stored: bytes | memoryview, raw_len: int) -> None:
        """Add a blob, as stored, whose content has been checked against its id (a fetched blob)."""
        self._append(blob_id, blob_type, raw_len, (compression, stored), b"")

    def add_blob(self, data: bytes, blob_type: int) -> bytes:
        """Store one blob (deduplicated); returns its id."""
        blob_id = chunker.hash_bytes(data)
        self._append(blob_id, blob_type, len(data), None, data)
        return blob_id

    def add_file(self, stream: BinaryIO) -> FileChunks:
        """Chunk, hash, compress and store a file's content; returns its digest and chunk list.

        Chunks go to the workers in runs of about BATCH_BYTES, so threads hand over work once per
        run rather than once per chunk; at most IN_FLIGHT_RUNS runs are held at once.
        """
        pool = shared_pool()
        file_hasher = chunker.new_hasher()
        chunks: list[tuple[bytes, int]] = []
        pending: deque[tuple[Future, list[bytes]]] = deque()
        run: list[bytes] = []
        run_bytes = 0
        size = 0

        def drain(limit: int) -> None:
            while len(pending) > limit:
                fut, datas = pending.popleft()
                prepared = fut.result()
                self._append_many([(blob_id, BLOB_DATA, raw_len, prep, data)
                                   for (blob_id, raw_len, prep), data in zip(prepared, datas)])
                chunks.extend((blob_id, raw_len) for blob_id, raw_len, _ in prepared)

        for data in self.store.data_chunker.cut_stream(stream):
            size += len(data)
            file_hasher.update(data)
            run.append(data)
            run_bytes += len(data)
            if run_bytes >= BATCH_BYTES:
                pending.append((pool.submit(self._prepare_run, run), run))
                run, run_bytes = [], 0
                drain(IN_FLIGHT_RUNS)
        if run:
            pending.append((pool.submit(self._prepare_run, run), run))
        drain(0)
        digest = chunks[0][0] if len(chunks) == 1 else file_hasher.digest()
        return FileChunks(digest, size, tuple(chunks))

    def _prepare_run(self, run: list[bytes]) -> list[tuple[bytes, int, tuple[int, bytes] | None]]:
        """Hash each chunk and compress the ones the store lacks (one LMDB read for the run).

        After a chunk that zstd cannot shrink, the next 1, then 3, then 7 new chunks of the run are
        kept raw without trying: random or already-compressed data would cost zstd's full effort for
        nothing. The run, a stretch of one file, starts trying afresh, and one chunk that
        compresses ends the back-off.
        """
        out = []
        level = self.store.settings.compression_level
        misses = untried = 0
        with self.store.index.read() as txn:
            for data in run:
                blob_id = chunker.hash_bytes(data)
                if self._known(blob_id, txn):
                    out.append((blob_id, len(data), None))
                    continue
                if untried:
                    untried -= 1
                    prepared = (COMPRESSION_NONE, bytes(data))
                else:
                    prepared = compress_blob(data, level, self._compressor())
                    if prepared[0] == COMPRESSION_NONE and level > 0:
                        misses += 1
                        untried = min((1 << misses) - 1, MAX_UNTRIED)
                    else:
                        misses = 0
                out.append((blob_id, len(data), prepared))
        return out

    def add_paths(self, paths: Iterable[tuple[object, str | None, int]]) -> Iterator[tuple[object, FileChunks | None, os.stat_result | None]]:
        """Store many files given as (key, path, expected size); yields (key, chunks, stat after reading) in order.

        Small files go to worker threads in batches (read, chunk, hash and compress whole), so the
        threads hand over work once per batch, not once per file; large files stream through
        `add_file` so memory stays bounded. An item whose path is None is only passed through, as
        (key, None, None), in its place in the order: a caller can keep one ordered stream of what
        it reads and what it settles otherwise.
        """
        pool = shared_pool()
        pending: deque[tuple[list[tuple[object, str | None, int]], Future | None]] = deque()
        batch: list[tuple[object, str | None, int]] = []
        batch_files = batch_bytes = 0
        in_flight = 0

        def submit() -> None:
            nonlocal batch, batch_files, batch_bytes, in_flight
            if batch:
                files = [(path, size) for _, path, size in batch if path is not None]
                pending.append((batch, pool.submit(self._prepare_batch, files) if files else None))
                in_flight += batch_bytes
                batch, batch_files, batch_bytes = [], 0, 0

        def finish_one() -> list[tuple[object, FileChunks | None, os.stat_result | None]]:
            nonlocal in_flight
            items, fut = pending.popleft()
            results = iter(fut.result() if fut is not None else ())
            blobs = []
            done: list[tuple[object, FileChunks | None, os.stat_result | None]] = []
            for key, path, size in items:
                if path is None:
                    done.append((key, None, None))
                    continue
                chunks, prepared, after = next(results)
                in_flight -= size
                for (blob_id, raw_len), (prep, data) in zip(chunks.chunks, prepared):
                    blobs.append((blob_id, BLOB_DATA, raw_len, prep, data))
                done.append((key, chunks, after))
            self._append_many(blobs)
            return done

        for key, path, size in paths:
            if path is None:
                if not pending and not batch:
                    yield key, None, None
                    continue
                batch.append((key, None, 0))
                if len(batch) >= BATCH_ITEMS:
                    submit()
            elif size > SMALL_FILE:
                submit()
                while pending:
                    yield from finish_one()
                try:
                    with open(path, "rb") as fh:
                        chunks = self.add_file(fh)
                        after = os.fstat(fh.fileno())
                except OSError as exc:
                    raise _path_error(path, exc) from None
                yield key, chunks, after
                continue
            else:
                batch.append((key, path, size))
                batch_files += 1
                batch_bytes += size
                if batch_files >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
                    submit()
            while pending and (len(pending) > 2 * WORKERS or in_flight > IN_FLIGHT_BYTES):
                yield from finish_one()
            while pending and pending[0][1] is None:
                yield from finish_one()
        submit()
        while pending:
            yield from finish_one()

    def _prepare_batch(self, files: list[tuple[str, int]]) -> list[tuple[FileChunks, list[tuple[tuple[int, bytes] | None, bytes]], os.stat_result]]:
        """Read, chunk, hash and compress a batch of small files on one worker thread."""
        with self.store.index.read() as txn:
            return [self._prepare_small(path, size, txn) for path, size in files]

    def _prepare_small(self, path: str, expected_size: int, txn) -> tuple[FileChunks, list[tuple[tuple[int, bytes] | None, bytes]], os.stat_result]:
        try:
            data, after = _read_small(path, expected_size)
        except OSError as exc:
            raise _path_error(path, exc) from None
        chunk_list = []
        prepared = []
        for piece in self.store.data_chunker.cut_bytes(data):
            raw = bytes(piece) if len(piece) != len(data) else data
            blob_id, compressed = self._prepare_chunk(raw, txn)
            chunk_list.append((blob_id, len(raw)))
            prepared.append((compressed, raw))
        if len(chunk_list) == 1:
            digest = chunk_list[0][0]
        else:
            digest = chunker.hash_bytes(data)
        return FileChunks(digest, len(data), tuple(chunk_list)), prepared, after

    def _seal(self, is_data: bool) -> None:
        """Hand a full pack to the sealer thread: its fsync overlaps with writing the next pack."""
        pack = self._packs.pop(is_data, None)
        if pack is None:
            return
        if self._sealer is None:
            self._sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artvc-pack-sealer")
        self._sealing = [f for f in self._sealing if not f.done() or f.exception() is not None]
        self._sealing.append(self._sealer.submit(self._finish_pack, pack))
        if len(self._sealing) > 2:
            self._sealing.pop(0).result()

    def _wait_sealed(self) -> None:
        futures, self._sealing = self._sealing, []
        try:
            for fut in futures:
                fut.result()
        finally:
            if self._sealer is not None:
                self._sealer.shutdown(wait=True)
                self._sealer = None
            self._sealed.flush()

    def _index_sealed(self, packs: list[tuple[bytes, bytes, int]]) -> None:
        """Index sealed packs, then forget the ids indexed one batch earlier: the index finds them
        now, so what `_pending` holds stays bounded however many blobs a writer adds. A batch waits
        one round so a worker whose read transaction began before the indexing still sees its ids
        here (if one did not, the cost would be a second copy of a blob, not a wrong answer)."""
        self.store.index_rows(packs, overwrite=self.relocate)
        self._pending.difference_update(blob_id for rows in self._retired for blob_id, _ in iter_rows(rows))
        self._retired = [rows for _, rows, _ in packs]

    def _finish_pack(self, pack: PackWriter) -> None:
        """Trailer, fsync, rename; the index names its blobs later, so a pack is durable first."""
        pack_id, entries = pack.finish(self.store.packs_dir)
        size = os.path.getsize(pack_path(self.store.packs_dir, pack_id))
        self._sealed.add((pack_id, location_rows(pack_id, entries), size), len(entries))

    def flush(self) -> None:
        """Seal and index every open pack: after this, every blob added is durable and findable."""
        if self._thread is not None:
            done = threading.Event()
            self._send(("flush", done))
            done.wait()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop the packs being written (nothing of them was indexed)."""
        if self._thread is not None and self._thread.is_alive():
            done = threading.Event()
            self._queue.put(("abort", done))
            done.wait()
            self._thread.join()
