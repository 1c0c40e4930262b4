"""Compression back-off in the store writer: data zstd cannot shrink costs few tries, data that
compresses is still compressed, and every chunk reads back as it was."""
from __future__ import annotations

import io
import os
import random

from artvc import storewriter
from artvc.api import Repo
from artvc.packs import COMPRESSION_NONE, COMPRESSION_ZSTD, read_pack_index
from artvc.storewriter import StoreWriter


def _counting_tries(monkeypatch) -> list[int]:
    tries: list[int] = []
    real = storewriter.compress_blob

    def counted(data, level, compressor=None):
        tries.append(len(data))
        return real(data, level, compressor)

    monkeypatch.setattr(storewriter, "compress_blob", counted)
    return tries


def _stored_forms(store) -> dict[bytes, int]:
    forms = {}
    for path in store.list_pack_files():
        with open(path, "rb") as f:
            forms.update((e.blob_id, e.compression) for e in read_pack_index(f, os.path.getsize(path)))
    return forms


def test_random_data_is_kept_raw_after_a_few_tries(tmp_path, monkeypatch):
    repo = Repo.init(str(tmp_path))
    store = repo._repository.store
    tries = _counting_tries(monkeypatch)
    data = random.Random(7).randbytes(8 << 20)
    with StoreWriter(store) as writer:
        chunks = writer.add_file(io.BytesIO(data))
    assert len(chunks.chunks) > 64
    assert 0 < len(tries) <= len(chunks.chunks) // 3
    assert set(_stored_forms(store).values()) == {COMPRESSION_NONE}
    assert b"".join(store.iter_file(chunks.chunks)) == data
    repo.close()


def test_compressible_data_after_random_data_is_still_compressed(tmp_path):
    """One file: 1 MiB of random bytes, then 3 MiB of text. Of the text's chunks, at most the few
    after the random ones are kept raw untried; the rest compress, and the file reads back whole."""
    repo = Repo.init(str(tmp_path))
    store = repo._repository.store
    rng = random.Random(11)
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(300)]
    text = b" ".join(rng.choices(words, k=600_000))[: 3 << 20]
    data = rng.randbytes(1 << 20) + text
    with StoreWriter(store) as writer:
        chunks = writer.add_file(io.BytesIO(data))
    forms = _stored_forms(store)
    text_ids, offset = [], 0
    for chunk_id, length in chunks.chunks:
        if offset >= 1 << 20:
            text_ids.append(chunk_id)
        offset += length
    compressed = sum(1 for chunk_id in text_ids if forms[chunk_id] == COMPRESSION_ZSTD)
    assert len(text_ids) > 2 * storewriter.MAX_UNTRIED
    assert compressed >= len(text_ids) - storewriter.MAX_UNTRIED
    packed = sum(os.path.getsize(p) for p in store.list_pack_files())
    assert packed < (1 << 20) + len(text) // 2
    assert b"".join(store.iter_file(chunks.chunks)) == data
    repo.close()
