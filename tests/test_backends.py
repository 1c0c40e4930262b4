"""One conformance suite that every remote backend must pass: a local folder, memory://, SFTP (a real
sshd on 127.0.0.1) and S3 (moto's server on 127.0.0.1). The meanings tested are those that
artvc/remote/backend.py documents for the Backend interface."""
from __future__ import annotations

import os
import threading
import uuid

import pytest

from artvc.errors import RemoteError, RemoteExistsError, RemoteNotFoundError
from artvc.remote.fsspec_backend import open_backend

KINDS = ["local", "memory", "sftp", "s3"]


@pytest.fixture(params=KINDS)
def backend(request, tmp_path):
    kind = request.param
    if kind == "local":
        b = open_backend(str(tmp_path / "remote"))
    elif kind == "memory":
        b = open_backend(f"memory://artvc-conformance-{uuid.uuid4().hex}")
    elif kind == "sftp":
        server = request.getfixturevalue("sshd_server")
        request.getfixturevalue("ssh_home").trust_host()
        b = open_backend(server.url(f"conformance-{uuid.uuid4().hex}"))
    else:
        s3 = request.getfixturevalue("s3_env")
        bucket = s3.make_bucket(s3.unique_bucket())
        b = open_backend(f"s3://{bucket}/some/prefix")
    b.kind = kind
    try:
        yield b
    finally:
        if kind == "memory":
            for name in b.list(""):
                b.delete(name)
        b.close()


# ---- load and store ---------------------------------------------------------------------------------
def test_store_then_load_whole(backend):
    data = os.urandom(300_000)
    backend.store("packs/ab/object.pack", data)
    assert backend.load("packs/ab/object.pack") == data
    assert backend.info("packs/ab/object.pack") == len(data)


def test_load_ranges(backend):
    data = os.urandom(100_000)
    backend.store("blob", data)
    assert backend.load("blob", 0, 10) == data[:10]
    assert backend.load("blob", 1000, 5000) == data[1000:6000]
    assert backend.load("blob", 99_990) == data[99_990:]
    assert backend.load("blob", 99_999, 1) == data[-1:]
    assert backend.load("blob", 0, len(data)) == data
    assert backend.load("blob", 0) == data


def test_empty_object(backend):
    backend.store("empty", b"")
    assert backend.load("empty") == b""
    assert backend.info("empty") == 0
    assert backend.list("") == {"empty": 0}


def test_store_replaces(backend):
    backend.store("aliases/ds/best", b"first\n")
    backend.store("aliases/ds/best", b"second, longer\n")
    assert backend.load("aliases/ds/best") == b"second, longer\n"
    backend.store("aliases/ds/best", b"3\n")
    assert backend.load("aliases/ds/best") == b"3\n"
    assert backend.list("aliases") == {"aliases/ds/best": 2}


def _run_threads(*targets) -> list[BaseException]:
    """Run the targets on daemon threads; the errors they raised. A deadlock fails the test (bound, not a
    speed check: the calls are a few hundred KiB on 127.0.0.1); the fixture's close() then unblocks them."""
    errors: list[BaseException] = []

    def guarded(fn):
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guarded(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLOCK_BOUND)
    hung = sum(t.is_alive() for t in threads)
    assert not hung, f"{hung} of {len(threads)} threads still blocked after {DEADLOCK_BOUND} s: the backend deadlocks when called from several threads"
    return errors


DEADLOCK_BOUND = 30


def test_store_is_atomic_for_readers(backend):
    """A reader running alongside a writer sees the old content or the new, never a part or a mix
    (and the backend, documented as safe to call from several threads at once, does not block)."""
    old, new = b"o" * 200_000, b"n" * 200_000
    backend.store("obj", old)
    seen: list[bytes] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(12):
                backend.store("obj", new if i % 2 == 0 else old)
        finally:
            done.set()

    def reader() -> None:
        while not done.is_set() or len(seen) < 12:
            seen.append(backend.load("obj"))

    errors = _run_threads(writer, reader)
    assert not errors, errors
    bad = [len(s) for s in seen if s not in (old, new)]
    assert not bad, f"{len(bad)} of {len(seen)} reads saw a partial or mixed object (sizes {bad[:5]})"
    assert backend.load("obj") == old
    assert set(backend.list("")) == {"obj"}  # no temporary names left behind or listed


def test_parallel_stores_and_loads(backend):
    """Transfer runs several requests at once on one backend (jobs=4): they must all complete and be right."""
    blobs = {f"packs/{i:02x}/{i:064x}.pack": os.urandom(150_000 + i) for i in range(8)}

    def store(name):
        return lambda: backend.store(name, blobs[name])

    errors = _run_threads(*[store(n) for n in blobs])
    assert not errors, errors
    got: dict[str, bytes] = {}

    def load(name):
        return lambda: got.__setitem__(name, backend.load(name, 100, 50_000))

    errors = _run_threads(*[load(n) for n in blobs])
    assert not errors, errors
    assert got == {n: b[100:50_100] for n, b in blobs.items()}
    assert backend.list("packs") == {n: len(b) for n, b in blobs.items()}


# ---- exclusive create --------------------------------------------------------------------------------
def test_create_is_exclusive(backend):
    backend.create("versions/ds/0000000000", b"first\n")
    with pytest.raises(RemoteExistsError):
        backend.create("versions/ds/0000000000", b"second\n")
    assert backend.load("versions/ds/0000000000") == b"first\n"
    assert backend.list("versions") == {"versions/ds/0000000000": 6}


def test_create_refuses_an_object_that_store_wrote(backend):
    backend.store("marker", b"stored")
    with pytest.raises(RemoteExistsError):
        backend.create("marker", b"created")
    assert backend.load("marker") == b"stored"


def test_concurrent_creates_have_one_winner(backend):
    if backend.kind == "memory":
        pytest.skip("memory:// create is check-then-write by design (documented), so racing creates may both win")
    payloads = [f"writer {i}\n".encode() for i in range(8)]
    outcomes: list[object] = [None] * len(payloads)
    start = threading.Barrier(len(payloads))

    def create(i: int) -> None:
        start.wait()
        try:
            backend.create("versions/ds/0000000007", payloads[i])
            outcomes[i] = "won"
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcomes[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, o in enumerate(outcomes) if o == "won"]
    others = [o for o in outcomes if o != "won"]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, RemoteExistsError) for o in others), outcomes
    assert backend.load("versions/ds/0000000007") == payloads[winners[0]]


# ---- list, info, delete ------------------------------------------------------------------------------
def test_list_is_recursive_with_sizes(backend):
    backend.store("a/x", b"123")
    backend.store("a/b/y", b"12345")
    backend.store("a/b/c/z", b"1")
    backend.store("ab/w", b"12")
    backend.store("top", b"1234")
    assert backend.list("a") == {"a/x": 3, "a/b/y": 5, "a/b/c/z": 1}
    assert backend.list("a/b") == {"a/b/y": 5, "a/b/c/z": 1}
    assert backend.list("ab") == {"ab/w": 2}
    assert backend.list("") == {"a/x": 3, "a/b/y": 5, "a/b/c/z": 1, "ab/w": 2, "top": 4}


def test_list_of_a_missing_prefix_is_empty(backend):
    assert backend.list("") == {}
    assert backend.list("nothing/here") == {}
    backend.store("something/else", b"x")
    assert backend.list("nothing") == {}
    assert backend.list("somethin") == {}


def test_list_hides_temporary_names(backend):
    backend.store("index/.artvc-tmp-index-1234", b"partial")
    backend.store("index/real", b"whole")
    assert backend.list("index") == {"index/real": 5}


def test_info(backend):
    assert backend.info("missing") is None
    assert backend.info("dir/missing") is None
    backend.store("dir/obj", b"x" * 4321)
    assert backend.info("dir/obj") == 4321


def test_delete(backend):
    backend.store("aliases/ds/prod", b"id\n")
    backend.store("aliases/ds/best", b"id\n")
    backend.delete("aliases/ds/prod")
    assert backend.info("aliases/ds/prod") is None
    assert backend.list("aliases") == {"aliases/ds/best": 3}
    with pytest.raises(RemoteNotFoundError):
        backend.load("aliases/ds/prod")
    with pytest.raises(RemoteNotFoundError):
        backend.delete("aliases/ds/prod")
    with pytest.raises(RemoteNotFoundError):
        backend.delete("never/existed")


def test_store_file_then_load_file_streams_whole_objects(backend, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 12345)  # several SFTP windows' worth of blocks, not a multiple of any
    source = tmp_path / "source.pack"
    source.write_bytes(data)
    backend.store_file("packs/cd/streamed.pack", str(source))
    assert backend.info("packs/cd/streamed.pack") == len(data)
    assert backend.load("packs/cd/streamed.pack", 1000, 10) == data[1000:1010]
    assert not [n for n in backend.list("packs") if "tmp" in n]
    copy = tmp_path / "copy.pack"
    copy.write_bytes(b"left over by an interrupted attempt, longer than nothing")
    backend.load_file("packs/cd/streamed.pack", str(copy))  # overwrites: a retry after a partial copy works
    assert copy.read_bytes() == data

    smaller = tmp_path / "smaller.pack"
    smaller.write_bytes(b"replaced")
    backend.store_file("packs/cd/streamed.pack", str(smaller))
    assert backend.load("packs/cd/streamed.pack") == b"replaced"


def test_load_file_of_a_missing_object(backend, tmp_path):
    with pytest.raises(RemoteNotFoundError):
        backend.load_file("packs/00/missing.pack", str(tmp_path / "out.pack"))


def test_load_of_a_missing_object(backend):
    with pytest.raises(RemoteNotFoundError):
        backend.load("packs/00/missing.pack")
    with pytest.raises(RemoteNotFoundError):
        backend.load("packs/00/missing.pack", 10, 20)
    with pytest.raises(RemoteNotFoundError):
        backend.load("missing")


# ---- names -------------------------------------------------------------------------------------------
BAD_NAMES = [
    "", ".", "..", "../escape", "../../escape-further", "a/../../x", "a/..", "a/../b", "./a", "a/./b", "a//b", "a/",
    "/artvc-absolute-escape", "/tmp/artvc-absolute-escape", "a b", "a\\b", "a\x00b", "a\nb", "a:b", "a*b", "a?b", "~/x", "caf\u00e9", "$HOME/x",
]


class IOAttempted(BaseException):
    """Raised by the sentinel filesystem: BaseException, so no `except Exception` in the backend can hide it."""


class _NoIO:
    def __getattr__(self, name):
        raise IOAttempted(f"the backend touched its filesystem ({name}) for an invalid name")


def _operations(backend, name):
    return [
        ("load", lambda: backend.load(name)),
        ("load range", lambda: backend.load(name, 1, 2)),
        ("store", lambda: backend.store(name, b"data")),
        ("create", lambda: backend.create(name, b"data")),
        ("info", lambda: backend.info(name)),
        ("delete", lambda: backend.delete(name)),
    ] + ([("list", lambda: backend.list(name))] if name else [])


def test_invalid_names_are_refused_before_any_io(backend):
    real_fs = backend.fs
    backend.fs = _NoIO()
    try:
        for name in BAD_NAMES:
            for op, call in _operations(backend, name):
                with pytest.raises(RemoteError) as info:
                    call()
                assert not isinstance(info.value, (RemoteNotFoundError, RemoteExistsError)), (op, name, info.value)
    finally:
        backend.fs = real_fs


def test_invalid_names_touch_nothing(backend, tmp_path):
    backend.store("inside/ok", b"ok")
    before = backend.list("")
    outside = sorted(p.name for p in tmp_path.iterdir())
    for name in BAD_NAMES:
        for op, call in _operations(backend, name):
            with pytest.raises(RemoteError):
                call()
    assert backend.list("") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == outside
    assert not (tmp_path.parent / "escape-further").exists()
    assert not os.path.exists("/artvc-absolute-escape") and not os.path.exists("/tmp/artvc-absolute-escape")


def test_valid_odd_names_round_trip(backend):
    for name in ("a.b-c_d", "-leading-dash", "x/..y", "x/y..", ".hidden", "UPPER/lower/0123456789"):
        backend.store(name, name.encode())
        assert backend.load(name) == name.encode()
        assert backend.info(name) == len(name)
    assert set(backend.list("")) == {"a.b-c_d", "-leading-dash", "x/..y", "x/y..", ".hidden", "UPPER/lower/0123456789"}
