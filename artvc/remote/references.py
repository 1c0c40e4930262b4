"""External references: an entry that records where bytes live and the checksum the source gives.

Never the bytes themselves. Per scheme:
    file://        size, mtime, blake3 of the content
    sftp:// ssh:// size, mtime, blake3 of the content (read once over SFTP)
    s3://          ETag, size, and the version id when the bucket is versioned (?versionId= pins one)
    http(s)://     ETag, Content-Length, Last-Modified
    other fsspec   whatever info() gives among etag, md5, checksum, size, mtime
Reading a reference back verifies it against what was recorded; a mismatch is an error naming the
entry, and nothing is written.
"""
from __future__ import annotations

import hashlib
import posixpath
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from .. import chunker
from ..errors import ArtvcError, CorruptObjectError, RemoteError, RemoteNotFoundError
from .fsspec_backend import _s3_filesystem, _ssh_client, translate

HTTP_TIMEOUT = 15.0
BLOCK = 8 << 20


@dataclass(frozen=True)
class RefObject:
    """One object a reference URI names: its own URI, a path below the URI (for prefixes), size, checksums."""

    uri: str
    relative: str
    size: int
    checksums: tuple[tuple[str, str], ...]


class ReferenceDrift(ArtvcError):
    """A reference's content no longer matches what the version recorded."""


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme.lower() if "://" in uri else "file"


class _Source:
    """Listing, checksums and reading for one URI scheme."""

    def __init__(self, uri: str, options: dict[str, str]) -> None:
        self.uri = uri
        self.options = options
        self.scheme = _scheme(uri)
        self._fs: Any = None

    # ---- filesystems -------------------------------------------------------------------------------
    def fs(self):
        if self._fs is None:
            if self.scheme == "s3":
                self._fs = _s3_filesystem(self.options, self.uri, version_aware=True)
            elif self.scheme in ("sftp", "ssh"):
                client, _ = _ssh_client(urlsplit(self.uri), self.options, self.uri)
                self._fs = client.open_sftp()
                self._client = client
            elif self.scheme == "file":
                import fsspec

                self._fs = fsspec.filesystem("file", skip_instance_cache=True)
            else:
                import fsspec

                self._fs = fsspec.filesystem(self.scheme, skip_instance_cache=True, **self.options)
        return self._fs

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    # ---- listing -------------------------------------------------------------------------------------
    def objects(self, checksum: bool, max_objects: int | None) -> list[RefObject]:
        try:
            if self.scheme in ("http", "https"):
                return [self._http_object(self.uri, "", checksum)]
            if self.scheme in ("sftp", "ssh"):
                return self._sftp_objects(checksum, max_objects)
            return self._fsspec_objects(checksum, max_objects)
        except ArtvcError:
            raise
        except Exception as exc:  # noqa: BLE001 - library errors become artvc errors naming the URI
            raise translate(exc, self.uri, "reading the reference") from exc

    def _limit(self, found: list, max_objects: int | None) -> None:
        if max_objects is not None and len(found) > max_objects:
            raise ArtvcError(
                f"{self.uri} names more than {max_objects} objects; raise max_objects or reference a narrower prefix"
            )

    def _fsspec_objects(self, checksum: bool, max_objects: int | None) -> list[RefObject]:
        fs = self.fs()
        parts = urlsplit(self.uri)
        path = unquote(parts.path) if self.scheme == "file" else fs._strip_protocol(self.uri)
        if self.scheme == "file" and "://" not in self.uri:
            path = self.uri
        pinned = parse_qs(parts.query).get("versionId", [None])[0] if self.scheme == "s3" else None
        base_path = path.split("?", 1)[0]
        if pinned:
            info = fs.info(base_path, version_id=pinned)
            return [self._fsspec_ref(self.uri, "", info, checksum, fs)]
        try:
            info = fs.info(base_path)
        except FileNotFoundError:
            raise RemoteNotFoundError(f"{self.uri} does not exist") from None
        if info.get("type") != "directory":
            return [self._fsspec_ref(self.uri, "", info, checksum, fs)]
        found = []
        for full, item in sorted(fs.find(base_path, detail=True).items()):
            if item.get("type") == "directory":
                continue
            found.append((full, item))
            self._limit(found, max_objects)
        if not found:
            raise RemoteNotFoundError(f"{self.uri} names no objects")
        root = base_path.rstrip("/")
        out = []
        for full, item in found:
            rel = full[len(root) + 1 :] if full.startswith(root + "/") else posixpath.basename(full)
            out.append(self._fsspec_ref(self._child_uri(rel), rel, item, checksum, fs))
        return out

    def _child_uri(self, rel: str) -> str:
        parts = urlsplit(self.uri) if "://" in self.uri else None
        if parts is None:
            return posixpath.join(self.uri, rel)
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/" + rel, "", ""))

    def _fsspec_ref(self, uri: str, rel: str, info: dict, checksum: bool, fs) -> RefObject:
        if not checksum:
            return RefObject(uri, rel, 0, ())
        size = int(info.get("size") or 0)
        sums: dict[str, str] = {}
        if self.scheme == "s3":
            sums["etag"] = str(info.get("ETag", "")).strip('"')
            if info.get("VersionId") and info.get("VersionId") != "null":
                sums["version_id"] = str(info["VersionId"])
                uri = uri.split("?", 1)[0] + f"?versionId={info['VersionId']}"
        elif self.scheme == "file":
            sums["blake3"] = _blake3_of(fs.open(info["name"], "rb"))
            sums["mtime"] = str(info.get("mtime", ""))
        else:
            for key in ("etag", "ETag", "md5", "checksum", "crc32c", "mtime", "LastModified", "last_modified"):
                if info.get(key) not in (None, ""):
                    sums[key.lower()] = str(info[key]).strip('"')
        return RefObject(uri, rel, size, tuple(sorted(sums.items())))

    def _sftp_objects(self, checksum: bool, max_objects: int | None) -> list[RefObject]:
        import stat as statmod

        sftp = self.fs()
        root = unquote(urlsplit(self.uri).path)
        st = sftp.stat(root)
        files: list[tuple[str, Any]] = []
        if statmod.S_ISDIR(st.st_mode or 0):
            def walk(folder: str) -> None:
                for attr in sorted(sftp.listdir_attr(folder), key=lambda a: a.filename):
                    full = f"{folder}/{attr.filename}"
                    if statmod.S_ISDIR(attr.st_mode or 0):
                        walk(full)
                    else:
                        files.append((full, attr))
                        self._limit(files, max_objects)
            walk(root.rstrip("/"))
        else:
            files.append((root, st))
        out = []
        for full, attr in files:
            rel = full[len(root.rstrip("/")) + 1 :] if full != root else ""
            uri = self._child_uri(rel) if rel else self.uri
            sums: tuple[tuple[str, str], ...] = ()
            if checksum:
                with sftp.open(full, "rb") as f:
                    f.prefetch()
                    sums = (("blake3", _blake3_of(f)), ("mtime", str(attr.st_mtime)))
            out.append(RefObject(uri, rel, int(attr.st_size or 0) if checksum else 0, sums))
        return out

    def _http_object(self, uri: str, rel: str, checksum: bool) -> RefObject:
        request = urllib.request.Request(uri, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=float(self.options.get("timeout", HTTP_TIMEOUT))) as response:
                headers = response.headers
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise RemoteNotFoundError(f"{uri} does not exist (HTTP 404)") from None
            raise RemoteError(f"{uri} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise translate(getattr(exc, "reason", exc) if isinstance(getattr(exc, "reason", None), BaseException) else exc, uri, "HEAD") from None
        size = int(headers.get("Content-Length") or 0) if checksum else 0
        sums = {}
        if checksum:
            for header, key in (("ETag", "etag"), ("Content-Length", "content_length"), ("Last-Modified", "last_modified")):
                if headers.get(header):
                    sums[key] = headers[header].strip('"') if key == "etag" else headers[header]
        return RefObject(uri, rel, size, tuple(sorted(sums.items())))

    # ---- reading --------------------------------------------------------------------------------------
    def read(self, uri: str, checksums: dict[str, str]) -> Iterator[bytes]:
        """The referenced bytes; the recorded S3 version when there is one."""
        try:
            if self.scheme in ("http", "https"):
                with urllib.request.urlopen(uri, timeout=float(self.options.get("timeout", HTTP_TIMEOUT))) as response:
                    etag = (response.headers.get("ETag") or "").strip('"')
                    if checksums.get("etag") and etag != checksums["etag"]:
                        raise ReferenceDrift(f"ETag is now {etag or 'absent'}, recorded {checksums['etag']}")
                    modified = response.headers.get("Last-Modified") or ""
                    if not checksums.get("etag") and checksums.get("last_modified") and modified != checksums["last_modified"]:
                        raise ReferenceDrift(f"Last-Modified is now {modified or 'absent'}, recorded {checksums['last_modified']}")
                    yield from iter(lambda: response.read(BLOCK), b"")
                return
            if self.scheme in ("sftp", "ssh"):
                with self.fs().open(unquote(urlsplit(uri).path), "rb") as f:
                    f.prefetch()
                    yield from iter(lambda: f.read(BLOCK), b"")
                return
            fs = self.fs()
            if self.scheme == "s3":
                path = fs._strip_protocol(uri.split("?", 1)[0])
                version = checksums.get("version_id")
                info = fs.info(path, version_id=version) if version else fs.info(path)
                if checksums.get("etag") and str(info.get("ETag", "")).strip('"') != checksums["etag"]:
                    raise ReferenceDrift(f"ETag is now {str(info.get('ETag', '')).strip(chr(34))}, recorded {checksums['etag']}")
                with fs.open(path, "rb", version_id=version) if version else fs.open(path, "rb") as f:
                    yield from iter(lambda: f.read(BLOCK), b"")
                return
            path = unquote(urlsplit(uri).path) if "://" in uri and self.scheme == "file" else (uri if self.scheme == "file" else fs._strip_protocol(uri))
            with fs.open(path, "rb") as f:
                yield from iter(lambda: f.read(BLOCK), b"")
        except ArtvcError:
            raise
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"{uri} answered HTTP {exc.code}") from None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, uri, "reading the reference") from exc


def _blake3_of(f) -> str:
    with f:
        return chunker.hash_stream(f).hex()


def resolve(uri: str, checksum: bool = True, max_objects: int | None = None, options: dict[str, str] | None = None) -> list[RefObject]:
    """The objects a reference URI names (one, or every object below a prefix or folder)."""
    source = _Source(uri, dict(options or {}))
    try:
        return source.objects(checksum, max_objects)
    finally:
        source.close()


def read_verified(uri: str, size: int, checksums: dict[str, str], options: dict[str, str] | None = None) -> Iterator[bytes]:
    """The referenced bytes, checked at the end against size, content hash or MD5 ETag.

    The caller writes to a temporary file and keeps it only if the iteration ends without error.
    """
    source = _Source(uri, dict(options or {}))
    hasher = chunker.new_hasher()
    md5 = hashlib.md5(usedforsecurity=False)
    got = 0
    try:
        for block in source.read(uri, checksums):
            hasher.update(block)
            md5.update(block)
            got += len(block)
            yield block
    finally:
        source.close()
    if size and got != size:
        raise ReferenceDrift(f"size is now {got}, recorded {size}")
    if checksums.get("blake3") and hasher.hexdigest() != checksums["blake3"]:
        raise ReferenceDrift("content no longer matches its recorded blake3")
    etag = checksums.get("etag", "")
    if etag and "-" not in etag and len(etag) == 32 and _scheme(uri) == "s3" and md5.hexdigest() != etag:
        raise CorruptObjectError(f"content of {uri} does not match its ETag (MD5)")


def drift(uri: str, size: int, checksums: dict[str, str], options: dict[str, str] | None = None) -> str | None:
    """None when the reference still matches what was recorded, else what changed."""
    try:
        now = resolve(uri, checksum=True, options=options)
    except RemoteNotFoundError as exc:
        return f"gone ({exc})"
    if len(now) != 1:
        return f"now names {len(now)} objects"
    current = dict(now[0].checksums)
    if checksums.get("version_id"):
        return None if current.get("etag") == checksums.get("etag") else "the pinned version changed"
    changed = [k for k, v in checksums.items() if k != "mtime" and current.get(k) != v]
    if size and now[0].size != size:
        changed.append("size")
    return f"{', '.join(sorted(set(changed)))} changed" if changed else None
