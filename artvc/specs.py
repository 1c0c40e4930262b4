"""Version specs: NAME, NAME:vN, NAME:ALIAS, NAME:ID-PREFIX (an alias of the same spelling wins)."""
from __future__ import annotations

import re

from .errors import InvalidSpecError, UnknownArtifactError, UnknownVersionError
from .names import NAME_RE, VERSION_RE
from .refs import Refs

HEX_RE = re.compile(r"^[0-9a-f]{6,64}$")


def parse(spec: str) -> tuple[str, str]:
    """Split a spec into (name, ref); ref is 'latest' when omitted."""
    name, sep, ref = spec.partition(":")
    if not NAME_RE.match(name) or (sep and not ref):
        raise InvalidSpecError(f"invalid version spec {spec!r}: use NAME, NAME:vN, NAME:ALIAS or NAME:ID")
    return name, ref or "latest"


def resolve(refs: Refs, txn, spec: str) -> tuple[str, int, bytes]:
    """(name, number, version id) that `spec` names, or an error that says what exists."""
    name, ref = parse(spec)
    latest = refs.latest_number(txn, name)
    if latest is None:
        if refs.get_artifact(txn, name) is None:
            raise UnknownArtifactError(name)
        raise UnknownVersionError(spec, f"artifact '{name}' has no versions yet; run 'artvc commit {name}'")
    if ref == "latest":
        return name, latest, refs.version_id(txn, name, latest)
    match = VERSION_RE.match(ref)
    if match:
        number = int(match.group(1))
        vid = refs.version_id(txn, name, number)
        if vid is None:
            raise UnknownVersionError(spec, f"'{name}' has versions v0 to v{latest}")
        return name, number, vid
    vid = refs.get_alias(txn, name, ref)
    if vid is None and HEX_RE.match(ref.lower()):
        found = refs.find_id_prefix(txn, name, ref.lower())
        if len(found) > 1:
            raise InvalidSpecError(f"version id prefix '{ref}' of '{name}' is ambiguous; give more digits")
        vid = found[0] if found else None
    if vid is None:
        raise UnknownVersionError(spec, f"'{name}' has no version, alias or id '{ref}'; 'artvc log {name}' lists them")
    located = refs.locate_version(txn, vid)
    if located is None:
        raise UnknownVersionError(spec)
    return name, located[1], vid
