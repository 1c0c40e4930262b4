"""Sharing end to end: push, clone, fetch, pull and get through the CLI on a local folder, a real SFTP server
and S3 (moto) on 127.0.0.1; partial fetches; many writers and the alias lease; interrupted pushes and
fetches (a fault-injecting backend); corrupt and hostile remotes."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from artvc.api import Repo
from artvc.errors import CorruptObjectError, MissingDataError, MissingObjectError, RemoteError
from artvc.index import close_index
from artvc.manifest import KIND_FILE, KIND_SYMLINK, Entry
from artvc.packs import BLOB_DATA
from artvc.remote import layout
from artvc.remote.backend import CountingBackend
from artvc.remote.fsspec_backend import open_backend
from artvc.remote.sync import Sync
from artvc.storewriter import StoreWriter
from conftest import assert_error, assert_ok, files_only, snapshot, write
from faults import FaultyBackend

MiB = 1 << 20


# ---- remotes of every kind -------------------------------------------------------------------------
class Spot:
    """Where a remote lives, and direct access to it (never through artvc's sharing code)."""

    def __init__(self, kind: str, url: str, folder: Path | None = None) -> None:
        self.kind = kind
        self.url = url
        self.folder = folder  # the remote's folder on this machine (local and SFTP)

    def listing(self, prefix: str = "") -> dict[str, int]:
        backend = open_backend(self.url)
        try:
            return backend.list(prefix)
        finally:
            backend.close()

    def read(self, name: str) -> bytes:
        backend = open_backend(self.url)
        try:
            return backend.load(name)
        finally:
            backend.close()



def _pushed(repo: Path, cli, tmp_path: Path, files: dict[str, bytes | str]) -> Path:
    """Commit `files` (below data/) as ds:v0 and push it to a folder remote; returns the remote's path."""
    for rel, content in files.items():
        write(repo / "data" / rel, content)
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    url = tmp_path / "remote"
    assert_ok(cli("remote", "add", "origin", str(url)))
    assert_ok(cli("push"))
    return url

def make_spot(kind: str, request, tmp_path: Path) -> Spot:
    if kind == "local":
        return Spot(kind, str(tmp_path / "remote"), tmp_path / "remote")
    if kind == "sftp":
        server = request.getfixturevalue("sshd_server")
        request.getfixturevalue("ssh_home").trust_host()
        name = f"share-{uuid.uuid4().hex}"
        return Spot(kind, server.url(name), server.data_dir / name)
    s3 = request.getfixturevalue("s3_env")
    bucket = s3.make_bucket(s3.unique_bucket())
    return Spot(kind, f"s3://{bucket}/team/share")


@pytest.fixture(params=["local", "sftp", "s3"])
def spot(request, tmp_path):
    return make_spot(request.param, request, tmp_path)


@pytest.fixture(params=["local", "s3"])
def spot_local_s3(request, tmp_path):
    return make_spot(request.param, request, tmp_path)


# ---- helpers ---------------------------------------------------------------------------------------
def commit_one(cli, *args):
    result = assert_ok(cli("commit", *args))
    lines = result.commit_lines()
    assert len(lines) == 1, str(result)
    return lines[0]


def log_ids(cli, name=None) -> dict[str, str]:
    """spec -> full version id, from `log --json`."""
    entries = assert_ok(cli("log", *([name] if name else []), "--json")).json()
    return {e["spec"]: e["id"] for e in entries}


def log_json(cli, name=None):
    return assert_ok(cli("log", *([name] if name else []), "--json")).json()


def aliases_of(cli, name) -> dict[str, str]:
    """alias -> spec, excluding `latest`."""
    out = {}
    for e in log_json(cli, name):
        for a in e["aliases"]:
            if a != "latest":
                out[a] = e["spec"]
    return out


def make_dataset(root: Path, big: int = 2 * MiB) -> None:
    write(root / "data" / "big.bin", os.urandom(big))
    write(root / "data" / "small.txt", "small file\n")
    write(root / "data" / "run.sh", "#!/bin/sh\necho hello\n")
    os.chmod(root / "data" / "run.sh", 0o755)
    os.symlink("small.txt", root / "data" / "link")


def version_files(spot: Spot) -> dict[str, bytes]:
    return {n: spot.read(n) for n in spot.listing("versions")}


def close_repo(path: Path | str) -> None:
    close_index(os.path.join(str(path), ".artvc", "index"))


# ---- 2. push / clone / pull / fetch / get on every kind of remote -----------------------------------
def test_share_through_a_remote(spot, repo, cli, tmp_path, monkeypatch):
    make_dataset(repo)
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli, "-m", "first")
    snap0 = files_only(snapshot(repo / "data"))
    write(repo / "data" / "small.txt", "small file, changed\n")
    write(repo / "data" / "sub" / "new.bin", os.urandom(5000))
    commit_one(cli, "-m", "second")
    snap1 = files_only(snapshot(repo / "data"))
    write(repo / "model.bin", os.urandom(4096))
    assert_ok(cli("add", "model.bin", "-a", "model"))
    commit_one(cli, "model", "--input", "ds:v0")
    assert_ok(cli("alias", "ds:v0", "stable"))
    ids = log_ids(cli)
    assert set(ids) == {"ds:v0", "ds:v1", "model:v0"}

    assert_ok(cli("remote", "add", "origin", spot.url))
    pushed = assert_ok(cli("push"))
    assert sorted(pushed.commit_lines()) == sorted((s.split(":v")[0], int(s.split(":v")[1]), i[:12]) for s, i in ids.items())
    assert "ds:stable" in pushed.out
    on_remote = version_files(spot)
    assert on_remote == {
        "versions/ds/0000000000": ids["ds:v0"].encode() + b"\n",
        "versions/ds/0000000001": ids["ds:v1"].encode() + b"\n",
        "versions/model/0000000000": ids["model:v0"].encode() + b"\n",
    }
    assert spot.read("aliases/ds/stable") == ids["ds:v0"].encode() + b"\n"

    everything = spot.listing()
    again = assert_ok(cli("push"))
    assert "everything up to date" in again.out, str(again)
    assert again.commit_lines() == []
    assert spot.listing() == everything

    # clone, then pull: exact bytes, same ids, lineage and aliases
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", spot.url, "clone"))
    clone = tmp_path / "clone"
    monkeypatch.chdir(clone)
    assert log_ids(cli) == ids
    pulled = assert_ok(cli("pull"))
    assert files_only(snapshot(clone / "data")) == snap1, str(pulled)
    assert (clone / "model.bin").read_bytes() == (repo / "model.bin").read_bytes()
    assert assert_ok(cli("show", "model", "--json")).json()["inputs"] == [ids["ds:v0"]]
    assert aliases_of(cli, "ds") == {"stable": "ds:v0"}
    assert assert_ok(cli("cat", "ds:v1", "data/big.bin")).outb == (repo / "data" / "big.bin").read_bytes()

    # an alias moved in A travels to the clone on fetch
    monkeypatch.chdir(repo)
    moved = assert_ok(cli("alias", "ds:v1", "stable"))
    moved = assert_ok(cli("push"))
    assert "ds:stable" in moved.out, str(moved)
    assert spot.read("aliases/ds/stable") == ids["ds:v1"].encode() + b"\n"
    monkeypatch.chdir(clone)
    assert_ok(cli("fetch"))
    assert aliases_of(cli, "ds") == {"stable": "ds:v1"}

    # get, with no repository anywhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert_ok(cli("get", spot.url, "ds:v0"))
    assert files_only(snapshot(elsewhere / "ds" / "data")) == snap0
    assert_ok(cli("get", spot.url, "ds:v1", "data/big.bin", "--to", "big-copy.bin"))
    assert (elsewhere / "big-copy.bin").read_bytes() == (repo / "data" / "big.bin").read_bytes()
    assert_ok(cli("get", spot.url, "ds:stable", "data", "--to", "folder"))
    assert files_only(snapshot(elsewhere / "folder")) == snap1
    assert not (elsewhere / ".artvc").exists()

    # fetch --all, then every version checks out with the remote gone
    monkeypatch.chdir(clone)
    assert_ok(cli("fetch", "--all"))
    assert_ok(cli("remote", "remove", "origin"))
    if spot.kind == "local":
        os.rename(spot.folder, str(spot.folder) + "-gone")
    assert_ok(cli("checkout", "ds:v0"))
    assert files_only(snapshot(clone / "data")) == snap0
    assert_ok(cli("checkout", "ds:v1"))
    assert files_only(snapshot(clone / "data")) == snap1
    assert_ok(cli("checkout", "model:v0"))
    assert log_ids(cli) == ids


# ---- remotes, specs, and what a push sends ------------------------------------------------------------
def test_remote_add_list_remove_and_the_default(repo, cli, tmp_path):
    write(repo / "data" / "f.txt", "f\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    one, two, three = (str(tmp_path / n) for n in ("one", "two", "three"))
    assert_ok(cli("remote", "add", "one", one, "-o", "timeout=7"))
    listed = assert_ok(cli("remote", "list", "--json")).json()
    assert listed == [{"name": "one", "url": one, "options": {"timeout": "7"}, "default": True}]
    assert_error(cli("remote", "add", "one", two), "one")
    assert_error(cli("remote", "add", "bad/name", two))
    assert_error(cli("remote", "remove", "nosuch"), "nosuch")
    assert_ok(cli("remote", "add", "two", two))
    assert {r["name"]: r["default"] for r in assert_ok(cli("remote", "list", "--json")).json()} == {"one": False, "two": False}
    assert_error(cli("push"), "remote")  # two remotes, none marked: name one
    assert not os.path.exists(one) and not os.path.exists(two)
    assert [line[:2] for line in assert_ok(cli("push", "two")).commit_lines()] == [("ds", 0)]
    assert os.path.isfile(os.path.join(two, "versions", "ds", "0000000000")) and not os.path.exists(one)
    assert_ok(cli("remote", "add", "three", three, "--default"))
    assert [line[:2] for line in assert_ok(cli("push")).commit_lines()] == [("ds", 0)]
    assert os.path.isfile(os.path.join(three, "versions", "ds", "0000000000")) and not os.path.exists(one)
    assert_ok(cli("remote", "remove", "two"))
    assert os.path.isfile(os.path.join(two, "versions", "ds", "0000000000"))  # nothing on the remote is touched
    assert [r["name"] for r in assert_ok(cli("remote", "list", "--json")).json()] == ["one", "three"]


def test_push_a_spec(repo, cli, tmp_path):
    write(repo / "data" / "f.txt", "0\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    for n in range(3):
        write(repo / "data" / "f.txt", f"{n}\n")
        commit_one(cli)
    write(repo / "other.txt", "other\n")
    assert_ok(cli("add", "other.txt", "-a", "other"))
    commit_one(cli, "other")
    url = tmp_path / "remote"
    assert_ok(cli("remote", "add", "origin", str(url)))
    first = assert_ok(cli("push", "ds:v1"))  # that version and the earlier ones of its artifact, nothing else
    assert sorted(line[:2] for line in first.commit_lines()) == [("ds", 0), ("ds", 1)]
    assert sorted(os.listdir(url / "versions")) == ["ds"]
    assert sorted(os.listdir(url / "versions" / "ds")) == ["0000000000", "0000000001"]
    rest = assert_ok(cli("push", "origin"))
    assert sorted(line[:2] for line in rest.commit_lines()) == [("ds", 2), ("other", 0)]


def _pack_names(calls, op):
    return {n for o, n in calls if o == op and n.startswith("packs/")}


def test_incremental_push_and_fetch_move_only_what_is_new(repo, cli, tmp_path):
    write(repo / "data" / "a.bin", os.urandom(400_000))
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    url = str(tmp_path / "remote")
    a = Repo(str(repo))
    first = FaultyBackend(open_backend(url))
    Sync(a._repository, "origin", first).push()
    c = Repo.init(str(tmp_path / "c"))
    fetch1 = FaultyBackend(open_backend(url))
    Sync(c._repository, "origin", fetch1).fetch(_all_data(c))

    write(repo / "data" / "b.bin", os.urandom(300_000))
    commit_one(cli)
    second = FaultyBackend(open_backend(url))
    Sync(a._repository, "origin", second).push()
    sent = _pack_names(second.calls, "store")
    assert sent and not sent & _pack_names(first.calls, "store")
    assert sum(len(open_backend(url).load(n)) for n in sent) < 400_000  # a.bin did not go up again

    fetch2 = FaultyBackend(open_backend(url))
    Sync(c._repository, "origin", fetch2).fetch(_all_data(c))
    assert _pack_names(fetch2.calls, "load") <= sent
    indexes_read = {n for o, n in fetch2.calls if o == "load" and n.startswith("index/")}
    assert indexes_read == {"index/" + n.rsplit("/", 1)[1][: -len(".pack")] for n in sent}
    assert _contents(c) == _contents(a)
    c.close()
    close_repo(tmp_path / "c")
    a.close()


def test_push_with_nothing_new_makes_one_request(repo, cli, tmp_path):
    """A push with nothing new reads only the remote's marker (its id tells a replaced remote apart)."""
    write(repo / "data" / "a.bin", os.urandom(10_000))
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli, "--alias", "best")
    url = str(tmp_path / "remote")
    a = Repo(str(repo))
    Sync(a._repository, "origin", open_backend(url)).push()
    again = CountingBackend(open_backend(url))
    result = Sync(a._repository, "origin", again).push()
    assert not result.versions and not result.aliases
    assert again.counts == {"load": 1}, again.counts
    a.close()


def test_a_remote_replaced_under_the_same_url(repo, cli, tmp_path, monkeypatch):
    """The remote is emptied (or re-created) behind this repository's back: the next push must send
    everything again, not trust what it remembers of the old one."""
    write(repo / "data" / "a.bin", os.urandom(200_000))
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli, "--alias", "best")
    url = tmp_path / "remote"
    assert_ok(cli("remote", "add", "origin", str(url)))
    assert_ok(cli("push"))
    os.rename(url, tmp_path / "old-remote")
    again = assert_ok(cli("push"))
    assert [line[:2] for line in again.commit_lines()] == [("ds", 0)]
    assert (url / "aliases" / "ds" / "best").is_file()
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", str(url), "clone"))
    monkeypatch.chdir(tmp_path / "clone")
    assert_ok(cli("pull"))
    assert (tmp_path / "clone" / "data" / "a.bin").read_bytes() == (repo / "data" / "a.bin").read_bytes()
    assert aliases_of(cli, "ds") == {"best": "ds:v0"}


# ---- 3. a partial fetch reads little ------------------------------------------------------------------
def _chunks_of(repository, version_id: bytes, path: str | None = None) -> list[bytes]:
    return [c for e in repository.version_manifest(version_id) if e.kind == KIND_FILE and (path is None or e.path == path)
            for c, _ in e.chunks]


def test_partial_fetch_reads_little(repo, cli, tmp_path, monkeypatch):
    huge = os.urandom(8 * MiB)
    write(repo / "data" / "huge.bin", huge)
    write(repo / "data" / "tiny.txt", "tiny\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    url = str(tmp_path / "remote")
    assert_ok(cli("remote", "add", "origin", url))
    assert_ok(cli("push"))

    fresh = Repo.init(str(tmp_path / "fresh"))
    try:
        fresh.add_remote("origin", url)
        counting = CountingBackend(open_backend(url))
        sync = Sync(fresh._repository, "origin", counting)
        sync.fetch(lambda local: _chunks_of(fresh._repository, local["ds"][-1][1], "data/tiny.txt"))
        assert counting.bytes_received < MiB, counting.counts
        version = fresh.resolve("ds")
        assert version.open("data/tiny.txt").read() == b"tiny\n"
        with pytest.raises(MissingDataError):
            fresh.checkout("ds", to=str(tmp_path / "out"))
        assert not (tmp_path / "out" / "data" / "huge.bin").exists()
    finally:
        fresh.close()
        close_repo(tmp_path / "fresh")

    # the same through the CLI: one entry, with no repository
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert_ok(cli("get", url, "ds", "data/tiny.txt"))
    assert (elsewhere / "tiny.txt").read_bytes() == b"tiny\n"
    assert sorted(os.listdir(elsewhere)) == ["tiny.txt"]


# ---- 4. many writers ---------------------------------------------------------------------------------
def test_many_writers_renumber_on_pull(spot_local_s3, repo, cli, tmp_path, monkeypatch):
    url = spot_local_s3.url
    write(repo / "data" / "file.txt", "base\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    assert_ok(cli("remote", "add", "origin", url))
    assert_ok(cli("push"))
    b = tmp_path / "b"
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", url, "b"))
    monkeypatch.chdir(b)
    assert_ok(cli("pull"))
    assert (b / "data" / "file.txt").read_text() == "base\n"

    # both commit on top of v0
    monkeypatch.chdir(repo)
    write(repo / "data" / "file.txt", "A's change\n")
    assert commit_one(cli)[:2] == ("ds", 1)
    id_a = log_ids(cli)["ds:v1"]
    monkeypatch.chdir(b)
    write(b / "data" / "file.txt", "B's change\n")
    write(b / "data" / "b-only.txt", "from B\n")
    assert commit_one(cli, "--alias", "mine")[:2] == ("ds", 1)
    id_b = log_ids(cli)["ds:v1"]
    assert id_a != id_b

    # A pushes first; B is refused and told to pull; the remote keeps A's v1
    monkeypatch.chdir(repo)
    assert [line[:2] for line in assert_ok(cli("push")).commit_lines()] == [("ds", 1)]
    monkeypatch.chdir(b)
    log_b = log_json(cli)
    refused = cli("push")
    assert_error(refused, "pull")
    assert log_json(cli) == log_b
    assert version_files(spot_local_s3) == {
        "versions/ds/0000000000": log_ids(cli)["ds:v0"].encode() + b"\n",
        "versions/ds/0000000001": id_a.encode() + b"\n",
    }

    # B pulls: its version goes on top, id and alias unchanged
    pulled = assert_ok(cli("pull"))
    assert "ds:v1 -> ds:v2" in pulled.out.splitlines(), str(pulled)
    ids_b = log_ids(cli)
    assert ids_b["ds:v1"] == id_a and ids_b["ds:v2"] == id_b
    assert aliases_of(cli, "ds") == {"mine": "ds:v2"}
    assert (b / "data" / "file.txt").read_text() == "B's change\n"
    pushed = assert_ok(cli("push"))
    assert [line[:2] for line in pushed.commit_lines()] == [("ds", 2)]
    assert pushed.commit_lines()[0][2] == id_b[:12]
    assert spot_local_s3.read("versions/ds/0000000002") == id_b.encode() + b"\n"
    assert spot_local_s3.read("aliases/ds/mine") == id_b.encode() + b"\n"

    # A pulls and sees B's version, with B's content; nothing is lost on either side
    monkeypatch.chdir(repo)
    assert_ok(cli("pull"))
    assert log_ids(cli) == ids_b
    assert aliases_of(cli, "ds") == {"mine": "ds:v2"}
    assert (repo / "data" / "file.txt").read_text() == "B's change\n"
    assert (repo / "data" / "b-only.txt").read_text() == "from B\n"
    for where in (repo, b):
        monkeypatch.chdir(where)
        assert_ok(cli("fetch", "--all"))  # by default a fetch brings the data of the latest version only
        assert assert_ok(cli("cat", "ds:v0", "data/file.txt")).outb == b"base\n"
        assert assert_ok(cli("cat", "ds:v1", "data/file.txt")).outb == b"A's change\n"
        assert assert_ok(cli("cat", "ds:v2", "data/file.txt")).outb == b"B's change\n"
        assert assert_ok(cli("cat", "ds:mine", "data/b-only.txt")).outb == b"from B\n"


def _two_repos_sharing(repo, cli, tmp_path, monkeypatch, versions: int):
    """A with `versions` versions and alias best at v0, pushed; B a pulled clone. Returns (url, b, ids)."""
    url = str(tmp_path / "remote")
    write(repo / "data" / "file.txt", "v0\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli, "--alias", "best")
    for n in range(1, versions):
        write(repo / "data" / "file.txt", f"v{n}\n")
        commit_one(cli)
    assert_ok(cli("remote", "add", "origin", url))
    assert_ok(cli("push"))
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", url, "b"))
    b = tmp_path / "b"
    monkeypatch.chdir(b)
    assert_ok(cli("pull"))
    assert aliases_of(cli, "ds") == {"best": "ds:v0"}
    monkeypatch.chdir(repo)
    return url, b, log_ids(cli)


def test_alias_lease(repo, cli, tmp_path, monkeypatch):
    url, b, ids = _two_repos_sharing(repo, cli, tmp_path, monkeypatch, versions=3)
    alias_file = Path(url) / "aliases" / "ds" / "best"
    assert_ok(cli("alias", "ds:v1", "best"))
    assert_ok(cli("push"))
    assert alias_file.read_bytes() == ids["ds:v1"].encode() + b"\n"

    monkeypatch.chdir(b)
    assert_ok(cli("alias", "ds:v2", "best"))
    refused = cli("push")
    assert_error(refused, "best")
    assert "pull" in refused.err and "--force" in refused.err, str(refused)
    assert alias_file.read_bytes() == ids["ds:v1"].encode() + b"\n"
    assert aliases_of(cli, "ds") == {"best": "ds:v2"}  # B's own alias is kept

    forced = assert_ok(cli("push", "--force"))
    assert "ds:best" in forced.out, str(forced)
    assert alias_file.read_bytes() == ids["ds:v2"].encode() + b"\n"
    monkeypatch.chdir(repo)
    assert_ok(cli("fetch"))
    assert aliases_of(cli, "ds") == {"best": "ds:v2"}


def test_alias_lease_is_renewed_by_pull(repo, cli, tmp_path, monkeypatch):
    url, b, ids = _two_repos_sharing(repo, cli, tmp_path, monkeypatch, versions=3)
    assert_ok(cli("alias", "ds:v1", "best"))
    assert_ok(cli("push"))
    monkeypatch.chdir(b)
    assert_ok(cli("alias", "ds:v2", "best"))
    assert_error(cli("push"), "best")
    pulled = assert_ok(cli("pull"))
    assert aliases_of(cli, "ds") == {"best": "ds:v2"}, str(pulled)  # the local move is not lost by the pull
    assert_ok(cli("push"))  # this repository has now seen the remote's value: the lease holds
    assert (Path(url) / "aliases" / "ds" / "best").read_bytes() == ids["ds:v2"].encode() + b"\n"


def test_alias_deletion_travels(repo, cli, tmp_path, monkeypatch):
    url, b, ids = _two_repos_sharing(repo, cli, tmp_path, monkeypatch, versions=2)
    assert_ok(cli("alias", "--delete", "ds", "best"))
    assert_ok(cli("push"))
    assert not (Path(url) / "aliases" / "ds" / "best").exists()
    monkeypatch.chdir(b)
    assert_ok(cli("fetch"))
    assert aliases_of(cli, "ds") == {}


# ---- 5. interrupted pushes and fetches ----------------------------------------------------------------
def _build_history(repo, cli) -> None:
    """Two artifacts, three versions, an alias: several packs, version files and an alias file to write."""
    write(repo / "data" / "a.bin", os.urandom(300_000))
    write(repo / "data" / "b.txt", "bee\n")
    os.symlink("b.txt", repo / "data" / "link")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    write(repo / "data" / "c.bin", os.urandom(200_000))
    commit_one(cli)
    write(repo / "model" / "w.bin", os.urandom(150_000))
    assert_ok(cli("add", "model", "-a", "model"))
    commit_one(cli, "model", "--alias", "best", "--input", "ds")


def _contents(repo_api: Repo) -> dict[tuple[str, int], tuple[str, dict[str, bytes]]]:
    """(artifact, number) -> (id, {path: bytes}) of every version, read through the store (verified)."""
    out = {}
    for v in repo_api.log():
        out[(v.name, v.number)] = (v.id, {e.path: v.open(e.path).read() for e in v.entries})
    return out


def _log(repo_api: Repo) -> list[dict]:
    return [v.to_json() for v in repo_api.log()]


def _pack_files(root: Path) -> dict[str, int]:
    packs = root / ".artvc" / "packs"
    return {str(p.relative_to(packs)): p.stat().st_size for p in packs.rglob("*") if p.is_file()}


def _store_is_sound(repo_api: Repo) -> int:
    """Every blob the local index names reads back and hashes to its id. Returns how many there are."""
    repository = repo_api._repository
    with repository.index.read() as txn:
        located = list(repository.store.blob_locations(txn))
    for blob_id, loc in located:
        repository.store.read_located(blob_id, loc)  # raises CorruptObjectError on a bad blob
    return len(located)


def _all_data(repo_api: Repo):
    return lambda local: [c for vs in local.values() for _, vid in vs for c in _chunks_of(repo_api._repository, vid)]


def _assert_remote_complete(url: str, expected: dict, scratch: Path, whole: bool) -> None:
    """Every version file on the remote has all its data: a fresh clone fetches everything and the bytes
    are the original ones. `whole`: the remote must hold every expected version."""
    backend = open_backend(url)
    try:
        version_names = backend.list("versions")
        marker = backend.info(layout.MARKER)
    finally:
        backend.close()
    if marker is None:
        assert not version_names, f"version files on a remote with no marker: {version_names}"
        assert not whole
        return
    clone = Repo.clone(url, str(scratch))
    try:
        clone.fetch(all=True)
        got = _contents(clone)
        assert len(got) == len(version_names)
        for key, value in got.items():
            assert expected[key] == value, key
        if whole:
            assert set(got) == set(expected)
        assert _store_is_sound(clone) > 0 or not version_names
    finally:
        clone.close()
        close_repo(scratch)


def test_interrupted_push_at_every_write(repo, cli, tmp_path):
    """The Nth write fails, for every N of a full push: odd N drop the connection (every later request
    fails too), even N refuse that one write with a permanent error (the connection stays up)."""
    _build_history(repo, cli)
    a = Repo(str(repo))
    expected = _contents(a)
    log_before = _log(a)
    packs_before = _pack_files(repo)

    full = FaultyBackend(open_backend(str(tmp_path / "full")))
    Sync(a._repository, "full", full, jobs=1).push()
    writes = full.written()
    all_packs = set(full.written("store", "packs/"))
    assert len(all_packs) >= 3 and writes[0] == layout.MARKER, writes
    assert len(full.written(prefix="versions/")) == 3 and len(full.written(prefix="aliases/")) == 1, writes

    for n in range(1, len(writes) + 1):
        url = str(tmp_path / f"r{n}")
        if n % 2:
            faulty = FaultyBackend(open_backend(url), fail_write=n)
        else:
            faulty = FaultyBackend(open_backend(url), fail_write=n, error=RemoteError, sticky=False)
        with pytest.raises(RemoteError):
            Sync(a._repository, f"r{n}", faulty, jobs=1).push()
        assert faulty.tripped, n
        assert _log(a) == log_before, n
        assert _pack_files(repo) == packs_before, n
        _assert_remote_complete(url, expected, tmp_path / f"check-{n}", whole=False)

        indexed = {name for name in os.listdir(os.path.join(url, "index"))} if os.path.isdir(os.path.join(url, "index")) else set()
        rerun = FaultyBackend(open_backend(url))
        Sync(a._repository, f"r{n}", rerun, jobs=1).push()
        resent = set(rerun.written("store", "packs/"))
        already_up = {p for p in all_packs if p.rsplit("/", 1)[1][: -len(".pack")] in indexed}
        assert resent == all_packs - already_up, (n, faulty.calls[-1])
        _assert_remote_complete(url, expected, tmp_path / f"final-{n}", whole=True)
    assert _log(a) == log_before
    a.close()


def test_interrupted_fetch_at_every_load(repo, cli, tmp_path):
    _build_history(repo, cli)
    a = Repo(str(repo))
    expected = _contents(a)
    url = str(tmp_path / "remote")
    Sync(a._repository, "origin", open_backend(url)).push()
    a.close()

    probe = Repo.init(str(tmp_path / "probe"))
    full = FaultyBackend(open_backend(url))
    Sync(probe._repository, "origin", full, jobs=1).fetch(_all_data(probe))
    assert _contents(probe) == expected
    loads = full.loads
    probe.close()
    close_repo(tmp_path / "probe")
    assert loads >= 6, full.calls

    for n in range(1, loads + 1):
        root = tmp_path / f"c{n}"
        c = Repo.init(str(root))
        faulty = FaultyBackend(open_backend(url), fail_load=n)
        with pytest.raises(RemoteError):
            Sync(c._repository, "origin", faulty, jobs=1).fetch(_all_data(c))
        assert faulty.tripped
        _store_is_sound(c)
        for v in c.log():  # whatever arrived is right, or says it is missing; never wrong bytes
            try:
                got = {e.path: v.open(e.path).read() for e in v.entries}
            except MissingObjectError:
                continue
            assert (v.id, got) == expected[(v.name, v.number)], (n, v.spec)
        Sync(c._repository, "origin", FaultyBackend(open_backend(url)), jobs=1).fetch(_all_data(c))
        assert _contents(c) == expected, n
        _store_is_sound(c)
        c.close()
        close_repo(root)


# ---- 6. corrupt and hostile remotes ----------------------------------------------------------------------
def _flip_byte_in_data_pack(remote: Path) -> Path:
    packs = sorted((remote / "packs").rglob("*.pack"), key=lambda p: p.stat().st_size)
    biggest = packs[-1]
    raw = bytearray(biggest.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    biggest.write_bytes(bytes(raw))
    return biggest


def test_corrupt_pack_on_the_remote(repo, cli, tmp_path, monkeypatch):
    write(repo / "data" / "big.bin", os.urandom(MiB))
    write(repo / "data" / "small.txt", "small\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    commit_one(cli)
    url = str(tmp_path / "remote")
    assert_ok(cli("remote", "add", "origin", url))
    assert_ok(cli("push"))
    _flip_byte_in_data_pack(Path(url))

    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", url, "clone"))  # records and manifests only: those are intact
    clone = tmp_path / "clone"
    monkeypatch.chdir(clone)
    assert_error(cli("fetch"), "corrupt")
    assert_error(cli("pull"), "corrupt")
    assert not (clone / "data").exists()
    refused = cli("checkout", "ds")
    assert_error(refused, "not in this repository", "artvc fetch")
    assert not (clone / "data").exists()
    api = Repo(str(clone))
    with pytest.raises(CorruptObjectError):
        api.fetch()
    _store_is_sound(api)
    assert_ok(cli("verify"))

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert_error(cli("get", url, "ds"), "corrupt")
    assert os.listdir(elsewhere) == []


def test_corrupt_pack_on_the_remote_fetched_by_ranges(repo, cli, tmp_path, monkeypatch):
    """Only part of the pack is wanted, so its blobs come by range reads: each is checked on arrival."""
    url = _pushed(repo, cli, tmp_path, {"a.bin": os.urandom(MiB), "b.bin": os.urandom(MiB)})
    pack = max((url / "packs").rglob("*.pack"), key=lambda p: p.stat().st_size)
    raw = bytearray(pack.read_bytes())
    for position in range(4096, len(raw) - 4096, 16 * 1024):  # every chunk of the data area
        raw[position] ^= 0x01
    pack.write_bytes(bytes(raw))

    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    assert_error(cli("get", str(url), "ds", "data/a.bin"), "corrupt")
    assert os.listdir(out) == []


def test_fetch_keeps_a_fully_wanted_remote_pack_as_it_is(repo, cli, tmp_path, monkeypatch):
    content = os.urandom(3 * MiB)
    url = _pushed(repo, cli, tmp_path, {"big.bin": content})
    data_pack = max((url / "packs").rglob("*.pack"), key=lambda p: p.stat().st_size)

    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", str(url), "clone"))
    clone = tmp_path / "clone"
    monkeypatch.chdir(clone)
    assert_ok(cli("pull"))
    local = clone / ".artvc" / "packs" / data_pack.parent.name / data_pack.name
    assert local.read_bytes() == data_pack.read_bytes()
    assert (clone / "data" / "big.bin").read_bytes() == content
    assert not [n for n in os.listdir(clone / ".artvc" / "tmp") if n.startswith("fetch-")]
    assert_ok(cli("verify"))


def test_hostile_version_file(repo, cli, tmp_path, monkeypatch):
    url = _pushed(repo, cli, tmp_path, {"file.txt": "content\n"})
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", str(url), "early"))
    monkeypatch.chdir(tmp_path / "early")
    assert_ok(cli("pull"))
    monkeypatch.chdir(tmp_path)
    # stray names that do not match the layout are ignored by readers
    write(url / "versions" / "ds" / "README", "not a version\n")
    assert_ok(cli("clone", str(url), "tolerant"))

    write(url / "versions" / "ds" / "0000000001", "../../../../etc/passwd\n")
    failed = cli("clone", str(url), "late")
    assert_error(failed, "0000000001", "malformed")
    assert not (tmp_path / "late").exists()
    monkeypatch.chdir(tmp_path / "early")
    before = log_json(cli)
    assert_error(cli("fetch"), "malformed")
    assert log_json(cli) == before

    # well formed, but naming a record that is nowhere on the remote
    write(url / "versions" / "ds" / "0000000001", "ab" * 32 + "\n")
    assert_error(cli("fetch"))
    assert log_json(cli) == before
    assert_ok(cli("checkout", "ds"))
    assert (tmp_path / "early" / "data" / "file.txt").read_text() == "content\n"


def test_hostile_manifest_path(tmp_path, cli, monkeypatch):
    """A remote version whose manifest names `../evil.txt`: refused, and nothing is written outside."""
    url = str(tmp_path / "remote")
    crafted = Repo.init(str(tmp_path / "crafter"))
    repository = crafted._repository
    payload = b"owned\n"
    with StoreWriter(repository.store) as writer:
        chunk = writer.add_blob(payload, BLOB_DATA)
        entries = [
            Entry("../evil.txt", KIND_FILE, len(payload), False, chunk, ((chunk, len(payload)),)),
            Entry("ok.txt", KIND_SYMLINK, target="../evil.txt"),
        ]
        repository.create_version("ds", "dataset", entries, writer, message="hostile")
    # artvc's own decoder refuses this manifest; let the push gather its chunks without decoding it
    repository.load_manifest = lambda tree_id: entries
    repository.iter_manifest = lambda tree_id: iter(entries)
    Sync(repository, "origin", open_backend(url)).push()
    crafted.close()

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for args in (("get", url, "ds"), ("get", url, "ds", "../evil.txt", "--to", "x.txt")):
        assert_error(cli(*args), "../evil.txt")
    assert os.listdir(work) == []
    cloned = cli("clone", url, "clone")
    if cloned.code == 0:
        monkeypatch.chdir(work / "clone")
        assert_error(cli("pull"), "../evil.txt")
        assert_error(cli("checkout", "ds"), "../evil.txt")
        assert_error(cli("checkout", "ds", "--to", "out"), "../evil.txt")
        assert files_only(snapshot(work / "clone")) == {}
    else:
        assert_error(cloned)
        assert not (work / "clone").exists()
    assert not (work / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert sorted(os.listdir(work)) in ([], ["clone"])


def test_remote_of_a_newer_format(repo, cli, tmp_path, monkeypatch):
    url = _pushed(repo, cli, tmp_path, {"file.txt": "content\n"})
    (url / layout.MARKER).write_text('{"format": 99, "kind": "artvc.remote"}\n')
    before = log_json(cli)
    write(repo / "data" / "file.txt", "more\n")
    commit_one(cli)
    listing = sorted(str(p.relative_to(url)) for p in url.rglob("*"))
    assert_error(cli("push"), "format 99")
    assert_error(cli("fetch"), "format 99")
    assert sorted(str(p.relative_to(url)) for p in url.rglob("*")) == listing
    assert [e["id"] for e in log_json(cli)][1:] == [e["id"] for e in before]
    monkeypatch.chdir(tmp_path)
    assert_error(cli("clone", str(url), "clone"), "format 99")
    assert not (tmp_path / "clone").exists()
