#!/usr/bin/env python3
"""Scale checks: a large sparse file and many small files through commit, status, push and checkout.

Prints one table (wall time and peak RSS of each artvc step, as a subprocess). Run on demand:
    python benchmarks/scale.py                     # 5 GiB sparse file, 50,000 small files
    python benchmarks/scale.py --files 20000 200000 --sparse-gib 1 5 --random-gib 1 5

--random-gib makes a version of one file of random bytes (nothing dedups or compresses: every byte
goes through the chunker, the hash, the packs and back) plus one 5 KiB file, and also reports how
many bytes a fresh repository reads from the share to fetch only that small file.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from bench import byte_compile_artvc


def fresh_rss_run(args: list[str], cwd: str) -> tuple[float, float]:
    """Like run(), but peak RSS measured for this process alone (ru_maxrss of children is a running max)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "artvc", *args], cwd=cwd,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"artvc {' '.join(args)} failed: {proc.stderr.strip()}")
    return elapsed, int(proc.stderr.strip().splitlines()[-1]) / 1024


def clear_leftovers(work: str, *names: str) -> None:
    """Remove what an interrupted earlier run left under --root, so a case starts from nothing."""
    for name in names:
        shutil.rmtree(os.path.join(work, name), ignore_errors=True)


def sparse_case(work: str, gib: int) -> list[tuple[str, float, float]]:
    repo = os.path.join(work, f"sparse-{gib}")
    clear_leftovers(work, f"sparse-{gib}")
    os.makedirs(repo)
    path = os.path.join(repo, "big.bin")
    with open(path, "wb") as f:
        f.truncate(gib << 30)
        f.seek((gib << 30) // 2)
        f.write(os.urandom(1 << 20))
    rows = []
    fresh_rss_run(["init"], repo)
    fresh_rss_run(["add", "big.bin", "-a", "big"], repo)
    rows.append((f"{gib} GiB sparse file: commit", *fresh_rss_run(["commit", "-q"], repo)))
    rows.append((f"{gib} GiB sparse file: checkout --to", *fresh_rss_run(["checkout", "big", "--to", "out", "-q"], repo)))
    same = subprocess.run(["cmp", path, os.path.join(repo, "out", "big.bin")]).returncode == 0
    rows.append((f"{gib} GiB sparse file: restored bytes identical", float(same), 0.0))
    shutil.rmtree(repo)
    return rows


def random_case(work: str, gib: int) -> list[tuple[str, float, float]]:
    repo = os.path.join(work, f"random-{gib}")
    clear_leftovers(work, f"random-{gib}", f"share-random-{gib}", f"fresh-{gib}")
    os.makedirs(os.path.join(repo, "data"))
    big = os.path.join(repo, "data", "big.bin")
    with open(big, "wb") as f:
        for _ in range(gib * 16):
            f.write(os.urandom(64 << 20))
    with open(os.path.join(repo, "data", "small.txt"), "wb") as f:
        f.write(os.urandom(5 << 10))
    share = os.path.join(work, f"share-random-{gib}")
    rows = []
    fresh_rss_run(["init"], repo)
    fresh_rss_run(["add", "data", "-a", "big"], repo)
    rows.append((f"{gib} GiB random file: commit", *fresh_rss_run(["commit", "-q"], repo)))
    fresh_rss_run(["remote", "add", "s", share], repo)
    rows.append((f"{gib} GiB random file: push to a folder", *fresh_rss_run(["push", "-q"], repo)))
    rows.append((f"{gib} GiB random file: checkout --to", *fresh_rss_run(["checkout", "big", "--to", "out", "-q"], repo)))
    same = subprocess.run(["cmp", big, os.path.join(repo, "out", "data", "big.bin")]).returncode == 0
    rows.append((f"{gib} GiB random file: restored bytes identical", float(same), 0.0))
    shutil.rmtree(os.path.join(repo, "out"))
    read, requests = _bytes_to_fetch_one_file(os.path.join(work, f"fresh-{gib}"), share, "big", "data/small.txt")
    rows.append((f"{gib} GiB version: fetch of its 5 KiB file alone reads (MiB / requests)", read / 1048576, requests))
    shutil.rmtree(repo)
    shutil.rmtree(share, ignore_errors=True)
    shutil.rmtree(os.path.join(work, f"fresh-{gib}"), ignore_errors=True)
    return rows


def _bytes_to_fetch_one_file(folder: str, share: str, name: str, path: str) -> tuple[int, int]:
    """Bytes and requests a fresh repository spends on the share to fetch one file of the latest version."""
    from artvc.api import Repo
    from artvc.manifest import KIND_FILE
    from artvc.remote.backend import CountingBackend
    from artvc.remote.fsspec_backend import open_backend
    from artvc.remote.sync import Sync

    fresh = Repo.init(folder)
    try:
        fresh.add_remote("origin", share)
        counting = CountingBackend(open_backend(share))
        repository = fresh._repository

        def wanted(local):
            entries = repository.version_manifest(local[name][-1][1])
            return [c for e in entries if e.kind == KIND_FILE and e.path == path for c, _ in e.chunks]

        Sync(repository, "origin", counting).fetch(wanted)
        return counting.bytes_received, counting.requests
    finally:
        fresh.close()


def many_case(work: str, count: int) -> list[tuple[str, float, float]]:
    repo = os.path.join(work, f"many-{count}")
    clear_leftovers(work, f"many-{count}", f"share-{count}")
    rng = random.Random(count)
    for i in range(count):
        folder = os.path.join(repo, "data", f"d{i % 100:02d}", f"s{(i // 100) % 20:02d}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"f{i:07d}.bin"), "wb") as f:
            f.write(rng.randbytes(rng.randint(200, 4000)))
    time.sleep(2.1)
    rows = []
    fresh_rss_run(["init"], repo)
    fresh_rss_run(["add", "data", "-a", "ds"], repo)
    rows.append((f"{count} files: commit", *fresh_rss_run(["commit", "-q"], repo)))
    fresh_rss_run(["status"], repo)
    rows.append((f"{count} files: status, nothing changed", *fresh_rss_run(["status"], repo)))
    fresh_rss_run(["remote", "add", "s", os.path.join(work, f"share-{count}")], repo)
    rows.append((f"{count} files: push to a folder", *fresh_rss_run(["push", "-q"], repo)))
    rows.append((f"{count} files: checkout --to an empty folder", *fresh_rss_run(["checkout", "ds", "--to", "out", "-q"], repo)))
    ok = subprocess.run(["diff", "-rq", os.path.join(repo, "data"), os.path.join(repo, "out", "data")], capture_output=True).returncode == 0
    rows.append((f"{count} files: restored bytes identical", float(ok), 0.0))
    shutil.rmtree(repo)
    shutil.rmtree(os.path.join(work, f"share-{count}"), ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sparse-gib", type=int, nargs="*", default=[5])
    ap.add_argument("--files", type=int, nargs="*", default=[50_000])
    ap.add_argument("--random-gib", type=int, nargs="*", default=[])
    ap.add_argument("--root", help="work folder (default: a temporary one)")
    a = ap.parse_args()
    byte_compile_artvc(sys.executable)
    work = a.root or tempfile.mkdtemp(prefix="artvc-scale-")
    os.makedirs(work, exist_ok=True)
    rows: list[tuple[str, float, float]] = []
    try:
        for gib in a.sparse_gib:
            rows += sparse_case(work, gib)
        for gib in a.random_gib:
            rows += random_case(work, gib)
        for count in a.files:
            rows += many_case(work, count)
    finally:
        if not a.root:
            shutil.rmtree(work, ignore_errors=True)
    print("| step | seconds | peak RSS |")
    print("|---|---:|---:|")
    for name, seconds, rss in rows:
        if name.endswith("identical"):
            print(f"| {name} | {'yes' if seconds else 'NO'} | |")
        elif "reads" in name:
            print(f"| {name} | {seconds:.2f} MiB | {rss:.0f} requests |")
        else:
            print(f"| {name} | {seconds:.2f} | {rss:.0f} MiB |")


if __name__ == "__main__":
    main()
