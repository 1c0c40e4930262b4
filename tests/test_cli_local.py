"""End-to-end tests of the local commands, driven through the CLI as a user would."""
from __future__ import annotations

import json
import os
import re

import pytest

from conftest import COMMIT_LINE, assert_error, assert_ok, git, run_subprocess, sha, write

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def commit_one(cli, *args):
    """Run a commit that must create exactly one version; return (name, number, short id)."""
    result = assert_ok(cli("commit", *args))
    lines = result.commit_lines()
    assert len(lines) == 1, str(result)
    return lines[0]


def log_json(cli, name=None):
    result = assert_ok(cli("log", *([name] if name else []), "--json"))
    return result.json()


def show_json(cli, spec):
    return assert_ok(cli("show", spec, "--json")).json()


def artifact_names(cli):
    return sorted(assert_ok(cli("status", "--json")).json()["artifacts"])


# ---- init -----------------------------------------------------------------------------------------
def test_init_creates_repository(workdir, cli):
    result = assert_ok(cli("init"))
    assert (workdir / ".artvc").is_dir()
    assert result.out.strip() or result.err.strip()


def test_init_again_is_a_noop_that_says_so(repo, cli):
    write(repo / "a.txt", "alpha")
    assert_ok(cli("add", "a.txt"))
    name, number, short = commit_one(cli)
    listing = sorted(os.listdir(repo / ".artvc"))

    again = assert_ok(cli("init"))
    assert "already" in (again.out + again.err).lower(), str(again)
    assert sorted(os.listdir(repo / ".artvc")) == listing
    versions = log_json(cli, "a")
    assert [v["spec"] for v in versions] == ["a:v0"]
    assert versions[0]["id"].startswith(short)


def test_init_in_named_folder(workdir, cli):
    assert_ok(cli("init", "sub/project"))
    assert (workdir / "sub" / "project" / ".artvc").is_dir()
    os.chdir(workdir / "sub" / "project")
    write("x.bin", b"x")
    assert_ok(cli("add", "x.bin"))
    assert commit_one(cli)[:2] == ("x", 0)


def test_commands_outside_a_repository_fail_cleanly(workdir, cli):
    write(workdir / "f.txt", "data")
    for args in (("status",), ("add", "f.txt"), ("commit",), ("log",), ("show", "f"), ("checkout", "f")):
        assert_error(cli(*args))
    assert not (workdir / ".artvc").exists()


def test_commands_work_from_a_subfolder(repo, cli, monkeypatch):
    write(repo / "data" / "a.txt", "alpha")
    monkeypatch.chdir(repo / "data")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    assert commit_one(cli)[:2] == ("ds", 0)
    entries = assert_ok(cli("ls", "ds", "--json")).json()
    assert [e["path"] for e in entries] == ["data/a.txt"]
    assert assert_ok(cli("cat", "ds", "data/a.txt")).outb == b"alpha"


# ---- add / rm ---------------------------------------------------------------------------------------
def test_add_default_name_is_basename_up_to_first_dot(repo, cli):
    write(repo / "data" / "cats.v2.tar.gz", b"meow")
    result = assert_ok(cli("add", "data/cats.v2.tar.gz"))
    assert "cats" in result.out + result.err
    assert artifact_names(cli) == ["cats"]
    write(repo / "images" / "one.png", b"png")
    assert_ok(cli("add", "images"))
    assert artifact_names(cli) == ["cats", "images"]
    out = assert_ok(cli("commit"))
    assert sorted((n, v) for n, v, _ in out.commit_lines()) == [("cats", 0), ("images", 0)]
    assert [e["path"] for e in assert_ok(cli("ls", "cats:v0", "--json")).json()] == ["data/cats.v2.tar.gz"]
    assert [e["path"] for e in assert_ok(cli("ls", "images:v0", "--json")).json()] == ["images/one.png"]


def test_add_default_name_uses_first_path(repo, cli):
    write(repo / "train.csv", "1,2")
    write(repo / "test.csv", "3,4")
    assert_ok(cli("add", "train.csv", "test.csv"))
    assert artifact_names(cli) == ["train"]
    commit_one(cli)
    paths = [e["path"] for e in assert_ok(cli("ls", "train", "--json")).json()]
    assert paths == ["test.csv", "train.csv"]


def test_add_with_name_and_type(repo, cli):
    write(repo / "weights.bin", b"\x00\x01")
    write(repo / "data.csv", "a,b")
    assert_ok(cli("add", "weights.bin", "-a", "resnet", "-t", "model"))
    assert_ok(cli("add", "data.csv", "-a", "table"))
    assert artifact_names(cli) == ["resnet", "table"]
    assert_ok(cli("commit"))
    assert show_json(cli, "resnet")["type"] == "model"
    assert show_json(cli, "table")["type"] == "dataset"


def test_add_extends_tracked_paths(repo, cli):
    write(repo / "a.txt", "a")
    write(repo / "b.txt", "b")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    assert_ok(cli("add", "b.txt", "-a", "ds"))
    commit_one(cli)
    assert [e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json()] == ["a.txt", "b.txt"]


@pytest.mark.parametrize("bad", ["bad name", "über", ".hidden", "_under", "a/b", "a:b", "x" * 129, "tab\tname"])
def test_invalid_artifact_names_are_refused(repo, cli, bad):
    write(repo / "f.txt", "f")
    assert_error(cli("add", "f.txt", "-a", bad))
    assert artifact_names(cli) == []


def test_longest_valid_name_is_accepted(repo, cli):
    write(repo / "f.txt", "f")
    name = "A" + "b.-_9" * 25 + "xy"  # 128 characters
    assert len(name) == 128
    assert_ok(cli("add", "f.txt", "-a", name))
    assert commit_one(cli)[:2] == (name, 0)


@pytest.mark.parametrize("filename", ["_scratch.bin", ".hidden"])
def test_invalid_default_name_is_refused(repo, cli, filename):
    write(repo / filename, "x")
    assert_error(cli("add", filename))
    assert artifact_names(cli) == []


def test_add_missing_path(repo, cli):
    assert_error(cli("add", "nope.txt", "-a", "ds"))
    assert artifact_names(cli) == []


def test_add_path_outside_repository(repo, cli):
    write(repo.parent / "outside.txt", "x")
    assert_error(cli("add", "../outside.txt", "-a", "ds"))
    assert artifact_names(cli) == []


def test_rm_stops_tracking_but_keeps_files(repo, cli):
    write(repo / "a.txt", "a")
    write(repo / "b.txt", "b")
    assert_ok(cli("add", "a.txt", "b.txt", "-a", "ds"))
    assert_ok(cli("rm", "b.txt", "-a", "ds"))
    commit_one(cli)
    assert [e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json()] == ["a.txt"]
    assert (repo / "b.txt").read_bytes() == b"b"


def test_rm_untracked_path_is_an_error(repo, cli):
    write(repo / "a.txt", "a")
    write(repo / "b.txt", "b")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    assert_error(cli("rm", "b.txt", "-a", "ds"))
    assert_error(cli("rm", "a.txt", "-a", "nosuch"))


def test_add_relative_to_current_folder(repo, cli, monkeypatch):
    write(repo / "d" / "a.txt", "a")
    write(repo / "e.txt", "e")
    monkeypatch.chdir(repo / "d")
    assert_ok(cli("add", "../e.txt", "a.txt", "-a", "ds"))
    commit_one(cli)
    assert [e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json()] == ["d/a.txt", "e.txt"]
    assert_ok(cli("rm", "../e.txt", "-a", "ds"))
    commit_one(cli)
    assert [e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json()] == ["d/a.txt"]


def test_add_symlink_path_is_stored_as_link(repo, cli):
    write(repo / "real" / "big.bin", b"content that must not be stored through the link")
    os.symlink("real", repo / "current")
    assert_ok(cli("add", "current", "-a", "ptr"))
    commit_one(cli)
    entries = assert_ok(cli("ls", "ptr", "--json")).json()
    assert [(e["path"], e["kind"], e.get("target")) for e in entries] == [("current", "symlink", "real")]
    assert show_json(cli, "ptr")["bytes"] == 0


# ---- status -------------------------------------------------------------------------------------------
def test_status_added_modified_deleted(repo, cli):
    write(repo / "data" / "keep.txt", "keep")
    write(repo / "data" / "change.txt", "before")
    write(repo / "data" / "gone.txt", "gone")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)

    clean = assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]
    assert clean["clean"] is True
    assert clean["added"] == clean["modified"] == clean["deleted"] == []
    assert clean["head"] == "ds:v0"

    write(repo / "data" / "change.txt", "after!")
    (repo / "data" / "gone.txt").unlink()
    write(repo / "data" / "sub" / "new.txt", "new")
    st = assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]
    assert st["added"] == ["data/sub/new.txt"]
    assert st["modified"] == ["data/change.txt"]
    assert st["deleted"] == ["data/gone.txt"]
    assert st["clean"] is False

    text = assert_ok(cli("status")).out
    lines = text.splitlines()
    assert any("added" in line and "data/sub/new.txt" in line for line in lines), text
    assert any("modified" in line and "data/change.txt" in line for line in lines), text
    assert any("deleted" in line and "data/gone.txt" in line for line in lines), text
    assert not any("keep.txt" in line for line in lines), text

    only = assert_ok(cli("status", "ds", "--json")).json()["artifacts"]
    assert list(only) == ["ds"]


def test_status_same_size_modification_is_detected(repo, cli):
    write(repo / "w.bin", b"A" * 1000)
    assert_ok(cli("add", "w.bin", "-a", "ds"))
    commit_one(cli)
    st = os.stat(repo / "w.bin")
    write(repo / "w.bin", b"A" * 499 + b"B" + b"A" * 500)
    os.utime(repo / "w.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["modified"] == ["w.bin"]
    assert commit_one(cli)[:2] == ("ds", 1)


@pytest.fixture
def clock_ahead(monkeypatch):
    """artvc's clock one hour ahead: every file then looks old enough for the stat cache and the
    clean mark to trust (moving mtimes back instead would make ctimes fresh)."""
    import time

    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() + 3600 * 10**9)


def test_status_shortcut_for_a_known_clean_workspace_still_sees_every_change(repo, cli, clock_ahead):
    from artvc.index import CACHE_DBS, open_index
    from artvc.workspace import CLEAN_KEY

    write(repo / "d" / "a.bin", b"A" * 1000)
    write(repo / "d" / "b.bin", b"B" * 10)
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True
    cache = open_index(str(repo / ".artvc" / "cache"), CACHE_DBS)
    with cache.read() as txn:
        assert txn.get(CLEAN_KEY + b"ds", db=cache.db["statcache"]) is not None
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True

    # Same size, mtime put back: only the inode-change time differs, and that is enough.
    st = os.stat(repo / "d" / "a.bin")
    write(repo / "d" / "a.bin", b"A" * 999 + b"X")
    os.utime(repo / "d" / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["modified"] == ["d/a.bin"]
    commit_one(cli)
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True

    # Another version checked out: the mark was for the old head, and does not apply.
    assert_ok(cli("checkout", "ds:v0"))
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True
    (repo / "d" / "b.bin").unlink()
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["deleted"] == ["d/b.bin"]


def test_commit_leaves_a_clean_mark_that_a_later_change_invalidates(repo, cli, clock_ahead):
    from artvc.index import CACHE_DBS, open_index
    from artvc.workspace import CLEAN_KEY

    write(repo / "d" / "a.bin", b"A" * 100)
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    cache = open_index(str(repo / ".artvc" / "cache"), CACHE_DBS)
    with cache.read() as txn:
        assert txn.get(CLEAN_KEY + b"ds", db=cache.db["statcache"]) is not None
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True
    st = os.stat(repo / "d" / "a.bin")
    write(repo / "d" / "a.bin", b"B" * 100)
    os.utime(repo / "d" / "a.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["modified"] == ["d/a.bin"]


def test_status_does_not_mark_clean_while_files_are_fresh(repo, cli):
    from artvc.index import CACHE_DBS, open_index
    from artvc.workspace import CLEAN_KEY

    write(repo / "f.txt", "fresh")
    assert_ok(cli("add", "f.txt", "-a", "ds"))
    commit_one(cli)
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True
    cache = open_index(str(repo / ".artvc" / "cache"), CACHE_DBS)
    with cache.read() as txn:
        assert txn.get(CLEAN_KEY + b"ds", db=cache.db["statcache"]) is None


def test_status_of_unknown_artifact(repo, cli):
    assert_error(cli("status", "nosuch"))


# ---- commit ---------------------------------------------------------------------------------------------
def test_commit_prints_result_lines_and_numbers_versions(repo, cli):
    write(repo / "m.bin", b"one")
    assert_ok(cli("add", "m.bin", "-a", "model", "-t", "model"))
    name, number, short = commit_one(cli, "-m", "first")
    assert (name, number) == ("model", 0)
    write(repo / "m.bin", b"two")
    assert commit_one(cli, "-m", "second")[:2] == ("model", 1)
    write(repo / "m.bin", b"three")
    _, n2, short2 = commit_one(cli)
    assert n2 == 2
    versions = log_json(cli, "model")
    assert [v["spec"] for v in versions] == ["model:v2", "model:v1", "model:v0"]
    assert versions[2]["id"][:12] == short
    assert versions[0]["id"][:12] == short2
    assert len({v["id"] for v in versions}) == 3


def test_commit_identical_content_is_nothing_to_commit(repo, cli):
    write(repo / "a.txt", "a")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli)
    before = log_json(cli, "ds")
    again = assert_ok(cli("commit", "-m", "again"))
    assert again.commit_lines() == []
    assert "nothing to commit" in (again.out + again.err).lower(), str(again)
    assert log_json(cli, "ds") == before


def test_commit_alias_on_identical_content_goes_to_latest(repo, cli):
    write(repo / "a.txt", "a")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli)
    write(repo / "a.txt", "aa")
    commit_one(cli)
    result = assert_ok(cli("commit", "--alias", "best"))
    assert result.commit_lines() == []
    versions = log_json(cli, "ds")
    assert [v["spec"] for v in versions] == ["ds:v1", "ds:v0"]
    assert "best" in versions[0]["aliases"] and "latest" in versions[0]["aliases"]
    assert "best" not in versions[1]["aliases"]
    assert show_json(cli, "ds:best")["spec"] == "ds:v1"


def test_commit_with_alias_message_and_metadata(repo, cli):
    write(repo / "a.txt", "a")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli, "-m", "hello world", "--alias", "prod", "--alias", "best", "--meta", "lr=0.1", "--meta", "note=plain text")
    info = show_json(cli, "ds:prod")
    assert info["spec"] == "ds:v0"
    assert info["message"] == "hello world"
    assert info["metadata"] == {"lr": 0.1, "note": "plain text"}
    assert {"latest", "prod", "best"} <= set(info["aliases"])


def test_commit_input_is_recorded_by_id(repo, cli):
    write(repo / "raw.csv", "1")
    write(repo / "model.bin", b"m")
    assert_ok(cli("add", "raw.csv", "-a", "raw"))
    assert_ok(cli("add", "model.bin", "-a", "model"))
    commit_one(cli, "raw")
    raw_id = show_json(cli, "raw")["id"]
    commit_one(cli, "model", "--input", "raw")
    assert show_json(cli, "model")["inputs"] == [raw_id]


def test_commit_after_checking_out_older_version_makes_next_number(repo, cli):
    write(repo / "a.txt", "v0 content")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli)
    write(repo / "a.txt", "v1 content")
    commit_one(cli)
    assert_ok(cli("checkout", "ds:v0"))
    assert (repo / "a.txt").read_bytes() == b"v0 content"
    write(repo / "a.txt", "edited from v0")
    _, number, short = commit_one(cli)
    assert number == 2
    assert assert_ok(cli("cat", "ds:v2", "a.txt")).outb == b"edited from v0"
    assert assert_ok(cli("cat", "ds:v1", "a.txt")).outb == b"v1 content"
    assert [v["spec"] for v in log_json(cli, "ds")] == ["ds:v2", "ds:v1", "ds:v0"]


def test_commit_of_older_content_unchanged_differs_from_latest(repo, cli):
    write(repo / "a.txt", "old")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli)
    write(repo / "a.txt", "new")
    commit_one(cli)
    assert_ok(cli("checkout", "ds:v0"))
    # The content differs from the latest version (v1), so this is a new version, numbered next.
    assert commit_one(cli)[:2] == ("ds", 2)
    assert assert_ok(cli("cat", "ds", "a.txt")).outb == b"old"


def test_commit_all_artifacts_by_default_and_by_name(repo, cli):
    write(repo / "a.txt", "a")
    write(repo / "b.txt", "b")
    assert_ok(cli("add", "a.txt", "-a", "one"))
    assert_ok(cli("add", "b.txt", "-a", "two"))
    result = assert_ok(cli("commit"))
    assert sorted((n, v) for n, v, _ in result.commit_lines()) == [("one", 0), ("two", 0)]
    write(repo / "a.txt", "aa")
    write(repo / "b.txt", "bb")
    assert commit_one(cli, "two")[:2] == ("two", 1)
    assert [v["spec"] for v in log_json(cli, "one")] == ["one:v0"]


def test_commit_errors(repo, cli):
    assert_error(cli("commit"))  # nothing tracked yet
    write(repo / "a.txt", "a")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    assert_error(cli("commit", "nosuch"))
    assert_error(cli("commit", "--alias", "latest"))
    assert_error(cli("commit", "--alias", "v3"))
    assert_error(cli("commit", "--alias", "bad alias"))
    assert_error(cli("commit", "--meta", "novalue"))
    assert_error(cli("commit", "--input", "nosuch:v0"))
    assert log_json(cli, "ds") == []
    assert commit_one(cli)[:2] == ("ds", 0)


def test_commit_with_an_unknown_name_commits_nothing(repo, cli):
    # Bad input is refused as a whole: no artifact of the command gets a new version.
    write(repo / "a.txt", "a")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli)
    write(repo / "a.txt", "changed")
    assert_error(cli("commit", "ds", "nosuch"))
    assert [v["spec"] for v in log_json(cli, "ds")] == ["ds:v0"]
    assert_error(cli("commit", "ds", "bad name"))
    assert [v["spec"] for v in log_json(cli, "ds")] == ["ds:v0"]


def test_status_reports_deleted_tracked_file(repo, cli):
    write(repo / "a.txt", "a")
    write(repo / "b.txt", "b")
    assert_ok(cli("add", "a.txt", "b.txt", "-a", "ds"))
    commit_one(cli)
    (repo / "a.txt").unlink()
    st = assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]
    assert (st["deleted"], st["added"], st["modified"]) == (["a.txt"], [], [])


def test_commit_snapshots_new_and_deleted_files_of_tracked_folder(repo, cli):
    write(repo / "d" / "a.txt", "a")
    write(repo / "d" / "b.txt", "b")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    (repo / "d" / "a.txt").unlink()
    write(repo / "d" / "deep" / "c.txt", "c")
    commit_one(cli)
    assert [e["path"] for e in assert_ok(cli("ls", "ds:v1", "--json")).json()] == ["d/b.txt", "d/deep/c.txt"]
    assert [e["path"] for e in assert_ok(cli("ls", "ds:v0", "--json")).json()] == ["d/a.txt", "d/b.txt"]


# ---- quiet --------------------------------------------------------------------------------------------------
def test_quiet_silences_chatter_but_not_commit_results(repo, cli):
    write(repo / "a.txt", "a")
    for args in (("-q", "add", "a.txt", "-a", "ds"), ("add", "a.txt", "-a", "ds", "-q"), ("-q", "init")):
        result = assert_ok(cli(*args))
        assert result.out == "" and result.err == "", str(result)
    result = assert_ok(cli("-q", "commit", "-m", "x"))
    assert [(n, v) for n, v, _ in result.commit_lines()] == [("ds", 0)]
    assert result.out.strip().splitlines() == [line for line in result.out.strip().splitlines() if COMMIT_LINE.match(line)]
    write(repo / "a.txt", "b")
    result = assert_ok(cli("commit", "-q"))
    assert [(n, v) for n, v, _ in result.commit_lines()] == [("ds", 1)]
    result = assert_ok(cli("-q", "checkout", "ds:v0"))
    assert result.out == "" and result.err == "", str(result)
    assert (repo / "a.txt").read_bytes() == b"a"
    result = assert_ok(cli("-q", "alias", "ds:v0", "best"))
    assert result.out == "" and result.err == "", str(result)


def test_quiet_does_not_silence_errors(repo, cli):
    assert_error(cli("-q", "show", "nosuch"))
    assert_error(cli("show", "nosuch", "-q"))


def test_verbose_flag_is_accepted_in_both_places(repo, cli):
    write(repo / "a.txt", "a")
    assert_ok(cli("-v", "add", "a.txt", "-a", "ds"))
    assert commit_one(cli, "-v")[:2] == ("ds", 0)


# ---- log ----------------------------------------------------------------------------------------------------
def test_log_json_fields(repo, cli):
    write(repo / "d" / "a.bin", b"x" * 100)
    write(repo / "d" / "b.bin", b"y" * 23)
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli, "-m", "first one")
    write(repo / "d" / "c.bin", b"z" * 7)
    commit_one(cli, "-m", "second")
    versions = log_json(cli, "ds")
    assert [v["spec"] for v in versions] == ["ds:v1", "ds:v0"]
    new, old = versions
    for v in versions:
        assert HEX64.match(v["id"]), v
        assert isinstance(v["author"], str) and v["author"], v
    assert new["aliases"] == ["latest"]
    assert "latest" not in old["aliases"]
    assert (new["message"], old["message"]) == ("second", "first one")
    assert (old["files"], old["bytes"]) == (2, 123)
    assert (new["files"], new["bytes"]) == (3, 130)


def test_log_text_and_filtering(repo, cli):
    write(repo / "a.txt", "a")
    write(repo / "b.txt", "b")
    assert_ok(cli("add", "a.txt", "-a", "one"))
    assert_ok(cli("add", "b.txt", "-a", "two"))
    lines = dict((n, s) for n, _, s in assert_ok(cli("commit", "-m", "msg-xyz")).commit_lines())
    text = assert_ok(cli("log")).out
    assert "one:v0" in text and "two:v0" in text and lines["one"] in text and lines["two"] in text
    assert "msg-xyz" in text
    only = assert_ok(cli("log", "one")).out
    assert "one:v0" in only and "two:v0" not in only
    assert {v["spec"] for v in log_json(cli)} == {"one:v0", "two:v0"}
    assert_error(cli("log", "nosuch"))


# ---- ls / show / cat ---------------------------------------------------------------------------------------------
def test_ls_entries_and_prefix(repo, cli):
    write(repo / "d" / "top.txt", "top")
    write(repo / "d" / "sub" / "one.txt", "one!")
    write(repo / "d" / "sub" / "two.txt", "")
    write(repo / "d" / "subway.txt", "no")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    entries = assert_ok(cli("ls", "ds", "--json")).json()
    assert [(e["path"], e["size"]) for e in entries] == [
        ("d/sub/one.txt", 4), ("d/sub/two.txt", 0), ("d/subway.txt", 2), ("d/top.txt", 3)]
    sub = assert_ok(cli("ls", "ds:v0", "d/sub", "--json")).json()
    assert [e["path"] for e in sub] == ["d/sub/one.txt", "d/sub/two.txt"]
    text = assert_ok(cli("ls", "ds:v0", "d/sub")).out
    assert "d/sub/one.txt" in text and "d/sub/two.txt" in text and "top.txt" not in text and "subway" not in text


def test_show_record(repo, cli):
    write(repo / "a.txt", "hello")
    assert_ok(cli("add", "a.txt", "-a", "ds", "-t", "corpus"))
    _, _, short = commit_one(cli, "-m", "msg", "--meta", "epochs=3")
    info = show_json(cli, "ds:v0")
    assert info["id"].startswith(short)
    assert (info["spec"], info["type"], info["message"]) == ("ds:v0", "corpus", "msg")
    assert info["metadata"] == {"epochs": 3}
    assert (info["files"], info["bytes"]) == (1, 5)
    assert "latest" in info["aliases"]
    text = assert_ok(cli("show", "ds")).out
    assert "ds:v0" in text and info["id"] in text and "corpus" in text


def test_cat_gives_exact_bytes_of_each_version(repo, cli):
    v0 = bytes(range(256)) * 40 + b"\xff\xfe\x00"
    write(repo / "blob.bin", v0)
    assert_ok(cli("add", "blob.bin", "-a", "ds"))
    commit_one(cli)
    v1 = v0[::-1] + b"tail"
    write(repo / "blob.bin", v1)
    commit_one(cli)
    assert assert_ok(cli("cat", "ds:v0", "blob.bin")).outb == v0
    assert assert_ok(cli("cat", "ds", "blob.bin")).outb == v1
    assert_error(cli("cat", "ds", "nosuch.bin"))


def test_cat_path_is_entry_path_not_cwd_relative(repo, cli, monkeypatch):
    write(repo / "d" / "a.txt", "content")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    monkeypatch.chdir(repo / "d")
    assert assert_ok(cli("cat", "ds", "d/a.txt")).outb == b"content"


# ---- diff ------------------------------------------------------------------------------------------------------
def _diff_setup(repo, cli):
    write(repo / "d" / "same.txt", "same")
    write(repo / "d" / "change.txt", "one")
    write(repo / "d" / "removed.txt", "bye")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    write(repo / "d" / "change.txt", "two")
    (repo / "d" / "removed.txt").unlink()
    write(repo / "d" / "added.txt", "hi")
    commit_one(cli)


def test_diff_between_versions(repo, cli):
    _diff_setup(repo, cli)
    result = assert_ok(cli("diff", "ds:v0", "ds:v1", "--json"))
    assert result.json() == {"added": ["d/added.txt"], "removed": ["d/removed.txt"], "modified": ["d/change.txt"]}
    text = assert_ok(cli("diff", "ds:v0", "ds:v1")).out
    for path in ("d/added.txt", "d/removed.txt", "d/change.txt"):
        assert path in text
    assert "same.txt" not in text
    reverse = assert_ok(cli("diff", "ds:v1", "ds:v0", "--json")).json()
    assert reverse == {"added": ["d/removed.txt"], "removed": ["d/added.txt"], "modified": ["d/change.txt"]}


def test_diff_exit_code(repo, cli):
    _diff_setup(repo, cli)
    assert cli("diff", "ds:v0", "ds:v1").code == 0
    different = cli("diff", "ds:v0", "ds:v1", "--exit-code")
    assert different.code == 1, str(different)
    assert "Traceback" not in different.err
    same = cli("diff", "ds:v1", "ds", "--exit-code")
    assert same.code == 0, str(same)


def test_diff_against_workspace(repo, cli):
    _diff_setup(repo, cli)
    assert assert_ok(cli("diff", "ds", "--json")).json() == {"added": [], "removed": [], "modified": []}
    assert cli("diff", "ds", "--exit-code").code == 0
    write(repo / "d" / "same.txt", "not the same")
    write(repo / "d" / "brand-new.txt", "x")
    (repo / "d" / "added.txt").unlink()
    result = assert_ok(cli("diff", "ds", "--json")).json()
    assert result == {"added": ["d/brand-new.txt"], "removed": ["d/added.txt"], "modified": ["d/same.txt"]}
    assert cli("diff", "ds", "--exit-code").code == 1
    against_v0 = assert_ok(cli("diff", "ds:v0", "--json")).json()
    assert against_v0 == {"added": ["d/brand-new.txt"], "removed": ["d/removed.txt"],
                          "modified": ["d/change.txt", "d/same.txt"]}


def test_diff_json_with_exit_code(repo, cli):
    _diff_setup(repo, cli)
    result = cli("diff", "ds:v0", "ds:v1", "--json", "--exit-code")
    assert result.code == 1, str(result)
    assert result.json()["modified"] == ["d/change.txt"]


def test_diff_unknown_spec(repo, cli):
    _diff_setup(repo, cli)
    assert_error(cli("diff", "ds:v0", "ds:v9"))
    assert_error(cli("diff", "nosuch"))


# ---- aliases ------------------------------------------------------------------------------------------------------
def _two_versions(repo, cli):
    write(repo / "a.txt", "zero")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    commit_one(cli)
    write(repo / "a.txt", "one")
    commit_one(cli)


def test_alias_set_move_delete(repo, cli):
    _two_versions(repo, cli)
    assert_ok(cli("alias", "ds:v0", "best"))
    assert show_json(cli, "ds:best")["spec"] == "ds:v0"
    assert assert_ok(cli("cat", "ds:best", "a.txt")).outb == b"zero"
    assert_ok(cli("alias", "ds:v1", "best"))
    versions = {v["spec"]: v["aliases"] for v in log_json(cli, "ds")}
    assert "best" in versions["ds:v1"] and "best" not in versions["ds:v0"]
    assert show_json(cli, "ds:best")["spec"] == "ds:v1"
    assert_ok(cli("alias", "--delete", "ds", "best"))
    assert_error(cli("show", "ds:best"))
    assert all("best" not in a for a in {v["spec"]: v["aliases"] for v in log_json(cli, "ds")}.values())
    assert_error(cli("alias", "--delete", "ds", "best"))


def test_alias_by_spec_forms(repo, cli):
    _two_versions(repo, cli)
    v0_id = show_json(cli, "ds:v0")["id"]
    assert_ok(cli("alias", "ds:" + v0_id[:8], "old"))
    assert show_json(cli, "ds:old")["id"] == v0_id
    assert_ok(cli("alias", "ds", "current"))
    assert show_json(cli, "ds:current")["spec"] == "ds:v1"
    assert_ok(cli("alias", "ds:old", "older"))
    assert show_json(cli, "ds:older")["id"] == v0_id


@pytest.mark.parametrize("bad", ["latest", "v3", "v0", "bad alias", "-x-", "a:b", "é"])
def test_reserved_and_invalid_aliases_are_refused(repo, cli, bad):
    _two_versions(repo, cli)
    before = log_json(cli, "ds")
    assert_error(cli("alias", "ds:v0", "--", bad) if bad.startswith("-") else cli("alias", "ds:v0", bad))
    assert log_json(cli, "ds") == before
    assert "latest" not in before[1]["aliases"]


def test_latest_moves_with_new_versions(repo, cli):
    _two_versions(repo, cli)
    assert show_json(cli, "ds:latest")["spec"] == "ds:v1"
    write(repo / "a.txt", "two")
    commit_one(cli)
    versions = log_json(cli, "ds")
    assert [("latest" in v["aliases"]) for v in versions] == [True, False, False]
    assert show_json(cli, "ds:latest")["spec"] == "ds:v2"


def test_alias_errors(repo, cli):
    _two_versions(repo, cli)
    assert_error(cli("alias", "ds:v7", "best"))
    assert_error(cli("alias", "nosuch", "best"))
    assert_error(cli("alias", "--delete", "ds", "never-set"))
    assert_error(cli("alias", "--delete", "ds", "latest"))
    assert show_json(cli, "ds:latest")["spec"] == "ds:v1"


# ---- version specs ---------------------------------------------------------------------------------------------------
def test_version_spec_forms(repo, cli):
    _two_versions(repo, cli)
    ids = {v["spec"]: v["id"] for v in log_json(cli, "ds")}
    assert show_json(cli, "ds")["id"] == ids["ds:v1"]
    assert show_json(cli, "ds:latest")["id"] == ids["ds:v1"]
    assert show_json(cli, "ds:v0")["id"] == ids["ds:v0"]
    assert show_json(cli, "ds:" + ids["ds:v0"][:6])["spec"] == "ds:v0"
    assert show_json(cli, "ds:" + ids["ds:v0"][:12])["spec"] == "ds:v0"
    assert show_json(cli, "ds:" + ids["ds:v0"])["spec"] == "ds:v0"
    assert show_json(cli, "ds:" + ids["ds:v1"][:7])["spec"] == "ds:v1"
    assert_ok(cli("alias", "ds:v0", "prod"))
    assert show_json(cli, "ds:prod")["id"] == ids["ds:v0"]


def test_alias_wins_over_id_prefix(repo, cli):
    _two_versions(repo, cli)
    ids = {v["spec"]: v["id"] for v in log_json(cli, "ds")}
    prefix = ids["ds:v0"][:6]
    if not prefix[0].isalnum():  # pragma: no cover - hex digits are always alphanumeric
        pytest.fail("unexpected id")
    assert_ok(cli("alias", "ds:v1", prefix))
    assert show_json(cli, f"ds:{prefix}")["spec"] == "ds:v1"
    assert show_json(cli, "ds:" + ids["ds:v0"][:7])["spec"] == "ds:v0"


@pytest.mark.parametrize("spec", ["nosuch", "nosuch:v0", "ds:v2", "ds:v99", "ds:nosuchalias", "ds:", "bad name:v0",
                                  "ds:abcdef0123", "ds:v-1"])
def test_unknown_and_invalid_specs(repo, cli, spec):
    _two_versions(repo, cli)
    assert_error(cli("show", spec))
    assert_error(cli("ls", spec))
    assert_error(cli("cat", spec, "a.txt"))
    before = (repo / "a.txt").read_bytes()
    assert_error(cli("checkout", spec))
    assert (repo / "a.txt").read_bytes() == before


def test_short_id_prefix_below_six_digits_is_refused(repo, cli):
    _two_versions(repo, cli)
    v0_id = show_json(cli, "ds:v0")["id"]
    assert_error(cli("show", "ds:" + v0_id[:5]))


def test_artifact_without_versions(repo, cli):
    write(repo / "a.txt", "a")
    assert_ok(cli("add", "a.txt", "-a", "ds"))
    assert_error(cli("show", "ds"))
    assert_error(cli("checkout", "ds"))


# ---- git provenance --------------------------------------------------------------------------------------------------
def test_git_provenance_is_recorded(repo, cli):
    write(repo / ".gitignore", ".artvc/\ndata/\n")
    write(repo / "train.py", "print('v1')\n")
    git("init", "-q", cwd=repo)
    git("config", "user.name", "Ada Tester", cwd=repo)
    git("config", "user.email", "ada@example.com", cwd=repo)
    git("add", ".gitignore", "train.py", cwd=repo)
    git("commit", "-q", "-m", "code", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo).strip()

    write(repo / "data" / "a.txt", "a")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    info = show_json(cli, "ds")
    assert info["git"]["commit"] == head
    assert info["git"]["dirty"] is False
    assert info["author"] == "Ada Tester <ada@example.com>"

    write(repo / "train.py", "print('v2, not committed to git')\n")
    write(repo / "data" / "a.txt", "b")
    commit_one(cli)
    info = show_json(cli, "ds")
    assert info["git"]["commit"] == head
    assert info["git"]["dirty"] is True

    git("commit", "-q", "-am", "code v2", cwd=repo)
    head2 = git("rev-parse", "HEAD", cwd=repo).strip()
    write(repo / "data" / "a.txt", "c")
    commit_one(cli)
    info = show_json(cli, "ds")
    assert (info["git"]["commit"], info["git"]["dirty"]) == (head2, False)
    assert show_json(cli, "ds:v0")["git"]["commit"] == head


# ---- file kinds and sizes --------------------------------------------------------------------------------------------
def test_empty_files(repo, cli, tmp_path):
    write(repo / "d" / "empty.txt", b"")
    write(repo / "d" / "also-empty", b"")
    write(repo / "d" / "full.txt", b"x")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    sizes = {e["path"]: e["size"] for e in assert_ok(cli("ls", "ds", "--json")).json()}
    assert sizes == {"d/also-empty": 0, "d/empty.txt": 0, "d/full.txt": 1}
    assert assert_ok(cli("cat", "ds", "d/empty.txt")).outb == b""
    out = tmp_path / "out"
    assert_ok(cli("checkout", "ds", "--to", out))
    assert (out / "d" / "empty.txt").read_bytes() == b""
    assert (out / "d" / "also-empty").read_bytes() == b""
    assert (out / "d" / "full.txt").read_bytes() == b"x"
    (repo / "d" / "empty.txt").unlink()
    assert_ok(cli("checkout", "ds"))
    assert (repo / "d" / "empty.txt").read_bytes() == b""


def test_non_ascii_file_names(repo, cli, tmp_path):
    names = {"données/été.csv": "é,à\n".encode(), "données/日本語.txt": "こんにちは".encode(),
             "données/emoji-🙂.bin": b"\x00\x01"}
    for rel, data in names.items():
        write(repo / rel, data)
    assert_ok(cli("add", "données", "-a", "ds"))
    commit_one(cli)
    paths = [e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json()]
    assert sorted(paths) == sorted(names)
    assert "données/été.csv" in assert_ok(cli("ls", "ds")).out
    for rel, data in names.items():
        assert assert_ok(cli("cat", "ds", rel)).outb == data
    out = tmp_path / "out"
    assert_ok(cli("checkout", "ds", "--to", out))
    for rel, data in names.items():
        assert (out / rel).read_bytes() == data
    write(repo / "données/été.csv", "changed")
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["modified"] == ["données/été.csv"]


def test_non_ascii_default_name_is_refused(repo, cli):
    write(repo / "résumé.txt", "x")
    assert_error(cli("add", "résumé.txt"))
    assert_ok(cli("add", "résumé.txt", "-a", "resume"))
    commit_one(cli)
    assert assert_ok(cli("cat", "resume", "résumé.txt")).outb == b"x"


# ---- ignore rules ----------------------------------------------------------------------------------------------------
def test_artvcignore_is_honoured(repo, cli):
    write(repo / ".artvcignore", "*.tmp\n!keep.tmp\ncache/\n/d/rootonly.txt\n# comment\n**/logs/**/*.log\n")
    files = {
        "d/a.txt": "a", "d/x.tmp": "tmp", "d/keep.tmp": "keep", "d/cache/c.bin": "c", "d/sub/cache/c2.bin": "c2",
        "d/rootonly.txt": "r", "d/sub/rootonly.txt": "kept: the pattern is anchored to the root", "d/logs/a/b.log": "l",
        "d/logs/a/b.txt": "t",
    }
    for rel, data in files.items():
        write(repo / rel, data)
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    paths = sorted(e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json())
    assert paths == ["d/a.txt", "d/keep.tmp", "d/logs/a/b.txt", "d/sub/rootonly.txt"]
    write(repo / "d" / "more.tmp", "ignored")
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True


def test_artvcignore_anchored_pattern(repo, cli):
    write(repo / ".artvcignore", "/d/skip.txt\n")
    write(repo / "d" / "skip.txt", "s")
    write(repo / "d" / "sub" / "d" / "skip.txt", "nested: not matched by an anchored pattern")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    paths = sorted(e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json())
    assert paths == ["d/sub/d/skip.txt"]


def test_git_and_artvc_folders_are_always_ignored(repo, cli):
    write(repo / "d" / "a.txt", "a")
    write(repo / "d" / ".git" / "config", "[core]")
    write(repo / "d" / "sub" / ".git" / "HEAD", "ref: refs/heads/main")
    write(repo / ".git" / "HEAD", "ref: refs/heads/main")
    write(repo / "top.txt", "t")
    assert_ok(cli("add", "d", "-a", "ds"))
    commit_one(cli)
    assert [e["path"] for e in assert_ok(cli("ls", "ds", "--json")).json()] == ["d/a.txt"]
    assert_ok(cli("add", ".", "-a", "everything"))
    commit_one(cli, "everything")
    paths = sorted(e["path"] for e in assert_ok(cli("ls", "everything", "--json")).json())
    assert paths == ["d/a.txt", "top.txt"]
    assert_error(cli("add", ".artvc", "-a", "store"))


# ---- many files, large files ----------------------------------------------------------------------------------------
def test_thousand_small_files_round_trip(repo, cli, tmp_path):
    expected = {}
    for i in range(1000):
        rel = f"many/{i % 10:02d}/{i // 10:03d}/f{i:04d}.txt"
        data = f"file {i} ".encode() * (i % 7 + 1)
        write(repo / rel, data)
        expected[rel] = data
    assert_ok(cli("add", "many", "-a", "many"))
    commit_one(cli)
    entries = assert_ok(cli("ls", "many", "--json")).json()
    assert len(entries) == 1000
    assert sorted(e["path"] for e in entries) == sorted(expected)
    info = log_json(cli, "many")[0]
    assert (info["files"], info["bytes"]) == (1000, sum(map(len, expected.values())))
    out = tmp_path / "out"
    assert_ok(cli("checkout", "many", "--to", out))
    for rel, data in expected.items():
        assert (out / rel).read_bytes() == data, rel
    import shutil
    shutil.rmtree(repo / "many")
    assert_ok(cli("checkout", "many"))
    for rel, data in expected.items():
        assert (repo / rel).read_bytes() == data, rel
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["many"]["clean"] is True


def test_large_random_file_round_trip(repo, cli, tmp_path):
    original = os.urandom(3 * (1 << 20) + 12345)
    write(repo / "big.bin", original)
    assert_ok(cli("add", "big.bin", "-a", "big"))
    commit_one(cli)
    assert assert_ok(cli("cat", "big", "big.bin")).outb == original
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 0xFF
    changed = bytes(changed) + b"appended"
    write(repo / "big.bin", changed)
    commit_one(cli)
    out = tmp_path / "out"
    assert_ok(cli("checkout", "big:v0", "--to", out))
    assert (out / "big.bin").read_bytes() == original
    assert_ok(cli("checkout", "big:v0"))
    assert (repo / "big.bin").read_bytes() == original
    assert_ok(cli("checkout", "big"))
    assert (repo / "big.bin").read_bytes() == changed
    assert sha(repo / "big.bin") != sha(out / "big.bin")


# ---- as a separate process ---------------------------------------------------------------------------------------------
def test_subprocess_exit_codes_and_no_traceback(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    done = run_subprocess("status", cwd=outside)
    assert done.returncode == 1
    err = done.stderr.decode()
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err

    project = tmp_path / "project"
    assert run_subprocess("init", str(project), cwd=tmp_path).returncode == 0
    write(project / "data.csv", "a,b\n1,2\n")
    assert run_subprocess("add", "data.csv", cwd=project).returncode == 0
    done = run_subprocess("-q", "commit", "-m", "first", cwd=project)
    assert done.returncode == 0, done.stderr
    assert COMMIT_LINE.match(done.stdout.decode().strip()), done.stdout
    assert done.stdout.decode().strip().startswith("data:v0 ")

    for args in (("show", "data:v5"), ("add", "x", "-a", "bad name"), ("cat", "data", "nope.csv"),
                 ("alias", "data", "latest")):
        done = run_subprocess(*args, cwd=project)
        err = done.stderr.decode()
        assert done.returncode == 1, (args, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, (args, err)
        assert "Traceback" not in err, (args, err)

    done = run_subprocess("commit", "--no-such-option", cwd=project)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr.decode()

    done = run_subprocess("cat", "data", "data.csv", cwd=project)
    assert done.returncode == 0 and done.stdout == b"a,b\n1,2\n"

    done = run_subprocess("--version", cwd=project)
    assert done.returncode == 0 and "0." in done.stdout.decode()

    done = run_subprocess("log", "--json", cwd=project)
    assert done.returncode == 0
    assert [v["spec"] for v in json.loads(done.stdout)] == ["data:v0"]


def test_scan_lists_each_file_once_when_tracked_paths_overlap(repo, cli):
    import artvc

    write(repo / "d" / "a.bin", b"A")
    write(repo / "d" / "sub" / "b.bin", b"B")
    assert_ok(cli("add", "d", "-a", "ds"))
    assert_ok(cli("add", "d/sub", "-a", "ds"))
    commit_one(cli)
    ws = artvc.Repo(str(repo)).workspace
    paths = [f.path for f in ws.iter_scan(["d", "d/sub", "."])]
    assert sorted(paths) == ["d/a.bin", "d/sub/b.bin"]
    assert sorted(f.path for f in ws.iter_scan(["d/sub", "d"])) == ["d/a.bin", "d/sub/b.bin"]
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["clean"] is True
    write(repo / "d" / "sub" / "b.bin", b"changed")
    assert assert_ok(cli("status", "--json")).json()["artifacts"]["ds"]["modified"] == ["d/sub/b.bin"]
