"""Lineage across artifacts and remotes, its renderings, and artvc.lock through a real git repository."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

import artvc
from conftest import assert_error, assert_ok, git, sha, write


def commit_line(result, name):
    specs = [s for s, _ in _pairs(result)]
    assert any(s.startswith(name + ":") for s in specs), str(result)
    return dict(_pairs(result))


def _pairs(result):
    return re.findall(r"^(\S+:v\d+) ([0-9a-f]{12})$", result.out, re.M)


@pytest.fixture
def chain(repo, cli):
    """raw -> ds -> model, with model also made from raw directly."""
    write(repo / "raw" / "r.csv", "1,2\n")
    assert_ok(cli("add", "raw"))
    assert_ok(cli("commit", "raw", "-m", "raw"))
    write(repo / "ds" / "d.csv", "3,4\n")
    assert_ok(cli("add", "ds"))
    assert_ok(cli("commit", "ds", "--input", "raw"))
    write(repo / "model" / "w.bin", b"\x00weights")
    assert_ok(cli("add", "model", "-t", "model"))
    assert_ok(cli("commit", "model", "--input", "ds", "--input", "raw:v0"))
    return repo


def graph(cli, *args):
    result = assert_ok(cli("lineage", *args, "--format", "json"))
    data = json.loads(result.out)
    specs = {n["id"]: n["spec"] for n in data["nodes"]}
    return {n["spec"] for n in data["nodes"]}, {(specs[e["from"]], specs[e["to"]]) for e in data["edges"]}, data


def test_lineage_up_and_down_across_three_artifacts(chain, cli):
    nodes, edges, data = graph(cli, "model")
    assert nodes == {"model:v0", "ds:v0", "raw:v0"}
    assert edges == {("ds:v0", "model:v0"), ("raw:v0", "model:v0"), ("raw:v0", "ds:v0")}
    assert {n["type"] for n in data["nodes"] if n["spec"] == "model:v0"} == {"model"}
    assert set(data["nodes"][0]) >= {"id", "artifact", "version", "spec", "type"}

    nodes, edges, _ = graph(cli, "raw", "--down")
    assert nodes == {"raw:v0", "ds:v0", "model:v0"}
    assert ("raw:v0", "ds:v0") in edges and ("ds:v0", "model:v0") in edges

    nodes, _, _ = graph(cli, "model", "--depth", "1")
    assert nodes == {"model:v0", "ds:v0", "raw:v0"}
    nodes, _, _ = graph(cli, "raw", "--down", "--depth", "1")
    assert nodes == {"raw:v0", "ds:v0", "model:v0"}
    nodes, _, _ = graph(cli, "ds", "--depth", "0")
    assert nodes == {"ds:v0"}

    text = assert_ok(cli("lineage", "model")).out
    assert text.splitlines()[0].startswith("model:v0 (model)")
    assert "ds:v0" in text and "raw:v0" in text


def test_inputs_are_pinned_by_id(chain, cli):
    before = json.loads(assert_ok(cli("show", "ds", "--json")).out)["inputs"]
    write(chain / "raw" / "r.csv", "changed\n")
    assert_ok(cli("commit", "raw"))
    after = json.loads(assert_ok(cli("show", "ds", "--json")).out)["inputs"]
    raw_v0 = json.loads(assert_ok(cli("show", "raw:v0", "--json")).out)["id"]
    assert before == after == [raw_v0]


@pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"), reason="graphviz (dot) is not installed")
def test_dot_output_renders_with_graphviz(chain, cli, tmp_path):
    dot = assert_ok(cli("lineage", "model", "--format", "dot")).out
    out = tmp_path / "lineage.svg"
    subprocess.run(["dot", "-Tsvg", "-o", str(out)], input=dot.encode(), check=True)
    svg = out.read_text()
    assert "<svg" in svg and "model:v0" in svg and "raw:v0" in svg and "ds:v0" in svg
    plain = subprocess.run(["dot", "-Tplain"], input=dot.encode(), check=True, capture_output=True).stdout.decode()
    assert sum(1 for line in plain.splitlines() if line.startswith("edge ")) == 3


def test_mermaid_output_is_well_formed(chain, cli):
    text = assert_ok(cli("lineage", "model", "--format", "mermaid")).out.splitlines()
    assert text[0] == "graph LR"
    node_ids = set()
    edges = 0
    for line in text[1:]:
        node = re.fullmatch(r'  (v[0-9a-f]{12})\["[^"]+"\]', line)
        edge = re.fullmatch(r"  (v[0-9a-f]{12}) --> (v[0-9a-f]{12})", line)
        assert node or edge, line
        if node:
            node_ids.add(node.group(1))
        else:
            assert {edge.group(1), edge.group(2)} <= node_ids
            edges += 1
    assert len(node_ids) == 3 and edges == 3


def test_run_context_records_inputs_and_job_type(repo):
    write(repo / "data" / "x.csv", "x\n")
    write(repo / "m.bin", b"model")
    r = artvc.Repo(str(repo))
    ds_art = artvc.Artifact("ds")
    ds_art.add_dir(str(repo / "data"))
    ds = r.log_artifact(ds_art)
    with r.run(job_type="train") as run:
        used = run.use_artifact("ds:latest")
        model_art = artvc.Artifact("model", type="model")
        model_art.add_file(str(repo / "m.bin"))
        model = run.log_artifact(model_art)
    assert used.id == ds.id
    assert model.inputs == [ds.id]
    assert model.record.job_type == "train"
    graph_ = r.lineage("model")
    assert {(graph_.nodes[a].spec, graph_.nodes[b].spec) for a, b in graph_.edges} == {("ds:v0", "model:v0")}


def test_lineage_travels_across_two_remotes(chain, cli, tmp_path, monkeypatch):
    share1, share2 = tmp_path / "share1", tmp_path / "share2"
    assert_ok(cli("remote", "add", "one", str(share1)))
    assert_ok(cli("remote", "add", "two", str(share2)))
    assert_ok(cli("push", "one"))
    ids = {n["spec"]: n["id"] for n in json.loads(assert_ok(cli("lineage", "model", "--format", "json")).out)["nodes"]}
    # A teammate clones from the first share, adds a version made from the model, and pushes to the second.
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", str(share1), "mate"))
    monkeypatch.chdir(tmp_path / "mate")
    assert_ok(cli("pull"))
    write(tmp_path / "mate" / "report" / "eval.txt", "accuracy 0.9\n")
    assert_ok(cli("add", "report"))
    assert_ok(cli("commit", "report", "--input", "model"))
    assert_ok(cli("remote", "add", "two", str(share2)))
    assert_ok(cli("push", "two"))
    # A third repository cloned from the second share sees the whole graph, offline.
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", str(share2), "third"))
    monkeypatch.chdir(tmp_path / "third")
    shutil.move(str(share2), str(tmp_path / "share2-gone"))
    nodes, edges, data = graph(cli, "report")
    assert ("model:v0", "report:v0") in edges
    got = {n["spec"]: n["id"] for n in data["nodes"]}
    assert got["model:v0"] == ids["model:v0"]
    assert {"ds:v0", "raw:v0"} <= nodes
    nodes, edges, _ = graph(cli, "raw", "--down")
    assert "report:v0" in nodes


@pytest.fixture
def gitrepo(repo):
    git("init", "-q", cwd=repo)
    git("config", "user.email", "dev@example.com", cwd=repo)
    git("config", "user.name", "Dev", cwd=repo)
    write(repo / ".gitignore", "data/\n.artvc/\n")
    return repo


def test_lock_round_trip_through_git(gitrepo, cli, tmp_path):
    repo = gitrepo
    write(repo / "data" / "a.bin", b"version zero")
    assert_ok(cli("add", "data", "-a", "ds"))
    v0 = commit_line(assert_ok(cli("commit", "-m", "v0")), "ds")
    lock = (repo / "artvc.lock").read_text()
    assert re.search(r"^ds v0 [0-9a-f]{64}$", lock, re.M)
    git("add", ".gitignore", "artvc.lock", cwd=repo)
    git("commit", "-q", "-m", "data v0", cwd=repo)
    old_commit = git("rev-parse", "HEAD", cwd=repo).strip()
    v0_hash = sha(repo / "data" / "a.bin")

    write(repo / "data" / "a.bin", b"version one, longer")
    assert_ok(cli("commit", "-m", "v1"))
    assert re.search(r"^ds v1 ", (repo / "artvc.lock").read_text(), re.M)
    git("commit", "-q", "-am", "data v1", cwd=repo)

    git("checkout", "-q", old_commit, cwd=repo)
    status = assert_ok(cli("status", "--json")).json()
    assert [d["artifact"] for d in status["lock"]] == ["ds"]
    assert status["lock"][0]["lock"] == "ds:v0" and status["lock"][0]["head"] == "ds:v1"
    text = assert_ok(cli("status")).out
    assert "artvc.lock names ds:v0" in text

    assert_ok(cli("checkout", "--lock"))
    assert sha(repo / "data" / "a.bin") == v0_hash
    assert assert_ok(cli("status", "--json")).json()["lock"] == []
    assert git("status", "--porcelain", cwd=repo).strip() == ""
    assert v0


def test_checkout_lock_refuses_modified_files_and_leaves_other_artifacts(gitrepo, cli):
    repo = gitrepo
    write(repo / "data" / "a.bin", b"zero")
    write(repo / "other" / "o.txt", "other zero")
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("add", "other", "-a", "other"))
    assert_ok(cli("commit"))
    lock_v0 = (repo / "artvc.lock").read_text()
    write(repo / "data" / "a.bin", b"one")
    write(repo / "other" / "o.txt", "other one")
    assert_ok(cli("commit"))
    (repo / "artvc.lock").write_text("\n".join(l for l in lock_v0.splitlines() if not l.startswith("other ")) + "\n")
    write(repo / "data" / "a.bin", b"unsaved edit")
    assert_error(cli("checkout", "--lock"), "data/a.bin")
    assert (repo / "data" / "a.bin").read_bytes() == b"unsaved edit"
    assert_ok(cli("checkout", "--lock", "--force"))
    assert (repo / "data" / "a.bin").read_bytes() == b"zero"
    assert (repo / "other" / "o.txt").read_text() == "other one"


def test_checkout_lock_fetches_from_the_default_remote(gitrepo, cli, tmp_path, monkeypatch):
    repo = gitrepo
    write(repo / "data" / "a.bin", b"zero")
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit"))
    assert_ok(cli("remote", "add", "origin", str(tmp_path / "share")))
    assert_ok(cli("push"))
    lock_text = (repo / "artvc.lock").read_text()
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", str(tmp_path / "share"), "mate"))
    mate = tmp_path / "mate"
    (mate / "artvc.lock").write_text(lock_text)
    monkeypatch.chdir(mate)
    assert_ok(cli("checkout", "--lock"))
    assert (mate / "data" / "a.bin").read_bytes() == b"zero"


def test_checkout_lock_without_a_remote_names_fetch(repo, cli, tmp_path):
    (repo / "artvc.lock").write_text("ds v3 " + "ab" * 32 + "\n")
    assert_error(cli("checkout", "--lock"), "fetch")
