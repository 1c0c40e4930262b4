"""One exception hierarchy for artvc. Every message says what to do next.

Errors keep their facts as attributes so callers (and the CLI) need not parse text.
"""
from __future__ import annotations


class ArtvcError(Exception):
    """Root of every error artvc raises on purpose."""


class NotARepositoryError(ArtvcError):
    def __init__(self, start: str) -> None:
        super().__init__(f"not an artvc repository (or any parent up to /): {start}; run 'artvc init' first")
        self.start = start


class InvalidNameError(ArtvcError):
    """An artifact name or alias that the contract refuses."""


class InvalidSpecError(ArtvcError):
    """A version spec that cannot be parsed or names nothing."""


class UnknownArtifactError(ArtvcError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no artifact named '{name}'; 'artvc log' lists the artifacts of this repository")
        self.name = name


class UnknownVersionError(InvalidSpecError):
    def __init__(self, spec: str, hint: str = "") -> None:
        msg = f"no version matches '{spec}'"
        super().__init__(msg + (f"; {hint}" if hint else "; 'artvc log NAME' lists the versions"))
        self.spec = spec


class PathError(ArtvcError):
    """A path argument that is missing, outside the repository or otherwise unusable."""


class EntryNotFoundError(ArtvcError):
    def __init__(self, spec: str, path: str) -> None:
        super().__init__(f"'{path}' is not an entry of {spec}; 'artvc ls {spec}' lists its entries")
        self.spec = spec
        self.path = path


class ConflictError(ArtvcError):
    """Checkout would overwrite or delete work that is not in the store."""

    def __init__(self, paths: list[str], what: str) -> None:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        super().__init__(f"{what}: {shown}; commit them, move them away, or use --force to overwrite")
        self.paths = paths


class CorruptObjectError(ArtvcError):
    """Stored bytes do not match their hash, or a structure is malformed."""

    def __init__(self, what: str, expected: str = "", got: str = "") -> None:
        detail = f" (expected {expected}, got {got})" if expected else ""
        super().__init__(f"corrupt data: {what}{detail}; run 'artvc verify' to find what is damaged")
        self.what = what
        self.expected = expected
        self.got = got


class MissingObjectError(ArtvcError):
    def __init__(self, object_id: str, what: str = "chunk", hint: str = "fetch it from a remote first") -> None:
        super().__init__(f"{what} {object_id[:12]} is not in the local store; {hint}")
        self.object_id = object_id


class MissingDataError(MissingObjectError):
    """A version's data was never fetched into this repository."""

    def __init__(self, spec: str, version_id: str, missing: int) -> None:
        ArtvcError.__init__(self, f"the data of {spec} ({missing} chunks) is not in this repository; run 'artvc fetch {spec}' first")
        self.object_id = version_id
        self.spec = spec


class FormatError(ArtvcError):
    """A store, pack or object of a format version this artvc does not know."""


class ConfigError(ArtvcError):
    """A configuration value that is missing or invalid."""


class LockTimeoutError(ArtvcError):
    """Another artvc process kept the store busy for longer than we wait."""


class RemoteError(ArtvcError):
    """A remote could not be used; the message names the remote and what to check."""


class RemoteNotFoundError(RemoteError):
    """An object (or the remote itself) does not exist."""


class RemoteExistsError(RemoteError):
    """An exclusive create found the object already there."""


class RemoteUnreachableError(RemoteError):
    """The host did not answer, refused the connection, or timed out."""


class RemoteAuthError(RemoteError):
    """Credentials, keys or host keys were refused."""


class RemotePermissionError(RemoteError):
    """The remote refused an operation (permissions, missing bucket)."""


class PushRejectedError(RemoteError):
    """The remote moved on since this repository last saw it; pull first."""
