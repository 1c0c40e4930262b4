"""Checkout: exact bytes, no lost work, symlinks and modes kept, corrupted data never written."""
from __future__ import annotations

import hashlib
import os
import stat

import pytest

from conftest import assert_error, assert_ok, files_only, sha, snapshot, write

V0 = {"d/a.txt": b"a in v0", "d/b.txt": b"b in v0", "d/only-v0.txt": b"only in v0", "d/sub/s.bin": bytes(range(200))}
V1 = {"d/a.txt": b"a changed in v1", "d/b.txt": b"b in v0", "d/only-v1.txt": b"only in v1", "d/sub/s.bin": bytes(range(200)),
      "d/sub/deeper/n.txt": b"nested v1"}


def commit(cli):
    result = assert_ok(cli("commit"))
    assert len(result.commit_lines()) == 1, str(result)
    return result.commit_lines()[0]


def make_versions(repo, cli):
    """ds:v0 = V0 and ds:v1 = V1 (tracking folder d); the workspace is left at v1."""
    for rel, data in V0.items():
        write(repo / rel, data)
    assert_ok(cli("add", "d", "-a", "ds"))
    commit(cli)
    for rel in V0:
        if rel not in V1:
            (repo / rel).unlink()
    for rel, data in V1.items():
        write(repo / rel, data)
    commit(cli)


def disk_files(repo):
    """repo-relative POSIX path -> bytes, for every regular file below d/."""
    out = {}
    for folder, _, names in os.walk(repo / "d"):
        for n in names:
            full = os.path.join(folder, n)
            if not os.path.islink(full):
                out[os.path.relpath(full, repo).replace(os.sep, "/")] = open(full, "rb").read()
    return out


def test_checkout_older_version_restores_exact_bytes(repo, cli):
    make_versions(repo, cli)
    assert disk_files(repo) == V1
    assert_ok(cli("checkout", "ds:v0"))
    assert disk_files(repo) == V0
    assert not (repo / "d" / "sub" / "deeper").exists()
    st = assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]
    assert st["clean"] is True and st["head"] == "ds:v0"
    assert_ok(cli("checkout", "ds"))
    assert disk_files(repo) == V1
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["head"] == "ds:v1"


def test_checkout_keeps_untracked_files(repo, cli):
    make_versions(repo, cli)
    write(repo / ".artvcignore", "*.log\n")
    write(repo / "d" / "notes.log", "ignored notes")
    write(repo / "d" / "sub" / "deeper" / "mine.log", "mine")
    write(repo / "d" / "sub" / "deeper" / "extra.txt", "untracked, not ignored")
    assert_ok(cli("checkout", "ds:v0"))
    assert (repo / "d" / "notes.log").read_bytes() == b"ignored notes"
    assert (repo / "d" / "sub" / "deeper" / "mine.log").read_bytes() == b"mine"
    assert (repo / "d" / "sub" / "deeper" / "extra.txt").read_bytes() == b"untracked, not ignored"
    mine = {"d/notes.log", "d/sub/deeper/mine.log", "d/sub/deeper/extra.txt"}
    assert {k: v for k, v in disk_files(repo).items() if k not in mine} == V0


def test_checkout_refuses_to_overwrite_modified_file(repo, cli):
    make_versions(repo, cli)
    write(repo / "d" / "a.txt", b"unsaved work")
    before = snapshot(repo)
    result = cli("checkout", "ds:v0")
    assert_error(result, "d/a.txt")
    assert snapshot(repo) == before
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["head"] == "ds:v1"
    assert_ok(cli("checkout", "ds:v0", "--force"))
    assert disk_files(repo) == V0


def test_checkout_refuses_to_delete_modified_file(repo, cli):
    make_versions(repo, cli)
    write(repo / "d" / "only-v1.txt", b"edited, not committed")
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v0"), "d/only-v1.txt")
    assert snapshot(repo) == before
    assert_ok(cli("checkout", "ds:v0", "--force"))
    assert disk_files(repo) == V0


def test_checkout_refuses_untracked_file_in_the_way(repo, cli):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v0"))
    write(repo / "d" / "only-v1.txt", b"my own file, never committed")
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v1"), "d/only-v1.txt")
    assert snapshot(repo) == before
    assert_ok(cli("checkout", "ds:v1", "--force"))
    assert disk_files(repo) == V1


def test_checkout_untracked_file_with_same_content_is_fine(repo, cli):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v0"))
    write(repo / "d" / "only-v1.txt", V1["d/only-v1.txt"])
    assert_ok(cli("checkout", "ds:v1"))
    assert disk_files(repo) == V1


def test_checkout_refuses_file_where_a_folder_must_go(repo, cli):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v0"))
    write(repo / "d" / "sub" / "deeper", b"a file where v1 has a folder")
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v1"))
    assert snapshot(repo) == before


def test_checkout_never_writes_through_a_symlinked_folder(repo, cli, tmp_path):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v0"))
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "mine.txt", b"outside the repository")
    import shutil
    shutil.rmtree(repo / "d" / "sub")
    os.symlink(str(elsewhere), repo / "d" / "sub")
    outside_before = snapshot(elsewhere)
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v1"))
    assert snapshot(repo) == before
    assert snapshot(elsewhere) == outside_before
    cli("checkout", "ds:v1", "--force")  # may succeed (replacing the link) or refuse; never writes through it
    assert snapshot(elsewhere) == outside_before


def test_checkout_refuses_untracked_folder_in_the_way(repo, cli):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v0"))
    write(repo / "d" / "only-v1.txt" / "inner.txt", b"a folder where v1 has a file")
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v1"))
    assert snapshot(repo) == before


def test_checkout_leaves_other_artifacts_alone(repo, cli):
    make_versions(repo, cli)
    write(repo / "other" / "o.txt", b"other v0")
    assert_ok(cli("add", "other", "-a", "other"))
    assert_ok(cli("commit", "other"))
    write(repo / "other" / "o.txt", b"other, modified and not committed")
    assert_ok(cli("checkout", "ds:v0"))
    assert disk_files(repo) == V0
    assert (repo / "other" / "o.txt").read_bytes() == b"other, modified and not committed"


def test_checkout_across_a_file_folder_type_change(repo, cli, tmp_path):
    # v0: d/x is a file; v1: d/x is a folder. Everything on disk is saved in a version, so both
    # directions must work without --force (like git checkout across such a change).
    write(repo / "d" / "x", b"x was a file")
    write(repo / "d" / "keep.txt", b"keep")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit(cli)
    (repo / "d" / "x").unlink()
    write(repo / "d" / "x" / "y.txt", b"x is a folder now")
    commit(cli)
    assert_ok(cli("checkout", "ds:v0"))
    assert (repo / "d" / "x").read_bytes() == b"x was a file"
    assert (repo / "d" / "keep.txt").read_bytes() == b"keep"
    assert_ok(cli("checkout", "ds:v1"))
    assert (repo / "d" / "x" / "y.txt").read_bytes() == b"x is a folder now"


def test_checkout_across_a_symlink_file_type_change(repo, cli):
    write(repo / "d" / "a", b"a")
    os.symlink("a", repo / "d" / "l")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit(cli)
    os.unlink(repo / "d" / "l")
    write(repo / "d" / "l", b"a regular file now")
    commit(cli)
    assert_ok(cli("checkout", "ds:v0"))
    assert os.readlink(repo / "d" / "l") == "a"
    assert_ok(cli("checkout", "ds:v1"))
    assert not os.path.islink(repo / "d" / "l")
    assert (repo / "d" / "l").read_bytes() == b"a regular file now"


def test_checkout_from_a_subfolder_materializes_the_whole_version(repo, cli, monkeypatch):
    make_versions(repo, cli)
    monkeypatch.chdir(repo / "d" / "sub")
    assert_ok(cli("checkout", "ds:v0"))
    assert disk_files(repo) == V0


def test_checkout_missing_file_is_restored_without_force(repo, cli):
    make_versions(repo, cli)
    (repo / "d" / "a.txt").unlink()
    assert_ok(cli("checkout", "ds"))
    assert disk_files(repo) == V1


def test_switching_versions_carries_local_changes_to_paths_the_versions_share(repo, cli):
    make_versions(repo, cli)
    write(repo / "d" / "b.txt", b"my edit")  # b.txt is the same in v0 and v1
    (repo / "d" / "sub" / "s.bin").unlink()  # so is s.bin
    assert "2 written, 2 deleted, 2 unchanged" in assert_ok(cli("checkout", "ds:v0")).out
    expected = dict(V0, **{"d/b.txt": b"my edit"})
    del expected["d/sub/s.bin"]
    assert disk_files(repo) == expected
    st = assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]
    assert st["head"] == "ds:v0" and st["modified"] == ["d/b.txt"] and st["deleted"] == ["d/sub/s.bin"]
    # Checking out the version already checked out looks at every path: it restores the deleted
    # file and refuses to overwrite the edit; --force overwrites it.
    assert_error(cli("checkout", "ds:v0"), "d/b.txt")
    assert_ok(cli("checkout", "ds:v0", "--force"))
    assert disk_files(repo) == V0


def test_switching_versions_with_force_overwrites_shared_paths_too(repo, cli):
    make_versions(repo, cli)
    write(repo / "d" / "b.txt", b"my edit")
    assert_ok(cli("checkout", "ds:v0", "--force"))
    assert disk_files(repo) == V0


def test_failed_checkout_leaves_everything_in_place_even_with_many_changes(repo, cli):
    make_versions(repo, cli)
    write(repo / "d" / "b.txt", b"modified b")  # b is identical in v0 and v1: nothing to do there
    write(repo / "d" / "sub" / "s.bin", b"modified s")  # same in both versions too
    write(repo / "d" / "a.txt", b"modified a")  # differs: conflict
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v0"))
    assert snapshot(repo) == before


def test_partial_checkout_of_one_path(repo, cli, monkeypatch):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v0", "d/a.txt"))
    expected = dict(V1, **{"d/a.txt": V0["d/a.txt"]})
    assert disk_files(repo) == expected
    # paths on disk are relative to the current folder
    write(repo / "d" / "a.txt", V1["d/a.txt"])
    monkeypatch.chdir(repo / "d")
    assert_ok(cli("checkout", "ds:v0", "a.txt"))
    assert disk_files(repo) == expected


def test_partial_checkout_of_a_folder(repo, cli):
    make_versions(repo, cli)
    assert_ok(cli("checkout", "ds:v1"))
    assert_ok(cli("checkout", "ds:v0", "d/sub"))
    assert (repo / "d" / "sub" / "s.bin").read_bytes() == V0["d/sub/s.bin"]
    assert (repo / "d" / "a.txt").read_bytes() == V1["d/a.txt"]
    assert (repo / "d" / "only-v1.txt").read_bytes() == V1["d/only-v1.txt"]


def test_partial_checkout_refuses_modified_file(repo, cli):
    make_versions(repo, cli)
    write(repo / "d" / "a.txt", b"unsaved")
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v0", "d/a.txt"))
    assert snapshot(repo) == before
    assert_ok(cli("checkout", "ds:v0", "d/a.txt", "--force"))
    assert (repo / "d" / "a.txt").read_bytes() == V0["d/a.txt"]


def test_partial_checkout_of_unknown_path(repo, cli):
    make_versions(repo, cli)
    before = snapshot(repo)
    assert_error(cli("checkout", "ds:v0", "d/nosuch.txt"))
    assert snapshot(repo) == before


def test_checkout_to_empty_folder(repo, cli, tmp_path):
    make_versions(repo, cli)
    ws_before = snapshot(repo)
    out = tmp_path / "export"
    out.mkdir()
    assert_ok(cli("checkout", "ds:v0", "--to", out))
    exported = {k.replace(os.sep, "/"): v for k, v in files_only(snapshot(out)).items()}
    assert exported == {rel: ("file", hashlib.sha256(data).hexdigest(), False) for rel, data in V0.items()}
    assert snapshot(repo) == ws_before
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["head"] == "ds:v1"


def test_checkout_to_new_folder_and_partial(repo, cli, tmp_path):
    make_versions(repo, cli)
    out = tmp_path / "new" / "folder"
    assert_ok(cli("checkout", "ds", "--to", out))
    for rel, data in V1.items():
        assert (out / rel).read_bytes() == data
    part = tmp_path / "part"
    assert_ok(cli("checkout", "ds:v0", "d/sub", "--to", part))
    assert {k.replace(os.sep, "/") for k in files_only(snapshot(part))} == {"d/sub/s.bin"}
    assert (part / "d" / "sub" / "s.bin").read_bytes() == V0["d/sub/s.bin"]


def test_checkout_to_refuses_to_overwrite_foreign_file(repo, cli, tmp_path):
    make_versions(repo, cli)
    out = tmp_path / "out"
    write(out / "d" / "a.txt", b"somebody else's file")
    before = snapshot(out)
    assert_error(cli("checkout", "ds:v0", "--to", out))
    assert snapshot(out) == before
    assert_ok(cli("checkout", "ds:v0", "--to", out, "--force"))
    assert (out / "d" / "a.txt").read_bytes() == V0["d/a.txt"]


# ---- symlinks and modes ---------------------------------------------------------------------------------
def test_symlinks_are_stored_as_links_and_restored(repo, cli, tmp_path):
    outside = tmp_path / "outside-secret.txt"
    write(outside, b"must never be copied into the store")
    write(repo / "d" / "real.txt", b"real")
    write(repo / "d" / "folder" / "inside.txt", b"inside")
    os.symlink("real.txt", repo / "d" / "link.txt")
    os.symlink("nowhere/at/all", repo / "d" / "dangling")
    os.symlink("folder", repo / "d" / "dirlink")
    os.symlink(str(outside), repo / "d" / "abs-outside")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit(cli)
    entries = {e["path"]: e for e in assert_ok(cli("ls", "ds", "--json")).json()}
    assert sorted(entries) == ["d/abs-outside", "d/dangling", "d/dirlink", "d/folder/inside.txt", "d/link.txt", "d/real.txt"]
    for rel, target in (("d/link.txt", "real.txt"), ("d/dangling", "nowhere/at/all"), ("d/dirlink", "folder"),
                        ("d/abs-outside", str(outside))):
        assert entries[rel]["kind"] == "symlink", entries[rel]
        assert entries[rel]["target"] == target
    info = assert_ok(cli("show", "ds", "--json")).json()
    assert info["bytes"] == len(b"real") + len(b"inside")

    out = tmp_path / "out"
    assert_ok(cli("checkout", "ds", "--to", out))
    assert os.readlink(out / "d" / "link.txt") == "real.txt"
    assert os.readlink(out / "d" / "dangling") == "nowhere/at/all"
    assert os.readlink(out / "d" / "dirlink") == "folder"
    assert os.readlink(out / "d" / "abs-outside") == str(outside)
    assert (out / "d" / "link.txt").read_bytes() == b"real"

    for rel in ("link.txt", "dangling", "dirlink"):
        os.unlink(repo / "d" / rel)
    assert_ok(cli("checkout", "ds"))
    assert os.readlink(repo / "d" / "link.txt") == "real.txt"
    assert os.readlink(repo / "d" / "dangling") == "nowhere/at/all"
    assert os.readlink(repo / "d" / "dirlink") == "folder"


def test_symlink_retarget_is_a_modification(repo, cli):
    write(repo / "d" / "x.txt", b"x")
    write(repo / "d" / "y.txt", b"y")
    os.symlink("x.txt", repo / "d" / "link")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit(cli)
    os.unlink(repo / "d" / "link")
    os.symlink("y.txt", repo / "d" / "link")
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["modified"] == ["d/link"]
    commit(cli)
    assert_ok(cli("checkout", "ds:v0"))
    assert os.readlink(repo / "d" / "link") == "x.txt"
    assert (repo / "d" / "y.txt").read_bytes() == b"y"


def test_executable_bit_is_kept(repo, cli, tmp_path):
    script = write(repo / "bin" / "run.sh", b"#!/bin/sh\necho hi\n")
    os.chmod(script, 0o755)
    plain = write(repo / "bin" / "data.txt", b"data")
    os.chmod(plain, 0o644)
    assert_ok(cli("add", "bin", "-a", "tools"))
    commit(cli)
    entries = {e["path"]: e for e in assert_ok(cli("ls", "tools", "--json")).json()}
    assert entries["bin/run.sh"]["executable"] is True
    assert entries["bin/data.txt"]["executable"] is False
    out = tmp_path / "out"
    assert_ok(cli("checkout", "tools", "--to", out))
    assert os.stat(out / "bin" / "run.sh").st_mode & stat.S_IXUSR
    assert not os.stat(out / "bin" / "data.txt").st_mode & stat.S_IXUSR
    assert sha(out / "bin" / "run.sh") == sha(script)

    os.chmod(script, 0o644)
    st = assert_ok(cli("status", "--json")).json()["artifacts"]["tools"]
    assert st["modified"] == ["bin/run.sh"]
    commit(cli)
    assert assert_ok(cli("diff", "tools:v0", "tools:v1", "--json")).json()["modified"] == ["bin/run.sh"]
    assert_ok(cli("checkout", "tools:v0"))
    assert os.stat(script).st_mode & stat.S_IXUSR
    assert_ok(cli("checkout", "tools:v1"))
    assert not os.stat(script).st_mode & stat.S_IXUSR


# ---- corrupted store -----------------------------------------------------------------------------------------
def _largest_pack(repo):
    packs = []
    for folder, _, names in os.walk(repo / ".artvc" / "packs"):
        packs.extend(os.path.join(folder, n) for n in names if n.endswith(".pack"))
    assert packs, "no pack files under .artvc/packs"
    return max(packs, key=os.path.getsize)


def _flip_middle_byte(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x55]))


def _leftovers(folder):
    return [os.path.join(dp, n) for dp, _, names in os.walk(folder) for n in names]


@pytest.fixture
def corrupted(repo, cli):
    """ds:v0 with one incompressible file whose stored bytes have one flipped byte."""
    original = os.urandom(700_000)
    write(repo / "d" / "weights.bin", original)
    assert_ok(cli("add", "d", "-a", "ds"))
    commit(cli)
    pack = _largest_pack(repo)
    assert os.path.getsize(pack) > 600_000
    _flip_middle_byte(pack)
    return original


def test_corrupted_pack_checkout_to_fails_without_writing(corrupted, repo, cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert_error(cli("checkout", "ds:v0", "--to", out))
    assert not (out / "d" / "weights.bin").exists()
    assert _leftovers(out) == []


def test_corrupted_pack_cat_fails_without_wrong_bytes(corrupted, repo, cli):
    result = cli("cat", "ds:v0", "d/weights.bin")
    assert_error(result)
    assert len(result.outb) < len(corrupted)
    assert corrupted.startswith(result.outb), "cat wrote bytes that are not the file's content"


def test_corrupted_pack_workspace_checkout_fails_without_writing(corrupted, repo, cli):
    os.unlink(repo / "d" / "weights.bin")
    assert_error(cli("checkout", "ds:v0"))
    assert not (repo / "d" / "weights.bin").exists()
    assert _leftovers(repo / "d") == []


def test_corrupted_pack_is_reported_by_verify(corrupted, repo):
    import artvc

    r = artvc.Repo(str(repo))
    assert r.use_artifact("ds:v0").verify() == ["d/weights.bin"]
