"""Checkout between versions of a large file reuses the chunks already on disk and stays exact."""
from __future__ import annotations

import os
import random

from conftest import assert_ok


def edited(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    mid = len(out) // 2
    out[mid : mid + 4096] = rng.randbytes(4096)
    out[1000:1000] = rng.randbytes(100)
    out += rng.randbytes(300_000)
    return bytes(out)


def test_switching_versions_of_a_large_file_is_exact(repo, cli):
    v0 = random.Random(1).randbytes(3_000_000)
    v1 = edited(v0, 2)
    path = repo / "data" / "big.bin"
    path.parent.mkdir()
    path.write_bytes(v0)
    os.chmod(path, 0o755)
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit"))
    path.write_bytes(v1)
    assert_ok(cli("commit"))
    for _ in range(2):
        assert_ok(cli("checkout", "ds:v0"))
        assert path.read_bytes() == v0
        assert os.stat(path).st_mode & 0o100
        assert_ok(cli("checkout", "ds:v1"))
        assert path.read_bytes() == v1
    assert "clean" in assert_ok(cli("status")).out
    assert not [n for n in os.listdir(path.parent) if "artvc-tmp" in n]


def test_a_modified_file_is_never_used_as_a_source(repo, cli):
    v0 = random.Random(3).randbytes(2_000_000)
    v1 = edited(v0, 4)
    path = repo / "big.bin"
    path.write_bytes(v0)
    assert_ok(cli("add", "big.bin", "-a", "ds"))
    assert_ok(cli("commit"))
    path.write_bytes(v1)
    assert_ok(cli("commit"))
    tampered = bytearray(v1)
    tampered[-10:] = b"x" * 10
    path.write_bytes(bytes(tampered))
    assert cli("checkout", "ds:v0").code == 1
    assert path.read_bytes() == bytes(tampered)
    assert_ok(cli("checkout", "ds:v0", "--force"))
    assert path.read_bytes() == v0
