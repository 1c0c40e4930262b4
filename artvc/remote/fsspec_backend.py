"""Backends: local folders, S3 (s3fs) and any other fsspec URL over fsspec; SFTP over paramiko.

Each filesystem is made with skip_instance_cache, so no credentials, connections or state leak
between remotes, threads or forked processes. Writes are atomic per backend:
    local   temp file + fsync + rename; exclusive create by os.link of a complete temp file
    sftp    temp name + posix-rename; exclusive create with the SFTP O_EXCL open flag
    s3      single PUT (atomic by S3's rules); exclusive create with If-None-Match: * (conditional PUT)
    other   pipe_file; exclusive create is check-then-write (not atomic; see docs/remotes.md)
Packs are streamed from and to files (store_file/load_file): local folders copy in the kernel,
SFTP writes 1 MiB blocks and reads 2 MiB windows of pipelined requests, s3fs and others use
put_file/get_file.
"""
from __future__ import annotations

import errno
import os
import secrets
import socket
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import fsspec

from ..errors import (
    RemoteAuthError,
    RemoteError,
    RemoteExistsError,
    RemoteNotFoundError,
    RemotePermissionError,
    RemoteUnreachableError,
)
from ..fsutil import copy_file, fsync_dir
from .backend import Backend, check_name

SFTP_BLOCK = 32 << 10
STREAM_BLOCK = 1 << 20
SFTP_WINDOW = 2 << 20
UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ECONNRESET, errno.EPIPE}


def translate(exc: BaseException, url: str, what: str) -> RemoteError:
    """Map an exception from fsspec, paramiko, botocore or the OS to the backend's error meanings."""
    name = type(exc).__name__
    text = str(exc) or name
    if isinstance(exc, RemoteError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return RemoteNotFoundError(f"{what}: not found on {url}")
    if isinstance(exc, FileExistsError):
        return RemoteExistsError(f"{what}: already exists on {url}")
    if isinstance(exc, PermissionError):
        if url.startswith(("s3://", "s3a://")):
            return RemoteAuthError(
                f"{what}: access denied on {url} ({text}); check the credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, "
                f"~/.aws/credentials) and the bucket's permissions"
            )
        return RemotePermissionError(f"{what}: permission denied on {url} ({text})")
    if name in ("AuthenticationException", "BadAuthenticationType", "PasswordRequiredException", "NoCredentialsError", "PartialCredentialsError"):
        return RemoteAuthError(f"authentication to {url} failed ({text}); check the user, keys or credentials")
    if name == "BadHostKeyException":
        return RemoteAuthError(
            f"the host key of {url} has CHANGED since it was recorded in known_hosts: refusing to connect. "
            f"If the server was really re-keyed, remove the old key with 'ssh-keygen -R HOST' and connect again"
        )
    if isinstance(exc, (socket.timeout, TimeoutError)) or name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "NoValidConnectionsError", "ClientConnectorError", "ServerDisconnectedError"):
        return RemoteUnreachableError(f"cannot reach {url}: {text}")
    if isinstance(exc, socket.gaierror):
        return RemoteUnreachableError(f"cannot reach {url}: unknown host ({text})")
    if isinstance(exc, OSError) and exc.errno in UNREACHABLE_ERRNOS:
        return RemoteUnreachableError(f"cannot reach {url}: {exc.strerror or text}")
    if name in ("SSHException", "ChannelException", "EOFError") or isinstance(exc, (EOFError, ConnectionError)):
        return RemoteUnreachableError(f"connection to {url} failed: {text}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return RemoteError(f"{what}: no space left on {url}")
    return RemoteError(f"{what} on {url} failed: {name}: {text}")


class FsspecBackend:
    """Backend over one fsspec filesystem rooted at `root`."""

    protocol = "generic"

    def __init__(self, fs: Any, root: str, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url
        self._made_dirs: set[str] = set()
        self._lock = threading.Lock()

    def path(self, name: str) -> str:
        return f"{self.root}/{check_name(name)}" if self.root else check_name(name)

    def _guard(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - every library error is mapped to a backend error
            raise translate(exc, self.url, what) from exc

    def _parent(self, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        with self._lock:
            if parent in self._made_dirs:
                return
        self.makedirs(parent)
        with self._lock:
            self._made_dirs.add(parent)

    def makedirs(self, path: str) -> None:
        self._guard(path, self.fs.makedirs, path, exist_ok=True)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self.path(name)
        if offset == 0 and length is None:
            return self._guard(name, self.fs.cat_file, path)
        end = None if length is None else offset + length
        return self._guard(name, self.fs.cat_file, path, start=offset, end=end)

    def load_file(self, name: str, local_path: str) -> None:
        self._guard(name, self.fs.get_file, self.path(name), local_path)

    def store(self, name: str, data: bytes) -> None:
        path = self.path(name)
        self._parent(path)
        self._guard(name, self.fs.pipe_file, path, data)

    def store_file(self, name: str, local_path: str) -> None:
        path = self.path(name)
        self._parent(path)
        self._guard(name, self.fs.put_file, local_path, path)

    def create(self, name: str, data: bytes) -> None:
        path = self.path(name)
        self._parent(path)
        if self._guard(name, self.fs.exists, path):
            raise RemoteExistsError(f"{name}: already exists on {self.url}")
        self._guard(name, self.fs.pipe_file, path, data)

    def list(self, prefix: str) -> dict[str, int]:
        base = self.path(prefix) if prefix else self.root
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, self.url, f"listing {prefix or '/'}") from exc
        out = {}
        strip = len(self.root) + 1 if self.root else 0
        for full, info in found.items():
            full = full.rstrip("/")
            if info.get("type", "file") == "directory":
                continue
            rel = full[strip:] if full.startswith(self.root) else full
            if not rel.rsplit("/", 1)[-1].startswith(".artvc-tmp"):
                out[rel] = int(info.get("size") or 0)
        return out

    def info(self, name: str) -> int | None:
        path = self.path(name)
        try:
            return int(self.fs.info(path).get("size") or 0)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, self.url, name) from exc

    def delete(self, name: str) -> None:
        path = self.path(name)
        self._guard(name, self.fs.rm_file, path)

    def close(self) -> None:
        pass


class LocalBackend(FsspecBackend):
    protocol = "file"

    def store(self, name: str, data: bytes) -> None:
        path = self.path(name)
        self._parent(path)
        tmp = self._write_temp(path, data)
        self._guard(name, os.replace, tmp, path)
        fsync_dir(os.path.dirname(path))

    def load_file(self, name: str, local_path: str) -> None:
        """Copied in the kernel, like store_file. Errors of the local copy are the OSErrors they are
        (a full local disk is not the remote's fault); `local_path` is overwritten, so a retry works."""
        src = self._guard(name, open, self.path(name), "rb")
        with src, open(local_path, "wb") as dst:
            copy_file(src, dst)

    def store_file(self, name: str, local_path: str) -> None:
        """Copied in the kernel (copy_file_range: a reflink where the filesystem offers one)."""
        path = self.path(name)
        self._parent(path)
        tmp = self._write_temp(path, None, local_path)
        self._guard(name, os.replace, tmp, path)
        fsync_dir(os.path.dirname(path))

    def create(self, name: str, data: bytes) -> None:
        path = self.path(name)
        self._parent(path)
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise RemoteExistsError(f"{name}: already exists on {self.url}") from None
        except OSError as exc:
            raise translate(exc, self.url, name) from exc
        finally:
            os.unlink(tmp)
        fsync_dir(os.path.dirname(path))

    def _write_temp(self, path: str, data: bytes | None, source: str | None = None) -> str:
        folder, base = os.path.split(path)
        tmp = os.path.join(folder, f".artvc-tmp-{base}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                if source is None:
                    f.write(data)
                else:
                    with open(source, "rb") as src:
                        copy_file(src, f)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass  # never created: nothing to clean up
            raise translate(exc, self.url, os.path.basename(path)) from exc
        return tmp


class SFTPBackend:
    """SFTP straight over paramiko: one SFTP channel per thread on one verified SSH connection.

    A single SFTP channel stalls when several threads use it at once; channels on one transport
    do not. Writes go to a temporary name and are renamed (posix-rename); an exclusive create
    opens with the SFTP EXCL flag.
    """

    protocol = "sftp"

    def __init__(self, client: Any, root: str, url: str, timeout: float) -> None:
        self.fs = client  # the SSH connection (named like the other backends' filesystem)
        self.root = root.rstrip("/") or "/"
        self.url = url
        self.timeout = timeout
        self._local = threading.local()
        self._channels: list[Any] = []
        self._lock = threading.Lock()
        self._made_dirs: set[str] = set()

    def _sftp(self):
        sftp = getattr(self._local, "sftp", None)
        if sftp is None:
            sftp = self._guard("opening an SFTP channel", self.fs.open_sftp)
            sftp.get_channel().settimeout(max(self.timeout, 60.0))
            self._local.sftp = sftp
            with self._lock:
                self._channels.append(sftp)
        return sftp

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{check_name(name)}"

    def _guard(self, what: str, fn, *args):
        try:
            return fn(*args)
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - every library error is mapped to a backend error
            raise translate(exc, self.url, what) from exc

    def _makedirs(self, folder: str) -> None:
        with self._lock:
            if folder in self._made_dirs:
                return
        sftp = self._sftp()
        parts = folder.strip("/").split("/")
        current = ""
        for part in parts:
            current += "/" + part
            try:
                sftp.stat(current)
            except FileNotFoundError:
                try:
                    sftp.mkdir(current)
                except OSError:
                    sftp.stat(current)
        with self._lock:
            self._made_dirs.add(folder)

    def load(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self.path(name)

        def read() -> bytes:
            with self._sftp().open(path, "rb") as f:
                if length is None and offset == 0:
                    f.prefetch()
                    return f.read()
                if length is None:
                    f.seek(offset)
                    return f.read()
                size = f.stat().st_size
                end = min(offset + length, size)
                if end <= offset:
                    return b""
                # readv pipelines the requests: one round trip per range, not per 32 KiB block.
                pieces = [(pos, min(SFTP_BLOCK, end - pos)) for pos in range(offset, end, SFTP_BLOCK)]
                return b"".join(f.readv(pieces))

        return self._guard(name, read)

    def load_file(self, name: str, local_path: str) -> None:
        path = self.path(name)

        # readv pipelines the block requests of each window; paramiko's whole-file prefetch was two
        # times slower here with several packs in flight. A window is written outside the guard, so
        # a local error (a full disk) stays an OSError; `local_path` is overwritten, so a retry works.
        remote = self._guard(name, self._sftp().open, path, "rb")
        with remote, open(local_path, "wb") as dst:
            size = self._guard(name, remote.stat).st_size
            for start in range(0, size, SFTP_WINDOW):
                end = min(start + SFTP_WINDOW, size)
                blocks = [(pos, min(SFTP_BLOCK, end - pos)) for pos in range(start, end, SFTP_BLOCK)]
                window = self._guard(name, lambda: list(remote.readv(blocks)))
                for piece in window:
                    dst.write(piece)

    def store(self, name: str, data: bytes) -> None:
        self._store_via_temp(name, lambda f: f.write(data))

    def store_file(self, name: str, local_path: str) -> None:
        def copy(f) -> None:
            with open(local_path, "rb") as src:
                while block := src.read(STREAM_BLOCK):
                    f.write(block)

        self._store_via_temp(name, copy)

    def _store_via_temp(self, name: str, fill) -> None:
        """Write through `fill(remote file)` under a temporary name, then posix-rename into place."""
        path = self.path(name)
        folder, base = path.rsplit("/", 1)
        tmp = f"{folder}/.artvc-tmp-{base}-{secrets.token_hex(4)}"

        def write() -> None:
            self._makedirs(folder)
            sftp = self._sftp()
            with sftp.open(tmp, "wb") as f:
                f.set_pipelined(True)
                fill(f)
            sftp.posix_rename(tmp, path)

        self._guard(name, write)

    def create(self, name: str, data: bytes) -> None:
        path = self.path(name)

        def write() -> None:
            self._makedirs(path.rsplit("/", 1)[0])
            with self._sftp().open(path, "wxb") as f:  # paramiko: "x" alone gives a read-only handle
                f.write(data)

        try:
            self._guard(name, write)
        except RemoteUnreachableError:
            raise
        except RemoteError:
            if self.info(name) is not None:
                raise RemoteExistsError(f"{name}: already exists on {self.url}") from None
            raise

    def list(self, prefix: str) -> dict[str, int]:
        import stat as statmod

        base = self.path(prefix) if prefix else self.root
        out: dict[str, int] = {}
        strip = len(self.root.rstrip("/")) + 1

        def walk(folder: str) -> None:
            for attr in self._sftp().listdir_attr(folder):
                full = f"{folder}/{attr.filename}"
                if statmod.S_ISDIR(attr.st_mode or 0):
                    walk(full)
                elif not attr.filename.startswith(".artvc-tmp"):
                    out[full[strip:]] = attr.st_size or 0

        try:
            self._guard(f"listing {prefix or '/'}", walk, base)
        except RemoteNotFoundError:
            return {}
        return out

    def info(self, name: str) -> int | None:
        path = self.path(name)
        try:
            return self._guard(name, lambda: self._sftp().stat(path).st_size or 0)
        except RemoteNotFoundError:
            return None

    def delete(self, name: str) -> None:
        path = self.path(name)
        self._guard(name, lambda: self._sftp().remove(path))

    def close(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, []
        for sftp in channels:
            try:
                sftp.close()
            except Exception:  # noqa: BLE001 - closing a broken channel has nothing left to report
                pass
        try:
            self.fs.close()
        except Exception:  # noqa: BLE001 - as above
            pass


class S3Backend(FsspecBackend):
    protocol = "s3"

    def _parent(self, path: str) -> None:
        """S3 has no folders."""

    def create(self, name: str, data: bytes) -> None:
        path = self.path(name)
        self._guard(name, self.fs.pipe_file, path, data, mode="create")

    def delete(self, name: str) -> None:
        """S3 deletes are idempotent; the interface reports a missing object."""
        if self.info(name) is None:
            raise RemoteNotFoundError(f"{name}: not found on {self.url}")
        super().delete(name)

    def check_bucket(self) -> None:
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.info(bucket)
        except FileNotFoundError:
            raise RemoteNotFoundError(f"bucket '{bucket}' does not exist on {self.url}; create it first") from None
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, self.url, f"bucket {bucket}") from exc


def _ssh_client(parts, options: dict[str, str], url: str):
    """A connected paramiko client whose host key has been checked against known_hosts."""
    import paramiko

    from . import ssh

    target = ssh.resolve(parts.hostname or "", parts.port, unquote(parts.username) if parts.username else None, options)
    client = paramiko.SSHClient()
    ssh.prepare_client(client, target, url)
    try:
        client.connect(target.hostname, **ssh.connect_kwargs(target))
    except RemoteError:
        client.close()
        raise
    except Exception as exc:  # noqa: BLE001
        client.close()
        raise translate(exc, url, "connecting") from exc
    return client, target


def _s3_filesystem(options: dict[str, str], url: str, version_aware: bool = False):
    try:
        import s3fs
    except ImportError:
        raise RemoteError("S3 remotes need s3fs: pip install 'artvc[s3]'") from None
    timeout = float(options.get("timeout", 15))
    client_kwargs: dict[str, Any] = {}
    endpoint = options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if options.get("region"):
        client_kwargs["region_name"] = options["region"]
    kwargs: dict[str, Any] = {
        "skip_instance_cache": True,
        "version_aware": version_aware,
        "client_kwargs": client_kwargs,
        "config_kwargs": {"connect_timeout": timeout, "read_timeout": max(timeout, 60), "retries": {"max_attempts": 2, "mode": "standard"}},
    }
    if options.get("profile"):
        kwargs["profile"] = options["profile"]
    if str(options.get("anon", "")).lower() in ("1", "true", "yes"):
        kwargs["anon"] = True
    return s3fs.S3FileSystem(**kwargs)


def open_backend(url: str, options: dict[str, str] | None = None) -> Backend:
    """The backend for a remote URL: a path, file://, sftp:// or ssh://, s3://, or any fsspec URL."""
    options = dict(options or {})
    if "://" not in url:
        root = os.path.abspath(os.path.expanduser(url))
        return LocalBackend(fsspec.filesystem("file", skip_instance_cache=True), root, url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return LocalBackend(fsspec.filesystem("file", skip_instance_cache=True), unquote(parts.path), url)
    if scheme in ("sftp", "ssh"):
        if not parts.hostname or not parts.path or parts.path == "/":
            raise RemoteError(f"invalid SFTP URL {url!r}: use sftp://[user@]host[:port]/path")
        client, target = _ssh_client(parts, options, url)
        return SFTPBackend(client, unquote(parts.path), url, target.timeout)
    if scheme in ("s3", "s3a"):
        if not parts.netloc:
            raise RemoteError(f"invalid S3 URL {url!r}: use s3://bucket/prefix")
        root = parts.netloc + unquote(parts.path).rstrip("/")
        return S3Backend(_s3_filesystem(options, url), root, url)
    try:
        cls = fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        raise RemoteError(f"no storage for {scheme}:// URLs ({exc}); install the fsspec package that provides it") from None
    fs_options = {k: v for k, v in options.items() if k not in ("timeout",)}
    fs = cls(skip_instance_cache=True, **fs_options)
    root = cls._strip_protocol(url)
    return FsspecBackend(fs, root.rstrip("/"), url)
