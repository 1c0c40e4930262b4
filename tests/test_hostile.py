"""Hostile remotes and bad input: refused with `error: ...` (exit 1), nothing written outside the target folder,
the local repository still valid.

The hostile remotes are written by hand (crash_faults.RemoteBuilder) with artvc's own codecs, so every
structure is well-formed except for the one field under test.
"""
from __future__ import annotations

import errno
import io
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import zstandard

from artvc import chunker, manifest, varint
from artvc.index import close_index
from artvc.manifest import KIND_FILE, KIND_SYMLINK
from artvc.packs import BLOB_DATA
from conftest import write
from crash_faults import (
    RemoteBuilder,
    artvc as run_artvc,
    assert_cli_error,
    digests,
    encode_raw_manifest,
    finish,
    leftovers,
    ok,
    patch_index_record,
    spawn,
)

TOKEN = secrets.token_hex(6)
ESCAPE = f"escape-{TOKEN}"
ABSOLUTE = f"/tmp/artvc-abs-{TOKEN}"


@pytest.fixture
def box(tmp_path, monkeypatch):
    """tmp/box: a local repository `local` with ds:v0, an `outside` folder that must stay empty, a place for remotes."""
    box = tmp_path / "box"
    (box / "outside").mkdir(parents=True)
    local = box / "local"
    local.mkdir()
    write(local / "d" / "keep.txt", b"local data that must survive")
    ok(run_artvc("init", cwd=local))
    ok(run_artvc("add", "d", "-a", "ds", cwd=local))
    ok(run_artvc("commit", cwd=local))
    monkeypatch.chdir(box)
    yield box
    for folder, dirs, _ in os.walk(tmp_path):
        if ".artvc" in dirs:
            close_index(os.path.join(folder, ".artvc", "index"))
        dirs[:] = [d for d in dirs if d != ".artvc"]
    if os.path.lexists(ABSOLUTE):
        os.unlink(ABSOLUTE)


def escaped(top: Path) -> list[str]:
    """Files a hostile manifest tried to place outside its target: anything carrying the token in its name,
    the absolute path, or anything inside `outside/`."""
    found = [os.path.join(folder, n) for folder, dirs, names in os.walk(top.parent) for n in names + dirs if TOKEN in n]
    if os.path.lexists(ABSOLUTE):
        found.append(ABSOLUTE)
    found += [str(p) for p in (top / "outside").rglob("*")]
    return found


def local_still_valid(box: Path) -> None:
    ok(run_artvc("verify", cwd=box / "local"))
    ok(run_artvc("checkout", "ds:v0", "--to", box / "check", cwd=box / "local"))
    assert (box / "check" / "d" / "keep.txt").read_bytes() == b"local data that must survive"
    shutil.rmtree(box / "check")


def hand_made_remote(root: Path, items: list[tuple[bytes, int, bytes]] | None = None, *, artifact: str = "evil",
                     manifest_bytes: bytes | None = None, record: dict | None = None, record_fmt: int = 1,
                     version_file: bytes | None = None, marker_fmt=1) -> bytes:
    """A remote with one version evil:v0 whose manifest lists `items` (path, kind, payload). Returns the version id."""
    b = RemoteBuilder(root)
    b.marker(marker_fmt)
    for _, kind, payload in items or []:
        if kind == KIND_FILE and payload:
            b.blob(payload, BLOB_DATA)
    data = manifest_bytes if manifest_bytes is not None else encode_raw_manifest(items or [])
    vid = b.record(artifact, b.manifest_tree(data), fmt=record_fmt, overrides=record)
    b.seal()
    b.version(artifact, 0, version_file if version_file is not None else vid.hex().encode() + b"\n")
    return vid


def _refusal_problem(what: str, run, fragments) -> list[str]:
    from crash_faults import is_error

    if is_error(run, *fragments):
        return []
    return [f"{what} did not refuse (expected exit 1 and `error: ...`{' naming ' + repr(fragments) if fragments else ''}): "
            f"exit {run.code}, stdout {run.out.strip()[-300:]!r}, stderr {run.err.strip()[-300:]!r}"]


def assert_refused_everywhere(box: Path, remote: Path, *fragments: str) -> None:
    """clone, fetch (into `local`), checkout --to and get all refuse with exit 1 and `error:`; nothing escapes;
    the local repository stays valid (verify exits 0, ds:v0 intact). Every problem is reported at once."""
    problems: list[str] = []
    clone = box / "clone"
    cloned = run_artvc("clone", remote, clone, cwd=box)
    if cloned.code == 0:
        # clone copies records and manifests only: it may succeed when the damage is in data it did not read,
        # but what it leaves must be a valid repository, and fetching the data must then refuse.
        verify = run_artvc("verify", cwd=clone)
        if verify.code != 0:
            problems.append(f"clone accepted the remote and left a repository that does not verify: exit {verify.code}: "
                            f"{verify.out.strip()[-300:]}")
        else:
            problems += _refusal_problem("fetch --all in the clone", run_artvc("fetch", "--all", cwd=clone), fragments)
            verify = run_artvc("verify", cwd=clone)
            if verify.code != 0:
                problems.append(f"after the refused fetch the clone does not verify: {verify.out.strip()[-300:]}")
    else:
        problems += _refusal_problem("clone", cloned, fragments)
        if clone.exists() and any(clone.iterdir()):
            problems.append(f"a refused clone left files behind: {sorted(map(str, clone.rglob('*')))[:5]}")
    problems += [f"clone escaped: {p}" for p in escaped(box)]

    ok(run_artvc("remote", "add", "evil", remote, cwd=box / "local"))
    problems += _refusal_problem("fetch --all", run_artvc("fetch", "evil", "--all", cwd=box / "local"), fragments)
    problems += [f"fetch escaped: {p}" for p in escaped(box)]
    verify = run_artvc("verify", cwd=box / "local")
    if verify.code != 0:
        problems.append(f"after the refused fetch the local repository does not verify: exit {verify.code}: "
                        f"{verify.out.strip()[-400:]} {verify.err.strip()[-200:]}")

    out = box / "out"
    problems += _refusal_problem("checkout --to", run_artvc("checkout", "evil:v0", "--to", out, cwd=box / "local"), ())
    problems += [f"checkout escaped: {p}" for p in escaped(box)]
    if (out / ".artvc").exists():
        problems.append("checkout --to wrote .artvc/ into its target")

    problems += _refusal_problem("get", run_artvc("get", remote, "evil:v0", "--to", box / "got", cwd=box), fragments)
    problems += [f"get escaped: {p}" for p in escaped(box)]
    if (box / "got" / ".artvc").exists():
        problems.append("get wrote .artvc/ into its target")

    ok(run_artvc("checkout", "ds:v0", "--to", box / "check", cwd=box / "local"))
    assert (box / "check" / "d" / "keep.txt").read_bytes() == b"local data that must survive"
    shutil.rmtree(box / "check")
    assert not problems, "\n".join(problems)


# ---- a control: the builder makes a remote artvc accepts ---------------------------------------------------------
def test_hand_made_remote_is_accepted_when_it_is_well_formed(box):
    remote = box / "remote"
    hand_made_remote(remote, [(b"ok/file.txt", KIND_FILE, b"fine"), (b"ok/link", KIND_SYMLINK, b"file.txt")])
    ok(run_artvc("clone", remote, box / "clone", cwd=box))
    ok(run_artvc("fetch", "--all", cwd=box / "clone"))
    ok(run_artvc("checkout", "evil:v0", "--to", box / "out", cwd=box / "clone"))
    assert (box / "out" / "ok" / "file.txt").read_bytes() == b"fine"
    assert os.readlink(box / "out" / "ok" / "link") == "file.txt"
    ok(run_artvc("verify", cwd=box / "clone"))


# ---- manifests with entry paths that try to leave the target -----------------------------------------------------
HOSTILE_MANIFESTS = {
    "dotdot": [(f"../{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "absolute": [(ABSOLUTE.encode(), KIND_FILE, b"pwned")],
    "inner-dotdot": [(f"a/../../{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "deep-dotdot": [(f"a/b/../../../../{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "nul": [(f"a\x00{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "duplicate": [(f"dup-{TOKEN}".encode(), KIND_FILE, b"one"), (f"dup-{TOKEN}".encode(), KIND_FILE, b"two")],
    "unsorted": [(f"z-{TOKEN}".encode(), KIND_FILE, b"one"), (f"a-{TOKEN}".encode(), KIND_FILE, b"two")],
    "dot-artvc": [(b".artvc/config", KIND_FILE, b"[core]\n\tformat = 1\n")],
    "backslash": [(f"..\\{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "empty-component": [(f"a//{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "dot-component": [(f"./{ESCAPE}".encode(), KIND_FILE, b"pwned")],
    "below-a-symlink": [(b"link", KIND_SYMLINK, b"../outside"), (f"link/{ESCAPE}".encode(), KIND_FILE, b"pwned")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MANIFESTS))
def test_hostile_entry_paths_are_refused_and_nothing_escapes(box, case):
    remote = box / "remote"
    hand_made_remote(remote, HOSTILE_MANIFESTS[case])
    assert_refused_everywhere(box, remote)


def test_unknown_manifest_format_is_refused(box):
    remote = box / "remote"
    data = bytearray(encode_raw_manifest([(b"f.txt", KIND_FILE, b"x")]))
    data[7] = 99
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], manifest_bytes=bytes(data))
    assert_refused_everywhere(box, remote, "format")


def test_manifest_with_trailing_bytes_or_wrong_sizes_is_refused(box):
    remote = box / "remote"
    data = encode_raw_manifest([(b"f.txt", KIND_FILE, b"x")]) + b"junk"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], manifest_bytes=data)
    assert_refused_everywhere(box, remote)


def _two_chunk_manifest(path: bytes, parts: list[bytes], digest: bytes) -> bytes:
    """A manifest with one file made of `parts` as its chunks, claiming `digest` as the whole file's."""
    out = bytearray(manifest.MAGIC) + varint.encode(1)
    out += varint.encode(0) + varint.encode(len(path)) + path + bytes([KIND_FILE, 0])
    out += varint.encode(sum(map(len, parts))) + varint.encode(len(parts)) + digest
    for part in parts:
        out += chunker.hash_bytes(part) + varint.encode(len(part))
    return bytes(out)


def test_file_digest_that_disagrees_with_its_chunks_is_refused_in_a_workspace_and_reported_by_verify(box):
    """Checkout writes a file from chunks each checked against its id; a manifest whose file digest names other
    bytes cannot put other bytes on disk. A workspace checkout, whose stat cache would remember that digest,
    refuses it; checkout --to writes the chunks' bytes; verify names the version as damaged."""
    remote = box / "remote"
    parts = [b"first chunk " * 10, b"second chunk " * 10]
    wrong = chunker.hash_bytes(b"something else entirely")
    hand_made_remote(remote, [(b"a", KIND_FILE, parts[0]), (b"b", KIND_FILE, parts[1])],
                     manifest_bytes=_two_chunk_manifest(b"f.bin", parts, wrong))
    ok(run_artvc("clone", remote, box / "clone", cwd=box))
    ok(run_artvc("fetch", "--all", cwd=box / "clone"))
    assert_cli_error(run_artvc("checkout", "evil:v0", cwd=box / "clone"), "content of f.bin")
    assert not (box / "clone" / "f.bin").exists()
    ok(run_artvc("checkout", "evil:v0", "--to", box / "out", cwd=box / "clone"))
    assert (box / "out" / "f.bin").read_bytes() == b"".join(parts)
    verify = run_artvc("verify", cwd=box / "clone")
    assert_cli_error(verify)
    assert "does not match its digest" in verify.out + verify.err, str(verify)


# ---- records, version files, markers ---------------------------------------------------------------------------------
def test_unknown_record_format_is_refused(box):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], record_fmt=99)
    assert_refused_everywhere(box, remote, "format")


def test_record_of_another_artifact_is_refused(box):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], record={"artifact": "ds"})
    assert_refused_everywhere(box, remote)
    ok(run_artvc("log", "ds", "--json", cwd=box / "local"))
    assert len(ok(run_artvc("log", "ds", "--json", cwd=box / "local")).json()) == 1


def test_record_with_malformed_ids_is_refused(box):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], record={"inputs": ["../../etc/passwd"]})
    assert_refused_everywhere(box, remote)


@pytest.mark.parametrize("content", [b"not hex at all\n", b"../../../etc/passwd\n", b"ab" * 31 + b"\n", b"\xff" * 65])
def test_version_file_that_is_not_an_id_is_refused(box, content):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], version_file=content)
    assert_refused_everywhere(box, remote)


def test_version_numbers_with_a_gap_are_refused(box):
    remote = box / "remote"
    vid = hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")])
    b = RemoteBuilder(remote)
    other = b.record("evil", b.manifest_tree(encode_raw_manifest([(b"g.txt", KIND_FILE, b"")])))
    b.seal()
    b.version("evil", 2, other.hex().encode() + b"\n")
    assert vid != other
    assert_refused_everywhere(box, remote)


def test_alias_file_that_is_not_an_id_is_refused(box):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")])
    RemoteBuilder(remote).alias("evil", "best", b"../../versions/evil/0000000000\n")
    assert_cli_error(run_artvc("clone", remote, box / "clone", cwd=box))
    ok(run_artvc("remote", "add", "evil", remote, cwd=box / "local"))
    assert_cli_error(run_artvc("fetch", "evil", cwd=box / "local"))
    local_still_valid(box)


@pytest.mark.parametrize("fmt", [99, 2, "1", None])
def test_unknown_remote_format_is_refused_and_never_written_to(box, fmt):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")], marker_fmt=fmt)
    before = {str(p): p.read_bytes() for p in remote.rglob("*") if p.is_file()}
    assert_cli_error(run_artvc("clone", remote, box / "clone", cwd=box), "format")
    ok(run_artvc("remote", "add", "evil", remote, cwd=box / "local"))
    assert_cli_error(run_artvc("fetch", "evil", cwd=box / "local"), "format")
    assert_cli_error(run_artvc("push", "evil", cwd=box / "local"), "format")
    assert {str(p): p.read_bytes() for p in remote.rglob("*") if p.is_file()} == before, "push wrote to a remote of unknown format"
    local_still_valid(box)


def test_marker_of_something_else_is_refused(box):
    remote = box / "remote"
    hand_made_remote(remote, [(b"f.txt", KIND_FILE, b"x")])
    (remote / "artvc-remote.json").write_text(json.dumps({"kind": "dvc", "format": 1}))
    assert_cli_error(run_artvc("clone", remote, box / "clone", cwd=box))
    ok(run_artvc("remote", "add", "evil", remote, cwd=box / "local"))
    assert_cli_error(run_artvc("push", "evil", cwd=box / "local"))
    local_still_valid(box)


# ---- packs and their indexes ---------------------------------------------------------------------------------------
def _pack_remote(box: Path, content: bytes, *, compress: bool = False, raw_len: int | None = None, stored: bytes | None = None,
                 index_patch=None, trailer_format=None) -> Path:
    """evil:v0 = one file f.bin with `content`; its one data blob is stored in a pack of its own, as told."""
    remote = box / "remote"
    b = RemoteBuilder(remote)
    b.marker()
    vid = b.record("evil", b.manifest_tree(encode_raw_manifest([(b"f.bin", KIND_FILE, content)])))
    b.seal()
    b.blob(content, BLOB_DATA, compress=compress, raw_len=raw_len, stored=stored)
    b.seal(index_patch=index_patch, trailer_format=trailer_format)
    b.version("evil", 0, vid.hex().encode() + b"\n")
    return remote


def test_index_raw_len_beyond_the_limit_is_refused(box):
    content = os.urandom(1000)
    remote = _pack_remote(box, content, index_patch=lambda ix: patch_index_record(ix, 0, raw_len=0xFFFFFFFF))
    assert_refused_everywhere(box, remote)


@pytest.mark.parametrize("claimed", [10, 999, 1001, 5000])
def test_index_raw_len_that_disagrees_with_the_data_is_refused(box, claimed):
    content = os.urandom(1000)
    remote = _pack_remote(box, content, raw_len=claimed)
    assert_refused_everywhere(box, remote)


def test_compressed_blob_larger_than_its_index_says_is_refused(box):
    content = b"a" * 100_000
    remote = _pack_remote(box, content, compress=True, raw_len=50_000)
    assert_refused_everywhere(box, remote)


def test_blob_whose_bytes_do_not_match_its_id_is_refused(box):
    content = os.urandom(1000)
    remote = _pack_remote(box, content, stored=bytes(b ^ 1 for b in content))
    assert_refused_everywhere(box, remote)


def test_index_pointing_outside_the_pack_is_refused(box):
    content = os.urandom(1000)
    remote = _pack_remote(box, content, index_patch=lambda ix: patch_index_record(ix, 0, offset=1 << 40))
    assert_refused_everywhere(box, remote)


def test_unknown_pack_index_format_is_refused(box):
    remote = _pack_remote(box, os.urandom(1000), trailer_format=99)
    assert_refused_everywhere(box, remote, "format")


def test_index_with_unknown_blob_type_or_compression_is_refused(box):
    remote = _pack_remote(box, os.urandom(1000), index_patch=lambda ix: patch_index_record(ix, 0, compression=7))
    assert_refused_everywhere(box, remote)


def _zstd_bomb(declared: int) -> bytes:
    """A zstd frame whose header declares `declared` bytes of zeros (content size recorded): ~32 KiB per GiB."""
    buf = io.BytesIO()
    writer = zstandard.ZstdCompressor(level=1).stream_writer(buf, size=declared, closefd=False)
    zeros = b"\0" * (1 << 20)
    for _ in range(declared >> 20):
        writer.write(zeros)
    writer.flush(zstandard.FLUSH_FRAME)
    return buf.getvalue()


# The peak of this process alone: VmHWM belongs to the memory map that exec made. ru_maxrss would also
# count the forked test runner before the exec (hundreds of MiB late in a full run).
MAXRSS_WRAPPER = (
    "import atexit, sys\n"
    "out = sys.argv[1]\n"
    "def peak():\n"
    "    kib = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
    "    open(out, 'w').write(kib)\n"
    "atexit.register(peak)\n"
    "from artvc.cli import main\n"
    "main(sys.argv[2:])\n"
)


def test_zip_bomb_is_refused_within_the_size_the_index_records(box):
    """docs/format.md: "Decompression is bounded by the raw length recorded in the pack index". A blob
    whose index says 4 KiB but whose zstd frame declares 1 GiB must be refused without inflating the GiB."""
    content = b"\0" * 4096
    remote = _pack_remote(box, content, compress=True, stored=_zstd_bomb(1 << 30), raw_len=len(content))
    assert (remote / "packs").exists()
    ok(run_artvc("clone", remote, box / "clone", cwd=box))  # records and manifests only: nothing to inflate yet
    peaks = {}
    for label, args, cwd in (("fetch", ["fetch", "--all"], box / "clone"),
                             ("get", ["get", str(remote), "evil:v0", "--to", str(box / "got")], box)):
        rss_file = box / f"rss-{label}"
        proc = spawn(cwd=cwd, python_args=["-c", MAXRSS_WRAPPER, str(rss_file), *args])
        result = finish(proc)
        assert_cli_error(result)
        peaks[label] = int(rss_file.read_text()) // 1024  # MiB
    assert escaped(box) == []
    ok(run_artvc("verify", cwd=box / "clone"))
    assert all(mib < 400 for mib in peaks.values()), (
        f"peak memory (MiB) while refusing a 4 KiB blob that inflates to 1 GiB: {peaks}: decompression is not "
        f"bounded by the raw length the index records")


# ---- symlinks in the way: a checkout never writes through them ---------------------------------------------------------
def test_checkout_never_writes_through_a_symlinked_folder_in_the_workspace(box):
    local = box / "local"
    shutil.rmtree(local / "d")
    os.symlink(box / "outside", local / "d")
    for extra in ([], ["--force"]):
        assert_cli_error(run_artvc("checkout", "ds:v0", *extra, cwd=local))
        assert list((box / "outside").iterdir()) == [], extra
    os.unlink(local / "d")
    ok(run_artvc("checkout", "ds:v0", cwd=local))
    assert (local / "d" / "keep.txt").read_bytes() == b"local data that must survive"
    ok(run_artvc("verify", cwd=local))


def test_checkout_to_never_writes_through_a_symlink_inside_the_target(box):
    local = box / "local"
    out = box / "out"
    out.mkdir()
    os.symlink(box / "outside", out / "d")
    for extra in ([], ["--force"]):
        assert_cli_error(run_artvc("checkout", "ds:v0", "--to", out, *extra, cwd=local))
        assert list((box / "outside").iterdir()) == [], extra


def test_a_symlink_version_then_a_folder_version_never_writes_outside(box):
    """v0: d/sub is a link to ../../outside; v1: d/sub/x.txt is a file. Checking out v0 then v1 (workspace
    and --to) replaces the link by a folder instead of following it."""
    local = box / "local"
    os.symlink("../../outside", local / "d" / "sub")
    ok(run_artvc("commit", cwd=local))
    os.unlink(local / "d" / "sub")
    write(local / "d" / "sub" / "x.txt", b"inside")
    ok(run_artvc("commit", cwd=local))
    ok(run_artvc("checkout", "ds:v1", cwd=local))
    assert os.path.islink(local / "d" / "sub")
    ok(run_artvc("checkout", "ds:v2", cwd=local))
    assert list((box / "outside").iterdir()) == []
    assert (local / "d" / "sub" / "x.txt").read_bytes() == b"inside"
    # --to: v1 leaves the link in the folder; v2 on top must replace it or refuse, never follow it
    out = box / "out"
    ok(run_artvc("checkout", "ds:v1", "--to", out, cwd=local))
    assert os.path.islink(out / "d" / "sub")
    for extra in ([], ["--force"]):
        result = run_artvc("checkout", "ds:v2", "--to", out, *extra, cwd=local)
        if result.code != 0:
            assert_cli_error(result)
        assert list((box / "outside").iterdir()) == [], extra
    ok(run_artvc("verify", cwd=local))


# ---- bad input ------------------------------------------------------------------------------------------------------
def test_add_of_a_missing_path_is_refused_and_tracks_nothing(box):
    local = box / "local"
    before = ok(run_artvc("status", "--json", cwd=local)).json()
    assert_cli_error(run_artvc("add", "no-such-folder", "-a", "other", cwd=local), "no-such-folder")
    assert_cli_error(run_artvc("add", "d", "missing.txt", "-a", "ds", cwd=local), "missing.txt")
    assert ok(run_artvc("status", "--json", cwd=local)).json() == before
    ok(run_artvc("verify", cwd=local))


def _as_nobody_available() -> str | None:
    if os.geteuid() != 0:
        return "not running as root: cannot switch to another user (run the suite as root to cover this)"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", "import artvc"],
                           capture_output=True, cwd="/")
    if probe.returncode != 0:
        return f"user 65534 cannot run {sys.executable} with artvc: {probe.stderr.decode()[-300:]}"
    return None


def test_unreadable_file_or_folder_gives_a_clear_error_and_no_version():
    why = _as_nobody_available()
    if why:
        pytest.skip(why)
    base = Path(tempfile.mkdtemp(prefix="artvc-nobody-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        repo = base / "repo"
        repo.mkdir()
        write(repo / "data" / "a.txt", b"readable")
        write(repo / "data" / "secret.bin", os.urandom(50_000))
        write(repo / "data" / "closed" / "inner.txt", b"behind a closed folder")
        subprocess.run(["chown", "-R", "65534:65534", str(base)], check=True)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = {"HOME": str(base)}

        def nobody(*args):
            return run_artvc(*args, cwd=repo, prefix=as_nobody, env=env)

        ok(nobody("init"))
        ok(nobody("add", "data", "-a", "ds"))
        os.chmod(repo / "data" / "secret.bin", 0)
        result = nobody("commit")
        assert_cli_error(result, "secret.bin")
        assert "permission" in result.err.lower(), str(result)
        assert "ds:v" not in result.out
        assert nobody("log", "ds", "--json").json() == []
        ok(nobody("verify"))
        assert leftovers(repo) == []

        os.chmod(repo / "data" / "secret.bin", 0o644)
        os.chmod(repo / "data" / "closed", 0)
        result = nobody("commit")
        assert_cli_error(result, "closed")
        assert "permission" in result.err.lower(), str(result)
        assert nobody("log", "ds", "--json").json() == []
        ok(nobody("verify"))

        os.chmod(repo / "data" / "closed", 0o755)
        assert "ds:v0" in ok(nobody("commit")).out
        ok(nobody("verify"))
    finally:
        close_index(str(base / "repo" / ".artvc" / "index"))
        shutil.rmtree(base, ignore_errors=True)


def _commit_while(repo: Path, change, label: str) -> tuple:
    """Run `artvc commit` while `change(stop_event)` runs in a thread; returns (result, states written)."""
    stop = threading.Event()
    states: list[bytes] = []
    thread = threading.Thread(target=change, args=(stop, states))
    proc = spawn("commit", "-m", label, cwd=repo)
    thread.start()
    result = finish(proc)
    stop.set()
    thread.join()
    return result, states


@pytest.mark.parametrize("size", [8 << 20, 2 << 20], ids=["streamed", "small"])
def test_file_growing_while_commit_reads_it_never_gives_a_wrong_version(tmp_path, size):
    repo = tmp_path / "repo"
    repo.mkdir()
    ok(run_artvc("init", cwd=repo))
    rng = random.Random(size)
    write(repo / "data" / "grow.bin", rng.randbytes(size))
    for i in range(50):
        write(repo / "data" / f"other{i}.txt", f"other {i}\n".encode())
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))

    def append(stop, states):
        with open(repo / "data" / "grow.bin", "ab") as f:
            for _ in range(2000):  # at most 32 MiB per attempt
                if stop.is_set():
                    break
                f.write(rng.randbytes(16384))
                f.flush()
                time.sleep(0.001)

    outcomes = []
    for attempt in range(3):
        result, _ = _commit_while(repo, append, f"attempt {attempt}")
        final = (repo / "data" / "grow.bin").read_bytes()
        if result.code == 0:
            outcomes.append("committed")
        else:
            assert_cli_error(result, "grow.bin")
            assert "changed" in result.err, str(result)
            outcomes.append("refused")
        ok(run_artvc("verify", cwd=repo))
        assert leftovers(repo) == []
        versions = ok(run_artvc("log", "ds", "--json", cwd=repo)).json()
        assert sorted(int(v["version"][1:]) for v in versions) == list(range(len(versions)))
        for v in versions:
            entry = [e for e in ok(run_artvc("ls", v["spec"], "--json", cwd=repo)).json() if e["path"] == "data/grow.bin"][0]
            out = tmp_path / "out"
            ok(run_artvc("checkout", v["spec"], "data/grow.bin", "--to", out, cwd=repo))
            stored = (out / "data" / "grow.bin").read_bytes()
            shutil.rmtree(out)
            assert len(stored) == entry["size"]
            assert chunker.hash_bytes(stored).hex() == entry["digest"]
            assert final.startswith(stored), f"{v['spec']}: the stored bytes are not a state the file was ever in"
    assert outcomes, outcomes


def test_file_rewritten_while_commit_reads_it_is_never_stored_torn(tmp_path):
    """A file rewritten in place (same size) during the commit: the version holds one whole state, or the
    commit refuses; never a mix of two states."""
    repo = tmp_path / "repo"
    repo.mkdir()
    ok(run_artvc("init", cwd=repo))
    size = 12 << 20
    initial = random.Random(0).randbytes(size)
    write(repo / "data" / "model.bin", initial)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))

    def rewrite(stop, states):
        k = 0
        while not stop.is_set():
            k += 1
            state = random.Random(k).randbytes(1 << 20) * 12
            states.append(chunker.hash_bytes(state))
            with open(repo / "data" / "model.bin", "r+b") as f:
                for off in range(0, size, 1 << 20):
                    f.write(state[off:off + (1 << 20)])
                    f.flush()
                    time.sleep(0.002)

    for attempt in range(3):
        result, states = _commit_while(repo, rewrite, f"attempt {attempt}")
        allowed = {chunker.hash_bytes(initial).hex()} | {s.hex() for s in states}
        if result.code != 0:
            assert_cli_error(result, "model.bin")
        ok(run_artvc("verify", cwd=repo))
        for v in ok(run_artvc("log", "ds", "--json", cwd=repo)).json():
            entry = [e for e in ok(run_artvc("ls", v["spec"], "--json", cwd=repo)).json() if e["path"] == "data/model.bin"][0]
            assert entry["digest"] in allowed, f"{v['spec']} stored a torn file (a mix of two states)"
        initial = (repo / "data" / "model.bin").read_bytes()


NON_UTF8 = [b"caf\xe9.bin", b"\xff\xfe-raw.txt", b"dir-\xe9\xff/inner.txt", b"ok-\xc3\xa9.txt", b"mixed-\xc3\xa9-\xe9.dat"]


def _non_utf8_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    ok(run_artvc("init", cwd=repo))
    top = os.fsencode(str(repo / "data"))
    for i, name in enumerate(NON_UTF8):
        path = os.path.join(top, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(f"content {i}\n".encode() * (i + 1))
    os.symlink(b"caf\xe9.bin", os.path.join(top, b"link-\xe9"))
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    return repo


def test_non_utf8_file_names_round_trip_through_commit_and_checkout(tmp_path):
    repo = _non_utf8_repo(tmp_path)
    expected = digests(repo)
    assert len(expected) == len(NON_UTF8) + 1
    result = ok(run_artvc("commit", cwd=repo))
    assert "ds:v0" in result.out
    ok(run_artvc("verify", cwd=repo))
    status = ok(run_artvc("status", "ds", "--json", cwd=repo)).json()["artifacts"]["ds"]
    assert status["clean"], status
    ok(run_artvc("checkout", "ds:v0", "--to", tmp_path / "out", cwd=repo))
    assert digests(tmp_path / "out") == expected
    shutil.rmtree(repo / "data")
    ok(run_artvc("checkout", "ds:v0", cwd=repo))
    assert digests(repo) == expected
    assert ok(run_artvc("status", "ds", "--json", cwd=repo)).json()["artifacts"]["ds"]["clean"]
    assert "nothing to commit" in ok(run_artvc("commit", cwd=repo)).out


def test_non_utf8_file_names_can_be_listed(tmp_path):
    repo = _non_utf8_repo(tmp_path)
    ok(run_artvc("commit", cwd=repo))
    for args in (("ls", "ds:v0"), ("ls", "ds:v0", "--json"), ("status", "ds"), ("diff", "ds:v0")):
        ok(run_artvc(*args, cwd=repo))


def _mount_tmpfs(path: Path, size: str) -> str | None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "mounting a small tmpfs needs root"
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        return f"cannot mount a tmpfs here: {done.stderr.decode().strip()}"
    return None


@pytest.fixture
def small_disk(tmp_path):
    """A 12 MiB tmpfs (needs root); unmounted afterwards."""
    mnt = tmp_path / "small"
    why = _mount_tmpfs(mnt, "12m")
    if why:
        pytest.skip(why + "; the pack-writer fault injection in test_crash.py covers ENOSPC without it")
    yield mnt
    close_index(str(mnt / "repo" / ".artvc" / "index"))
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _full_disk_repo(mnt: Path) -> Path:
    repo = mnt / "repo"
    repo.mkdir()
    ok(run_artvc("init", cwd=repo))
    rng = random.Random(3)
    for i in range(5):
        write(repo / "data" / f"big{i}.bin", rng.randbytes(1_450_000))
    for i in range(100):
        write(repo / "data" / "small" / f"s{i}.txt", f"small {i}\n".encode() * 20)
    ok(run_artvc("add", "data", "-a", "ds", cwd=repo))
    return repo


def test_full_disk_during_commit_gives_a_clear_error_and_a_valid_repository(small_disk, tmp_path):
    repo = _full_disk_repo(small_disk)
    result = run_artvc("commit", cwd=repo)
    assert_cli_error(result, "space")
    assert ok(run_artvc("log", "ds", "--json", cwd=repo)).json() == []
    ok(run_artvc("verify", cwd=repo))
    assert leftovers(repo) == []
    for i in range(3):
        (repo / "data" / f"big{i}.bin").unlink()
    expected = digests(repo)
    assert "ds:v0" in ok(run_artvc("commit", cwd=repo)).out
    ok(run_artvc("verify", cwd=repo))
    ok(run_artvc("checkout", "ds:v0", "--to", tmp_path / "copy", cwd=repo))
    assert digests(tmp_path / "copy") == expected


def test_full_disk_during_checkout_leaves_only_whole_files_and_a_valid_repository(small_disk):
    repo = _full_disk_repo(small_disk)
    for i in range(3):
        (repo / "data" / f"big{i}.bin").unlink()
    expected = digests(repo)
    ok(run_artvc("commit", cwd=repo))
    filler = small_disk / "filler"
    _fill(filler)
    problems = []
    for label, args, target in (("checkout --to", ["--to", small_disk / "out"], small_disk / "out"), ("checkout", [], repo)):
        if not args:
            shutil.rmtree(repo / "data")
            _fill(small_disk / "filler2")
        result = run_artvc("checkout", "ds:v0", *args, cwd=repo)
        if not (result.code == 1 and "space" in result.err and "error: " in result.err):
            problems.append(f"{label} on a full disk: {result}")
        left = leftovers(target)
        if left:
            problems.append(f"{label} on a full disk left {len(left)} temporary files, e.g. {left[:2]}")
        wrong = [p for p, d in digests(target).items() if b"artvc-tmp" not in p and expected.get(p) != d]
        if wrong:
            problems.append(f"{label} on a full disk wrote files with wrong or partial content: {wrong[:5]}")
        verify = run_artvc("verify", cwd=repo)
        if verify.code != 0:
            problems.append(f"{label}: verify after the full disk: {verify}")
        for path in (filler, small_disk / "filler2"):
            if path.exists():
                path.unlink()
        for path in left:
            os.unlink(path)
        ok(run_artvc("checkout", "ds:v0", *args, cwd=repo))
        if digests(target) != expected:
            problems.append(f"{label}: the rerun with room on the disk did not give v0")
        _fill(filler)
    assert not problems, "\n".join(problems)
