"""Checkout between versions of a large file reuses the chunks already on disk and stays exact."""
from __future__ import annotations

import os
import random

import pytest

from artvc import checkout
from artvc.fsutil import replace_large
from conftest import assert_ok


def edited(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    mid = len(out) // 2
    out[mid : mid + 4096] = rng.randbytes(4096)
    out[1000:1000] = rng.randbytes(100)
    out += rng.randbytes(300_000)
    return bytes(out)


@pytest.mark.parametrize("move_aside", [False, True], ids=["rename-over", "move-aside"])
def test_switching_versions_of_a_large_file_is_exact(repo, cli, monkeypatch, move_aside):
    monkeypatch.setattr(checkout, "LARGE_REPLACE", 1 if move_aside else 1 << 40)
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


@pytest.mark.parametrize("use_temp_dir", [False, True])
def test_replace_large_leaves_the_old_inode_to_its_readers_and_nothing_behind(tmp_path, use_temp_dir):
    folder, temp_dir = tmp_path / "ws", tmp_path / "tmp"
    folder.mkdir()
    temp_dir.mkdir()
    path, new = folder / "big.bin", folder / "big.new"
    path.write_bytes(b"old" * 1000)
    new.write_bytes(b"new" * 2000)
    with open(path, "rb") as reader:
        replace_large(str(new), str(path), str(temp_dir) if use_temp_dir else None)
        assert reader.read() == b"old" * 1000
    assert path.read_bytes() == b"new" * 2000
    assert sorted(os.listdir(folder)) == ["big.bin"]
    assert os.listdir(temp_dir) == []


def test_replace_large_puts_the_old_file_back_when_the_new_one_cannot_be_moved(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        replace_large(str(tmp_path / "missing.tmp"), str(path))
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["big.bin"]


def test_replace_large_onto_a_free_name(tmp_path):
    new = tmp_path / "a.tmp"
    new.write_bytes(b"x")
    replace_large(str(new), str(tmp_path / "a.bin"))
    assert os.listdir(tmp_path) == ["a.bin"]
