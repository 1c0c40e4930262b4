"""Materializing a version's entries into a folder, safely.

A plan is made first and checked for conflicts before anything is written: a modified file, or an
untracked one in the way, is never overwritten or deleted without `force`. Each file is written
to a temporary name from chunks each checked against its id, and renamed into place; a file whose
digest the stat cache will remember (a workspace checkout) is hashed whole as well. Nothing is
written through a symlinked folder, so a checkout cannot land outside its target folder.
"""
from __future__ import annotations

import os
import posixpath
import stat as statmod
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from . import chunker
from .errors import ConflictError, CorruptObjectError, PathError
from .fsutil import is_temp_name, replace_into, replace_large, temp_name_for
from .manifest import KIND_FILE, KIND_REFERENCE, KIND_SYMLINK, Entry
from .store import Store
from .workspace import DiskFile, iter_parents


@dataclass
class Plan:
    writes: list[Entry] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unchanged: int = 0
    refs: list[Entry] = field(default_factory=list)
    reuse: dict[str, Entry] = field(default_factory=dict)


DigestsOf = Callable[[list[DiskFile]], dict[str, bytes]]
RefWritten = Callable[[str, os.stat_result], "bytes | None"]
Signature = Callable[[Entry], bytes]
# Threads writing files: one per core, plus one waiting on the disk. More only trade the GIL back and
# forth at each system call: on 2 cores, 20k small files into an empty folder took 2.0-2.1 s with 3
# writers, 2.3-2.5 s with 8.
WRITERS = min(8, (os.cpu_count() or 2) + 1)
BATCH_FILES = 64
BATCH_BYTES = 4 << 20
# Files from this size replace an existing one by moving it aside first (fsutil.replace_large).
LARGE_REPLACE = 8 << 20


def _lstat(root: str, rel: str) -> os.stat_result | None:
    try:
        return os.lstat(_join(root, rel))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _join(root: str, rel: str) -> str:
    """root + a POSIX relative path (entry paths are validated: no '..', no absolute)."""
    return f"{root}/{rel}" if os.sep == "/" else os.path.join(root, *rel.split("/"))


def _all_parents(paths: Iterable[str]) -> set[str]:
    """Every folder above the given paths, each found once (stops at a folder already seen)."""
    folders: set[str] = set()
    for path in paths:
        parent = path.rpartition("/")[0]
        while parent and parent not in folders:
            folders.add(parent)
            parent = parent.rpartition("/")[0]
    return folders


class _Disk:
    """What is on disk at the paths a plan looks at; file digests are computed once, in one batch."""

    def __init__(self, root: str, paths: set[str], candidates: dict[str, list[Entry]], digests_of: DigestsOf) -> None:
        self.root = root
        self.stats = {p: _lstat(root, p) for p in paths}
        need = []
        for path, entries in candidates.items():
            st = self.stats.get(path)
            if st is None or not statmod.S_ISREG(st.st_mode):
                continue
            if any(e.kind == KIND_FILE and e.size == st.st_size and bool(st.st_mode & 0o100) == e.executable for e in entries):
                need.append(DiskFile.from_stat(path, st))
        self.digests = digests_of(need) if need else {}

    def matches(self, rel: str, entry: Entry) -> bool:
        st = self.stats.get(rel)
        if st is None:
            return False
        if statmod.S_ISLNK(st.st_mode):
            return entry.kind == KIND_SYMLINK and os.readlink(os.path.join(self.root, *rel.split("/"))) == entry.target
        if not statmod.S_ISREG(st.st_mode) or entry.kind != KIND_FILE:
            return False
        if st.st_size != entry.size or bool(st.st_mode & 0o100) != entry.executable:
            return False
        return self.digests.get(rel) == entry.digest


def make_plan(root: str, target: list[Entry], current: dict[str, Entry], force: bool, digests_of: DigestsOf,
              ref_written: RefWritten = lambda path, st: None, signature: Signature = lambda e: b"") -> Plan:
    """Decide what to write and delete; conflicts are listed, not resolved.

    `current` is the version checked out (what the workspace is taken to hold).

    A file written from an external reference is untouched when `ref_written` returns the signature
    of the reference it came from (its stat is what it was when artvc wrote it).
    """
    plan = Plan()
    if not current and (not os.path.isdir(root) or not os.listdir(root)):
        plan.writes = [e for e in target if e.kind != KIND_REFERENCE]
        plan.refs = [e for e in target if e.kind == KIND_REFERENCE]
        return plan
    if not force and current and (len(current) != len(target) or any(current.get(e.path) != e for e in target)):
        # Switching versions: paths whose entry is the same in both are neither looked at nor
        # written, so a local change there is carried over, as git does. Checking out the version
        # already checked out looks at every path (that is how a deleted file is restored).
        same = {e.path for e in target if e.kind != KIND_REFERENCE and current.get(e.path) == e}
        plan.unchanged = len(same)
        target = [e for e in target if e.path not in same]
        current = {p: e for p, e in current.items() if p not in same}
    target_paths = {e.path for e in target}
    parents = _all_parents(target_paths)
    candidates: dict[str, list[Entry]] = {}
    for e in target:
        candidates.setdefault(e.path, []).append(e)
    for path, e in current.items():
        candidates.setdefault(path, []).append(e)
    disk = _Disk(root, target_paths | set(current) | parents, candidates, digests_of)
    for path, entry in sorted(current.items()):
        if path in target_paths:
            continue
        st = disk.stats.get(path)
        if st is None:
            continue
        if disk.matches(path, entry) or force or (entry.kind == KIND_REFERENCE and ref_written(path, st) is not None):
            if not statmod.S_ISDIR(st.st_mode):
                plan.deletes.append(path)
        else:
            plan.conflicts.append(path)
    deleting = set(plan.deletes)
    # Folders of the target that are files or symlinks on disk: usually none, so the per-entry check is skipped.
    blocked = {p for p in parents if disk.stats.get(p) is not None and not statmod.S_ISDIR(disk.stats[p].st_mode)}
    for entry in target:
        if blocked:
            for parent in iter_parents(entry.path):
                st = disk.stats.get(parent)
                if st is not None and not statmod.S_ISDIR(st.st_mode) and parent not in deleting:
                    if force and not statmod.S_ISLNK(st.st_mode) and parent not in target_paths:
                        plan.deletes.append(parent)
                        deleting.add(parent)
                    else:
                        plan.conflicts.append(parent)
        st = disk.stats.get(entry.path)
        if entry.kind == KIND_REFERENCE:
            _plan_reference(plan, entry, st, current.get(entry.path), force, disk, ref_written, signature)
            continue
        if st is None:
            plan.writes.append(entry)
        elif statmod.S_ISDIR(st.st_mode):
            if not _emptied_by(root, entry.path, deleting):
                plan.conflicts.append(entry.path + "/")
            else:
                plan.writes.append(entry)
        elif disk.matches(entry.path, entry):
            plan.unchanged += 1
        elif entry.path in current and disk.matches(entry.path, current[entry.path]):
            plan.writes.append(entry)
            plan.reuse[entry.path] = current[entry.path]
        elif force:
            plan.writes.append(entry)
        else:
            plan.conflicts.append(entry.path)
    return plan


def _plan_reference(plan: Plan, entry: Entry, st: os.stat_result | None, now: Entry | None, force: bool,
                    disk: "_Disk", ref_written: RefWritten, signature: Signature) -> None:
    if st is None:
        plan.refs.append(entry)
        return
    if statmod.S_ISDIR(st.st_mode):
        plan.conflicts.append(entry.path + "/")
        return
    written_from = ref_written(entry.path, st)
    if written_from is not None and written_from == signature(entry):
        plan.unchanged += 1
    elif force or written_from is not None or (now is not None and now.kind != KIND_REFERENCE and disk.matches(entry.path, now)):
        plan.refs.append(entry)
    else:
        plan.conflicts.append(entry.path)


def _emptied_by(root: str, rel_dir: str, deleting: set[str]) -> bool:
    """True when every file below the folder is about to be deleted, so the folder will go too."""
    base = os.path.join(root, *rel_dir.split("/"))
    for folder, dirs, files in os.walk(base):
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for name in files + links:
            if f"{rel}/{name}" not in deleting:
                return False
    return True


def check_plan(plan: Plan) -> None:
    if plan.conflicts:
        raise ConflictError(sorted(set(plan.conflicts)), "checkout would overwrite or delete files that are not saved in a version")


def safe_mkdirs(root: str, rel_dir: str) -> None:
    """Create rel_dir below root, refusing any component that is a symlink or not a folder."""
    path = root
    for part in rel_dir.split("/") if rel_dir else ():
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            os.mkdir(path)
            continue
        if not statmod.S_ISDIR(st.st_mode):
            raise PathError(f"cannot write below {path}: it is a symlink or a file, not a folder")


def _create(tmp: str, executable: bool) -> int:
    """Open a new temporary file; the kernel applies the umask to the mode (never os.umask here:
    it is process-wide, and reading it means setting it, which races with other threads)."""
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o777 if executable else 0o666)


def write_entry(root: str, entry: Entry, store: Store, reuse: Entry | None = None, temp_dir: str | None = None,
                data: bytes | None = None, hash_whole: bool = True) -> os.stat_result:
    """Write one entry atomically below root (its folder must exist) and return the stat of the result.

    `reuse` is the verified, unmodified file now at that path: chunks it shares with the target are
    copied from it in the kernel instead of being read from the store. `data` is the verified
    content of a one-chunk file, read already. `hash_whole`: check a file of several chunks against
    its digest too (see _write_new).
    """
    path = os.path.join(root, *entry.path.split("/"))
    if entry.kind == KIND_SYMLINK:
        tmp = temp_name_for(path, temp_dir)
        os.symlink(entry.target, tmp)
        try:
            replace_into(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return os.lstat(path)
    if reuse is not None and reuse.kind == KIND_FILE and len(entry.chunks) > 1 and _shares_chunks(entry, reuse):
        _write_reusing(path, entry, reuse, store, temp_dir)
        return os.lstat(path)
    _write_new(path, entry, store, temp_dir, data, hash_whole)
    return os.lstat(path)


def _single_chunk(entry: Entry) -> bool:
    """A file whose one chunk is its whole content (its digest is the chunk's id)."""
    return entry.kind == KIND_FILE and len(entry.chunks) == 1 and entry.chunks[0][0] == entry.digest


def _write_new(path: str, entry: Entry, store: Store, temp_dir: str | None, data: bytes | None = None,
               hash_whole: bool = True) -> None:
    """Assemble a file under a temporary name and rename it into place (not fsynced: the store has it).

    Few system calls per file, since a checkout may write 100k of them: the kernel applies the
    umask to the mode given at creation, so no chmod follows. A one-chunk file comes as `data`, read
    with its batch. Every chunk the store yields has been checked against its id, and the written
    size against the entry. The whole file is hashed too when `hash_whole`: a workspace checkout
    records the entry's digest in the stat cache, and a manifest (hand-made) whose digest disagrees
    with its chunks must not leave a digest there that the file does not have. A checkout --to
    remembers nothing, and `verify` checks every file's digest against its chunks.
    """
    tmp = temp_name_for(path, temp_dir)
    fd = _create(tmp, entry.executable)
    try:
        try:
            if data is not None:
                _write_all(fd, data)
            else:
                hasher = chunker.new_hasher() if hash_whole else None
                written = 0
                for data in store.iter_file(entry.chunks):
                    if hasher is not None:
                        hasher.update(data)
                    _write_all(fd, data)
                    written += len(data)
                if written != entry.size:
                    raise CorruptObjectError(f"content of {entry.path} has the wrong size", str(entry.size), str(written))
                if hasher is not None and hasher.digest() != entry.digest:
                    raise CorruptObjectError(f"content of {entry.path}", entry.digest.hex(), hasher.hexdigest())
        finally:
            os.close(fd)
        _put_in_place(tmp, path, entry.size, temp_dir)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass  # renamed into place already, or never created
        raise


def _shares_chunks(entry: Entry, old: Entry) -> bool:
    have = {c for c, _ in old.chunks}
    shared = sum(n for c, n in entry.chunks if c in have)
    return shared * 2 > entry.size


def _write_reusing(path: str, entry: Entry, old: Entry, store: Store, temp_dir: str | None) -> None:
    """Build the new file from runs copied out of the old one (copy_file_range) and chunks from the store."""
    where: dict[bytes, int] = {}
    offset = 0
    for chunk_id, length in old.chunks:
        where.setdefault(chunk_id, offset)
        offset += length
    tmp = temp_name_for(path, temp_dir)
    with open(path, "rb") as src, open(_create(tmp, entry.executable), "wb", buffering=0) as dst:
        try:
            run_src = run_len = 0
            for chunk_id, length in entry.chunks:
                at = where.get(chunk_id)
                if at is not None and run_len and at == run_src + run_len:
                    run_len += length
                    continue
                _copy(src.fileno(), dst.fileno(), run_src, run_len)
                run_src, run_len = (at, length) if at is not None else (0, 0)
                if at is None:
                    _write_all(dst.fileno(), store.get_blob(chunk_id, "chunk"))
            _copy(src.fileno(), dst.fileno(), run_src, run_len)
            if os.fstat(dst.fileno()).st_size != entry.size:
                raise CorruptObjectError(f"content of {entry.path} has the wrong size")
            with open(tmp, "rb") as result:
                got = chunker.hash_stream(result, block_size=1 << 20)
            if got != entry.digest:
                raise CorruptObjectError(f"content of {entry.path}", entry.digest.hex(), got.hex())
        except BaseException:
            os.unlink(tmp)
            raise
    _put_in_place(tmp, path, entry.size, temp_dir)


def _put_in_place(tmp: str, path: str, size: int, temp_dir: str | None) -> None:
    """Rename a finished file into place; a large one moves the old file aside first (see replace_large)."""
    if size >= LARGE_REPLACE:
        replace_large(tmp, path, temp_dir)
    else:
        replace_into(tmp, path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy(src: int, dst: int, offset: int, length: int) -> None:
    """Append `length` bytes of src from `offset` to dst, in the kernel when it can."""
    while length:
        try:
            done = os.copy_file_range(src, dst, length, offset)
        except OSError:
            done = 0
        if done <= 0:
            data = os.pread(src, min(length, 8 << 20), offset)
            if not data:
                raise CorruptObjectError("a file being reused shrank during the checkout")
            _write_all(dst, data)
            done = len(data)
        offset += done
        length -= done


def _write_batches(entries: list[Entry]) -> Iterator[list[Entry]]:
    """Consecutive entries of one folder, up to BATCH_FILES files or BATCH_BYTES bytes per batch."""
    batch: list[Entry] = []
    batch_bytes = 0
    folder = None
    for entry in entries:
        entry_folder = entry.path.rpartition("/")[0]
        if batch and (entry_folder != folder or len(batch) >= BATCH_FILES or batch_bytes + entry.size > BATCH_BYTES):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(entry)
        batch_bytes += entry.size
        folder = entry_folder
    if batch:
        yield batch


def _write_batch(root: str, batch: list[Entry], store: Store, reuse: dict[str, Entry], temp_dir: str | None,
                 hash_whole: bool) -> list[tuple[Entry, os.stat_result]]:
    """Write one batch of a folder's entries. The one-chunk files' content is read first, together
    (one transaction, one pread per run of neighbours): per file, each lookup and read was another
    hand-over of the GIL between the writer threads."""
    singles = [e for e in batch if _single_chunk(e)]
    content = dict(zip((e.path for e in singles), store.read_blobs([e.digest for e in singles]))) if singles else {}
    return [(entry, write_entry(root, entry, store, reuse.get(entry.path), temp_dir, content.pop(entry.path, None), hash_whole))
            for entry in batch]


def sweep_temp_files(root: str, folders: set[str]) -> None:
    """Remove temporary files a killed checkout left in the folders about to be written."""
    for folder in folders:
        try:
            with os.scandir(os.path.join(root, *folder.split("/")) if folder else root) as it:
                for de in it:
                    if is_temp_name(de.name) and de.is_file(follow_symlinks=False):
                        os.unlink(de.path)
        except (FileNotFoundError, NotADirectoryError):
            continue


def apply_plan(root: str, plan: Plan, store: Store, progress: Callable[[int], None] = lambda n: None,
               temp_dir: str | None = None, hash_whole: bool = True) -> list[tuple[Entry, os.stat_result]]:
    """Delete, prune emptied folders, then write. Returns what was written, with its stat.

    With `temp_dir` (on the same filesystem), files are assembled there and renamed into place, so
    the target folders never hold a partial file, even after a kill -9.
    """
    sweep_temp_files(root, {posixpath.dirname(e.path) for e in plan.writes + plan.refs})
    for rel in sorted(plan.deletes, reverse=True):
        path = os.path.join(root, *rel.split("/"))
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass  # already gone: the goal of the delete is met
        for parent in iter_parents(rel):
            try:
                os.rmdir(os.path.join(root, *parent.split("/")))
            except OSError:
                break
    return list(write_entries(root, plan.writes, store, progress, plan.reuse, temp_dir, hash_whole))


def is_empty_folder(root: str, allowed: frozenset[str] = frozenset()) -> bool:
    """True when `root` is missing or holds nothing but the names allowed: a checkout there needs
    no plan (nothing to overwrite, delete or carry over) and can stream a version's entries."""
    try:
        with os.scandir(root) as it:
            return all(de.name in allowed for de in it)
    except FileNotFoundError:
        return True


def write_entries(root: str, entries: Iterable[Entry], store: Store, progress: Callable[[int], None] = lambda n: None,
                  reuse: dict[str, Entry] | None = None, temp_dir: str | None = None,
                  hash_whole: bool = True) -> Iterator[tuple[Entry, os.stat_result]]:
    """Write entries (files and symlinks, in path order) and yield each with its stat as it is done.
    `hash_whole=False` (nothing will remember the digests): see _write_new.

    Entries are taken as they come, so a version of 200k files streams through: what is held is
    the writers' window and the set of folders made.
    """
    reuse = reuse or {}
    made: set[str] = set()
    # File creation releases the GIL and may wait on the disk: several threads write at once. Each
    # task is a batch of files of one folder, so threads rarely contend for the same folder's lock
    # and hand over work once per batch.
    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="artvc-write") as pool:
        window: deque[Future] = deque()
        try:
            for batch in _write_batches(entries):
                folder = posixpath.dirname(batch[0].path)
                if folder not in made:
                    safe_mkdirs(root, folder)
                    made.add(folder)
                window.append(pool.submit(_write_batch, root, batch, store, reuse, temp_dir, hash_whole))
                if len(window) >= 2 * WRITERS:
                    for done, st in window.popleft().result():
                        progress(done.size)
                        yield done, st
            while window:
                for done, st in window.popleft().result():
                    progress(done.size)
                    yield done, st
        except BaseException:
            for fut in window:
                fut.cancel()
            raise
