"""End-to-end tests of the Python API (the W&B Artifacts shape), checked against the CLI and the disk."""
from __future__ import annotations

import os

import pytest

from artvc import Artifact, ArtvcError, Repo

from conftest import _close_indexes, assert_ok, snapshot, write


@pytest.fixture
def api_repo(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    repo = Repo.init(str(root))
    monkeypatch.chdir(root)
    yield root, repo
    _close_indexes(tmp_path)


def test_repo_init_and_open(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    created = Repo.init(str(root))
    try:
        assert (root / ".artvc").is_dir()
        assert os.path.samefile(created.root, root)
        again = Repo.init(str(root))
        assert os.path.samefile(again.root, root)
        (root / "a" / "b").mkdir(parents=True)
        assert os.path.samefile(Repo(str(root / "a" / "b")).root, root)
        monkeypatch.chdir(root / "a")
        assert os.path.samefile(Repo().root, root)
        with pytest.raises(ArtvcError):
            Repo(str(tmp_path))
    finally:
        _close_indexes(tmp_path)


def test_log_artifact_with_files_and_dirs(api_repo, tmp_path):
    root, repo = api_repo
    write(root / "data" / "cat.png", b"\x89PNG cat")
    write(root / "data" / "images" / "a.jpg", b"jpeg a")
    write(root / "data" / "images" / "sub" / "b.jpg", b"jpeg b")
    outside = write(tmp_path / "elsewhere" / "labels.csv", b"cat,1\n")

    art = Artifact("animals", type="dataset", metadata={"source": "zoo", "n": 3})
    art.add_file(str(root / "data" / "cat.png"))
    art.add_dir("data/images")
    art.add_file(str(outside))
    version = repo.log_artifact(art, aliases=["best"], message="first")

    assert version.spec == "animals:v0"
    assert sorted(e.path for e in version.entries) == [
        "data/cat.png", "data/images/a.jpg", "data/images/sub/b.jpg", "labels.csv"]
    assert version.metadata == {"source": "zoo", "n": 3}
    assert set(version.aliases) == {"best", "latest"}
    assert version.get_entry("data/images/a.jpg").size == len(b"jpeg a")
    with version.open("data/cat.png") as f:
        assert f.read() == b"\x89PNG cat"
    with version.open("labels.csv") as f:
        assert f.read() == b"cat,1\n"
    with pytest.raises(ArtvcError):
        version.get_entry("nope")
    with pytest.raises(ArtvcError):
        version.open("nope")


def test_add_file_twice_keeps_both_files(api_repo):
    root, repo = api_repo
    write(root / "data" / "cat.png", b"cat")
    write(root / "data" / "dog.png", b"dog")
    art = Artifact("pets")
    art.add_file("data/cat.png")
    art.add_file("data/dog.png")
    version = repo.log_artifact(art)
    assert sorted(e.path for e in version.entries) == ["data/cat.png", "data/dog.png"]
    assert version.open("data/cat.png").read() == b"cat"
    assert version.open("data/dog.png").read() == b"dog"


def test_entry_names_override_paths(api_repo):
    root, repo = api_repo
    write(root / "data" / "x.bin", b"x")
    write(root / "data" / "imgs" / "one.png", b"one")
    art = Artifact("renamed")
    art.add_file("data/x.bin", name="model/weights.bin")
    art.add_dir("data/imgs", name="pictures")
    version = repo.log_artifact(art)
    assert sorted(e.path for e in version.entries) == ["model/weights.bin", "pictures/one.png"]
    assert version.open("pictures/one.png").read() == b"one"


def test_log_artifact_versions_and_cli_interop(api_repo, cli):
    root, repo = api_repo
    write(root / "m.bin", b"weights 0")
    art = Artifact("model", type="model")
    art.add_file("m.bin")
    v0 = repo.log_artifact(art)
    write(root / "m.bin", b"weights 1")
    art = Artifact("model", type="model")
    art.add_file("m.bin")
    v1 = repo.log_artifact(art, message="better")
    assert (v0.spec, v1.spec) == ("model:v0", "model:v1")
    assert v0.id != v1.id
    assert "latest" in v1.aliases and "latest" not in v0.aliases
    assert assert_ok(cli("cat", "model:v0", "m.bin")).outb == b"weights 0"
    info = assert_ok(cli("show", "model", "--json")).json()
    assert (info["id"], info["type"], info["message"]) == (v1.id, "model", "better")


def test_use_artifact_by_every_spec_form(api_repo, cli):
    root, repo = api_repo
    write(root / "f.txt", b"zero")
    art = Artifact("ds")
    art.add_file("f.txt")
    v0 = repo.log_artifact(art, aliases=["best"])
    write(root / "f.txt", b"one")
    art = Artifact("ds")
    art.add_file("f.txt")
    v1 = repo.log_artifact(art)
    assert repo.use_artifact("ds:best").id == v0.id
    assert repo.use_artifact("ds:best").open("f.txt").read() == b"zero"
    assert repo.use_artifact("ds").id == v1.id
    assert repo.use_artifact("ds:latest").id == v1.id
    assert repo.use_artifact("ds:v0").id == v0.id
    assert repo.use_artifact("ds:" + v0.id[:6]).id == v0.id
    assert_ok(cli("alias", "ds:v1", "best"))
    assert repo.use_artifact("ds:best").id == v1.id
    for bad in ("ds:v5", "ds:nosuch", "nosuch", "bad name"):
        with pytest.raises(ArtvcError):
            repo.use_artifact(bad)


def test_download_and_verify(api_repo, tmp_path):
    root, repo = api_repo
    payload = os.urandom(300_000)
    write(root / "d" / "big.bin", payload)
    write(root / "d" / "empty", b"")
    write(root / "d" / "nested" / "n.txt", b"nested")
    os.chmod(root / "d" / "nested" / "n.txt", 0o755)
    os.symlink("big.bin", root / "d" / "link")
    art = Artifact("bundle")
    art.add_dir("d")
    version = repo.log_artifact(art)
    assert version.verify() == []

    out = tmp_path / "download"
    result = version.download(root=str(out))
    assert os.path.samefile(result, out)
    assert (out / "d" / "big.bin").read_bytes() == payload
    assert (out / "d" / "empty").read_bytes() == b""
    assert (out / "d" / "nested" / "n.txt").read_bytes() == b"nested"
    assert os.access(out / "d" / "nested" / "n.txt", os.X_OK)
    assert os.readlink(out / "d" / "link") == "big.bin"
    assert snapshot(out) == snapshot(root, skip=(".artvc",))


def test_api_refuses_invalid_names_and_aliases(api_repo):
    root, repo = api_repo
    for bad in ("bad name", "", "-x", "é"):
        with pytest.raises(ArtvcError):
            Artifact(bad)
    write(root / "f.txt", b"f")
    for alias in ("latest", "v3"):
        art = Artifact("ds")
        art.add_file("f.txt")
        with pytest.raises(ArtvcError):
            repo.log_artifact(art, aliases=[alias])
    with pytest.raises(ArtvcError):
        repo.use_artifact("ds")
    with pytest.raises(ArtvcError):
        Artifact("ok").add_file("missing.txt")
    with pytest.raises(ArtvcError):
        Artifact("ok").add_dir("missing-dir")


def test_run_records_inputs_and_job_type(api_repo, cli):
    root, repo = api_repo
    write(root / "data" / "train.csv", b"x,y\n1,2\n")
    data = Artifact("train-data")
    data.add_dir("data")
    ds_version = repo.log_artifact(data)

    write(root / "model.bin", b"trained")
    with repo.run(job_type="train") as run:
        ds = run.use_artifact("train-data:latest")
        assert ds.open("data/train.csv").read() == b"x,y\n1,2\n"
        model = Artifact("model", type="model")
        model.add_file("model.bin")
        model_version = run.log_artifact(model)
    assert ds.id == ds_version.id
    assert ds_version.id in model_version.inputs
    again = repo.use_artifact("model:latest")
    assert again.inputs == [ds_version.id]
    info = assert_ok(cli("show", "model", "--json")).json()
    assert info["inputs"] == [ds_version.id]
    assert info["job_type"] == "train"

    # outside the run, nothing is recorded any more
    write(root / "other.bin", b"other")
    other = Artifact("other")
    other.add_file("other.bin")
    assert repo.log_artifact(other).inputs == []


def test_versions_logged_before_an_exception_in_a_run_stay(api_repo):
    root, repo = api_repo
    write(root / "ckpt.bin", b"checkpoint 1")
    with pytest.raises(RuntimeError):
        with repo.run(job_type="train") as run:
            ckpt = Artifact("ckpt", type="checkpoint")
            ckpt.add_file("ckpt.bin")
            logged = run.log_artifact(ckpt)
            raise RuntimeError("training crashed")
    kept = repo.use_artifact("ckpt:v0")
    assert kept.id == logged.id
    assert kept.open("ckpt.bin").read() == b"checkpoint 1"
    assert kept.verify() == []

