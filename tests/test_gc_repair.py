"""verify, verify --repair and gc: every flipped byte is found, repair rebuilds what can be rebuilt and fetches
back what a remote still has, gc drops only what no version uses."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

import artvc
from artvc.chunker import hash_bytes
from artvc.errors import ArtvcError
from artvc.index import close_index
from artvc.manifest import KIND_FILE
from artvc.packs import BLOB_DATA, COMPRESSION_NONE, PackWriter
from conftest import assert_error, assert_ok, write
from crash_faults import (
    WriteFaults,
    install_pack_write_faults,
    leftovers,
    pack_files,
    pack_regions,
    set_pack_size,
)


def _commit(cli, *args) -> str:
    result = assert_ok(cli("commit", *args))
    lines = result.commit_lines()
    assert len(lines) == 1, str(result)
    return f"{lines[0][0]}:v{lines[0][1]}"


def _files(top: Path) -> dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(top):
        for n in names:
            full = os.path.join(folder, n)
            out[os.path.relpath(full, top).replace(os.sep, "/")] = Path(full).read_bytes()
    return out


def _needed_blobs(r: artvc.Repo, spec: str) -> set[bytes]:
    """Every blob a checkout of `spec` reads: its record, its manifest tree, its chunks."""
    from artvc import trees

    repository = r._repository
    v = r.resolve(spec)
    vid = bytes.fromhex(v.id)
    record = repository.load_record(vid)
    tree_id = bytes.fromhex(record.manifest)
    needed = {vid, *trees.tree_blob_ids(tree_id, lambda b: repository.store.get_blob(b))}
    for e in repository.load_manifest(tree_id):
        if e.kind == KIND_FILE:
            needed.update(c for c, _ in e.chunks)
    return needed


# ---- every single-byte corruption ----------------------------------------------------------------------------------
def test_every_flipped_byte_of_every_pack_is_detected_and_never_checked_out_wrong(repo, cli, tmp_path):
    rng = random.Random(42)
    write(repo / "d" / "text.txt", "a line of text that compresses well\n" * 12)
    write(repo / "d" / "random.bin", rng.randbytes(200))
    write(repo / "d" / "tiny.txt", b"tiny\n")
    assert_ok(cli("add", "d", "-a", "ds"))
    versions = {_commit(cli): _files(repo / "d")}
    write(repo / "d" / "random.bin", rng.randbytes(180))
    write(repo / "d" / "more.txt", "another compressible line\n" * 10)
    versions[_commit(cli)] = _files(repo / "d")
    packs = pack_files(repo)
    total = sum(os.path.getsize(p) for p in packs)
    assert 4 <= len(packs) and total < 8192, (len(packs), total)

    r = artvc.Repo(str(repo))
    needed = {spec: _needed_blobs(r, spec) for spec in versions}
    r.close()
    out = tmp_path / "out"
    problems: list[str] = []
    flips = 0
    for path in packs:
        regions = pack_regions(path)
        in_pack = {blob_id for _, _, blob_id, _, _ in regions}
        affected = [spec for spec in versions if needed[spec] & in_pack]
        original = Path(path).read_bytes()
        for offset in range(len(original)):
            flips += 1
            mask = 1 << (offset % 8)
            corrupted = bytearray(original)
            corrupted[offset] ^= mask
            Path(path).write_bytes(bytes(corrupted))
            where = f"{os.path.basename(path)[:12]} byte {offset} ^ {mask:#04x}"
            r = artvc.Repo(str(repo))
            try:
                report = r.verify()
                if report.ok:
                    problems.append(f"{where}: verify found nothing")
                raw_hit = [b for start, end, b, _, comp in regions if start <= offset < end and comp == COMPRESSION_NONE]
                for spec in affected:
                    if out.exists():
                        shutil.rmtree(out)
                    try:
                        r.checkout(spec, to=str(out))
                        failed = False
                    except ArtvcError:
                        failed = True
                    written = _files(out) if out.exists() else {}
                    wrong = [p for p, data in written.items() if versions[spec].get(p.split("/", 1)[-1]) != data]
                    if wrong:
                        problems.append(f"{where}: checkout {spec} wrote wrong bytes to {wrong}")
                    if leftovers(out):
                        problems.append(f"{where}: checkout {spec} left temporary files {leftovers(out)}")
                    if not failed and set(written) != {f"d/{p}" for p in versions[spec]}:
                        problems.append(f"{where}: checkout {spec} succeeded but wrote {sorted(written)}")
                    # a flipped byte of a raw blob changes the bytes: the checkout must fail. (A flip in a zstd
                    # frame that still decodes to the same bytes is harmless; that checkout may succeed.)
                    if not failed and set(raw_hit) & needed[spec]:
                        problems.append(f"{where}: checkout {spec} succeeded although a stored byte it needs changed")
            finally:
                r.close()
                Path(path).write_bytes(original)
    assert flips == total
    assert not problems, f"{len(problems)} problems in {flips} flips:\n" + "\n".join(problems[:40])


def test_cli_verify_exits_1_and_names_only_the_damaged_version(repo, cli):
    rng = random.Random(1)
    write(repo / "d" / "shared.bin", rng.randbytes(5000))
    write(repo / "d" / "v0-only.bin", rng.randbytes(7000))
    assert_ok(cli("add", "d", "-a", "ds"))
    _commit(cli)
    os.unlink(repo / "d" / "v0-only.bin")
    write(repo / "d" / "v1-only.bin", rng.randbytes(3000))
    _commit(cli)
    r = artvc.Repo(str(repo))
    only_v0 = r.resolve("ds:v0").get_entry("d/v0-only.bin").chunks[0][0]
    loc = r._repository.store.locate(only_v0)
    r.close()
    path = os.path.join(repo, ".artvc", "packs", loc.pack_id.hex()[:2], loc.pack_id.hex() + ".pack")
    with open(path, "r+b") as f:
        f.seek(loc.offset + 10)
        b = f.read(1)
        f.seek(loc.offset + 10)
        f.write(bytes([b[0] ^ 0x20]))
    result = cli("verify")
    assert_error(result, "ds:v0")
    assert "ds:v1" not in result.err.split("versions:")[-1], str(result)
    assert_error(cli("verify", "ds:v0"))
    assert_ok(cli("verify", "ds:v1"))
    assert_error(cli("checkout", "ds:v0", "--to", repo.parent / "out0"))
    assert not (repo.parent / "out0" / "d" / "v0-only.bin").exists()
    assert_ok(cli("checkout", "ds:v1", "--to", repo.parent / "out1"))


# ---- repair ------------------------------------------------------------------------------------------------------------
def _two_artifacts(repo: Path, cli) -> dict[str, dict]:
    rng = random.Random(2)
    expected = {}
    for name in ("ds", "model"):
        for k in range(3):
            write(repo / name / "a.bin", rng.randbytes(30_000))
            write(repo / name / f"f{k}.txt", f"{name} {k}\n" * 100)
            if k == 0:
                assert_ok(cli("add", name, "-a", name))
            expected[_commit(cli, name)] = _files(repo / name)
    return expected


def _log(cli) -> list[tuple[str, str]]:
    return sorted((v["spec"], v["id"]) for v in assert_ok(cli("log", "--json")).json())


def _check_versions(cli, repo: Path, expected: dict[str, dict]) -> None:
    for spec, files in expected.items():
        out = repo.parent / f"check-{spec.replace(':', '-')}"
        assert_ok(cli("checkout", spec, "--to", out))
        name = spec.split(":")[0]
        assert _files(out / name) == files, spec
        shutil.rmtree(out)


def test_repair_rebuilds_a_lost_index_from_the_packs(repo, cli):
    expected = _two_artifacts(repo, cli)
    before = _log(cli)
    close_index(str(repo / ".artvc" / "index"))
    shutil.rmtree(repo / ".artvc" / "index")
    result = assert_ok(cli("verify", "--repair"))
    assert "repair:" in result.out
    assert _log(cli) == before, "repair must give every version back its number"
    assert_ok(cli("verify"))
    _check_versions(cli, repo, expected)


def test_repair_indexes_packs_whose_index_entries_were_lost(repo, cli):
    expected = _two_artifacts(repo, cli)
    r = artvc.Repo(str(repo))
    with r._repository.index.write() as txn:
        txn.drop(r._repository.index.db["blobs"], delete=False)
        txn.drop(r._repository.index.db["blobs_recent"], delete=False)
        txn.drop(r._repository.index.db["packs"], delete=False)
    r.close()
    assert_error(cli("checkout", "ds:v0", "--to", repo.parent / "x"))
    assert_ok(cli("verify", "--repair"))
    assert_ok(cli("verify"))
    _check_versions(cli, repo, expected)


def _flip_chunk(repo: Path, spec: str, path: str) -> None:
    r = artvc.Repo(str(repo))
    chunk = r.resolve(spec).get_entry(path).chunks[0][0]
    loc = r._repository.store.locate(chunk)
    r.close()
    pack = os.path.join(repo, ".artvc", "packs", loc.pack_id.hex()[:2], loc.pack_id.hex() + ".pack")
    with open(pack, "r+b") as f:
        f.seek(loc.offset + loc.stored_len // 2)
        b = f.read(1)
        f.seek(loc.offset + loc.stored_len // 2)
        f.write(bytes([b[0] ^ 0x01]))


def test_repair_fetches_damaged_chunks_back_from_a_remote(repo, cli):
    expected = _two_artifacts(repo, cli)
    assert_ok(cli("remote", "add", "origin", repo.parent / "remote"))
    assert_ok(cli("push"))
    _flip_chunk(repo, "ds:v1", "ds/a.bin")
    assert_error(cli("verify"))
    result = assert_ok(cli("verify", "--repair"))
    assert "0 still missing" in result.out, str(result)
    assert_ok(cli("verify"))
    _check_versions(cli, repo, expected)
    assert_ok(cli("verify", "--remote", "origin"))


def test_repair_without_a_copy_says_what_is_lost_and_keeps_the_rest(repo, cli):
    expected = _two_artifacts(repo, cli)
    _flip_chunk(repo, "model:v0", "model/a.bin")
    result = cli("verify", "--repair")
    assert_error(result, "lost")
    verify = cli("verify")
    assert_error(verify, "model:v0")
    assert_error(cli("checkout", "model:v0", "--to", repo.parent / "lost"))
    assert not (repo.parent / "lost" / "model" / "a.bin").exists()
    _check_versions(cli, repo, {s: f for s, f in expected.items() if s != "model:v0"})


def test_repair_after_an_interrupted_and_rerun_commit_adds_no_version(repo, cli, monkeypatch):
    """A commit that dies after its packs are written but before its version is numbered (step 4 of the
    write order), then rerun: the user has one version. verify --repair must not bring back the dead
    commit's record as a second version of the same content."""
    import artvc.refs as refs_mod

    write(repo / "d" / "a.txt", "alpha\n" * 100)
    assert_ok(cli("add", "d", "-a", "ds"))
    _commit(cli)
    write(repo / "d" / "a.txt", "beta\n" * 100)

    def crash(self, txn, name, version_id):
        raise KeyboardInterrupt  # the process dies here

    with monkeypatch.context() as m:
        m.setattr(refs_mod.Refs, "add_version", crash)
        with pytest.raises(KeyboardInterrupt):
            artvc.Repo(str(repo)).commit(message="dies")
    assert_ok(cli("verify"))
    assert _commit(cli, "-m", "rerun") == "ds:v1"
    before = _log(cli)
    assert_ok(cli("verify", "--repair"))
    assert _log(cli) == before, "repair turned the record of a commit that never finished into a new version"
    assert_ok(cli("verify"))


# ---- gc --------------------------------------------------------------------------------------------------------------------
def _garbage(repo: Path, rng: random.Random) -> tuple[list[bytes], list[str]]:
    """Indexed blobs no version uses (as a failed commit leaves) and unindexed packs (as a killed one leaves)."""
    r = artvc.Repo(str(repo))
    dead = []
    with r._repository.store.writer() as writer:
        for _ in range(5):
            dead.append(writer.add_blob(rng.randbytes(50_000), BLOB_DATA))
    orphans = []
    for i in range(2):
        w = PackWriter(str(repo / ".artvc" / "tmp" / f"o{i}.tmp"))
        blob = rng.randbytes(20_000)
        w.add(hash_bytes(blob), BLOB_DATA, 0, len(blob), blob)
        pack_id, _ = w.finish(str(repo / ".artvc" / "packs"))
        orphans.append(pack_id.hex())
    r.close()
    return dead, orphans


def _pack_listing(repo: Path) -> dict[str, int]:
    return {os.path.basename(p): os.path.getsize(p) for p in pack_files(repo)}


def test_gc_dry_run_reports_and_changes_nothing(repo, cli):
    _two_artifacts(repo, cli)
    _garbage(repo, random.Random(3))
    before = _pack_listing(repo)
    result = assert_ok(cli("gc", "--dry-run"))
    assert "would free" in result.out and "2 orphan packs" in result.out and " 5 unreferenced" in result.out, str(result)
    assert _pack_listing(repo) == before
    assert_ok(cli("verify"))
    again = assert_ok(cli("gc", "--dry-run"))
    assert again.out == result.out


def test_gc_removes_what_no_version_uses_and_keeps_every_version(repo, cli):
    expected = _two_artifacts(repo, cli)
    assert_ok(cli("alias", "ds:v0", "old"))
    assert_ok(cli("checkout", "model:v1"))
    dead, orphans = _garbage(repo, random.Random(4))
    # a commit that failed with a full disk after sealing some packs leaves indexed garbage too
    set_pack_size(repo, 16 << 10)
    write(repo / "ds" / "late.bin", random.Random(5).randbytes(200_000))
    from _pytest.monkeypatch import MonkeyPatch

    with MonkeyPatch.context() as m:
        install_pack_write_faults(m, WriteFaults(fail_at=12))
        assert_error(cli("commit", "ds"), "space")
    os.unlink(repo / "ds" / "late.bin")
    result = assert_ok(cli("gc"))
    assert "freed" in result.out
    r = artvc.Repo(str(repo))
    assert not any(r._repository.store.has_blob(b) for b in dead)
    r.close()
    names = set(_pack_listing(repo))
    assert not any(f"{o}.pack" in names for o in orphans)
    assert os.listdir(repo / ".artvc" / "tmp") == []
    dry = assert_ok(cli("gc", "--dry-run")).out
    assert "0 packs deleted, 0 repacked, 0 orphan packs" in dry and " 0 unreferenced" in dry, dry
    assert_ok(cli("verify"))
    _check_versions(cli, repo, expected)
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["model"]["head"] == "model:v1"


def test_gc_repacks_a_pack_that_is_mostly_garbage(repo, cli):
    rng = random.Random(6)
    live = rng.randbytes(10_000)
    r = artvc.Repo(str(repo))
    with r._repository.store.writer() as writer:
        writer.add_blob(rng.randbytes(300_000), BLOB_DATA)
        live_id = writer.add_blob(live, BLOB_DATA)
    old_pack = r._repository.store.locate(live_id).pack_id.hex()
    r.close()
    write(repo / "d" / "live.bin", live)
    write(repo / "d" / "other.txt", b"other")
    assert_ok(cli("add", "d", "-a", "ds"))
    _commit(cli)
    r = artvc.Repo(str(repo))
    assert r._repository.store.locate(live_id).pack_id.hex() == old_pack, "the commit should reuse the stored chunk"
    r.close()
    size_before = sum(_pack_listing(repo).values())
    result = assert_ok(cli("gc"))
    assert "1 repacked" in result.out, str(result)
    assert f"{old_pack}.pack" not in _pack_listing(repo)
    assert sum(_pack_listing(repo).values()) < size_before - 250_000
    assert_ok(cli("verify"))
    assert_ok(cli("checkout", "ds:v0", "--to", repo.parent / "out"))
    assert (repo.parent / "out" / "d" / "live.bin").read_bytes() == live


def test_gc_keeps_the_metadata_of_versions_whose_data_was_never_fetched(repo, cli, monkeypatch, tmp_path):
    expected = _two_artifacts(repo, cli)
    assert_ok(cli("remote", "add", "origin", tmp_path / "remote"))
    assert_ok(cli("push"))
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", tmp_path / "remote", tmp_path / "clone"))
    monkeypatch.chdir(tmp_path / "clone")
    assert_ok(cli("fetch", "ds:v1"))
    assert_ok(cli("gc"))
    assert len(assert_ok(cli("log", "--json")).json()) == len(expected)
    for spec in expected:
        assert_ok(cli("ls", spec))
    assert_ok(cli("verify"))
    assert_ok(cli("checkout", "ds:v1", "--to", tmp_path / "o"))
    assert _files(tmp_path / "o" / "ds") == expected["ds:v1"]
    assert_ok(cli("fetch", "--all"))
    _check_versions(cli, tmp_path / "clone", expected)


def test_blobs_move_from_the_recent_table_to_the_main_one_and_stay_findable(repo, cli, monkeypatch):
    from artvc import store as store_module

    monkeypatch.setattr(store_module, "RECENT_BLOBS", 10)
    expected = _two_artifacts(repo, cli)
    write(repo / "ds" / "late.txt", "one small addition\n")
    expected[_commit(cli, "ds")] = _files(repo / "ds")
    r = artvc.Repo(str(repo))
    index = r._repository.index
    with index.read() as txn:
        main = {k for k, _ in txn.cursor(db=index.db["blobs"])}
        recent = {k for k, _ in txn.cursor(db=index.db["blobs_recent"])}
        located = dict(r._repository.store.blob_locations(txn))
    r.close()
    assert main and recent, "seven commits of a few blobs each must have merged at least once"
    assert len(recent) <= 10 and not main & recent
    assert set(located) == main | recent
    assert_ok(cli("verify"))
    _check_versions(cli, repo, expected)
    # gc drops versions' blobs from whichever table holds them, and repair rebuilds both.
    assert_ok(cli("gc"))
    assert_ok(cli("verify"))
    _check_versions(cli, repo, expected)
