"""Refs in LMDB: version numbers, aliases, tracked-path settings and checked-out heads.

Every function takes an open LMDB transaction, so callers compose changes atomically
(a new version, its aliases and the head move in one write transaction).
"""
from __future__ import annotations

import json
import struct
from typing import Any

from .index import Index

NUM = struct.Struct(">I")


def _vkey(name: str, number: int) -> bytes:
    return name.encode() + b"\0" + NUM.pack(number)


def _prefix(name: str) -> bytes:
    return name.encode() + b"\0"


class Refs:
    def __init__(self, index: Index) -> None:
        self.index = index
        self.db = index.db

    # ---- versions ------------------------------------------------------------------------
    def latest_number(self, txn, name: str) -> int | None:
        cur = txn.cursor(db=self.db["versions"])
        prefix = _prefix(name)
        if cur.set_range(prefix + b"\xff\xff\xff\xff"):
            found = cur.prev()
        else:
            found = cur.last()
        if not found:
            return None
        key = cur.key()
        if not key.startswith(prefix) or len(key) != len(prefix) + 4:
            return None
        return NUM.unpack(key[len(prefix) :])[0]

    def list_versions(self, txn, name: str) -> list[tuple[int, bytes]]:
        prefix = _prefix(name)
        cur = txn.cursor(db=self.db["versions"])
        out = []
        if cur.set_range(prefix):
            for key, value in cur:
                if not key.startswith(prefix):
                    break
                out.append((NUM.unpack(key[len(prefix) :])[0], value))
        return out

    def version_id(self, txn, name: str, number: int) -> bytes | None:
        return txn.get(_vkey(name, number), db=self.db["versions"])

    def add_version(self, txn, name: str, version_id: bytes) -> int:
        """Give `version_id` the next number of `name` (inside the caller's write transaction)."""
        latest = self.latest_number(txn, name)
        number = 0 if latest is None else latest + 1
        txn.put(_vkey(name, number), version_id, db=self.db["versions"], overwrite=False)
        txn.put(version_id, _vkey(name, number), db=self.db["vids"])
        return number

    def renumber(self, txn, name: str, numbering: list[tuple[int, bytes]]) -> None:
        """Replace the numbers of an artifact's versions (after a fetch puts remote versions first)."""
        for number, vid in self.list_versions(txn, name):
            txn.delete(_vkey(name, number), db=self.db["versions"])
        for number, vid in numbering:
            txn.put(_vkey(name, number), vid, db=self.db["versions"])
            txn.put(vid, _vkey(name, number), db=self.db["vids"])

    def locate_version(self, txn, version_id: bytes) -> tuple[str, int] | None:
        raw = txn.get(version_id, db=self.db["vids"])
        if raw is None:
            return None
        name, num = raw[:-5], raw[-4:]
        return name.decode(), NUM.unpack(num)[0]

    def find_id_prefix(self, txn, name: str, hex_prefix: str) -> list[bytes]:
        return [vid for _, vid in self.list_versions(txn, name) if vid.hex().startswith(hex_prefix)]

    # ---- aliases -------------------------------------------------------------------------
    def get_alias(self, txn, name: str, alias: str) -> bytes | None:
        return txn.get(_prefix(name) + alias.encode(), db=self.db["aliases"])

    def set_alias(self, txn, name: str, alias: str, version_id: bytes) -> None:
        txn.put(_prefix(name) + alias.encode(), version_id, db=self.db["aliases"])

    def delete_alias(self, txn, name: str, alias: str) -> bool:
        return txn.delete(_prefix(name) + alias.encode(), db=self.db["aliases"])

    def aliases(self, txn, name: str) -> dict[str, bytes]:
        prefix = _prefix(name)
        cur = txn.cursor(db=self.db["aliases"])
        out = {}
        if cur.set_range(prefix):
            for key, value in cur:
                if not key.startswith(prefix):
                    break
                out[key[len(prefix) :].decode()] = value
        return out

    # ---- artifacts and heads ---------------------------------------------------------------
    def get_artifact(self, txn, name: str) -> dict[str, Any] | None:
        raw = txn.get(name.encode(), db=self.db["artifacts"])
        return json.loads(raw) if raw is not None else None

    def put_artifact(self, txn, name: str, settings: dict[str, Any]) -> None:
        txn.put(name.encode(), json.dumps(settings, sort_keys=True).encode(), db=self.db["artifacts"])

    def artifact_names(self, txn) -> list[str]:
        names = {key.decode() for key, _ in txn.cursor(db=self.db["artifacts"])}
        for key, _ in txn.cursor(db=self.db["versions"]):
            names.add(key[:-5].decode())
        return sorted(names)

    def get_head(self, txn, name: str) -> bytes | None:
        return txn.get(name.encode(), db=self.db["heads"])

    def set_head(self, txn, name: str, version_id: bytes | None) -> None:
        if version_id is None:
            txn.delete(name.encode(), db=self.db["heads"])
        else:
            txn.put(name.encode(), version_id, db=self.db["heads"])
