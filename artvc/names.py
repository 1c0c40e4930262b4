"""Validation of artifact names and aliases (the contract's rules)."""
from __future__ import annotations

import re

from .errors import InvalidNameError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_RE = re.compile(r"^v(\d+)$")
RESERVED_ALIASES = {"latest"}


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidNameError(
            f"invalid artifact name {name!r}: use 1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_alias(alias: str, *, allow_reserved: bool = False) -> str:
    if not isinstance(alias, str) or not NAME_RE.match(alias):
        raise InvalidNameError(
            f"invalid alias {alias!r}: use 1-128 ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if VERSION_RE.match(alias):
        raise InvalidNameError(f"invalid alias {alias!r}: an alias may not look like a version number (v<digits>)")
    if alias in RESERVED_ALIASES and not allow_reserved:
        raise InvalidNameError(f"'{alias}' is kept by artvc itself and always names the newest version")
    return alias
