"""Property tests for the chunker, the pack format, the manifest codec and tree objects."""
from __future__ import annotations

import io
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artvc import manifest, packs, trees
from artvc.chunker import Chunker, ChunkerParams, hash_bytes
from artvc.errors import ArtvcError, CorruptObjectError
from artvc.manifest import KIND_FILE, KIND_REFERENCE, KIND_SYMLINK, Entry

SMALL = ChunkerParams(min_size=64, avg_size=256, max_size=1024)
PROFILE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def cuts(chunker: Chunker, data: bytes) -> list[bytes]:
    return [bytes(c) for c in chunker.cut_bytes(data)]


@PROFILE
@given(st.binary(min_size=0, max_size=20000), st.integers(min_value=64, max_value=5000))
def test_stream_chunking_equals_whole_buffer_chunking(data: bytes, block: int) -> None:
    chunker = Chunker(SMALL)
    streamed = list(chunker.cut_stream(io.BytesIO(data), block_size=block))
    assert streamed == cuts(chunker, data)
    assert b"".join(streamed) == data
    assert all(len(c) <= SMALL.max_size for c in streamed)


@PROFILE
@given(st.integers(0, 2**32), st.integers(0, 30000), st.binary(min_size=1, max_size=300))
def test_boundaries_stable_under_insertion(seed: int, position: int, inserted: bytes) -> None:
    data = random.Random(seed).randbytes(40000)
    position = min(position, len(data))
    edited = data[:position] + inserted + data[position:]
    chunker = Chunker(SMALL)
    before, after = cuts(chunker, data), cuts(chunker, edited)
    # Every chunk that ends before the insertion point is unchanged (FastCDC's cut test reads
    # the byte just past the cut, so a chunk ending exactly at the insertion may move).
    offset = 0
    for chunk in before:
        if offset + len(chunk) >= position:
            break
        assert chunk in after
        offset += len(chunk)
    # Far enough after the insertion, the chunks are the same again (content-defined resync).
    tail_start = position + 8 * SMALL.max_size
    offset, tail = 0, []
    for chunk in before:
        if offset >= tail_start:
            tail.append(chunk)
        offset += len(chunk)
    assert set(tail) <= set(after)
    changed = sum(len(c) for c in after if c not in set(before))
    assert changed <= len(inserted) + 8 * SMALL.max_size


blob_strategy = st.lists(
    st.tuples(st.sampled_from(packs.BLOB_TYPES), st.binary(min_size=0, max_size=3000)), min_size=1, max_size=20
)


@PROFILE
@given(blob_strategy, st.integers(0, 3))
def test_pack_round_trip(tmp_path_factory, blobs, level: int) -> None:
    folder = str(tmp_path_factory.mktemp("packs"))
    writer = packs.PackWriter(os.path.join(folder, "tmp.pack"))
    expected = {}
    for blob_type, data in blobs:
        blob_id = hash_bytes(data)
        if blob_id in writer:
            continue
        compression, stored = packs.compress_blob(data, level)
        writer.add(blob_id, blob_type, compression, len(data), stored)
        expected[blob_id] = (blob_type, data)
    pack_id, _ = writer.finish(folder)
    path = packs.pack_path(folder, pack_id)
    raw = open(path, "rb").read()
    assert hash_bytes(raw) == pack_id
    with open(path, "rb") as f:
        entries = packs.read_pack_index(f, len(raw))
    assert {e.blob_id for e in entries} == set(expected)
    for e in entries:
        stored = raw[e.offset : e.offset + e.stored_len]
        assert packs.decode_blob(stored, e.compression, e.raw_len, e.blob_id) == expected[e.blob_id][1]
        assert e.blob_type == expected[e.blob_id][0]


@PROFILE
@given(blob_strategy, st.lists(st.integers(1, 5), min_size=1, max_size=20))
def test_pack_written_in_batches_equals_pack_written_blob_by_blob(tmp_path_factory, blobs, batch_sizes) -> None:
    folder = str(tmp_path_factory.mktemp("packs"))
    unique = {hash_bytes(data): (blob_type, data) for blob_type, data in blobs}
    rows = [(blob_id, t, *packs.compress_blob(d, 1), d) for blob_id, (t, d) in unique.items()]
    one_by_one = packs.PackWriter(os.path.join(folder, "a.tmp"))
    for blob_id, blob_type, compression, stored, data in rows:
        one_by_one.add(blob_id, blob_type, compression, len(data), stored)
    batched = packs.PackWriter(os.path.join(folder, "b.tmp"))
    position, sizes = 0, iter(batch_sizes * len(rows))
    while position < len(rows):
        batch = rows[position : position + next(sizes)]
        batched.add_many([(b, t, c, len(d), s) for b, t, c, s, d in batch])
        position += len(batch)
    assert one_by_one.finish(folder) == batched.finish(folder)


index_entry_strategy = st.builds(
    packs.PackIndexEntry, st.binary(min_size=32, max_size=32), st.sampled_from(packs.BLOB_TYPES),
    st.sampled_from([packs.COMPRESSION_NONE, packs.COMPRESSION_ZSTD]), st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
)


@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.lists(index_entry_strategy, max_size=30,
                                                                         unique_by=lambda e: e.blob_id)),
                max_size=6, unique_by=lambda pack: pack[0]))
def test_location_rows_of_several_packs_merge_into_one_sorted_listing(pack_entries) -> None:
    """Sealed packs wait for the index as compact rows; merged, they give every blob's location in id order."""
    rows = [packs.location_rows(pack_id, entries) for pack_id, entries in pack_entries]
    for (_, entries), r in zip(pack_entries, rows):
        assert packs.row_count(r) == len(entries)
    merged = list(packs.merge_rows(rows))
    expected = sorted(
        (e.blob_id, packs.BlobLocation(pack_id, e.offset, e.stored_len, e.raw_len, e.blob_type, e.compression).encode())
        for pack_id, entries in pack_entries for e in entries
    )
    assert merged == expected
    located = {(pack_id, e.blob_id): e for pack_id, entries in pack_entries for e in entries}
    for blob_id, raw in merged:
        loc = packs.BlobLocation.decode(raw)
        e = located[(loc.pack_id, blob_id)]
        assert (loc.offset, loc.stored_len, loc.raw_len, loc.blob_type, loc.compression) == (
            e.offset, e.stored_len, e.raw_len, e.blob_type, e.compression)


def test_every_single_byte_flip_in_a_pack_is_detected(tmp_path) -> None:
    folder = str(tmp_path)
    writer = packs.PackWriter(os.path.join(folder, "tmp.pack"))
    datas = [b"alpha" * 40, os.urandom(200), b"gamma" * 100]
    for data in datas:
        compression, stored = packs.compress_blob(data, 3)
        writer.add(hash_bytes(data), packs.BLOB_DATA, compression, len(data), stored)
    pack_id, _ = writer.finish(folder)
    raw = open(packs.pack_path(folder, pack_id), "rb").read()
    for i in range(len(raw)):
        damaged = bytearray(raw)
        damaged[i] ^= 0x01
        damaged = bytes(damaged)
        assert hash_bytes(damaged) != pack_id
        try:
            entries = packs.read_pack_index(io.BytesIO(damaged), len(damaged))
            for e in entries:
                packs.decode_blob(damaged[e.offset : e.offset + e.stored_len], e.compression, e.raw_len, e.blob_id)
        except ArtvcError:
            continue
        pytest.fail(f"flip at byte {i} of {len(raw)} was not detected")


path_part = st.text(alphabet=st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..", ".artvc")
)
digest = st.binary(min_size=32, max_size=32)


@st.composite
def entries_strategy(draw):
    paths = draw(st.lists(st.lists(path_part, min_size=1, max_size=3).map("/".join), min_size=0, max_size=25, unique=True))
    # No entry may lie below another entry.
    chosen: list[str] = []
    for p in sorted(paths):
        if not any(p.startswith(c + "/") or c.startswith(p + "/") for c in chosen):
            chosen.append(p)
    out = []
    for p in chosen:
        kind = draw(st.sampled_from([KIND_FILE, KIND_FILE, KIND_SYMLINK, KIND_REFERENCE]))
        if kind == KIND_FILE:
            n = draw(st.integers(0, 4))
            chunks = tuple((draw(digest), draw(st.integers(1, 10**6))) for _ in range(n))
            size = sum(length for _, length in chunks)
            d = chunks[0][0] if n == 1 else (draw(digest) if n else manifest.EMPTY_DIGEST)
            out.append(Entry(p, KIND_FILE, size, draw(st.booleans()), d, chunks))
        elif kind == KIND_SYMLINK:
            out.append(Entry(p, KIND_SYMLINK, target=draw(st.text(min_size=1, max_size=20).filter(lambda t: "\x00" not in t))))
        else:
            fields = tuple(sorted(draw(st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3)).items()))
            out.append(Entry(p, KIND_REFERENCE, size=draw(st.integers(0, 10**9)), uri=draw(st.text(min_size=1, max_size=30)), checksums=fields))
    return out


@PROFILE
@given(entries_strategy())
def test_manifest_round_trip_and_canonical(entries) -> None:
    encoded = manifest.encode(entries)
    decoded = manifest.decode(encoded)
    assert sorted(decoded, key=lambda e: e.path.encode("utf-8", "surrogateescape")) == decoded
    assert {e.path: e for e in decoded} == {e.path: e for e in entries}
    streamed = manifest.ManifestEncoder()
    for e in decoded:
        streamed.add(e)
    assert bytes(streamed.finish_in_place()) == encoded
    with pytest.raises(ValueError):
        streamed.add(Entry("zzz"))
    assert manifest.encode(reversed(entries)) == encoded


@pytest.mark.parametrize("bad", ["../etc/passwd", "/abs", "a/../../b", "a//b", "./a", ".artvc/config", "a\\b", "a/./b", ""])
def test_manifest_refuses_hostile_paths(bad: str) -> None:
    def one_entry(name: bytes) -> bytes:
        # count 1; shared prefix 0; name; kind file; flags 0; size 1; one chunk; digest
        return manifest.MAGIC + b"\x01\x00" + bytes([len(name)]) + name + b"\x00\x00\x01\x01" + b"x" * 32

    assert manifest.decode(one_entry(b"ok"))[0].path == "ok"
    with pytest.raises(CorruptObjectError):
        manifest.decode(one_entry(bad.encode()))


def test_manifest_refuses_entries_below_a_file() -> None:
    e1 = Entry("a", KIND_SYMLINK, target="/etc")
    e2 = Entry("a/passwd", KIND_FILE, 1, False, b"y" * 32, ((b"y" * 32, 1),))
    with pytest.raises(CorruptObjectError):
        manifest.decode(manifest.encode([e1, e2]))


path_strategy = st.lists(st.sampled_from(["a", "b", "a-", "a.b", "é"]), min_size=1, max_size=4).map("/".join)


@given(st.sets(path_strategy, min_size=1, max_size=12))
def test_manifest_refuses_exactly_the_entries_below_another_entry(paths) -> None:
    """Decoding holds only the chain of entries that prefix the current path; it must still catch
    every path below another entry, however many entries sort between them."""
    d = b"y" * 32
    encoded = manifest.encode([Entry(p, KIND_FILE, 1, False, d, ((d, 1),)) for p in paths])
    below_another = any(q.startswith(p + "/") for p in paths for q in paths)
    if below_another:
        with pytest.raises(CorruptObjectError):
            manifest.decode(encoded)
    else:
        assert sorted(e.path for e in manifest.decode(encoded)) == sorted(paths)


@PROFILE
@given(st.binary(max_size=200000))
def test_tree_round_trip(data: bytes) -> None:
    blobs: dict[bytes, bytes] = {}

    def put(blob: bytes) -> bytes:
        blob_id = hash_bytes(blob)
        blobs[blob_id] = blob
        return blob_id

    tree_id = trees.store_tree(data, Chunker(ChunkerParams(256, 1024, 4096)), put)
    assert trees.load_tree(tree_id, blobs.__getitem__) == data
    assert set(trees.tree_blob_ids(tree_id, blobs.__getitem__)) <= set(blobs)


def test_tree_shares_chunks_between_similar_manifests() -> None:
    chunker = Chunker(ChunkerParams(256, 1024, 4096))
    entries = [Entry(f"d{i % 20:02d}/f{i:06d}.bin", KIND_FILE, 10, False, hash_bytes(str(i).encode()), ((hash_bytes(str(i).encode()), 10),)) for i in range(20000)]
    first: dict[bytes, bytes] = {}
    second: dict[bytes, bytes] = {}
    trees.store_tree(manifest.encode(entries), chunker, lambda b: first.setdefault(hash_bytes(b), b) and hash_bytes(b))
    edited = entries[:100] + entries[101:] + [Entry("d_new/x.bin", KIND_FILE, 3, False, hash_bytes(b"new"), ((hash_bytes(b"new"), 3),))]
    trees.store_tree(manifest.encode(edited), chunker, lambda b: second.setdefault(hash_bytes(b), b) and hash_bytes(b))
    new_bytes = sum(len(b) for k, b in second.items() if k not in first)
    total = sum(len(b) for b in second.values())
    assert new_bytes < total / 20
