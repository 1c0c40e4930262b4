"""The workspace: the files under the repository root that artifacts track.

Scans tracked paths (with `.artvcignore`), keeps the stat cache so unchanged files are never
re-read, compares the disk with a version, and turns the disk into entries for a commit.
Symlinks are recorded as links and never followed.
"""
from __future__ import annotations

import os
import posixpath
import stat as statmod
import struct
import time
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Callable, Iterable, Iterator, NamedTuple

from . import chunker
from .errors import PathError
from .fsutil import is_temp_name
from .lockfile import LOCK_NAME
from .manifest import KIND_FILE, KIND_REFERENCE, KIND_SYMLINK, Entry, manifest_key
from .repository import ARTVC_DIR, Repository
from .packs import BLOB_DATA
from .storewriter import StoreWriter

ALWAYS_IGNORED = {ARTVC_DIR, ".git"}
IGNORE_FILE = ".artvcignore"
# A cached digest is trusted only for files whose mtime is older than the moment of hashing by more
# than a timestamp tick, so a write in the same tick as the hashing is never missed: 2 s for an mtime
# of whole seconds (FAT's 2 s, HFS+ and ext3's 1 s), else 100 ms (sub-second timestamps: the kernel's
# clock for them ticks every 1-10 ms, exFAT's every 10 ms).
RACY_WINDOW_NS = 2_000_000_000
RACY_WINDOW_FINE_NS = 100_000_000
STAT = struct.Struct("<QqQq32s")
# Files written from external references are remembered under this prefix (no path starts with NUL).
REF_KEY = b"\0ref:"
# The scan signature of each artifact's last clean comparison, under this prefix (see known_clean).
CLEAN_KEY = b"\0clean:"
# A commit writes the digests it computed to the stat cache this many files at a time.
REMEMBER_BATCH = 16384
# A commit reads the scan ahead this many files at a time (see commit_entries).
SCAN_BLOCK = 32768


class DiskFile(NamedTuple):
    """What a scan saw at one path (a NamedTuple: a scan makes one per file)."""

    path: str
    kind: int
    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int
    executable: bool
    target: str = ""

    @classmethod
    def from_stat(cls, path: str, st: os.stat_result, target: str = "") -> "DiskFile":
        kind = KIND_SYMLINK if statmod.S_ISLNK(st.st_mode) else KIND_FILE
        return cls(path, kind, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, bool(st.st_mode & 0o100), target)


@dataclass
class Changes:
    added: list[str]
    modified: list[str]
    deleted: list[str]

    @property
    def clean(self) -> bool:
        return not (self.added or self.modified or self.deleted)


def to_repo_path(root: str, path: str, cwd: str | None = None) -> str:
    """A path given on the command line (relative to cwd) as a POSIX path relative to the root."""
    absolute = os.path.normpath(os.path.join(cwd or os.getcwd(), path))
    rel = os.path.relpath(absolute, root)
    if rel == os.curdir:
        return "."
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
        raise PathError(f"'{path}' is outside the repository at {root}")
    rel = rel.replace(os.sep, "/")
    if rel.split("/")[0] in ALWAYS_IGNORED:
        raise PathError(f"'{path}' is inside {rel.split('/')[0]}/, which artvc never tracks")
    return rel


def under(path: str, prefixes: Iterable[str]) -> bool:
    return any(p == "." or path == p or path.startswith(p + "/") for p in prefixes)


class Workspace:
    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.root = repo.root
        self._ignore = self._load_ignore()

    def _load_ignore(self):
        """gitignore rules from .artvcignore (dulwich is imported only when the file exists)."""
        path = os.path.join(self.root, IGNORE_FILE)
        if not os.path.isfile(path):
            return None
        from dulwich.ignore import IgnoreFilter

        return IgnoreFilter.from_path(path)

    def is_ignored(self, rel: str, is_dir: bool, name: str | None = None) -> bool:
        name = rel.rsplit("/", 1)[-1] if name is None else name
        if name in ALWAYS_IGNORED or is_temp_name(name) or rel == LOCK_NAME:
            return True
        if self._ignore is None:
            return False
        return bool(self._ignore.is_ignored(rel + "/" if is_dir else rel))

    # ---- scanning --------------------------------------------------------------------------------
    def iter_scan(self, tracked: Iterable[str], warn: Callable[[str], None] = lambda m: None) -> Iterator[DiskFile]:
        """Every file and symlink below the tracked paths that is not ignored, as a stream: each path
        once, nothing held, in manifest order (paths sorted as UTF-8 bytes), so commit and status
        merge it with a version's entries as both stream by."""
        tops = set(tracked)
        found = []
        for top in tops:
            if any(under(top, [other]) for other in tops if other != top):
                continue  # inside another tracked path: walked there
            abs_top = self.root if top == "." else os.path.join(self.root, top)
            try:
                st = os.lstat(abs_top)
            except FileNotFoundError:
                continue
            found.append((_walk_key(top, statmod.S_ISDIR(st.st_mode)) if top != "." else b"", top, abs_top, st))
        for _, top, abs_top, st in sorted(found):
            if statmod.S_ISDIR(st.st_mode):
                yield from self._walk(abs_top, "" if top == "." else top, warn)
            else:
                file = self._file(top, abs_top, st, warn)
                if file is not None:
                    yield file

    def _walk(self, abs_dir: str, rel_dir: str, warn: Callable[[str], None]) -> Iterator[DiskFile]:
        """One folder, its entries sorted by manifest key; the common case (a regular file) inline,
        since a scan of 200k files spends most of its time here."""
        try:
            it = os.scandir(abs_dir)
        except PermissionError:
            raise PathError(f"cannot read folder {abs_dir}: permission denied") from None
        with it:
            listing = []
            for de in it:
                is_dir = de.is_dir(follow_symlinks=False)
                listing.append((_walk_key(de.name, is_dir), is_dir, de))
        listing.sort(key=itemgetter(0))
        prefix = f"{rel_dir}/" if rel_dir else ""
        for _, is_dir, de in listing:
            rel = prefix + de.name
            if self.is_ignored(rel, is_dir, de.name):
                continue
            if is_dir:
                yield from self._walk(de.path, rel, warn)
                continue
            st = de.stat(follow_symlinks=False)
            mode = st.st_mode
            if statmod.S_ISREG(mode):
                yield DiskFile(rel, KIND_FILE, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, bool(mode & 0o100))
            else:
                file = self._file(rel, de.path, st, warn)
                if file is not None:
                    yield file

    def _file(self, rel: str, abs_path: str, st: os.stat_result, warn) -> DiskFile | None:
        if statmod.S_ISLNK(st.st_mode):
            return DiskFile.from_stat(rel, st, os.readlink(abs_path))
        if statmod.S_ISREG(st.st_mode):
            return DiskFile.from_stat(rel, st)
        warn(f"skipping {rel}: not a regular file, folder or symlink")
        return None

    # ---- digests and the stat cache ------------------------------------------------------------
    def cached_digest(self, txn, f: DiskFile) -> bytes | None:
        raw = txn.get(f.path.encode("utf-8", "surrogateescape"), db=self.repo.cache.db["statcache"])
        if raw is None or len(raw) != STAT.size + 8:
            return None
        size, mtime_ns, ino, ctime_ns, digest = STAT.unpack_from(raw)
        cached_at = struct.unpack_from("<q", raw, STAT.size)[0]
        if (size, mtime_ns, ino, ctime_ns) != (f.size, f.mtime_ns, f.ino, f.ctime_ns):
            return None
        if racy_until(mtime_ns) > cached_at:
            return None
        return digest

    def reference_written(self, rel: str, st: os.stat_result) -> bytes | None:
        """The signature of the reference artvc wrote at `rel`, if the file is untouched since."""
        with self.repo.cache.read() as txn:
            raw = txn.get(REF_KEY + rel.encode("utf-8", "surrogateescape"), db=self.repo.cache.db["statcache"])
        if raw is None or len(raw) != STAT.size + 8:
            return None
        size, mtime_ns, ino, ctime_ns, signature = STAT.unpack_from(raw)
        if (size, mtime_ns, ino, ctime_ns) != (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns):
            return None
        return signature

    def remember_references(self, items: list[tuple[str, os.stat_result, bytes]]) -> None:
        """Record which reference (by signature) each file was written from, with its stat."""
        if not items:
            return
        now = time.time_ns()
        with self.repo.cache.write() as txn:
            for rel, st, signature in items:
                value = STAT.pack(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns, signature) + struct.pack("<q", now)
                txn.put(REF_KEY + rel.encode("utf-8", "surrogateescape"), value, db=self.repo.cache.db["statcache"])

    def remember(self, items: list[tuple[DiskFile, bytes]], read_from: int | None = None) -> None:
        """Record digests in the stat cache, stamped with the moment reading began (`read_from`,
        default now): a file changed after it was read, within its own timestamp tick, must not be
        trusted, so the stamp must not be later than the read."""
        if not items:
            return
        now = time.time_ns() if read_from is None else read_from
        db = self.repo.cache.db["statcache"]
        with self.repo.cache.write() as txn:
            for f, digest in items:
                value = STAT.pack(f.size, f.mtime_ns, f.ino, f.ctime_ns, digest) + struct.pack("<q", now)
                txn.put(f.path.encode("utf-8", "surrogateescape"), value, db=db)

    # ---- the known-clean shortcut for status ----------------------------------------------------
    @staticmethod
    def scan_facts(disk: Iterable[DiskFile]) -> tuple[bytes, int]:
        """A digest of every fact a scan saw (paths, sizes, times, inodes, modes, link targets), and
        the moment from which all of them can be trusted (see racy_until). Takes a stream: status
        checks the clean mark without holding the scan."""
        facts = ScanFacts()
        for f in disk:
            facts.add(f)
        return facts.result()

    def known_clean(self, name: str, version_id: bytes, facts: tuple[bytes, int]) -> bool:
        """True when the last comparison of `name` that found it clean was against this version and
        saw exactly these facts: an equal comparison, as far as the stat cache can tell (the same
        trust the stat cache already has)."""
        with self.repo.cache.read() as txn:
            return txn.get(CLEAN_KEY + name.encode(), db=self.repo.cache.db["statcache"]) == version_id + facts[0]

    def remember_clean(self, name: str, version_id: bytes, facts: tuple[bytes, int], scanned_at: int) -> None:
        """Record a clean comparison, unless a file's mtime lies within its racy window before the
        scan began (`scanned_at`): a write in the same timestamp tick would not show. Like git's
        racy check, mtime alone: a later rewrite that puts an old mtime back changes the ctime,
        which the facts hold."""
        digest, trusted_from = facts
        if trusted_from > scanned_at:
            return
        with self.repo.cache.write() as txn:
            txn.put(CLEAN_KEY + name.encode(), version_id + digest, db=self.repo.cache.db["statcache"])

    def hash_file(self, rel: str) -> bytes:
        """BLAKE3 of a file's content: the same digest a version records for it."""
        return hash_path(self.root, rel)

    def digests(self, files: Iterable[DiskFile]) -> dict[str, bytes]:
        """Digest of every regular file given, from the stat cache or by reading it."""
        out: dict[str, bytes] = {}
        fresh: list[tuple[DiskFile, bytes]] = []
        with self.repo.cache.read() as txn:
            todo = []
            for f in files:
                if f.kind != KIND_FILE:
                    continue
                digest = self.cached_digest(txn, f)
                if digest is None:
                    todo.append(f)
                else:
                    out[f.path] = digest
        read_from = time.time_ns()
        for f in todo:
            digest = self._hash_stable(f)
            out[f.path] = digest
            fresh.append((f, digest))
        self.remember(fresh, read_from)
        return out

    def _hash_stable(self, f: DiskFile) -> bytes:
        try:
            return self.hash_file(f.path)
        except FileNotFoundError:
            raise PathError(f"{f.path} disappeared while it was being read; run the command again") from None
        except PermissionError:
            raise PathError(f"cannot read {f.path}: permission denied") from None

    def abs(self, rel: str) -> str:
        """The absolute path of a workspace path (POSIX, validated: called once per file in a commit)."""
        return f"{self.root}/{rel}" if os.sep == "/" else os.path.join(self.root, *rel.split("/"))

    # ---- comparing -----------------------------------------------------------------------------
    def compare(self, disk: Iterable[DiskFile], entries: Iterable[Entry]) -> Changes:
        """Added / modified / deleted paths of the disk against a version's entries.

        Both come in manifest order and are merged as they stream by, so only the changes are held.
        A file is read only when its stat-cache digest is stale and its kind, size and mode match.
        Paths held by external references are not disk files: neither side counts them.
        """
        added: list[str] = []
        modified: list[str] = []
        deleted: list[str] = []
        fresh: list[tuple[DiskFile, bytes]] = []
        read_from = time.time_ns()
        disk_it, entry_it = iter(disk), iter(entries)
        f, e = next(disk_it, None), next(entry_it, None)
        with self.repo.cache.read() as txn:
            while f is not None or e is not None:
                f_key = manifest_key(f.path) if f is not None else None
                e_key = manifest_key(e.path) if e is not None else None
                if e_key is None or (f_key is not None and f_key < e_key):
                    added.append(f.path)
                    f = next(disk_it, None)
                    continue
                if f_key is None or e_key < f_key:
                    if e.kind != KIND_REFERENCE:
                        deleted.append(e.path)
                    e = next(entry_it, None)
                    continue
                if e.kind != KIND_REFERENCE:
                    digest = None
                    if f.kind == KIND_FILE == e.kind and f.size == e.size and f.executable == e.executable:
                        digest = self.cached_digest(txn, f)
                        if digest is None:
                            digest = self._hash_stable(f)
                            fresh.append((f, digest))
                            if len(fresh) >= REMEMBER_BATCH:
                                self.remember(fresh, read_from)
                                fresh.clear()
                                read_from = time.time_ns()
                    if not self.matches(f, e, digest):
                        modified.append(f.path)
                f, e = next(disk_it, None), next(entry_it, None)
        self.remember(fresh, read_from)
        return Changes(added, modified, deleted)

    @staticmethod
    def matches(f: DiskFile, e: Entry, digest: bytes | None) -> bool:
        if f.kind != e.kind:
            return False
        if f.kind == KIND_SYMLINK:
            return f.target == e.target
        return f.size == e.size and f.executable == e.executable and digest == e.digest

    # ---- building entries for a commit ---------------------------------------------------------------
    def commit_entries(
        self,
        files: Iterable[DiskFile],
        previous: Iterable[Entry] | None,
        others: Callable[[], Iterable[Entry]],
        writer: StoreWriter,
        progress: Callable[[int], None] = lambda n: None,
    ) -> Iterator[Entry]:
        """Entries for files given in manifest order, in that order, storing the content of any file
        the store lacks. Nothing is held per file beyond the writer's window, so memory stays flat.

        `previous` is the version the workspace came from (None: the artifact has none), in path
        order: a file whose stat-cache digest is its entry's takes that entry's chunks unread.
        `others` is asked, at most once, for any entry a cached digest may come from when the entry
        at the same path differs (a file copied or checked out from another version)."""
        # The scan is read ahead in blocks: a stat made while the worker threads run waits for the
        # GIL each time (a convoy that cost 15% of a 20k-file commit); a block read at once does not.
        files = _in_blocks(files, SCAN_BLOCK)
        prev_iter = iter(previous or ())
        prev = next(prev_iter, None)
        prev_key = manifest_key(prev.path) if prev is not None else b""
        by_digest: dict[bytes, Entry] | None = None

        def elsewhere(digest: bytes, size: int) -> Entry | None:
            nonlocal by_digest
            if by_digest is None:
                by_digest = {e.digest: e for e in others() if e.kind == KIND_FILE and len(e.chunks) > 1}
            found = by_digest.get(digest)
            if found is not None and found.size == size:
                return found
            loc = self.repo.store.locate(digest)
            if size and loc is not None and loc.blob_type == BLOB_DATA and loc.raw_len == size:
                return Entry("", KIND_FILE, size, False, digest, ((digest, size),))  # a one-chunk file
            return None

        def items() -> Iterator[tuple[object, str | None, int]]:
            """Files for the writer to read, and entries settled without reading passed through it in order."""
            nonlocal prev, prev_key
            with self.repo.cache.read() as txn:
                for f in files:
                    path = f.path
                    if f.kind == KIND_SYMLINK:
                        yield Entry(path, KIND_SYMLINK, target=f.target), None, 0
                        continue
                    if previous is not None:
                        key = manifest_key(path)
                        while prev is not None and prev_key < key:
                            prev = next(prev_iter, None)
                            prev_key = manifest_key(prev.path) if prev is not None else b""
                        digest = self.cached_digest(txn, f)
                        if digest is not None:
                            if prev is not None and prev_key == key and prev.kind == KIND_FILE and prev.digest == digest and prev.size == f.size:
                                same = prev
                            else:
                                same = elsewhere(digest, f.size)
                            if same is not None:
                                progress(f.size)
                                yield Entry(path, KIND_FILE, f.size, f.executable, same.digest, same.chunks), None, 0
                                continue
                    yield f, self.abs(path), f.size

        fresh: list[tuple[DiskFile, bytes]] = []
        read_from = time.time_ns()
        for key, stored, after in writer.add_paths(items()):
            if stored is None:
                yield key
                continue
            f = key
            if (after.st_size, after.st_mtime_ns) != (f.size, f.mtime_ns) or stored.size != f.size:
                raise PathError(f"{f.path} changed while it was being read; run the command again when it is stable")
            fresh.append((f, stored.digest))
            progress(f.size)
            if len(fresh) >= REMEMBER_BATCH:
                self.remember(fresh, read_from)
                fresh.clear()
            yield Entry(f.path, KIND_FILE, stored.size, f.executable, stored.digest, stored.chunks)
        self.remember(fresh, read_from)


class ScanFacts:
    """The running digest behind Workspace.scan_facts, fed one file at a time as a scan goes by."""

    def __init__(self) -> None:
        self._hasher = chunker.new_hasher()
        self._lines: list[str] = []
        self.trusted_from = 0

    def add(self, f: DiskFile) -> None:
        self._lines.append(f"{f.path}\0{f.kind}\0{f.size}\0{f.mtime_ns}\0{f.ino}\0{f.ctime_ns}\0{f.executable:d}\0{f.target}\n")
        until = racy_until(f.mtime_ns)
        if until > self.trusted_from:
            self.trusted_from = until
        if len(self._lines) >= 4096:
            self._flush()

    def _flush(self) -> None:
        self._hasher.update("".join(self._lines).encode("utf-8", "surrogateescape"))
        self._lines.clear()

    def result(self) -> tuple[bytes, int]:
        self._flush()
        return self._hasher.digest(), self.trusted_from


def _in_blocks(items: Iterable, size: int) -> Iterator:
    """The same items, taken from the source `size` at a time."""
    it = iter(items)
    while block := list(islice(it, size)):
        yield from block


def racy_until(mtime_ns: int) -> int:
    """The moment after which a file with this mtime, unchanged, cannot have been written again
    within the same timestamp tick (see RACY_WINDOW_NS)."""
    return mtime_ns + (RACY_WINDOW_NS if mtime_ns % 1_000_000_000 == 0 else RACY_WINDOW_FINE_NS)


def _walk_key(name: str, is_dir: bool) -> bytes:
    """Where a scanned name sorts: its manifest key, a folder's with "/" added, which puts a
    folder's walk exactly where its paths belong among its siblings."""
    key = manifest_key(name)
    return key + b"/" if is_dir else key


def hash_path(root: str, rel: str) -> bytes:
    """BLAKE3 of a file below any folder (no stat cache there: checkout --to)."""
    with open(os.path.join(root, *rel.split("/")), "rb") as fh:
        return chunker.hash_stream(fh)


def iter_parents(path: str) -> Iterator[str]:
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)
