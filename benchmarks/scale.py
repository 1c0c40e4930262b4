#!/usr/bin/env python3
"""Scale checks: a large sparse file and many small files through commit, status, push and checkout.

Prints one table (wall time and peak RSS of each artvc step, as a subprocess). Run on demand:
    python benchmarks/scale.py                     # 5 GiB sparse file, 50,000 small files
    python benchmarks/scale.py --files 20000 200000 --sparse-gib 1 5
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


def fresh_rss_run(args: list[str], cwd: str) -> tuple[float, float]:
    """Like run(), but peak RSS measured for this process alone (ru_maxrss of children is a running max)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-m", "artvc", *args], cwd=cwd,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"artvc {' '.join(args)} failed: {proc.stderr.strip()}")
    return elapsed, int(proc.stderr.strip().splitlines()[-1]) / 1024


def sparse_case(work: str, gib: int) -> list[tuple[str, float, float]]:
    repo = os.path.join(work, f"sparse-{gib}")
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


def many_case(work: str, count: int) -> list[tuple[str, float, float]]:
    repo = os.path.join(work, f"many-{count}")
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
    ap.add_argument("--root", help="work folder (default: a temporary one)")
    a = ap.parse_args()
    work = a.root or tempfile.mkdtemp(prefix="artvc-scale-")
    os.makedirs(work, exist_ok=True)
    rows: list[tuple[str, float, float]] = []
    try:
        for gib in a.sparse_gib:
            rows += sparse_case(work, gib)
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
        else:
            print(f"| {name} | {seconds:.2f} | {rss:.0f} MiB |")


if __name__ == "__main__":
    main()
