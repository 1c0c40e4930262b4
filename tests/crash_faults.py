"""Helpers for the crash, concurrency, hostile-input and gc/repair tests.

* running the real CLI as a subprocess, and killing it with SIGKILL after a chosen delay;
* building data sets and changing them reproducibly (random.Random(seed));
* comparing folders byte for byte, finding temporary files left in a workspace;
* in-process fault injection for the local store (a pack writer or a checkout writer that fails
  its Nth write with ENOSPC), without editing artvc: the faults are installed with monkeypatch;
* a hand-made remote (RemoteBuilder) built with artvc's own codecs, for hostile-remote tests.

tests/faults.py (FaultyBackend) injects faults into a remote backend; this module complements it.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from artvc import chunker, manifest, trees, varint
from artvc.packs import (
    BLOB_DATA,
    BLOB_RECORD,
    BLOB_TREE,
    COMPRESSION_NONE,
    COMPRESSION_ZSTD,
    INDEX_RECORD,
    TRAILER,
    PackWriter,
    pack_path,
    parse_trailer,
    read_pack_index,
)
from artvc.records import VersionRecord

TEMP_MARK = ".artvc-tmp-"


# ---- running the CLI ------------------------------------------------------------------------------------
def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ARTVC_AUTHOR", None)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Run:
    code: int
    out: str
    err: str
    args: tuple = ()

    def __str__(self) -> str:
        return f"artvc {' '.join(map(str, self.args))}: exit={self.code}\n--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-3000:]}"

    def json(self):
        return json.loads(self.out)


def artvc(*args, cwd, timeout: float = 300, env: dict[str, str] | None = None, prefix: list[str] | None = None) -> Run:
    """`python -m artvc ARGS` in `cwd` as a separate process; waits for it."""
    done = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "artvc", *map(str, args)],
        cwd=str(cwd), env=cli_env(env), capture_output=True, timeout=timeout,
    )
    return Run(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"), args)


def versions_of(repo: Path, name: str) -> list[tuple[int, str]]:
    """(number, id) of every version of `name`, oldest first (in-process API)."""
    import artvc

    r = artvc.Repo(str(repo))
    try:
        return sorted((v.number, v.id) for v in r.versions(name))
    finally:
        r.close()


def ok(run: Run) -> Run:
    assert run.code == 0, str(run)
    assert "Traceback" not in run.err, str(run)
    return run


def is_error(run: Run, *fragments: str) -> bool:
    lines = [line for line in run.err.splitlines() if line.strip()]
    return (run.code == 1 and len(lines) >= 1 and lines[-1].startswith("error: ") and "Traceback" not in run.err
            and all(f.lower() in lines[-1].lower() for f in fragments))


def assert_cli_error(run: Run, *fragments: str) -> None:
    """Exit 1, and the error line starts `error: ` (warnings may precede it), no traceback."""
    assert is_error(run, *fragments), str(run)


def spawn(*args, cwd, env: dict[str, str] | None = None, python_args: list[str] | None = None) -> subprocess.Popen:
    """Start `python -m artvc ARGS` (or `python PYTHON_ARGS`) in its own process group."""
    cmd = [sys.executable, *(python_args if python_args is not None else ["-m", "artvc", *map(str, args)])]
    return subprocess.Popen(cmd, cwd=str(cwd), env=cli_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> Run:
    out, err = proc.communicate(timeout=timeout)
    return Run(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), tuple(proc.args[1:]))


def kill_after(proc: subprocess.Popen, delay: float) -> bool:
    """SIGKILL the process (and its group) after `delay` seconds; True if it was still running then."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(min(0.005, max(0.0, deadline - time.monotonic())))
    alive = proc.poll() is None
    if alive:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()
    return alive


def timed(*args, cwd) -> tuple[Run, float]:
    start = time.monotonic()
    run = artvc(*args, cwd=cwd)
    return run, time.monotonic() - start


# ---- data sets --------------------------------------------------------------------------------------------
def make_dataset(top: Path, seed: int, big: int = 20, big_size: tuple[int, int] = (1 << 20, 2 << 20), small: int = 1000,
                 small_size: tuple[int, int] = (10, 4000)) -> None:
    """`big` incompressible files and `small` small ones (half text, half random) below `top`."""
    rng = random.Random(seed)
    (top / "big").mkdir(parents=True, exist_ok=True)
    for i in range(small):
        sub = top / "small" / f"g{i % 20:02d}"
        sub.mkdir(parents=True, exist_ok=True)
    for i in range(big):
        (top / "big" / f"b{i:03d}.bin").write_bytes(rng.randbytes(rng.randint(*big_size)))
    for i in range(small):
        n = rng.randint(*small_size)
        data = rng.randbytes(n) if i % 2 else (f"line {i} {seed}\n" * (n // 12 + 1)).encode()[:n]
        (top / "small" / f"g{i % 20:02d}" / f"s{i:05d}.txt").write_bytes(data)


def mutate(top: Path, seed: int, big_fraction: float = 0.5, small_changes: int = 100) -> None:
    """Rewrite part of the data set reproducibly: new content for some files, a few deleted, a few new."""
    rng = random.Random(10_000 + seed)
    bigs = sorted((top / "big").glob("*.bin"))
    for path in rng.sample(bigs, max(1, int(len(bigs) * big_fraction))):
        path.write_bytes(rng.randbytes(max(1, path.stat().st_size + rng.randint(-4096, 4096))))
    smalls = sorted((top / "small").rglob("*.txt"))
    for path in rng.sample(smalls, min(small_changes, len(smalls))):
        path.write_bytes(rng.randbytes(rng.randint(1, 4000)))
    for path in rng.sample(smalls, min(5, len(smalls))):
        if path.exists():
            path.unlink()
    for i in range(5):
        (top / "small" / f"new-{seed}-{i}.txt").write_bytes(rng.randbytes(rng.randint(1, 4000)))


def set_pack_size(repo: Path, size: int) -> None:
    """Set `[pack] size` in .artvc/config (a documented setting), so writes are split over many packs."""
    from dulwich.config import ConfigFile

    path = repo / ".artvc" / "config"
    cf = ConfigFile.from_path(str(path))
    cf.set((b"pack",), b"size", str(size).encode())
    with open(path, "wb") as f:
        cf.write_to_file(f)


# ---- comparing folders ------------------------------------------------------------------------------------
def digests(top: Path | str, skip: tuple[str, ...] = (".artvc", ".git", "artvc.lock")) -> dict[bytes, tuple]:
    """Every file and symlink below `top`, by path relative to it (bytes): ('f', sha256, exec) or ('l', target)."""
    top_b = os.fsencode(str(top))
    out: dict[bytes, tuple] = {}
    for folder, dirs, files in os.walk(top_b):
        rel_folder = os.path.relpath(folder, top_b)
        dirs[:] = [d for d in dirs if not (rel_folder == b"." and os.fsdecode(d) in skip)]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            if rel_folder == b"." and os.fsdecode(name) in skip:
                continue
            full = os.path.join(folder, name)
            rel = os.path.normpath(os.path.join(rel_folder, name))
            if os.path.islink(full):
                out[rel] = ("l", os.readlink(full))
            else:
                with open(full, "rb") as f:
                    out[rel] = ("f", hashlib.sha256(f.read()).hexdigest(), os.access(full, os.X_OK))
    return out


def leftovers(top: Path | str) -> list[str]:
    """Temporary files (`*.artvc-tmp-*`) below `top`, outside .artvc/."""
    found = []
    for folder, dirs, files in os.walk(str(top)):
        dirs[:] = [d for d in dirs if d != ".artvc"]
        found += [os.path.join(folder, n) for n in files + dirs if TEMP_MARK in n]
    return found


def all_files(top: Path | str) -> set[str]:
    return {os.path.join(folder, n) for folder, _, names in os.walk(str(top)) for n in names}


def log_versions(repo: Path, name: str | None = None) -> list[dict]:
    return ok(artvc("log", *([name] if name else []), "--json", cwd=repo)).json()


def numbers(log: list[dict], name: str) -> list[int]:
    return sorted(int(v["version"][1:]) for v in log if v["artifact"] == name)


def assert_contiguous(log: list[dict], name: str, count: int | None = None) -> None:
    got = numbers(log, name)
    assert got == list(range(len(got))), f"{name}: version numbers {got} are not v0..v{len(got) - 1}"
    ids = [v["id"] for v in log if v["artifact"] == name]
    assert len(set(ids)) == len(ids), f"{name}: a version id appears twice: {ids}"
    if count is not None:
        assert len(got) == count, f"{name}: expected {count} versions, found {got}"


# ---- in-process fault injection for local writes -----------------------------------------------------------
class WriteFaults:
    """Counts writes through the patched writers and makes the Nth one fail with `error` (ENOSPC by default)."""

    def __init__(self, fail_at: int | None = None, error: int = errno.ENOSPC) -> None:
        self.fail_at = fail_at
        self.error = error
        self.count = 0
        self.tripped = False

    def hit(self, what: str) -> None:
        self.count += 1
        if self.fail_at is not None and self.count == self.fail_at:
            self.tripped = True
            raise OSError(self.error, os.strerror(self.error), what)


def install_pack_write_faults(monkeypatch, faults: WriteFaults) -> None:
    """Every write of a pack file (header, blob, index, trailer) and every pack rename counts as a write."""
    import artvc.packs as packs_mod

    original_write = packs_mod.PackWriter._write
    original_finish = packs_mod.PackWriter.finish

    def _write(self, data):
        faults.hit(self.tmp_path)
        return original_write(self, data)

    def finish(self, packs_dir):
        faults.hit(f"seal {self.tmp_path}")
        return original_finish(self, packs_dir)

    monkeypatch.setattr(packs_mod.PackWriter, "_write", _write)
    monkeypatch.setattr(packs_mod.PackWriter, "finish", finish)


def install_checkout_write_faults(monkeypatch, faults: WriteFaults) -> None:
    """Every write() into a file that checkout materializes counts as a write."""
    import artvc.checkout as checkout_mod

    original = checkout_mod._write_all

    def faulty_write_all(fd: int, data) -> None:
        faults.hit(f"checkout write to fd {fd}")
        original(fd, data)

    monkeypatch.setattr(checkout_mod, "_write_all", faulty_write_all)


# ---- packs: where each blob lies ----------------------------------------------------------------------------
def pack_regions(path: str) -> list[tuple[int, int, bytes, int, int]]:
    """(start, end, blob id, blob type, compression) of every blob stored in a pack file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        entries = read_pack_index(f, size)
    return [(e.offset, e.offset + e.stored_len, e.blob_id, e.blob_type, e.compression) for e in entries]


def pack_files(repo: Path) -> list[str]:
    out = []
    for folder, _, names in os.walk(repo / ".artvc" / "packs"):
        out += [os.path.join(folder, n) for n in names if n.endswith(".pack")]
    return sorted(out)


# ---- a remote made by hand --------------------------------------------------------------------------------
def encode_raw_manifest(items: list[tuple[bytes, int, bytes]]) -> bytes:
    """A manifest in the format-1 encoding, in the order given, with no validation at all.

    items: (path bytes, kind, payload): kind 0 = file (payload = its content), 1 = symlink (payload = target).
    Paths are written whole (shared prefix 0), so duplicates and unsorted paths can be expressed.
    """
    out = bytearray(manifest.MAGIC)
    out += varint.encode(len(items))
    for path, kind, payload in items:
        out += varint.encode(0) + varint.encode(len(path)) + path
        out.append(kind)
        if kind == manifest.KIND_FILE:
            out.append(0)
            out += varint.encode(len(payload))
            if payload:
                out += varint.encode(1) + chunker.hash_bytes(payload)
            else:
                out += varint.encode(0)
        else:
            out += varint.encode(len(payload)) + payload
    return bytes(out)


@dataclass
class _Blob:
    blob_id: bytes
    blob_type: int
    compression: int
    raw_len: int
    stored: bytes


@dataclass
class RemoteBuilder:
    """Writes a remote in the documented layout (docs/format.md, "Remote layout") from blobs given by hand."""

    root: Path
    pending: list[_Blob] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def marker(self, fmt=1, kind: str = "artvc.remote") -> None:
        (self.root / "artvc-remote.json").write_text(json.dumps({"kind": kind, "format": fmt, "id": "hand-made"}) + "\n")

    def blob(self, raw: bytes, blob_type: int = BLOB_DATA, *, compress: bool = False, raw_len: int | None = None,
             stored: bytes | None = None, blob_id: bytes | None = None) -> bytes:
        """Queue a blob for the next pack; everything the index will say can be overridden."""
        import zstandard

        if stored is None:
            stored = zstandard.ZstdCompressor(level=3).compress(raw) if compress else raw
        b = _Blob(blob_id or chunker.hash_bytes(raw), blob_type, COMPRESSION_ZSTD if compress else COMPRESSION_NONE,
                  len(raw) if raw_len is None else raw_len, stored)
        self.pending.append(b)
        return b.blob_id

    def manifest_tree(self, data: bytes) -> bytes:
        """Store an encoded manifest as tree blobs (like artvc does); returns the manifest id."""
        return trees.store_tree(data, chunker.Chunker(chunker.TREE_CHUNKER), lambda piece: self.blob(piece, BLOB_TREE))

    def record(self, artifact: str, manifest_id: bytes, fmt: int = 1, overrides: dict | None = None) -> bytes:
        rec = VersionRecord(artifact=artifact, type="dataset", manifest=manifest_id.hex(), created="2024-01-01T00:00:00.000000Z",
                            author="mallory", message="hand-made", stats={"entries": 1, "files": 1, "bytes": 1, "references": 0})
        body = rec.to_json()
        body["format"] = fmt
        body.update(overrides or {})
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return self.blob(raw, BLOB_RECORD)

    def version(self, artifact: str, number: int, content: bytes) -> None:
        path = self.root / "versions" / artifact / f"{number:010d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def alias(self, artifact: str, alias: str, content: bytes) -> None:
        path = self.root / "aliases" / artifact / alias
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    def seal(self, index_patch=None, trailer_format: int | None = None) -> bytes:
        """Write the queued blobs as one pack plus its index/ file; returns the pack id.

        index_patch(index_bytes) -> index_bytes may rewrite the index (its hash is recomputed so the
        change is not caught merely by the hash); trailer_format replaces the trailer's format byte.
        """
        tmp = self.root.parent / f"building-{os.getpid()}-{time.monotonic_ns()}.tmp"
        writer = PackWriter(str(tmp))
        for b in self.pending:
            writer.add(b.blob_id, b.blob_type, b.compression, b.raw_len, b.stored)
        work = self.root.parent / "pack-work"
        work.mkdir(exist_ok=True)
        pack_id, _ = writer.finish(str(work))
        data = Path(pack_path(str(work), pack_id)).read_bytes()
        os.unlink(pack_path(str(work), pack_id))
        self.pending = []
        if index_patch is not None or trailer_format is not None:
            index_offset, count, _ = parse_trailer(data[-TRAILER.size:], len(data))
            index = data[index_offset:-TRAILER.size]
            if index_patch is not None:
                index = index_patch(index)
            magic = b"ARTVCIX" + bytes([1 if trailer_format is None else trailer_format])
            data = data[:index_offset] + index + TRAILER.pack(len(index), len(index) // INDEX_RECORD.size,
                                                               chunker.hash_bytes(index), magic)
            pack_id = chunker.hash_bytes(data)
        index_offset = _index_start(data)
        name = pack_id.hex()
        (self.root / "packs" / name[:2]).mkdir(parents=True, exist_ok=True)
        (self.root / "packs" / name[:2] / f"{name}.pack").write_bytes(data)
        (self.root / "index").mkdir(exist_ok=True)
        (self.root / "index" / name).write_bytes(data[index_offset:])
        return pack_id


def _index_start(data: bytes) -> int:
    index_len = TRAILER.unpack(data[-TRAILER.size:])[0]
    return len(data) - TRAILER.size - index_len


def patch_index_record(index: bytes, which: int, **fields) -> bytes:
    """Rewrite fields (blob_type, compression, raw_len, stored_len, offset, blob_id) of one index record."""
    names = ("blob_type", "compression", "raw_len", "stored_len", "offset", "blob_id")
    start = which * INDEX_RECORD.size
    values = dict(zip(names, INDEX_RECORD.unpack_from(index, start)))
    values.update(fields)
    return index[:start] + INDEX_RECORD.pack(*(values[n] for n in names)) + index[start + INDEX_RECORD.size:]


__all__ = [name for name in dir() if not name.startswith("_")]
