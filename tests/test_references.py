"""External references: data tracked by URI and checksum, never by its bytes.

Real sources only: local files (file://), moto's S3 server (an unversioned and a versioned bucket), the test
OpenSSH server (sftp://) and a local HTTP server (Python's http.server on 127.0.0.1, with ETag headers).

For every scheme: `add --ref`, commit, `ls` shows the URI and checksum kinds, the store (and a remote) hold no
data bytes, checkout into the workspace and `--to DIR` gives the exact bytes, a changed source is named by
`verify --refs` (exit 1) and refused by checkout (exit 1, nothing replaced or created).  Then: pinned S3
versions, prefixes and folders, max_objects, --no-checksum, unreachable sources (--strict), the Python API,
diff and status.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

import artvc
from artvc.errors import ArtvcError
from conftest import assert_error, assert_ok, write
from servers import free_port

MIB = 1 << 20
BIG = 3 * MIB + 12345  # a multi-MiB object: storing its bytes would be obvious
STORE_SLACK = 8 * 1024  # records, manifests and indexes of a reference-only version: a few KiB at most
HASH_KINDS = {"blake3", "sha256", "sha1", "md5", "blake2b", "xxhash", "xxh64", "xxh3"}
LS_REF = re.compile(r"^\s*(\d+)\s+(\S+) <- (\S+) \[(.*)\]$")


def payload(n: int, seed: str) -> bytes:
    """Deterministic, incompressible-enough bytes (different seeds never share a block)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:n])


def tree_bytes(top: Path) -> int:
    """Total size of the regular files below `top` (folders themselves not counted)."""
    total = 0
    for folder, _, files in os.walk(top):
        for f in files:
            p = os.path.join(folder, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def packs_bytes(repo: Path) -> int:
    return tree_bytes(repo / ".artvc" / "packs")


def listing(top: Path) -> set[str]:
    """Every path below `top` (files and folders), except the store and the lock file."""
    out = set()
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in (".artvc", ".git")]
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(folder, name), top)
            if rel != "artvc.lock":
                out.add(rel)
    return out


def ls_refs(result) -> dict[str, tuple[int, str, list[str]]]:
    """entry path -> (size, uri, checksum kinds) from the text output of `artvc ls`."""
    out = {}
    for line in result.out.splitlines():
        m = LS_REF.match(line)
        if m:
            kinds = [k.strip() for k in m.group(4).split(",") if k.strip()]
            out[m.group(2)] = (int(m.group(1)), m.group(3), kinds)
    return out


# ---- a local HTTP server with ETag ------------------------------------------------------------------------
class _Handler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler sends Content-Length and Last-Modified; this one adds an ETag (MD5 of the file)."""

    send_etag = True

    def send_header(self, keyword, value):
        super().send_header(keyword, value)
        if keyword == "Last-Modified" and self.send_etag:
            path = self.translate_path(self.path)
            try:
                with open(path, "rb") as fh:
                    digest = hashlib.md5(fh.read()).hexdigest()
            except OSError:
                return
            super().send_header("ETag", f'"{digest}"')

    def log_message(self, format, *args):  # keep the test output clean
        pass


class _NoEtagHandler(_Handler):
    send_etag = False


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that hangs up early is not the test's business
        pass


@dataclass
class HTTPSource:
    root: Path
    port: int
    server: http.server.ThreadingHTTPServer
    thread: threading.Thread
    running: bool = True

    def url(self, rel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{rel}"

    def stop(self) -> None:
        if self.running:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(10)
            self.running = False


def _start_http(root: Path, handler: type) -> HTTPSource:
    root.mkdir(parents=True, exist_ok=True)

    def make(*args, **kwargs):
        return handler(*args, directory=str(root), **kwargs)

    server = _QuietServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return HTTPSource(root, server.server_address[1], server, thread)


@pytest.fixture
def http_source(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    src = _start_http(tmp_path / "http-root", _Handler)
    yield src
    src.stop()


@pytest.fixture
def http_source_no_etag(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    src = _start_http(tmp_path / "http-plain", _NoEtagHandler)
    yield src
    src.stop()


# ---- one interface over every kind of source -------------------------------------------------------------
@dataclass
class Source:
    """Where referenced objects live: `uri(rel)` names one, `put(rel, data)` creates or overwrites it."""

    kind: str
    uri: Callable[[str], str]
    put: Callable[[str, bytes], None]
    required_kinds: set[str]
    needs_content_hash: bool = False
    versioned: bool = False
    client: object = None
    bucket: str = ""


def _local_put(root: Path) -> Callable[[str, bytes], None]:
    def put(rel: str, data: bytes) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        old = path.stat().st_mtime if existed else None
        path.write_bytes(data)
        if old is not None:  # a visible change of mtime too (Last-Modified has a resolution of one second)
            os.utime(path, (old + 7, old + 7))

    return put


def make_file_source(tmp_path: Path) -> Source:
    root = tmp_path / "file-src"
    root.mkdir()
    return Source("file", lambda rel: (root / rel).as_uri(), _local_put(root), set(), needs_content_hash=True)


def make_s3_source(s3_env, versioned: bool) -> Source:
    bucket = s3_env.make_bucket(s3_env.unique_bucket("artvc-ref"), versioned=versioned)
    client = s3_env.client()

    def put(rel: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=rel, Body=data)

    kinds = {"etag", "version_id"} if versioned else {"etag"}
    return Source("s3v" if versioned else "s3", lambda rel: f"s3://{bucket}/{rel}", put, kinds,
                  versioned=versioned, client=client, bucket=bucket)


def make_sftp_source(ssh_home) -> Source:
    ssh_home.trust_host()
    server = ssh_home.server
    root = server.data_dir / f"refs-{uuid.uuid4().hex[:12]}"
    root.mkdir()
    return Source("sftp", lambda rel: server.url(root / rel), _local_put(root), {"mtime"}, needs_content_hash=True)


def make_http_source(http_source: HTTPSource) -> Source:
    return Source("http", http_source.url, _local_put(http_source.root), {"etag", "content_length", "last_modified"})


SCHEMES = ["file", "s3", "s3v", "sftp", "http"]


@pytest.fixture
def source(request, tmp_path) -> Source:
    kind = request.param
    if kind == "file":
        return make_file_source(tmp_path)
    if kind in ("s3", "s3v"):
        return make_s3_source(request.getfixturevalue("s3_env"), versioned=kind == "s3v")
    if kind == "sftp":
        return make_sftp_source(request.getfixturevalue("ssh_home"))
    if kind == "http":
        return make_http_source(request.getfixturevalue("http_source"))
    raise AssertionError(kind)


def s3_version_ids(src: Source, key: str) -> list[str]:
    """Version ids of one key, oldest first (S3 lists them newest first; IsLatest marks the current one)."""
    found = src.client.list_object_versions(Bucket=src.bucket, Prefix=key).get("Versions", [])
    found = [v for v in found if v["Key"] == key]
    assert found and found[0]["IsLatest"], found
    return [v["VersionId"] for v in reversed(found)]


# ---- the core flow, for every scheme ---------------------------------------------------------------------
@pytest.mark.parametrize("source", SCHEMES, indirect=True)
def test_reference_roundtrip_no_bytes_stored(cli, repo, tmp_path, source):
    data = payload(BIG, f"{source.kind}-a")
    source.put("blob.bin", data)
    uri = source.uri("blob.bin")
    before = packs_bytes(repo)

    assert_ok(cli("add", "--ref", uri, "-a", "ext"))
    commit = assert_ok(cli("commit", "-m", "reference"))
    assert [(n, v) for n, v, _ in commit.commit_lines()] == [("ext", 0)], str(commit)

    # no data bytes in the store
    grown = packs_bytes(repo) - before
    assert grown < STORE_SLACK, f"the store grew by {grown} bytes for a {BIG}-byte reference"
    assert not (repo / "blob.bin").exists(), "commit must not fetch a reference into the workspace"

    # ls: the URI and the checksum kinds the source gives
    shown = ls_refs(assert_ok(cli("ls", "ext")))
    assert set(shown) == {"blob.bin"}, str(shown)
    size, shown_uri, kinds = shown["blob.bin"]
    assert size == BIG
    if source.versioned:
        vid = s3_version_ids(source, "blob.bin")[-1]
        assert shown_uri == f"{uri}?versionId={vid}", shown_uri
    else:
        assert shown_uri == uri
    assert source.required_kinds <= set(kinds), kinds
    if source.needs_content_hash:
        assert HASH_KINDS & set(kinds), f"{source.kind} references need a content hash, got {kinds}"
    listed = assert_ok(cli("ls", "ext", "--json")).json()
    assert [e["kind"] for e in listed] == ["reference"]
    assert listed[0]["path"] == "blob.bin" and listed[0]["size"] == BIG
    log = assert_ok(cli("log", "ext"))
    assert "references: 1" in log.out, str(log)

    # a remote holds no data bytes either
    remote_dir = tmp_path / "remote"
    assert_ok(cli("remote", "add", "origin", str(remote_dir)))
    assert_ok(cli("push", "origin"))
    assert tree_bytes(remote_dir) < STORE_SLACK, f"the remote holds {tree_bytes(remote_dir)} bytes"

    # checkout: exact bytes, in the workspace and under --to; nothing stored on the way
    assert_ok(cli("checkout", "ext:v0"))
    assert (repo / "blob.bin").read_bytes() == data
    out_dir = tmp_path / "out"
    assert_ok(cli("checkout", "ext:v0", "--to", str(out_dir)))
    assert (out_dir / "blob.bin").read_bytes() == data
    assert listing(out_dir) == {"blob.bin"}
    assert packs_bytes(repo) - before < STORE_SLACK, "checkout must not keep referenced bytes in the store"
    assert_ok(cli("verify", "--refs"))

    # the source changes (same size, other bytes)
    changed = payload(BIG, f"{source.kind}-b")
    source.put("blob.bin", changed)
    if source.versioned:
        # the recorded version is pinned: still matches, checkout still gives the old bytes
        assert_ok(cli("verify", "--refs"))
        (repo / "blob.bin").unlink()
        assert_ok(cli("checkout", "ext:v0"))
        assert (repo / "blob.bin").read_bytes() == data
        pinned_out = tmp_path / "pinned-out"
        assert_ok(cli("checkout", "ext:v0", "--to", str(pinned_out)))
        assert (pinned_out / "blob.bin").read_bytes() == data
        return

    verified = cli("verify", "--refs")
    assert verified.code == 1, str(verified)
    assert "blob.bin" in verified.out + verified.err, str(verified)
    assert "Traceback" not in verified.err

    # checkout refuses: error names the entry, no file created (workspace and --to), nothing half-written
    (repo / "blob.bin").unlink()
    before_listing = listing(repo)
    refused = cli("checkout", "ext:v0")
    assert_error(refused, "blob.bin")
    assert not (repo / "blob.bin").exists()
    assert listing(repo) == before_listing, "a refused checkout left files behind"
    out2 = tmp_path / "out2"
    refused = cli("checkout", "ext:v0", "--to", str(out2))
    assert_error(refused, "blob.bin")
    assert not out2.exists() or listing(out2) == set(), listing(out2)


@pytest.mark.parametrize("source", ["file", "s3", "sftp", "http"], indirect=True)
def test_checkout_refuses_drift_without_replacing_workspace_file(cli, repo, source):
    """v0 = A, v1 = B checked out; the source becomes C: checkout v0 (and v1) refuse, B stays in place."""
    a, b, c = (payload(200_000, f"{source.kind}-{s}") for s in "abc")
    source.put("model.bin", a)
    assert_ok(cli("add", "--ref", source.uri("model.bin"), "--as", "weights/model.bin", "-a", "mdl"))
    assert_ok(cli("commit", "-m", "A"))
    source.put("model.bin", b)
    commit = assert_ok(cli("commit", "-m", "B"))
    assert [(n, v) for n, v, _ in commit.commit_lines()] == [("mdl", 1)], str(commit)
    assert_ok(cli("checkout", "mdl:v1"))
    target = repo / "weights" / "model.bin"
    assert target.read_bytes() == b

    source.put("model.bin", c)
    before = listing(repo)
    refused = cli("checkout", "mdl:v0")
    assert_error(refused, "weights/model.bin")
    assert target.read_bytes() == b, "a refused checkout replaced the workspace file"
    assert listing(repo) == before
    verified = cli("verify", "--refs", "mdl:v1")
    assert verified.code == 1 and "weights/model.bin" in verified.out + verified.err, str(verified)

    target.unlink()
    refused = cli("checkout", "mdl:v1")
    assert_error(refused, "weights/model.bin")
    assert not target.exists()


# ---- S3 versions -------------------------------------------------------------------------------------------
def test_s3_versioned_pins_recorded_and_explicit_versions(cli, repo, tmp_path, s3_env):
    src = make_s3_source(s3_env, versioned=True)
    first = payload(300_000, "v-first")
    src.put("data/table.parquet", first)
    vid_first = s3_version_ids(src, "data/table.parquet")[-1]
    uri = src.uri("data/table.parquet")

    # an explicit ?versionId= pins that version
    assert_ok(cli("add", "--ref", f"{uri}?versionId={vid_first}", "--as", "pinned.parquet", "-a", "pinned"))
    assert_ok(cli("add", "--ref", uri, "-a", "follow"))
    made = assert_ok(cli("commit", "-m", "first"))
    assert sorted((n, v) for n, v, _ in made.commit_lines()) == [("follow", 0), ("pinned", 0)], str(made)
    shown = ls_refs(assert_ok(cli("ls", "pinned")))
    assert shown["pinned.parquet"][1] == f"{uri}?versionId={vid_first}"
    assert "version_id" in shown["pinned.parquet"][2]
    shown = ls_refs(assert_ok(cli("ls", "follow")))
    assert shown["table.parquet"][1] == f"{uri}?versionId={vid_first}"

    # overwrite the object twice: both versions still give the first bytes and still verify
    second, third = payload(300_000, "v-second"), payload(123_456, "v-third")
    src.put("data/table.parquet", second)
    src.put("data/table.parquet", third)
    assert_ok(cli("verify", "--refs"))
    assert_ok(cli("checkout", "pinned"))
    assert_ok(cli("checkout", "follow"))
    assert (repo / "pinned.parquet").read_bytes() == first
    assert (repo / "table.parquet").read_bytes() == first
    out = tmp_path / "out"
    assert_ok(cli("checkout", "follow:v0", "--to", str(out)))
    assert (out / "table.parquet").read_bytes() == first

    # the explicit pin does not move on commit; the unpinned URI records the newest version
    again = assert_ok(cli("commit", "pinned", "-m", "again"))
    assert again.commit_lines() == [], str(again)
    moved = assert_ok(cli("commit", "follow", "-m", "newest"))
    assert [(n, v) for n, v, _ in moved.commit_lines()] == [("follow", 1)], str(moved)
    vid_third = s3_version_ids(src, "data/table.parquet")[-1]
    assert ls_refs(assert_ok(cli("ls", "follow:v1")))["table.parquet"][1] == f"{uri}?versionId={vid_third}"
    out1 = tmp_path / "out1"
    assert_ok(cli("checkout", "follow:v1", "--to", str(out1)))
    assert (out1 / "table.parquet").read_bytes() == third
    diff = assert_ok(cli("diff", "follow:v0", "follow:v1", "--json")).json()
    assert diff["modified"] == ["table.parquet"], diff

    # the pinned version disappears: verify --refs names the entry
    src.client.delete_object(Bucket=src.bucket, Key="data/table.parquet", VersionId=vid_first)
    verified = cli("verify", "--refs", "pinned")
    assert verified.code == 1, str(verified)
    assert "pinned.parquet" in verified.out + verified.err, str(verified)


def test_s3_versioned_prefix_pins_every_object(cli, repo, tmp_path, s3_env):
    src = make_s3_source(s3_env, versioned=True)
    objs = {"imgs/a.png": payload(5000, "pa"), "imgs/sub/b.png": payload(7000, "pb")}
    for key, data in objs.items():
        src.put(key, data)
    assert_ok(cli("add", "--ref", src.uri("imgs/"), "--as", "images", "-a", "imgs"))
    assert_ok(cli("commit", "-m", "x"))
    shown = ls_refs(assert_ok(cli("ls", "imgs")))
    assert set(shown) == {"images/a.png", "images/sub/b.png"}, str(shown)
    for path, (_, uri, kinds) in shown.items():
        assert "version_id" in kinds and "?versionId=" in uri, (path, uri, kinds)
    src.put("imgs/sub/b.png", payload(7000, "pb-changed"))
    assert_ok(cli("verify", "--refs"))
    out = tmp_path / "out"
    assert_ok(cli("checkout", "imgs:v0", "--to", str(out)))
    assert (out / "images" / "sub" / "b.png").read_bytes() == objs["imgs/sub/b.png"]
    assert (out / "images" / "a.png").read_bytes() == objs["imgs/a.png"]


# ---- prefixes and folders --------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["file", "s3", "sftp"], indirect=True)
def test_prefix_becomes_one_entry_per_object(cli, repo, tmp_path, source):
    objs = {"a.csv": payload(1000, "a"), "sub/b.csv": payload(2000, "b"), "sub/deeper/c.csv": payload(3000, "c")}
    for rel, data in objs.items():
        source.put(f"folder/{rel}", data)
    source.put("folder-sibling.csv", b"not below the prefix")
    assert_ok(cli("add", "--ref", source.uri("folder"), "--as", "tables/raw", "-a", "tables"))
    assert_ok(cli("add", "--ref", source.uri("folder/sub") + "/", "-a", "plain"))
    assert_ok(cli("commit", "-m", "prefix"))

    shown = ls_refs(assert_ok(cli("ls", "tables")))
    assert set(shown) == {f"tables/raw/{rel}" for rel in objs}, str(shown)
    for rel, data in objs.items():
        size, uri, _ = shown[f"tables/raw/{rel}"]
        assert size == len(data)
        assert uri.split("?", 1)[0] == source.uri(f"folder/{rel}")
    # without --as: the URI's last component, nested paths kept
    assert set(ls_refs(assert_ok(cli("ls", "plain")))) == {"sub/b.csv", "sub/deeper/c.csv"}
    assert "references: 3" in assert_ok(cli("log", "tables")).out

    assert_ok(cli("checkout", "tables"))
    for rel, data in objs.items():
        assert (repo / "tables" / "raw" / rel).read_bytes() == data
    out = tmp_path / "out"
    assert_ok(cli("checkout", "plain", "--to", str(out)))
    assert listing(out) == {"sub", "sub/b.csv", "sub/deeper", "sub/deeper/c.csv"}
    assert (out / "sub" / "deeper" / "c.csv").read_bytes() == objs["sub/deeper/c.csv"]

    status = assert_ok(cli("status", "--json")).json()
    assert status["artifacts"]["tables"]["clean"], status

    # one object below the prefix changes: verify names it (and only it)
    source.put("folder/sub/b.csv", payload(2000, "b-changed"))
    verified = cli("verify", "--refs", "tables")
    assert verified.code == 1, str(verified)
    text = verified.out + verified.err
    assert "tables/raw/sub/b.csv" in text and "tables/raw/a.csv" not in text, text


# ---- max_objects ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["s3", "file", "sftp"], indirect=True)
def test_max_objects_is_an_error_never_a_truncation(cli, repo, source):
    for i in range(4):
        source.put(f"many/part-{i}.bin", payload(100, f"m{i}"))
    source.put("few/part-0.bin", b"0")
    source.put("few/part-1.bin", b"1")
    source.put("few/part-2.bin", b"2")

    over = cli("add", "--ref", source.uri("many"), "-a", "many", "--max-objects", "3")
    assert_error(over, "3")
    assert_ok(cli("add", "--ref", source.uri("few"), "-a", "few", "--max-objects", "3"))
    made = assert_ok(cli("commit"))
    assert [(n, v) for n, v, _ in made.commit_lines()] == [("few", 0)], str(made)
    assert len(ls_refs(assert_ok(cli("ls", "few")))) == 3
    assert assert_ok(cli("log", "--json")).json()[0]["artifact"] == "few"
    assert all(v["artifact"] != "many" for v in assert_ok(cli("log", "--json")).json())

    api = artvc.Repo(str(repo))
    art = artvc.Artifact("many-api")
    art.add_reference(source.uri("many"), max_objects=3)
    with pytest.raises(ArtvcError):
        api.log_artifact(art)
    assert not [v for v in api.log() if v.name == "many-api"], "a refused reference left a version"
    with pytest.raises(ArtvcError):
        api.add_reference(source.uri("many"), "many-repo", max_objects=3)
    ok = artvc.Artifact("few-api")
    ok.add_reference(source.uri("few"), max_objects=3)
    version = api.log_artifact(ok)
    assert sorted(e.path for e in version.entries) == ["few/part-0.bin", "few/part-1.bin", "few/part-2.bin"]


def test_max_objects_with_more_than_one_listing_page(cli, repo, s3_env):
    """S3 lists 1000 keys per page: the limit must be enforced across pages, and N objects with max N is fine."""
    src = make_s3_source(s3_env, versioned=False)
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: src.put(f"p/{i:05d}", b"x"), range(1001)))
    assert_error(cli("add", "--ref", src.uri("p"), "-a", "pages", "--max-objects", "1000"))
    assert_ok(cli("add", "--ref", src.uri("p"), "-a", "pages", "--max-objects", "1001"))
    assert_ok(cli("commit"))
    assert "references: 1001" in assert_ok(cli("log", "pages")).out


# ---- --no-checksum ----------------------------------------------------------------------------------------
def _no_checksum_setup(cli, source) -> None:
    source.put("set/one.txt", b"one")
    source.put("set/two.txt", b"two")
    source.put("single.txt", b"first content")
    assert_ok(cli("add", "--ref", source.uri("set"), "-a", "loose", "--no-checksum"))
    assert_ok(cli("add", "--ref", source.uri("single.txt"), "-a", "loose", "--no-checksum"))
    made = assert_ok(cli("commit", "-m", "uris"))
    assert [(n, v) for n, v, _ in made.commit_lines()] == [("loose", 0)], str(made)
    shown = ls_refs(assert_ok(cli("ls", "loose")))
    assert set(shown) == {"set/one.txt", "set/two.txt", "single.txt"}, str(shown)
    for path, (_, uri, kinds) in shown.items():
        assert kinds == ["uri only"] or kinds == [], (path, kinds)
    listed = {e["path"]: e for e in assert_ok(cli("ls", "loose", "--json")).json()}
    assert all(not e["checksums"] for e in listed.values()), listed


@pytest.mark.parametrize("source", ["file", "s3"], indirect=True)
def test_no_checksum_content_change_makes_no_new_version(cli, repo, source):
    _no_checksum_setup(cli, source)
    source.put("single.txt", b"a much longer, different content")  # other bytes, other size
    source.put("set/one.txt", b"ONE")  # other bytes, same size
    same = assert_ok(cli("commit", "-m", "content only"))
    assert same.commit_lines() == [], str(same)
    assert "nothing to commit" in same.out + same.err, str(same)


@pytest.mark.parametrize("source", ["file", "s3"], indirect=True)
def test_no_checksum_checkout_gives_what_the_uri_holds_now(cli, repo, tmp_path, source):
    _no_checksum_setup(cli, source)
    source.put("single.txt", b"a much longer, different content")
    source.put("set/one.txt", b"ONE")
    assert_ok(cli("verify", "--refs"))  # nothing recorded to drift from
    out = tmp_path / "out"
    assert_ok(cli("checkout", "loose:v0", "--to", str(out)))
    assert (out / "single.txt").read_bytes() == b"a much longer, different content"
    assert (out / "set" / "one.txt").read_bytes() == b"ONE"
    assert (out / "set" / "two.txt").read_bytes() == b"two"


@pytest.mark.parametrize("source", ["file", "s3"], indirect=True)
def test_no_checksum_new_object_under_prefix_makes_a_new_version(cli, repo, source):
    _no_checksum_setup(cli, source)
    source.put("set/three.txt", b"three")
    grown = assert_ok(cli("commit", "-m", "new object"))
    assert [(n, v) for n, v, _ in grown.commit_lines()] == [("loose", 1)], str(grown)
    diff = assert_ok(cli("diff", "loose:v0", "loose:v1", "--json")).json()
    assert diff["added"] == ["set/three.txt"] and diff["modified"] == [] and diff["removed"] == [], diff
    # the URI set is unchanged again: nothing to commit
    same = assert_ok(cli("commit", "-m", "again"))
    assert same.commit_lines() == [], str(same)


# ---- unreachable sources -----------------------------------------------------------------------------------
def test_http_unreachable_is_skipped_or_strict_error(cli, repo, tmp_path, http_source):
    src = make_http_source(http_source)
    data = payload(50_000, "h")
    src.put("weights.bin", data)
    repo.joinpath("local.txt").write_text("local file\n")
    assert_ok(cli("add", "local.txt", "-a", "mix"))
    assert_ok(cli("add", "--ref", src.uri("weights.bin"), "-a", "mix"))
    assert_ok(cli("commit", "-m", "mixed"))
    http_source.stop()

    (repo / "local.txt").unlink()
    skipped = cli("checkout", "mix")
    assert skipped.code == 0, str(skipped)
    assert "weights.bin" in skipped.err and "warning" in skipped.err.lower(), str(skipped)
    assert (repo / "local.txt").read_text() == "local file\n", "the stored files are still checked out"
    assert not (repo / "weights.bin").exists()

    strict = cli("checkout", "mix", "--strict")
    assert_error(strict, "weights.bin")
    assert not (repo / "weights.bin").exists()
    out = tmp_path / "out"
    strict_to = cli("checkout", "mix", "--to", str(out), "--strict")
    assert_error(strict_to, "weights.bin")
    assert not (out / "weights.bin").exists()


def test_sftp_unreachable_is_skipped_or_strict_error(cli, repo, tmp_path, ssh_home):
    """The reference names a Host alias of ~/.ssh/config; pointing the alias at a closed port makes it unreachable."""
    ssh_home.trust_host()
    server = ssh_home.server
    folder = server.data_dir / f"unreach-{uuid.uuid4().hex[:12]}"
    write(folder / "ckpt.pt", payload(40_000, "s"))
    ssh_home.write_config("refhost")
    uri = f"sftp://refhost{folder.as_posix()}/ckpt.pt"
    assert_ok(cli("add", "--ref", uri, "-a", "ck"))
    assert_ok(cli("commit"))
    out = tmp_path / "reachable"
    assert_ok(cli("checkout", "ck", "--to", str(out)))
    assert (out / "ckpt.pt").read_bytes() == (folder / "ckpt.pt").read_bytes()

    closed = free_port()
    ssh_home.config.write_text(
        f"Host refhost\n    HostName 127.0.0.1\n    Port {closed}\n    User {server.user}\n    IdentityFile {ssh_home.key}\n"
    )
    skipped = cli("checkout", "ck")
    assert skipped.code == 0, str(skipped)
    assert "ckpt.pt" in skipped.err and "warning" in skipped.err.lower(), str(skipped)
    assert not (repo / "ckpt.pt").exists()
    strict = cli("checkout", "ck", "--strict")
    assert_error(strict, "ckpt.pt")
    assert not (repo / "ckpt.pt").exists()


# ---- HTTP without ETag: Last-Modified and Content-Length are the checksum -------------------------------
def test_http_without_etag_records_length_and_last_modified(cli, repo, tmp_path, http_source_no_etag):
    src = make_http_source(http_source_no_etag)
    data = payload(20_000, "n1")
    src.put("plain.bin", data)
    assert_ok(cli("add", "--ref", src.uri("plain.bin"), "-a", "plain"))
    assert_ok(cli("commit"))
    _, _, kinds = ls_refs(assert_ok(cli("ls", "plain")))["plain.bin"]
    assert {"content_length", "last_modified"} <= set(kinds) and "etag" not in kinds, kinds
    out = tmp_path / "out"
    assert_ok(cli("checkout", "plain", "--to", str(out)))
    assert (out / "plain.bin").read_bytes() == data

    # same size, other bytes, a later Last-Modified
    src.put("plain.bin", payload(20_000, "n2"))
    verified = cli("verify", "--refs")
    assert verified.code == 1 and "plain.bin" in verified.out + verified.err, str(verified)
    out2 = tmp_path / "out2"
    refused = cli("checkout", "plain", "--to", str(out2))
    assert_error(refused, "plain.bin")
    assert not (out2 / "plain.bin").exists()


# ---- Python API -----------------------------------------------------------------------------------------------
def test_python_api_add_reference_log_and_download(cli, repo, tmp_path, s3_env, http_source):
    s3 = make_s3_source(s3_env, versioned=True)
    web = make_http_source(http_source)
    local = make_file_source(tmp_path)
    blobs = {"s3": payload(MIB + 17, "api-s3"), "web": payload(70_000, "api-web"), "local": payload(90_000, "api-l")}
    s3.put("m/model.onnx", blobs["s3"])
    web.put("vocab.txt", blobs["web"])
    local.put("dir/x/train.csv", blobs["local"])

    api = artvc.Repo(str(repo))
    before = packs_bytes(repo)
    art = artvc.Artifact("bundle", type="model", metadata={"source": "refs"})
    art.add_reference(s3.uri("m/model.onnx"))
    art.add_reference(web.uri("vocab.txt"), name="tok/vocab.txt")
    art.add_reference(local.uri("dir"), name="data")
    version = api.log_artifact(art, aliases=["best"], message="references")
    assert version.spec == "bundle:v0"
    assert packs_bytes(repo) - before < STORE_SLACK

    entries = {e.path: e for e in version.entries}
    assert set(entries) == {"model.onnx", "tok/vocab.txt", "data/x/train.csv"}, entries
    assert all(e.kind_name == "reference" for e in entries.values())
    assert entries["model.onnx"].uri.startswith(s3.uri("m/model.onnx"))
    assert dict(entries["model.onnx"].checksums).get("version_id") == s3_version_ids(s3, "m/model.onnx")[-1]
    assert entries["tok/vocab.txt"].uri == web.uri("vocab.txt")
    assert "etag" in dict(entries["tok/vocab.txt"].checksums)
    assert entries["data/x/train.csv"].size == len(blobs["local"])
    assert api.use_artifact("bundle:best").id == version.id

    root = version.download(root=str(tmp_path / "dl"))
    assert Path(root, "model.onnx").read_bytes() == blobs["s3"]
    assert Path(root, "tok", "vocab.txt").read_bytes() == blobs["web"]
    assert Path(root, "data", "x", "train.csv").read_bytes() == blobs["local"]
    assert api.verify_references(["bundle:v0"]) == []

    # the S3 object is overwritten (pinned: still fine); the local file drifts: download refuses, names it
    s3.put("m/model.onnx", b"overwritten")
    local.put("dir/x/train.csv", payload(90_000, "api-l-changed"))
    drifted = api.verify_references(["bundle:v0"])
    assert [d[1] for d in drifted] == ["data/x/train.csv"], drifted
    with pytest.raises(ArtvcError, match="data/x/train.csv"):
        version.download(root=str(tmp_path / "dl2"))
    assert not (tmp_path / "dl2" / "data" / "x" / "train.csv").exists()



def test_touching_a_file_reference_makes_no_new_version(cli, repo, tmp_path):
    """Identical content makes no new version (CONTRACT): a new mtime alone is not a change of the data."""
    src = make_file_source(tmp_path)
    src.put("a.txt", b"same bytes")
    assert_ok(cli("add", "--ref", src.uri("a.txt"), "-a", "touched"))
    assert_ok(cli("commit"))
    src.put("a.txt", b"same bytes")  # rewritten with the same content, mtime moved on
    same = assert_ok(cli("commit"))
    assert same.commit_lines() == [], str(same)
    assert_ok(cli("verify", "--refs"))


def test_python_api_refuses_a_non_uri(repo):
    art = artvc.Artifact("bad")
    with pytest.raises(ArtvcError):
        art.add_reference("relative/path.bin")


# ---- diff, status, log --------------------------------------------------------------------------------------
def test_drifted_and_recommitted_reference_is_modified_and_checkout_gives_new_bytes(cli, repo, tmp_path):
    src = make_file_source(tmp_path)
    src.put("labels.json", b'{"a": 1}')
    src.put("other.json", b'{"b": 2}')
    assert_ok(cli("add", "--ref", src.uri("labels.json"), "-a", "lab"))
    assert_ok(cli("add", "--ref", src.uri("other.json"), "-a", "lab"))
    assert_ok(cli("commit", "-m", "v0"))
    assert_ok(cli("checkout", "lab"))
    assert (repo / "labels.json").read_bytes() == b'{"a": 1}'
    status = assert_ok(cli("status", "--json")).json()
    assert status["artifacts"]["lab"]["clean"], status
    text = assert_ok(cli("status")).out
    assert "clean" in text, text

    src.put("labels.json", b'{"a": 2, "c": 3}')
    assert cli("verify", "--refs").code == 1
    made = assert_ok(cli("commit", "-m", "v1"))
    assert [(n, v) for n, v, _ in made.commit_lines()] == [("lab", 1)], str(made)
    assert_ok(cli("verify", "--refs", "lab:v1"))
    diff = assert_ok(cli("diff", "lab:v0", "lab:v1", "--json")).json()
    assert diff == {"added": [], "removed": [], "modified": ["labels.json"]}, diff
    text = assert_ok(cli("diff", "lab:v0", "lab:v1")).out
    assert "labels.json" in text and "other.json" not in text, text

    # the workspace still holds v0's bytes of labels.json; checking out v1 must give v1's bytes
    assert_ok(cli("checkout", "lab:v1"))
    assert (repo / "labels.json").read_bytes() == b'{"a": 2, "c": 3}', "checkout left the old bytes of a reference"
    assert (repo / "other.json").read_bytes() == b'{"b": 2}'
    status = assert_ok(cli("status", "--json")).json()
    assert status["artifacts"]["lab"]["clean"], status


def test_status_clean_after_checkout_and_reference_edits_are_protected(cli, repo, tmp_path, s3_env):
    src = make_s3_source(s3_env, versioned=False)
    src.put("cfg.yaml", b"lr: 0.1\n")
    assert_ok(cli("add", "--ref", src.uri("cfg.yaml"), "--as", "conf/cfg.yaml", "-a", "conf"))
    assert_ok(cli("commit"))
    assert_ok(cli("checkout", "conf"))
    assert (repo / "conf" / "cfg.yaml").read_bytes() == b"lr: 0.1\n"
    status = assert_ok(cli("status", "--json")).json()
    assert status["artifacts"]["conf"]["clean"], status
    assert status["artifacts"]["conf"]["head"] == "conf:v0"
    assert_ok(cli("diff", "conf", "--exit-code"))
    # a local edit of a checked-out reference is not silently overwritten
    (repo / "conf" / "cfg.yaml").write_bytes(b"lr: 0.5  # mine\n")
    src.put("cfg.yaml", b"lr: 0.2\n")
    assert_ok(cli("commit"))
    refused = cli("checkout", "conf:v1")
    assert_error(refused, "conf/cfg.yaml")
    assert (repo / "conf" / "cfg.yaml").read_bytes() == b"lr: 0.5  # mine\n"
    assert_ok(cli("checkout", "conf:v1", "--force"))
    assert (repo / "conf" / "cfg.yaml").read_bytes() == b"lr: 0.2\n"


def test_add_ref_errors_are_clear(cli, repo, tmp_path, s3_env):
    assert_error(cli("add", "--ref", (tmp_path / "nope.bin").as_uri(), "-a", "x"), "nope.bin")
    bucket = s3_env.make_bucket(s3_env.unique_bucket("artvc-empty"))
    assert_error(cli("add", "--ref", f"s3://{bucket}/missing/key", "-a", "x"))
    assert cli("add", "--ref", "file:///tmp/x").code == 2  # -a is required: a usage error
    assert_error(cli("add", "--ref", (tmp_path / "a.bin").as_uri(), "-a", "bad name!"))
    log = assert_ok(cli("log", "--json")).json()
    assert log == []
