"""The streaming paths that keep memory flat with the file count: the scan in manifest order, the
writer's pass-through items, ids the writer forgets once indexed, the commit's digest reuse, the
checkout into an empty folder, and a push that sends part of a pack."""
from __future__ import annotations

import dataclasses
import os
import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artvc import storewriter, workspace
from artvc import store as store_mod
from artvc.api import Repo
from artvc.chunker import hash_bytes
from artvc.errors import MissingDataError, PathError
from artvc.manifest import manifest_key
from artvc.packs import BLOB_DATA, read_pack_index
from artvc.remote.fsspec_backend import open_backend
from artvc.remote.sync import Sync
from artvc.storewriter import StoreWriter
from conftest import assert_ok, write


def test_scan_yields_manifest_order(tmp_path):
    """Folders sort as name + "/": "a.txt" and "a-b" come before "a/...", "ab" after it."""
    repo = Repo.init(str(tmp_path))
    names = ["a.txt", "a-b", "a/b", "a/c/d", "a/c.txt", "ab", "Z", "\u00e9t\u00e9.bin", "z/\u00fc"]
    for name in names:
        write(tmp_path / name, name)
    os.symlink("a.txt", tmp_path / "link")
    ws = repo.workspace
    expected = sorted(names + ["link"], key=manifest_key)
    assert [f.path for f in ws.iter_scan(["."])] == expected
    # several tracked paths, given in any order, interleave the same way
    assert [f.path for f in ws.iter_scan(["ab", "a", "a-b", "a.txt", "a/c"])] == [
        p for p in expected if p in ("ab", "a-b", "a.txt") or p.startswith("a/")
    ]
    repo.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 9000)), max_size=80), st.integers(1, 5))
def test_add_paths_keeps_order_with_pass_through(tmp_path_factory, plan, batch_files):
    """Files to read (sizes) and keys passed through (None) come back in exactly the order given."""
    root = tmp_path_factory.mktemp("pass")
    repo = Repo.init(str(root))
    rng = random.Random(len(plan))
    items, contents = [], {}
    for i, size in enumerate(plan):
        if size is None:
            items.append((f"key{i}", None, 0))
            continue
        path = root / f"f{i}"
        contents[f"f{i}"] = data = rng.randbytes(size)
        path.write_bytes(data)
        items.append((f"f{i}", str(path), size))
    old = storewriter.BATCH_FILES, storewriter.BATCH_ITEMS
    storewriter.BATCH_FILES, storewriter.BATCH_ITEMS = batch_files, 3
    try:
        with StoreWriter(repo._repository.store) as writer:
            got = list(writer.add_paths(iter(items)))
    finally:
        storewriter.BATCH_FILES, storewriter.BATCH_ITEMS = old
    assert [key for key, _, _ in got] == [key for key, _, _ in items]
    for key, chunks, after in got:
        if key.startswith("key"):
            assert chunks is None and after is None
        else:
            assert chunks.size == len(contents[key]) and after.st_size == len(contents[key])
            assert b"".join(repo._repository.store.iter_file(chunks.chunks)) == contents[key]
    repo.close()


def test_writer_forgets_indexed_ids_and_stores_each_blob_once(tmp_path, monkeypatch):
    """With a tiny index batch, the set of ids awaiting the index stays small, and repeated blobs
    are still stored once."""
    monkeypatch.setattr(store_mod, "INDEX_BATCH_BLOBS", 8)
    repo = Repo.init(str(tmp_path))
    store = repo._repository.store
    store.settings = dataclasses.replace(store.settings, pack_size=1024)
    blobs = [os.urandom(64) + bytes([i % 256]) for i in range(300)]
    largest = 0
    with StoreWriter(store) as writer:
        for round_ in range(2):
            for data in blobs:
                writer.add_blob(data, BLOB_DATA)
                largest = max(largest, len(writer._pending))
    assert largest < 150
    assert all(store.get_blob(hash_bytes(b)) == b for b in blobs)
    held = 0
    for path in store.list_pack_files():
        with open(path, "rb") as f:
            held += len(read_pack_index(f, os.path.getsize(path)))
    assert held == len(blobs)
    repo.close()


def test_commit_takes_a_cached_digest_from_another_version_unread(repo, cli, monkeypatch):
    """A file checked out from v1 while the head is v2 has a stat-cache digest that is not the
    head's entry: the commit finds its chunks without reading it."""
    monkeypatch.setattr(workspace, "RACY_WINDOW_NS", 0)  # trust digests of files written just now
    monkeypatch.setattr(workspace, "RACY_WINDOW_FINE_NS", 0)
    write(repo / "data" / "one.bin", b"first\n")
    write(repo / "data" / "keep.bin", b"same\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit", "-m", "v0"))
    write(repo / "data" / "one.bin", b"second\n")
    assert_ok(cli("commit", "-m", "v1"))
    assert_ok(cli("checkout", "ds:v0", "data/one.bin"))
    assert (repo / "data" / "one.bin").read_bytes() == b"first\n"
    read = []
    original = storewriter._read_small
    monkeypatch.setattr(storewriter, "_read_small", lambda path, size: read.append(path) or original(path, size))
    api = Repo(str(repo))
    api.commit(["ds"])
    entries = {e.path: e for e in api.resolve("ds:latest").entries}
    first = {e.path: e for e in api.resolve("ds:v0").entries}
    assert entries == first
    assert read == []
    api.close()


def test_checkout_to_empty_folder_streams_and_checks_first(repo, cli, tmp_path):
    write(repo / "data" / "a.bin", os.urandom(3000))
    write(repo / "data" / "sub" / "b.bin", os.urandom(5000))
    os.symlink("a.bin", repo / "data" / "ln")
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit"))
    api = Repo(str(repo))
    out = tmp_path / "out"
    result = api.checkout("ds", to=str(out))
    assert result.written == 3
    assert (out / "data" / "sub" / "b.bin").read_bytes() == (repo / "data" / "sub" / "b.bin").read_bytes()
    assert os.readlink(out / "data" / "ln") == "a.bin"
    with pytest.raises(PathError):
        api.checkout("ds", ["nothing/here"], to=str(tmp_path / "none"))
    # a chunk missing from the store: refused before anything is written
    entry = api.resolve("ds").get_entry("data/sub/b.bin")
    with api._repository.index.write() as txn:
        assert api._repository.store.unindex_blob(txn, entry.chunks[0][0], api._repository.store.locate(entry.chunks[0][0], txn).pack_id)
    with pytest.raises(MissingDataError):
        api.checkout("ds", to=str(tmp_path / "missing"))
    assert not (tmp_path / "missing").exists() or os.listdir(tmp_path / "missing") == []
    api.close()


def test_push_of_part_of_a_pack_sends_only_that_part(tmp_path):
    """Blobs of one local pack, pushed in part and with repeats: the remote pack holds each wanted blob once."""
    repo = Repo.init(str(tmp_path / "repo"))
    repository = repo._repository
    datas = [os.urandom(2000 + i) for i in range(6)]
    with StoreWriter(repository.store) as writer:
        ids = [writer.add_blob(d, BLOB_DATA) for d in datas]
    assert len(repository.store.list_pack_files()) == 1
    remote = tmp_path / "remote"
    sync = Sync(repository, "origin", open_backend(str(remote)))
    sync.check_remote(create=True)
    sync.transfer.refresh_index()
    assert sync.transfer.upload_blobs([ids[0], ids[2], ids[0], ids[4], ids[2]]) == 1
    packs = [os.path.join(d, f) for d, _, fs in os.walk(remote) for f in fs if f.endswith(".pack")]
    assert len(packs) == 1
    with open(packs[0], "rb") as f:
        sent = sorted(e.blob_id for e in read_pack_index(f, os.path.getsize(packs[0])))
    assert sent == sorted({ids[0], ids[2], ids[4]})
    # what the remote has is not sent again; the whole pack goes up as it is once every blob is wanted
    assert sync.transfer.upload_blobs([ids[0], ids[2]]) == 0
    assert sync.transfer.upload_blobs(ids) == 1
    repo.close()


def test_status_merges_scan_and_entries_in_order(repo, cli):
    """A file that became a folder, a file that became a link, edits and new files around them."""
    write(repo / "data" / "a", b"file\n")
    write(repo / "data" / "a.txt", b"keep\n")
    write(repo / "data" / "b.bin", b"b\n")
    write(repo / "data" / "\u00e9.bin", b"e\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit"))
    os.remove(repo / "data" / "a")
    write(repo / "data" / "a" / "x", b"inside\n")
    os.remove(repo / "data" / "b.bin")
    os.symlink("a.txt", repo / "data" / "b.bin")
    write(repo / "data" / "\u00e9.bin", b"E\n")
    write(repo / "data" / "z.new", b"new\n")
    changes = Repo(str(repo)).status("ds")["ds"]
    assert changes.added == ["data/a/x", "data/z.new"]
    assert changes.deleted == ["data/a"]
    assert changes.modified == ["data/b.bin", "data/\u00e9.bin"]


def test_racy_window_follows_the_timestamp_resolution(tmp_path):
    """Sub-second mtimes are trusted 100 ms after they pass; whole-second ones (coarse file systems) after 2 s."""
    assert workspace.racy_until(5_000_000_000) == 7_000_000_000
    assert workspace.racy_until(5_000_000_123) == 5_100_000_123
    repo = Repo.init(str(tmp_path))
    ws = repo.workspace
    now = time.time_ns()
    fine, coarse = tmp_path / "fine.bin", tmp_path / "coarse.bin"
    write(fine, b"fine\n")
    write(coarse, b"coarse\n")
    os.utime(fine, ns=(now - 500_000_123, now - 500_000_123))
    whole = (now // 1_000_000_000 - 1) * 1_000_000_000
    os.utime(coarse, ns=(whole, whole))
    files = {f.path: f for f in ws.iter_scan(["."])}
    ws.digests(files.values())
    with repo._repository.cache.read() as txn:
        assert ws.cached_digest(txn, files["fine.bin"]) == hash_bytes(b"fine\n")
        assert ws.cached_digest(txn, files["coarse.bin"]) is None
    repo.close()
