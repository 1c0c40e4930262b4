"""What this repository knows of each remote, cached in LMDB so a no-op push or fetch costs a few requests."""
from __future__ import annotations

import struct

from ..index import Index
from ..packs import BlobLocation, merge_rows, row_count

NUM = struct.Struct(">I")
PACK_COUNT = struct.Struct("<I")


class RemoteState:
    def __init__(self, index: Index, remote: str) -> None:
        self.index = index
        self.db = index.db
        self.prefix = remote.encode() + b"\0"

    # ---- identity ----------------------------------------------------------------------------
    def remote_id(self, txn) -> str | None:
        raw = txn.get(self.prefix + b"@id", db=self.db["remote_packs"])
        return raw.decode() if raw is not None else None

    def set_remote_id(self, remote_id: str) -> None:
        """Remember which remote this is; a different id means everything cached is stale."""
        with self.index.read() as txn:
            if self.remote_id(txn) == remote_id:
                return
        self.forget()
        with self.index.write() as txn:
            txn.put(self.prefix + b"@id", remote_id.encode(), db=self.db["remote_packs"])

    # ---- packs and blobs --------------------------------------------------------------------
    def has_pack(self, txn, pack_id: bytes) -> bool:
        return txn.get(self.prefix + pack_id, db=self.db["remote_packs"]) is not None

    def add_packs(self, packs: list[tuple[bytes, bytes]]) -> None:
        """Record remote packs, given as (pack id, location rows), and their blobs in one
        transaction, keys in order (see Store.index_rows)."""
        prefix = self.prefix
        with self.index.write() as txn:
            for blob_id, loc in merge_rows(rows for _, rows in packs):
                txn.put(prefix + blob_id, loc, db=self.db["remote_blobs"])
            for pack_id, rows in packs:
                txn.put(prefix + pack_id, PACK_COUNT.pack(row_count(rows)), db=self.db["remote_packs"])

    def pack_blob_count(self, txn, pack_id: bytes) -> int | None:
        """How many blobs the remote pack holds (None: not known, e.g. cached by an older artvc)."""
        raw = txn.get(self.prefix + pack_id, db=self.db["remote_packs"])
        return PACK_COUNT.unpack(raw)[0] if raw is not None and len(raw) == PACK_COUNT.size else None

    def locate(self, txn, blob_id: bytes) -> BlobLocation | None:
        raw = txn.get(self.prefix + blob_id, db=self.db["remote_blobs"])
        return BlobLocation.decode(raw) if raw is not None else None

    def has_blob(self, txn, blob_id: bytes) -> bool:
        return txn.get(self.prefix + blob_id, db=self.db["remote_blobs"]) is not None

    # ---- versions ----------------------------------------------------------------------------
    def versions(self, txn, artifact: str | None = None) -> dict[str, dict[int, bytes]]:
        start = self.prefix + (artifact.encode() + b"\0" if artifact else b"")
        out: dict[str, dict[int, bytes]] = {}
        cur = txn.cursor(db=self.db["remote_versions"])
        if cur.set_range(start):
            for key, value in cur:
                if not key.startswith(start):
                    break
                name, num = key[len(self.prefix) : -5], key[-4:]
                out.setdefault(name.decode(), {})[NUM.unpack(num)[0]] = value
        return out

    def set_version(self, txn, artifact: str, number: int, version_id: bytes) -> None:
        txn.put(self.prefix + artifact.encode() + b"\0" + NUM.pack(number), version_id, db=self.db["remote_versions"])

    # ---- aliases (the lease) -------------------------------------------------------------------
    def aliases(self, txn) -> dict[tuple[str, str], bytes]:
        out = {}
        cur = txn.cursor(db=self.db["remote_aliases"])
        if cur.set_range(self.prefix):
            for key, value in cur:
                if not key.startswith(self.prefix):
                    break
                name, _, alias = key[len(self.prefix) :].partition(b"\0")
                out[(name.decode(), alias.decode())] = value
        return out

    def set_alias(self, txn, artifact: str, alias: str, version_id: bytes | None) -> None:
        key = self.prefix + artifact.encode() + b"\0" + alias.encode()
        if version_id is None:
            txn.delete(key, db=self.db["remote_aliases"])
        else:
            txn.put(key, version_id, db=self.db["remote_aliases"])

    def forget(self) -> None:
        """Drop everything known about this remote (remote remove, or a remote replaced under its name)."""
        with self.index.write() as txn:
            for db in ("remote_blobs", "remote_packs", "remote_versions", "remote_aliases"):
                cur = txn.cursor(db=self.db[db])
                if cur.set_range(self.prefix):
                    while cur.key().startswith(self.prefix):
                        if not cur.delete():
                            break
