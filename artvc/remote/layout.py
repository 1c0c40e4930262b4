"""Object names on a remote (docs/format.md, "Remote layout")."""
from __future__ import annotations

import json
import re
import secrets

from ..errors import FormatError, RemoteError

REMOTE_FORMAT = 1
MARKER = "artvc-remote.json"
VERSION_FILE = re.compile(r"^versions/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/(\d{10})$")
ALIAS_FILE = re.compile(r"^aliases/([A-Za-z0-9][A-Za-z0-9._-]{0,127})/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$")
INDEX_FILE = re.compile(r"^index/([0-9a-f]{64})$")
HEX64 = re.compile(rb"^[0-9a-f]{64}\n?$")


def marker_bytes() -> bytes:
    """A new remote's marker; its random id tells a remote apart from one recreated under the same URL."""
    body = {"kind": "artvc.remote", "format": REMOTE_FORMAT, "id": secrets.token_hex(16)}
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def check_marker(raw: bytes, url: str) -> str:
    """Validate a marker; returns the remote's id."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("kind") != "artvc.remote":
        raise RemoteError(f"{url} is not an artvc remote ({MARKER} is not ours)")
    if data.get("format") != REMOTE_FORMAT:
        raise FormatError(f"{url} has remote format {data.get('format')!r}; this artvc knows {REMOTE_FORMAT}: upgrade artvc")
    return str(data.get("id", ""))


def pack_name(pack_id: bytes) -> str:
    h = pack_id.hex()
    return f"packs/{h[:2]}/{h}.pack"


def index_name(pack_id: bytes) -> str:
    return f"index/{pack_id.hex()}"


def version_name(artifact: str, number: int) -> str:
    return f"versions/{artifact}/{number:010d}"


def alias_name(artifact: str, alias: str) -> str:
    return f"aliases/{artifact}/{alias}"


def id_bytes(version_id: bytes) -> bytes:
    return version_id.hex().encode() + b"\n"


def parse_id(raw: bytes, what: str) -> bytes:
    if not HEX64.match(raw):
        raise RemoteError(f"{what} on the remote is malformed")
    return bytes.fromhex(raw.strip().decode())
