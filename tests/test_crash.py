"""Crash safety: kill -9 at seeded moments of commit, push, checkout and gc; faults injected at the Nth write.

Each kill test measures how long an uninterrupted run of the command takes (T), then for every seed starts
the real CLI (`python -m artvc ...`) as a subprocess, sleeps random.Random(seed).uniform(0, T) and sends
SIGKILL. After every kill:
  * `artvc verify` exits 0 (the store is valid);
  * the workspace holds no `*.artvc-tmp-*` files and only whole files;
  * rerunning the command completes it;
  * version numbers stay contiguous (v0..vK, none skipped or taken twice) and the bytes are right.
Problems are collected per seed and reported together, so one run shows every failing kill point.
"""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

import artvc
from artvc.errors import ArtvcError, RemoteError
from artvc.index import close_indexes
from conftest import assert_error, assert_ok
from crash_faults import (
    WriteFaults,
    artvc as run_artvc,
    digests,
    install_checkout_write_faults,
    install_pack_write_faults,
    kill_after,
    leftovers,
    make_dataset,
    mutate,
    ok,
    set_pack_size,
    spawn,
    timed,
    versions_of,
)
from faults import FaultyBackend

COMMIT_SEEDS = range(10)
PUSH_SEEDS = range(10)
CHECKOUT_SEEDS = range(6)
GC_SEEDS = range(5)


def _new_repo(path: Path, pack_size: int | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    ok(run_artvc("init", cwd=path))
    if pack_size:
        set_pack_size(path, pack_size)
    return path


def _checkout_to(repo: Path, spec: str, out: Path) -> dict:
    """Materialize a version under `out` (in-process API) and return what was written."""
    if out.exists():
        shutil.rmtree(out)
    r = artvc.Repo(str(repo))
    try:
        r.checkout(spec, to=str(out))
    finally:
        r.close()
    found = digests(out)
    shutil.rmtree(out)
    return found


def _contiguity_problem(versions: list[tuple[int, str]], count: int) -> str | None:
    numbers = [n for n, _ in versions]
    ids = [i for _, i in versions]
    if numbers != list(range(count)) or len(set(ids)) != len(ids):
        return f"expected v0..v{count - 1} with distinct ids, found {[(n, i[:8]) for n, i in versions]}"
    return None


def _verify_problem(repo: Path, label: str) -> str | None:
    """`artvc verify` (the real CLI) must exit 0."""
    v = run_artvc("verify", cwd=repo)
    if v.code != 0:
        return f"{label}: artvc verify exit {v.code}: {v.out.strip()[-800:]} {v.err.strip()[-400:]}"
    return None


# ---- commit ------------------------------------------------------------------------------------------------
def test_commit_killed_at_seeded_moments_leaves_a_valid_store_and_reruns(tmp):
    repo = _new_repo(tmp / "repo", pack_size=4 << 20)
    make_dataset(repo / "data", seed=1, big=20, small=800)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    ok(run_artvc("commit", "-m", "v0", cwd=repo))
    mutate(repo / "data", seed=1000)
    run, duration = timed("commit", "-m", "timing run", cwd=repo)
    ok(run)
    count = 2
    problems: list[str] = []
    killed_running = 0
    for seed in COMMIT_SEEDS:
        mutate(repo / "data", seed)
        expected = digests(repo)
        delay = random.Random(seed).uniform(0, duration)
        killed_running += kill_after(spawn("commit", "-m", f"seed {seed}", cwd=repo), delay)
        label = f"commit seed {seed} (killed after {delay:.3f}s of {duration:.3f}s)"

        problem = _verify_problem(repo, label + ", right after the kill")
        if problem:
            problems.append(problem)
        left = leftovers(repo)
        if left:
            problems.append(f"{label}: temporary files left in the workspace: {left[:5]}")

        rerun = run_artvc("commit", "-m", f"seed {seed} again", cwd=repo)
        if rerun.code != 0:
            problems.append(f"{label}: rerunning commit failed: {rerun}")
            break
        count += 1
        versions = versions_of(repo, "ds")
        problem = _contiguity_problem(versions, count)
        if problem:
            problems.append(f"{label}: {problem}")
            count = len(versions)
        spec = f"ds:v{versions[-1][0]}"
        got = _checkout_to(repo, spec, tmp / "out")
        if got != expected:
            diff = sorted(set(got.items()) ^ set(expected.items()))[:3]
            problems.append(f"{label}: {spec} does not hold the committed bytes (e.g. {diff})")
    print(f"commit: T={duration:.2f}s, {killed_running}/{len(COMMIT_SEEDS)} kills hit a running commit")
    problem = _verify_problem(repo, "commit loop, at the end")
    if problem:
        problems.append(problem)
    assert not problems, "\n".join(problems)


# ---- push ------------------------------------------------------------------------------------------------------
def _remote_problems(remote: Path, clone: Path, local: list[tuple[int, str]], expected: dict[str, dict],
                     checked: set[str], out: Path) -> list[str]:
    """A fresh clone of the remote + fetch --all must work, and every version it lists must be a local
    version with the same number and the same bytes."""
    problems = []
    try:
        r = artvc.Repo.clone(str(remote), str(clone))
    except ArtvcError as exc:
        return [f"clone of the remote failed: {exc}"]
    try:
        r.fetch(all=True)
        report = r.verify()
        if not report.ok:
            problems.append(f"verify in a fresh clone: {report}")
        by_number = dict(local)
        for v in sorted(r.versions("ds"), key=lambda v: v.number) if r.artifacts() else []:
            if by_number.get(v.number) != v.id:
                problems.append(f"the remote's {v.spec} is {v.id[:12]}, locally {str(by_number.get(v.number))[:12]}")
            elif v.id not in checked:
                r.checkout(v.spec, to=str(out))
                if digests(out) != expected[v.id]:
                    problems.append(f"{v.spec} from the remote has the wrong bytes")
                shutil.rmtree(out)
                checked.add(v.id)
    except Exception as exc:  # noqa: BLE001 - reported as a problem of this kill point
        problems.append(f"fetch --all / checkout in a fresh clone failed: {type(exc).__name__}: {exc}")
    finally:
        r.close()
        close_indexes(str(clone / ".artvc"))
        shutil.rmtree(clone, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return problems


def test_push_killed_at_seeded_moments_leaves_a_usable_remote_and_reruns(tmp):
    repo = _new_repo(tmp / "repo", pack_size=256 << 10)
    remote = tmp / "remote"
    make_dataset(repo / "data", seed=2, big=12, small=400)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    expected: dict[str, dict] = {}

    def commit(message: str) -> None:
        ok(run_artvc("commit", "-m", message, cwd=repo))
        expected[versions_of(repo, "ds")[-1][1]] = digests(repo)

    commit("v0")
    ok(run_artvc("remote", "add", "origin", remote, cwd=repo))
    ok(run_artvc("push", cwd=repo))
    mutate(repo / "data", seed=2000, big_fraction=0.6)
    commit("timing")
    run, duration = timed("push", cwd=repo)
    ok(run)
    checked: set[str] = set()
    problems: list[str] = []
    killed_running = 0
    for seed in PUSH_SEEDS:
        mutate(repo / "data", seed, big_fraction=0.6)
        commit(f"seed {seed}")
        if seed % 3 == 0:
            ok(run_artvc("alias", "ds", f"tag{seed}", cwd=repo))
        delay = random.Random(seed).uniform(0, duration)
        killed_running += kill_after(spawn("push", cwd=repo), delay)
        label = f"push seed {seed} (killed after {delay:.3f}s of {duration:.3f}s)"

        problem = _verify_problem(repo, label + ", local store")
        if problem:
            problems.append(problem)
        r = artvc.Repo(str(repo))
        try:
            remote_damage = r.verify_remote("origin")
        finally:
            r.close()
        if remote_damage:
            problems.append(f"{label}: verify --remote: {remote_damage}")
        local = versions_of(repo, "ds")
        problems += [f"{label}: {p}" for p in _remote_problems(remote, tmp / f"clone-{seed}", local, expected, checked, tmp / "out")]

        rerun = run_artvc("push", cwd=repo)
        if rerun.code != 0:
            problems.append(f"{label}: rerunning push failed: {rerun}")
            break
        on_remote = sorted(p.name for p in (remote / "versions" / "ds").iterdir() if not p.name.startswith("."))
        if on_remote != [f"{n:010d}" for n in range(len(local))]:
            problems.append(f"{label}: after the rerun the remote holds {on_remote}, expected {len(local)} versions")
    print(f"push: T={duration:.2f}s, {killed_running}/{len(PUSH_SEEDS)} kills hit a running push")
    again = ok(run_artvc("push", cwd=repo))
    assert "up to date" in (again.out + again.err), str(again)
    problems += _remote_problems(remote, tmp / "clone-final", versions_of(repo, "ds"), expected, set(), tmp / "out")
    assert not problems, "\n".join(problems)


# ---- checkout -----------------------------------------------------------------------------------------------
def test_checkout_killed_at_seeded_moments_leaves_only_whole_files_and_reruns(tmp):
    repo = _new_repo(tmp / "repo")
    make_dataset(repo / "data", seed=3, big=10, small=500)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    ok(run_artvc("commit", "-m", "v0", cwd=repo))
    v0 = digests(repo)
    mutate(repo / "data", seed=3000, big_fraction=1.0, small_changes=500)
    ok(run_artvc("commit", "-m", "v1", cwd=repo))
    v1 = digests(repo)
    ok(run_artvc("checkout", "ds:v0", cwd=repo))
    assert digests(repo) == v0
    run, duration = timed("checkout", "ds:v1", cwd=repo)
    ok(run)
    ok(run_artvc("checkout", "ds:v0", cwd=repo))
    problems: list[str] = []
    for seed in CHECKOUT_SEEDS:
        delay = random.Random(seed).uniform(0, duration)
        kill_after(spawn("checkout", "ds:v1", cwd=repo), delay)
        label = f"checkout seed {seed} (killed after {delay:.3f}s of {duration:.3f}s)"
        left = leftovers(repo)
        if left:
            problems.append(f"{label}: {len(left)} temporary files left in the workspace, e.g. {left[:3]}")
        now = digests(repo)
        mixed = [p for p, d in now.items() if b".artvc-tmp-" not in p and d not in (v0.get(p), v1.get(p))]
        if mixed:
            problems.append(f"{label}: files that hold neither the v0 nor the v1 bytes: {mixed[:5]}")
        problem = _verify_problem(repo, label)
        if problem:
            problems.append(problem)

        rerun = run_artvc("checkout", "ds:v1", cwd=repo)
        if rerun.code != 0:
            problems.append(f"{label}: rerunning checkout failed: {rerun}")
            break
        if digests(repo) != v1:
            extra = sorted(set(digests(repo)) - set(v1))[:3]
            problems.append(f"{label}: after the rerun the workspace is not v1 (extra: {extra})")
        r = artvc.Repo(str(repo))
        status = r.status("ds")["ds"]
        r.close()
        if not status.clean:
            problems.append(f"{label}: status after the rerun is not clean: added {status.added[:3]}, "
                            f"modified {status.modified[:3]}, deleted {status.deleted[:3]}")
        for path in leftovers(repo):  # recorded above; removed so that the next seed starts clean
            os.unlink(path)
        ok(run_artvc("checkout", "ds:v0", cwd=repo))
        assert digests(repo) == v0
    assert not problems, "\n".join(problems)


# ---- gc ------------------------------------------------------------------------------------------------------
def _gc_template(path: Path) -> dict[str, dict]:
    """A repository with two versions, fully-garbage packs, mostly-garbage packs holding live chunks,
    and unindexed orphan packs. Returns the expected content per version spec."""
    from artvc.packs import BLOB_DATA, PackWriter

    _new_repo(path, pack_size=1 << 20)
    rng = random.Random(77)
    files = {f"data/f{i:02d}.bin": rng.randbytes(420_000) for i in range(14)}
    for i in range(200):
        files[f"data/small/s{i:03d}.txt"] = rng.randbytes(rng.randint(10, 3000))
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    repo = artvc.Repo(str(path))
    store = repo._repository.store
    with store.writer() as writer:
        for i, rel in enumerate(sorted(files)[:14]):
            writer.add_blob(rng.randbytes(700_000), BLOB_DATA)  # garbage next to ...
            for piece in store.data_chunker.cut_bytes(files[rel]):  # ... chunks a version will use
                writer.add_blob(bytes(piece), BLOB_DATA)
        for _ in range(12):
            writer.add_blob(rng.randbytes(900_000), BLOB_DATA)  # packs of nothing but garbage
    repo.add(["data"], name="ds", cwd=str(path))
    repo.commit(message="v0")
    expected = {"ds:v0": digests(path)}
    for rel in sorted(files)[:5]:
        (path / rel).write_bytes(rng.randbytes(300_000))
    repo.commit(message="v1")
    expected["ds:v1"] = digests(path)
    for i in range(3):  # what a writer killed between the rename and the index leaves
        w = PackWriter(str(path / ".artvc" / "tmp" / f"orphan{i}.tmp"))
        blob = rng.randbytes(500_000)
        from artvc.chunker import hash_bytes

        w.add(hash_bytes(blob), BLOB_DATA, 0, len(blob), blob)
        w.finish(str(path / ".artvc" / "packs"))
    repo.close()
    close_indexes(str(path / ".artvc"))
    return expected


def _dry_run_counts(repo: Path) -> str:
    return ok(run_artvc("gc", "--dry-run", cwd=repo)).out


def test_gc_killed_at_seeded_moments_never_loses_version_data(tmp):
    template = tmp / "template"
    expected = _gc_template(template)
    timing = tmp / "timing"
    shutil.copytree(template, timing, symlinks=True)
    run, duration = timed("gc", cwd=timing)
    ok(run)
    assert "0 blobs kept" not in run.out
    clean = _dry_run_counts(timing)
    assert "0 packs deleted, 0 repacked, 0 orphan packs" in clean and " 0 unreferenced" in clean, clean
    problems: list[str] = []
    killed_running = 0
    for seed in GC_SEEDS:
        repo = tmp / f"gc-{seed}"
        shutil.copytree(template, repo, symlinks=True)
        delay = random.Random(seed).uniform(0, duration)
        killed_running += kill_after(spawn("gc", cwd=repo), delay)
        label = f"gc seed {seed} (killed after {delay:.3f}s of {duration:.3f}s)"
        problem = _verify_problem(repo, label)
        if problem:
            problems.append(problem)
        for spec, want in expected.items():
            try:
                if _checkout_to(repo, spec, tmp / "out") != want:
                    problems.append(f"{label}: {spec} has the wrong bytes after the kill")
            except ArtvcError as exc:
                problems.append(f"{label}: checkout {spec} after the kill failed: {exc}")
        rerun = run_artvc("gc", cwd=repo)
        if rerun.code != 0:
            problems.append(f"{label}: rerunning gc failed: {rerun}")
            continue
        after = _dry_run_counts(repo)
        if "0 packs deleted, 0 repacked, 0 orphan packs" not in after or " 0 unreferenced" not in after:
            problems.append(f"{label}: the rerun left garbage: {after.strip()}")
        problem = _verify_problem(repo, label + ", after the rerun")
        if problem:
            problems.append(problem)
        for spec, want in expected.items():
            if _checkout_to(repo, spec, tmp / "out") != want:
                problems.append(f"{label}: {spec} has the wrong bytes after the rerun")
        shutil.rmtree(repo)
    print(f"gc: T={duration:.2f}s, {killed_running}/{len(GC_SEEDS)} kills hit a running gc")
    assert not problems, "\n".join(problems)


# ---- faults injected at the Nth write (in-process) -------------------------------------------------------------
def _small_dataset(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(3):
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "data" / f"big{i}.bin").write_bytes(rng.randbytes(300_000))
    for i in range(20):
        (root / "data" / "small").mkdir(parents=True, exist_ok=True)
        (root / "data" / "small" / f"s{i}.txt").write_bytes(f"small {i} {seed}\n".encode() * rng.randint(1, 50))


def _api_verify_ok(path: Path) -> tuple[bool, object]:
    r = artvc.Repo(str(path))
    try:
        report = r.verify()
        return report.ok, report
    finally:
        r.close()


def test_commit_stops_cleanly_at_every_failing_store_write(tmp, cli, monkeypatch):
    template = tmp / "template"
    template.mkdir()
    monkeypatch.chdir(template)
    assert_ok(cli("init"))
    set_pack_size(template, 256 << 10)
    _small_dataset(template, 5)
    assert_ok(cli("add", "data", "-a", "ds"))
    close_indexes(str(template / ".artvc"))
    expected = digests(template)
    n = 0
    while True:
        n += 1
        assert n < 500, "the commit never finished"
        work = tmp / f"n{n}"
        shutil.copytree(template, work, symlinks=True)
        faults = WriteFaults(fail_at=n)
        with monkeypatch.context() as m:
            m.chdir(work)
            install_pack_write_faults(m, faults)
            result = cli("commit", "-m", "x")
        label = f"fault at write {n}"
        if not faults.tripped:
            assert_ok(result)
            assert len(result.commit_lines()) == 1, str(result)
            close_indexes(str(work / ".artvc"))
            break
        assert_error(result, "space")
        good, report = _api_verify_ok(work)
        assert good, f"{label}: verify: {report}"
        r = artvc.Repo(str(work))
        assert r.versions("ds") == [], f"{label}: a version was made although the commit failed"
        r.close()
        assert leftovers(work) == [], label
        monkeypatch.chdir(work)
        assert_ok(cli("commit", "-m", "rerun"))
        assert_ok(cli("checkout", "ds:v0", "--to", tmp / "out"))
        assert digests(tmp / "out") == expected, label
        shutil.rmtree(tmp / "out")
        close_indexes(str(work / ".artvc"))
        monkeypatch.chdir(tmp)
        shutil.rmtree(work)
    print("commit faults", n)
    assert n > 10, f"only {n - 1} writes were counted; the fault injection does not reach the pack writer"


def test_checkout_stops_cleanly_at_every_failing_file_write(tmp, cli, monkeypatch):
    repo = tmp / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    assert_ok(cli("init"))
    _small_dataset(repo, 6)
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit"))
    v0 = digests(repo)
    _small_dataset(repo, 7)
    assert_ok(cli("commit"))
    v1 = digests(repo)
    assert_ok(cli("checkout", "ds:v0"))
    n = 0
    while True:
        n += 1
        assert n < 500
        faults = WriteFaults(fail_at=n)
        with monkeypatch.context() as m:
            install_checkout_write_faults(m, faults)
            result = cli("checkout", "ds:v1")
        label = f"fault at write {n}"
        if not faults.tripped:
            assert_ok(result)
            assert digests(repo) == v1
            break
        assert_error(result, "space")
        assert leftovers(repo) == [], f"{label}: {leftovers(repo)}"
        now = digests(repo)
        assert all(d in (v0.get(p), v1.get(p)) for p, d in now.items()), label
        good, report = _api_verify_ok(repo)
        assert good, f"{label}: {report}"
        assert_ok(cli("checkout", "ds:v1"))
        assert digests(repo) == v1, label
        assert assert_ok(cli("status", "ds", "--json")).json()["artifacts"]["ds"]["clean"], label
        assert_ok(cli("checkout", "ds:v0"))
        assert digests(repo) == v0, label
    print("checkout faults", n)
    assert n > 5


@pytest.fixture
def faulty_remote(monkeypatch):
    """install(fail_write=N or fail_load=N): every backend opened from now on fails its Nth write / load."""
    import artvc.remote.fsspec_backend as backends

    original = backends.open_backend

    def install(m, **kwargs):
        made: list[FaultyBackend] = []

        def open_faulty(url, options=None):
            backend = FaultyBackend(original(url, options), error=RemoteError, **kwargs)
            made.append(backend)
            return backend

        m.setattr(backends, "open_backend", open_faulty)
        return made

    return install


def test_push_stops_cleanly_at_every_failing_remote_write(tmp, cli, monkeypatch, faulty_remote):
    repo = tmp / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    assert_ok(cli("init"))
    set_pack_size(repo, 256 << 10)
    expected = {}
    _small_dataset(repo, 8)
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit", "--alias", "best"))
    expected["ds:v0"] = digests(repo)
    _small_dataset(repo, 9)
    assert_ok(cli("commit"))
    expected["ds:v1"] = digests(repo)
    n = 0
    while True:
        n += 1
        assert n < 500
        remote = tmp / f"remote-{n}"
        assert_ok(cli("remote", "add", f"r{n}", remote))
        with monkeypatch.context() as m:
            made = faulty_remote(m, fail_write=n)
            result = cli("push", f"r{n}")
        label = f"push with a fault at remote write {n}"
        if not any(b.tripped for b in made):
            assert_ok(result)
            break
        assert_error(result)
        good, report = _api_verify_ok(repo)
        assert good, f"{label}: local verify: {report}"
        if (remote / "artvc-remote.json").exists():
            assert_ok(cli("verify", "--remote", f"r{n}"))
            clone = tmp / f"clone-{n}"
            assert_ok(cli("clone", remote, clone))
            monkeypatch.chdir(clone)
            assert_ok(cli("fetch", "--all"))
            listed = assert_ok(cli("log", "--json")).json()
            for v in listed:
                assert_ok(cli("checkout", v["spec"], "--to", tmp / "out"))
                assert digests(tmp / "out") == expected[v["spec"]], label
                shutil.rmtree(tmp / "out")
            close_indexes(str(clone / ".artvc"))
            monkeypatch.chdir(repo)
        assert_ok(cli("push", f"r{n}"))
        pushed = sorted(p.name for p in (remote / "versions" / "ds").iterdir())
        assert pushed == ["0000000000", "0000000001"], label
        assert (remote / "aliases" / "ds" / "best").exists(), label
    print("push faults", n)
    assert n > 5, "the fault injection never reached the remote"


def test_fetch_stops_cleanly_at_every_failing_remote_read(tmp, cli, monkeypatch, faulty_remote):
    source = tmp / "source"
    source.mkdir()
    monkeypatch.chdir(source)
    assert_ok(cli("init"))
    set_pack_size(source, 256 << 10)
    _small_dataset(source, 10)
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit"))
    v0 = digests(source)
    _small_dataset(source, 11)
    assert_ok(cli("commit"))
    v1 = digests(source)
    assert_ok(cli("remote", "add", "origin", tmp / "remote"))
    assert_ok(cli("push"))
    n = 0
    while True:
        n += 1
        assert n < 500
        clone = tmp / f"clone-{n}"
        monkeypatch.chdir(tmp)
        assert_ok(cli("clone", tmp / "remote", clone))
        monkeypatch.chdir(clone)
        with monkeypatch.context() as m:
            made = faulty_remote(m, fail_load=n)
            result = cli("fetch", "--all")
        label = f"fetch with a fault at remote read {n}"
        tripped = any(b.tripped for b in made)
        if tripped:
            assert_error(result)
            good, report = _api_verify_ok(clone)
            assert good, f"{label}: {report}"
            assert leftovers(clone) == [], label
            assert_ok(cli("fetch", "--all"))
        else:
            assert_ok(result)
        for spec, want in (("ds:v0", v0), ("ds:v1", v1)):
            assert_ok(cli("checkout", spec, "--to", tmp / "out"))
            assert digests(tmp / "out") == want, label
            shutil.rmtree(tmp / "out")
        good, report = _api_verify_ok(clone)
        assert good, f"{label}, after the rerun: {report}"
        close_indexes(str(clone / ".artvc"))
        if not tripped:
            break
    print("fetch faults", n)
    assert n > 3
