"""Real servers for the remote-backend tests: OpenSSH's sshd and moto's S3 server, both on 127.0.0.1 only.

No mocks: `sshd_server` runs `/usr/sbin/sshd` (Debian package openssh-server) as the current user, and
`s3_server` runs moto's S3 server (`moto[server]`) in a background thread of the test process.  Both are
started once per session and stopped at the end of it.

    sshd_server  (session)   SSHServer: host, port, user, client_key, host_key_line, data_dir, url(path)
    ssh_home     (function)  SSHHome: a temporary $HOME with ~/.ssh/id_ed25519; trust_host(), write_config(alias)
    s3_server    (session)   S3Server: endpoint_url, make_bucket(name, versioned=False), unique_bucket(), client()
    s3_env       (function)  resets moto, points the AWS_* environment at it; yields the S3Server

When sshd (or moto) is missing the fixtures skip, except when the environment variable CI is set: then they
fail, so that CI never passes by skipping.  Optional dependencies are imported lazily so that importing this
module (conftest does) never breaks the rest of the suite.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "SSHServer", "SSHHome", "S3Server",
    "sshd_server", "ssh_home", "s3_server", "s3_env",
    "free_port", "require", "ssh_keygen",
]

HOST = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
STARTUP_TIMEOUT = 10.0  # seconds, for each server
FAKE_AWS_KEY = "testing"
AWS_REGION = "us-east-1"


# ---- helpers -------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the caller must still cope with losing a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def require(ok: bool, what: str, install: str) -> None:
    """Skip the test when `ok` is false, but fail it when $CI is set (CI must never silently skip)."""
    if ok:
        return
    if "CI" in os.environ:
        pytest.fail(f"{what} is required in CI (CI is set) but missing; install it with: {install}", pytrace=False)
    pytest.skip(f"{what} not available; install it with: {install}")


def _require_module(name: str, install: str) -> None:
    try:
        __import__(name)
    except ImportError as exc:
        require(False, f"Python module {name!r} ({exc})", install)


def ssh_keygen(path: Path, comment: str = "artvc-test") -> Path:
    """Generate an ed25519 key pair without passphrase at `path` (+ `path`.pub); return `path`."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    os.chmod(path, 0o600)
    return path


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc; empty elsewhere)."""
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ..." -- comm may contain spaces or parentheses, so split after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _stop_process(proc: subprocess.Popen) -> None:
    """Stop sshd: first its per-connection children (connections a test left open), then the listener."""
    if proc.poll() is None:
        for child in _children(proc.pid):
            try:
                os.kill(child, signal.SIGTERM)
            except OSError:
                pass
        proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ---- sshd ----------------------------------------------------------------------------------------------
@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    client_key: Path  # private key (no passphrase) authorized on the server; client_key.with_suffix(".pub")
    host_key_line: str  # "[127.0.0.1]:PORT ssh-ed25519 AAAA..." -- a known_hosts line
    data_dir: Path  # a folder on the server (this machine) for tests to use as remote storage root
    log_file: Path = field(repr=False)  # sshd's own log (-e), for diagnostics

    def url(self, path: str | os.PathLike = "") -> str:
        """`sftp://USER@127.0.0.1:PORT/ABS/PATH`; a relative `path` is taken relative to `data_dir`."""
        p = Path(path)
        if not p.is_absolute():
            p = self.data_dir / p
        return f"sftp://{self.user}@{self.host}:{self.port}{p.as_posix()}"

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""


def _sshd_config(tmp: Path, port: int, user: str) -> str:
    return f"""\
# Generated by tests/servers.py -- a throw-away sshd for the artvc tests.
ListenAddress {HOST}:{port}
AddressFamily inet
HostKey {tmp / "ssh_host_ed25519_key"}
PidFile {tmp / "sshd.pid"}
AuthorizedKeysFile {tmp / "authorized_keys"}
AllowUsers {user}
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
HostbasedAuthentication no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
MaxAuthTries 10
MaxSessions 100
MaxStartups 100
LoginGraceTime 30
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


def _wait_for_banner(proc: subprocess.Popen, port: int, deadline: float) -> str | None:
    """The SSH banner once sshd answers on `port`; None if sshd died or `deadline` passed."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                banner = s.recv(256)
                if banner.startswith(b"SSH-"):
                    return banner.decode("ascii", "replace").strip()
        except OSError:
            pass
        time.sleep(0.05)
    return None


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory):
    require(os.access(SSHD, os.X_OK), SSHD, "apt-get install openssh-server")
    require(shutil.which("ssh-keygen") is not None, "ssh-keygen", "apt-get install openssh-client")

    tmp = tmp_path_factory.mktemp("sshd")
    os.chmod(tmp, 0o755)
    user = getpass.getuser()
    host_key = ssh_keygen(tmp / "ssh_host_ed25519_key", "artvc-test-host")
    client_key = ssh_keygen(tmp / "client_ed25519", "artvc-test-client")
    (tmp / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    os.chmod(tmp / "authorized_keys", 0o600)
    data_dir = tmp / "data"
    data_dir.mkdir()
    host_pub = host_key.with_suffix(".pub").read_text().split()

    if os.geteuid() == 0:
        # sshd running as root needs its privilege separation directory (normally made by systemd).
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    proc = None
    log_file = tmp / "sshd.log"
    problems = []
    for attempt in range(3):  # another process may grab the free port between free_port() and sshd's bind
        port = free_port()
        config = tmp / "sshd_config"
        config.write_text(_sshd_config(tmp, port, user))
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            pytest.fail(f"sshd rejects the generated config {config}:\n{check.stderr}{check.stdout}", pytrace=False)
        log = open(log_file, "ab")
        try:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        finally:
            log.close()
        banner = _wait_for_banner(proc, port, time.monotonic() + STARTUP_TIMEOUT)
        if banner is not None:
            break
        _stop_process(proc)
        problems.append(f"attempt {attempt + 1} on port {port}: sshd exit code {proc.returncode}")
        proc = None
        if "Address already in use" not in log_file.read_text(errors="replace"):
            break
    if proc is None:
        pytest.fail(
            f"sshd did not start within {STARTUP_TIMEOUT:.0f} s ({'; '.join(problems)}); its log:\n"
            + log_file.read_text(errors="replace"),
            pytrace=False,
        )

    server = SSHServer(
        host=HOST, port=port, user=user, client_key=client_key,
        host_key_line=f"[{HOST}]:{port} {host_pub[0]} {host_pub[1]}",
        data_dir=data_dir, log_file=log_file,
    )
    try:
        yield server
    finally:
        _stop_process(proc)


@dataclass
class SSHHome:
    server: SSHServer
    home: Path  # the temporary $HOME
    ssh_dir: Path  # ~/.ssh
    key: Path  # ~/.ssh/id_ed25519 (copy of server.client_key), plus ~/.ssh/id_ed25519.pub

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def config(self) -> Path:
        return self.ssh_dir / "config"

    def trust_host(self) -> Path:
        """Add the server's host key line to ~/.ssh/known_hosts."""
        with open(self.known_hosts, "a") as fh:
            fh.write(self.server.host_key_line + "\n")
        os.chmod(self.known_hosts, 0o600)
        return self.known_hosts

    def write_config(self, alias: str = "artvc-test") -> Path:
        """Add a `Host ALIAS` block for the server to ~/.ssh/config."""
        s = self.server
        with open(self.config, "a") as fh:
            fh.write(f"Host {alias}\n    HostName {s.host}\n    Port {s.port}\n    User {s.user}\n"
                     f"    IdentityFile {self.key}\n")
        os.chmod(self.config, 0o600)
        return self.config


@pytest.fixture
def ssh_home(sshd_server, tmp_path, monkeypatch):
    """A fresh $HOME whose ~/.ssh/ holds the client key as id_ed25519; no known_hosts, no config until asked.

    Note: paramiko (os.path.expanduser) honours $HOME; the OpenSSH `ssh` binary does not (it uses the passwd entry).
    """
    home = tmp_path / "home"
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(parents=True)
    os.chmod(ssh_dir, 0o700)
    key = ssh_dir / "id_ed25519"
    shutil.copyfile(sshd_server.client_key, key)
    os.chmod(key, 0o600)
    shutil.copyfile(sshd_server.client_key.with_suffix(".pub"), ssh_dir / "id_ed25519.pub")
    monkeypatch.setenv("HOME", str(home))
    for var in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
        monkeypatch.delenv(var, raising=False)
    return SSHHome(server=sshd_server, home=home, ssh_dir=ssh_dir, key=key)


# ---- S3 (moto) -----------------------------------------------------------------------------------------
def _post(url: str, timeout: float = 5.0) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with opener.open(urllib.request.Request(url, data=b"", method="POST"), timeout=timeout) as resp:
        return resp.status


@dataclass
class S3Server:
    host: str
    port: int
    endpoint_url: str  # "http://127.0.0.1:PORT"
    region: str = AWS_REGION
    access_key: str = FAKE_AWS_KEY
    secret_key: str = FAKE_AWS_KEY

    def client(self):
        """A boto3 S3 client for this server, with explicit fake credentials (independent of the environment)."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def make_bucket(self, name: str, versioned: bool = False) -> str:
        """Create bucket `name` (optionally with versioning enabled); return its name."""
        c = self.client()
        c.create_bucket(Bucket=name)
        if versioned:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    @staticmethod
    def unique_bucket(prefix: str = "artvc-test") -> str:
        """A fresh, valid bucket name (not created: pass it to make_bucket, or let the code under test create it)."""
        return f"{prefix}-{uuid.uuid4().hex[:16]}".lower()

    def storage_options(self) -> dict:
        """Keyword arguments for s3fs.S3FileSystem / fsspec that reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": self.access_key, "secret": self.secret_key,
                "client_kwargs": {"region_name": self.region}}

    def reset(self) -> None:
        """Drop all of moto's state (every bucket and object)."""
        status = _post(f"{self.endpoint_url}/moto-api/reset")
        assert status == 200, f"moto reset answered HTTP {status}"


@pytest.fixture(scope="session")
def s3_server():
    _require_module("moto", "pip install 'moto[server]'  (or: pip install -e '.[test]')")
    _require_module("boto3", "pip install boto3")
    from moto.server import ThreadedMotoServer

    # Port 0: the kernel picks a free port while binding, so there is no race; we read it back below.
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    # ThreadedMotoServer.start() waits without a bound (forever if the bind fails): bound it ourselves.
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    starter.join(STARTUP_TIMEOUT)
    if starter.is_alive():
        pytest.fail(f"moto server did not start within {STARTUP_TIMEOUT:.0f} s", pytrace=False)
    host, port = server.get_host_and_port()
    s3 = S3Server(host=host, port=port, endpoint_url=f"http://{host}:{port}")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            s3.reset()
            break
        except OSError as exc:
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(f"moto server at {s3.endpoint_url} does not answer: {exc}", pytrace=False)
            time.sleep(0.05)
    try:
        yield s3
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path):
    """Reset moto, then point the standard AWS environment at it (fake credentials, no profile, no config files).

    Yields the S3Server.  Code under test that builds a client from the environment alone reaches moto through
    AWS_ENDPOINT_URL (botocore >= 1.31 honours it).
    """
    s3_server.reset()
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_AWS_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    monkeypatch.setenv("AWS_REGION", s3_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # No ~/.aws/config or credentials of the developer may leak in: point both at files that do not exist.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for var in ("NO_PROXY", "no_proxy"):  # a proxy from the environment must not intercept 127.0.0.1
        current = os.environ.get(var, "")
        monkeypatch.setenv(var, f"{current},{HOST}" if current else HOST)
    yield s3_server
