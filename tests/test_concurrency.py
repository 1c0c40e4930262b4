"""Several processes writing one repository at once: all succeed (or wait, reported and bounded), numbers stay
contiguous, verify stays clean, and gc running next to commits never takes their chunks."""
from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

import artvc
from artvc import lockfile
from artvc.errors import LockTimeoutError
from artvc.lock import repository_lock
from crash_faults import artvc as run_artvc
from crash_faults import digests, finish, versions_of, make_dataset, mutate, ok, set_pack_size, spawn


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    ok(run_artvc("init", cwd=path))
    return path


def _content(repo: Path, spec: str, out: Path) -> dict:
    r = artvc.Repo(str(repo))
    try:
        r.checkout(spec, to=str(out))
    finally:
        r.close()
    found = digests(out)
    shutil.rmtree(out)
    return found


def _only(found: dict, folder: str) -> dict:
    prefix = folder.encode() + b"/"
    return {p: d for p, d in found.items() if p.startswith(prefix)}


def _run_all(procs) -> list:
    return [finish(p) for p in procs]


def _assert_verify_clean(repo: Path) -> None:
    ok(run_artvc("verify", cwd=repo))


# ---- different artifacts at once ---------------------------------------------------------------------------
def test_four_processes_commit_four_artifacts_at_once(tmp):
    repo = _repo(tmp / "repo")
    names = ["alpha", "beta", "gamma", "delta"]
    for i, name in enumerate(names):
        make_dataset(repo / name, seed=100 + i, big=4, big_size=(1 << 20, 3 << 19), small=300)
        ok(run_artvc("add", name, "-a", name, cwd=repo))
    expected: dict[str, list[dict]] = {n: [] for n in names}
    for round_ in range(3):
        if round_:
            for i, name in enumerate(names):
                mutate(repo / name, seed=round_ * 10 + i)
        for name in names:
            expected[name].append(_only(digests(repo), name))
        results = _run_all([spawn("commit", name, "-m", f"round {round_}", cwd=repo) for name in names])
        for result in results:
            ok(result)
            assert len([line for line in result.out.splitlines() if ":v" in line]) == 1, str(result)
        for name in names:
            assert [n for n, _ in versions_of(repo, name)] == list(range(round_ + 1)), name
    _assert_verify_clean(repo)
    for name in names:
        versions = versions_of(repo, name)
        assert len({vid for _, vid in versions}) == len(versions)
        for number, _ in versions:
            assert _content(repo, f"{name}:v{number}", tmp / "out") == expected[name][number], f"{name}:v{number}"
    # artvc.lock is rewritten by every commit: it must name the version each artifact has checked out.
    lock = lockfile.read(str(repo))
    assert {n: (e.number, e.version_id) for n, e in lock.items()} == {n: versions_of(repo, n)[-1] for n in names}


# ---- one artifact, several writers ---------------------------------------------------------------------------
LOG_ONE = """
import os, sys, time
import artvc
repo_path, source, go = sys.argv[1], sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.001)
art = artvc.Artifact("model", type="model")
art.add_file(source, name="model.bin")
art.add_file(source + ".json", name="config.json")
v = artvc.Repo(repo_path).log_artifact(art, message=os.path.basename(source))
print(v.spec, v.id)
"""


def test_three_processes_log_the_same_artifact_at_once(tmp):
    repo = _repo(tmp / "repo")
    sources = tmp / "sources"
    sources.mkdir()
    contents: dict[str, tuple[bytes, bytes]] = {}
    rounds = 3
    for round_ in range(rounds):
        go = tmp / f"go-{round_}"
        procs = []
        for k in range(3):
            src = sources / f"r{round_}-w{k}.bin"
            data = random.Random(round_ * 10 + k).randbytes(2_500_000 + k)
            meta = f'{{"writer": {k}, "round": {round_}}}'.encode()
            src.write_bytes(data)
            Path(str(src) + ".json").write_bytes(meta)
            contents[src.name] = (data, meta)
            procs.append(spawn(cwd=tmp, python_args=["-c", LOG_ONE, str(repo), str(src), str(go)]))
        time.sleep(0.3)
        go.write_text("go")
        for result in _run_all(procs):
            ok(result)
        versions = versions_of(repo, "model")
        assert [n for n, _ in versions] == list(range(3 * (round_ + 1))), versions
    _assert_verify_clean(repo)
    seen = set()
    r = artvc.Repo(str(repo))
    try:
        for v in r.versions("model"):
            source = v.message
            with v.open("model.bin") as f:
                assert f.read() == contents[source][0], v.spec
            with v.open("config.json") as f:
                assert f.read() == contents[source][1], v.spec
            seen.add(source)
    finally:
        r.close()
    assert seen == set(contents), "every logged file is exactly one version"


COMMIT_AT_BARRIER = """
import os, sys, time
import artvc.repository as repository
from artvc.cli import main
barrier, parties = sys.argv[1], int(sys.argv[2])
original = repository.Repository.create_version

def create_version(self, *args, **kwargs):
    # Every committer has stored its data; meet the others here (for at most 5 s), then go on.
    open(os.path.join(barrier, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 5
    while len(os.listdir(barrier)) < parties and time.monotonic() < deadline:
        time.sleep(0.005)
    return original(self, *args, **kwargs)

repository.Repository.create_version = create_version
main(["commit", "ds"])
"""


def test_identical_concurrent_commits_make_one_version(tmp):
    """The contract: a commit whose content equals the artifact's latest version makes no new version.
    Three commits of the same unchanged workspace, run together, must leave exactly one new version.
    The committers are made to meet just before they create their versions (a barrier in each process,
    at most 5 s), so the test does not depend on luck to make them overlap."""
    repo = _repo(tmp / "repo")
    make_dataset(repo / "data", seed=5, big=4, small=200)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    for round_ in range(2):
        if round_:
            mutate(repo / "data", seed=55)
        barrier = tmp / f"barrier-{round_}"
        barrier.mkdir()
        results = _run_all([spawn(cwd=repo, python_args=["-c", COMMIT_AT_BARRIER, str(barrier), "3"]) for _ in range(3)])
        for result in results:
            ok(result)
        versions = versions_of(repo, "ds")
        assert [n for n, _ in versions] == list(range(round_ + 1)), (
            f"round {round_}: three commits of identical content made versions {[f'v{n}' for n, _ in versions]}; "
            f"outputs: {[r.out.strip() for r in results]}")
    _assert_verify_clean(repo)


# ---- gc next to commits ------------------------------------------------------------------------------------------
def _make_garbage(repo: Path, seed: int) -> None:
    """Indexed blobs no version uses, and unindexed packs: what interrupted writers leave."""
    from artvc.chunker import hash_bytes
    from artvc.packs import BLOB_DATA, PackWriter

    rng = random.Random(seed)
    r = artvc.Repo(str(repo))
    with r._repository.store.writer() as writer:
        for _ in range(6):
            writer.add_blob(rng.randbytes(400_000), BLOB_DATA)
    for i in range(2):
        w = PackWriter(str(repo / ".artvc" / "tmp" / f"orphan-{seed}-{i}.tmp"))
        blob = rng.randbytes(300_000)
        w.add(hash_bytes(blob), BLOB_DATA, 0, len(blob), blob)
        w.finish(str(repo / ".artvc" / "packs"))
    r.close()


def test_gc_running_next_to_commits_never_loses_their_chunks(tmp):
    repo = _repo(tmp / "repo")
    set_pack_size(repo, 1 << 20)
    names = ["one", "two", "three"]
    for i, name in enumerate(names):
        make_dataset(repo / name, seed=200 + i, big=4, big_size=(1 << 20, 3 << 19), small=200)
        ok(run_artvc("add", name, "-a", name, cwd=repo))
    ok(run_artvc("commit", cwd=repo))
    expected = {f"{n}:v0": _only(digests(repo), n) for n in names}
    for round_ in range(3):
        _make_garbage(repo, round_)
        for i, name in enumerate(names):
            mutate(repo / name, seed=300 + 10 * round_ + i)
            expected[f"{name}:v{round_ + 1}"] = _only(digests(repo), name)
        procs = []
        for i, name in enumerate(names):
            procs.append(spawn("commit", name, "-m", f"round {round_}", cwd=repo))
            procs.append(spawn("gc", cwd=repo))
            time.sleep(0.05 * i)
        results = _run_all(procs)
        for result in results:
            ok(result)
        for name in names:
            assert [n for n, _ in versions_of(repo, name)] == list(range(round_ + 2)), name
        _assert_verify_clean(repo)
    for spec, want in expected.items():
        assert _content(repo, spec, tmp / "out") == want, spec
    final = ok(run_artvc("gc", cwd=repo))
    dry = ok(run_artvc("gc", "--dry-run", cwd=repo)).out
    assert "0 packs deleted, 0 repacked, 0 orphan packs" in dry and " 0 unreferenced" in dry, (final.out, dry)
    _assert_verify_clean(repo)


# ---- the lock: writers wait for gc (and gc for writers), reported and bounded ---------------------------------------
def test_commit_waits_for_a_running_gc_and_says_so(tmp):
    repo = _repo(tmp / "repo")
    make_dataset(repo / "data", seed=7, big=2, small=20)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    with repository_lock(str(repo / ".artvc"), exclusive=True):  # what gc holds
        proc = spawn("commit", "-m", "waits", cwd=repo)
        time.sleep(1.5)
        still_waiting = proc.poll() is None
        made_meanwhile = versions_of(repo, "ds")
    result = finish(proc)
    assert still_waiting, f"commit did not wait for the lock: {result}"
    assert made_meanwhile == [], "commit wrote a version while gc held the lock"
    ok(result)
    assert "waiting" in result.err.lower(), f"the wait was not reported: {result}"
    assert [n for n, _ in versions_of(repo, "ds")] == [0]


def test_gc_waits_for_running_writers_and_says_so(tmp):
    repo = _repo(tmp / "repo")
    make_dataset(repo / "data", seed=8, big=2, small=20)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    ok(run_artvc("commit", cwd=repo))
    with repository_lock(str(repo / ".artvc"), exclusive=False):  # what a commit, fetch or checkout holds
        proc = spawn("gc", cwd=repo)
        time.sleep(1.5)
        still_waiting = proc.poll() is None
    result = finish(proc)
    assert still_waiting, f"gc did not wait for the writer: {result}"
    ok(result)
    assert "waiting" in result.err.lower(), f"the wait was not reported: {result}"


def test_lock_wait_is_bounded_with_a_clear_message(tmp):
    repo = _repo(tmp / "repo")
    artvc_dir = str(repo / ".artvc")
    notes: list[str] = []
    with repository_lock(artvc_dir, exclusive=True):
        with pytest.raises(LockTimeoutError) as info:
            with repository_lock(artvc_dir, exclusive=False, notify=notes.append, wait=0.5):
                pass
    assert notes and "waiting" in notes[0]
    assert "try again" in str(info.value)
    with repository_lock(artvc_dir, exclusive=False, wait=0.5):  # free again once the holder is gone
        pass


def test_a_killed_lock_holder_never_leaves_a_stale_lock(tmp):
    """flock is released by the kernel when its holder dies: a gc killed while holding the lock blocks nobody."""
    repo = _repo(tmp / "repo")
    make_dataset(repo / "data", seed=9, big=1, small=5)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    holder = spawn(cwd=repo, python_args=["-c", (
        "import sys, time; from artvc.lock import repository_lock\n"
        "with repository_lock(sys.argv[1], exclusive=True):\n"
        "    print('held', flush=True); time.sleep(600)\n"), str(repo / ".artvc")])
    assert holder.stdout.readline().strip() == b"held"
    os.killpg(holder.pid, 9)
    holder.wait()
    holder.stdout.close()
    holder.stderr.close()
    result = ok(run_artvc("commit", cwd=repo))
    assert "ds:v0" in result.out
