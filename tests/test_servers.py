"""Smoke tests for the real servers of tests/servers.py: they prove the fixtures give a working sshd and S3."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from servers import SSHServer, require, ssh_keygen


# ---- SSH / SFTP ----------------------------------------------------------------------------------------
def _client(server: SSHServer, known_hosts: Path, key: Path):
    """A paramiko client that only trusts `known_hosts` (RejectPolicy) and only offers `key`."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        server.host, port=server.port, username=server.user, key_filename=str(key),
        allow_agent=False, look_for_keys=False, timeout=10, banner_timeout=10, auth_timeout=10,
    )
    return client


def test_sshd_fields(sshd_server):
    s = sshd_server
    assert s.host == "127.0.0.1"
    assert s.user and s.port > 0
    assert s.client_key.is_file() and s.client_key.with_suffix(".pub").is_file()
    assert s.host_key_line.startswith(f"[127.0.0.1]:{s.port} ssh-ed25519 AAAA")
    assert s.data_dir.is_dir()
    assert s.url("a/b.bin") == f"sftp://{s.user}@127.0.0.1:{s.port}{s.data_dir}/a/b.bin"
    assert s.url("/srv/x") == f"sftp://{s.user}@127.0.0.1:{s.port}/srv/x"


def test_sftp_roundtrip_with_known_host(sshd_server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd_server.host_key_line + "\n")
    local = tmp_path / "payload.bin"
    local.write_bytes(os.urandom(200_000) + b"\x00end")
    remote = sshd_server.data_dir / f"roundtrip-{uuid.uuid4().hex}" / "payload.bin"

    client = _client(sshd_server, known_hosts, sshd_server.client_key)
    try:
        sftp = client.open_sftp()
        sftp.mkdir(str(remote.parent))
        sftp.put(str(local), str(remote))
        back = tmp_path / "back.bin"
        sftp.get(str(remote), str(back))
        assert back.read_bytes() == local.read_bytes()
        assert sftp.stat(str(remote)).st_size == local.stat().st_size
        sftp.close()
        # The remote is this machine: the file really landed in data_dir.
        assert remote.read_bytes() == local.read_bytes()
        # And a command runs as the expected user.
        _, out, _ = client.exec_command("id -un", timeout=10)
        assert out.read().decode().strip() == sshd_server.user
    finally:
        client.close()


def test_unknown_host_key_is_rejected(sshd_server, tmp_path):
    import paramiko

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException) as info:
        _client(sshd_server, empty, sshd_server.client_key)
    # AuthenticationException is a subclass of SSHException: make sure it is the host key that was refused.
    assert not isinstance(info.value, paramiko.AuthenticationException)
    assert "not found in known_hosts" in str(info.value)


def test_wrong_client_key_is_rejected(sshd_server, tmp_path):
    import paramiko

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd_server.host_key_line + "\n")
    wrong = ssh_keygen(tmp_path / "wrong_ed25519", "not-authorized")
    with pytest.raises(paramiko.AuthenticationException):
        _client(sshd_server, known_hosts, wrong)


def test_ssh_home_config_and_known_hosts(ssh_home):
    import paramiko

    assert os.environ["HOME"] == str(ssh_home.home)
    assert "SSH_AUTH_SOCK" not in os.environ
    assert Path("~/.ssh/id_ed25519").expanduser().read_bytes() == ssh_home.server.client_key.read_bytes()
    assert not ssh_home.known_hosts.exists() and not ssh_home.config.exists()

    ssh_home.trust_host()
    ssh_home.write_config("artvc-remote")
    cfg = paramiko.SSHConfig.from_path(os.path.expanduser("~/.ssh/config")).lookup("artvc-remote")
    assert cfg["hostname"] == "127.0.0.1"
    assert int(cfg["port"]) == ssh_home.server.port
    assert cfg["user"] == ssh_home.server.user

    client = paramiko.SSHClient()
    client.load_system_host_keys()  # ~/.ssh/known_hosts of the temporary HOME
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(cfg["hostname"], port=int(cfg["port"]), username=cfg["user"], key_filename=cfg["identityfile"],
                   allow_agent=False, look_for_keys=False, timeout=10)
    try:
        sftp = client.open_sftp()
        name = f"home-{uuid.uuid4().hex}.txt"
        with sftp.open(str(ssh_home.server.data_dir / name), "wb") as fh:
            fh.write(b"via ~/.ssh/config")
        assert name in sftp.listdir(str(ssh_home.server.data_dir))
        sftp.close()
    finally:
        client.close()


def test_sftp_url_works_with_fsspec(sshd_server):
    from fsspec.core import url_to_fs

    url = sshd_server.url(f"fsspec-{uuid.uuid4().hex}.bin")
    fs, path = url_to_fs(url, key_filename=str(sshd_server.client_key), allow_agent=False, look_for_keys=False)
    try:
        fs.pipe_file(path, b"hello over sftp")
        assert fs.cat_file(path) == b"hello over sftp"
        assert Path(path).read_bytes() == b"hello over sftp"
    finally:
        fs.client.close()


def test_missing_server_skips_locally_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install openssh-server"):
        require(False, "/usr/sbin/sshd", "apt-get install openssh-server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required in CI"):
        require(False, "/usr/sbin/sshd", "apt-get install openssh-server")
    require(True, "anything", "nothing")  # present: neither skips nor fails


# ---- S3 (moto) -----------------------------------------------------------------------------------------
def test_s3_boto3_put_get(s3_env):
    bucket = s3_env.make_bucket(s3_env.unique_bucket())
    c = s3_env.client()
    assert bucket in [b["Name"] for b in c.list_buckets()["Buckets"]]
    c.put_object(Bucket=bucket, Key="dir/obj.bin", Body=b"\x00\x01payload")
    assert c.get_object(Bucket=bucket, Key="dir/obj.bin")["Body"].read() == b"\x00\x01payload"
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket=bucket, Key="dir/missing")


def test_s3_versioned_bucket(s3_env):
    bucket = s3_env.make_bucket(s3_env.unique_bucket(), versioned=True)
    c = s3_env.client()
    assert c.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    v1 = c.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    c.put_object(Bucket=bucket, Key="k", Body=b"two")
    assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == b"two"
    assert c.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"


def test_s3fs_explicit_endpoint(s3_env):
    import s3fs

    bucket = s3_env.make_bucket(s3_env.unique_bucket())
    fs = s3fs.S3FileSystem(endpoint_url=s3_env.endpoint_url, skip_instance_cache=True)
    fs.pipe_file(f"{bucket}/a/b.txt", b"from s3fs")
    assert fs.cat_file(f"{bucket}/a/b.txt") == b"from s3fs"
    assert fs.ls(f"{bucket}/a", detail=False) == [f"{bucket}/a/b.txt"]
    # Written through s3fs, read through boto3: the same server.
    assert s3_env.client().get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"from s3fs"


def test_s3fs_from_environment_only(s3_env):
    """Without endpoint_url, s3fs (aiobotocore) still reaches moto through AWS_ENDPOINT_URL."""
    import s3fs

    bucket = s3_env.make_bucket(s3_env.unique_bucket())
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.pipe_file(f"{bucket}/env.txt", b"env only")
    assert s3_env.client().get_object(Bucket=bucket, Key="env.txt")["Body"].read() == b"env only"


def test_s3fs_create_mode_refuses_existing_key(s3_env):
    import s3fs

    bucket = s3_env.make_bucket(s3_env.unique_bucket())
    fs = s3fs.S3FileSystem(endpoint_url=s3_env.endpoint_url, skip_instance_cache=True)
    fs.pipe_file(f"{bucket}/once", b"first", mode="create")  # new key: allowed
    with pytest.raises(FileExistsError):
        fs.pipe_file(f"{bucket}/once", b"second", mode="create")
    assert fs.cat_file(f"{bucket}/once") == b"first"


def test_s3_reset_drops_state(s3_env):
    s3_env.make_bucket(s3_env.unique_bucket())
    assert s3_env.client().list_buckets()["Buckets"]
    s3_env.reset()
    assert s3_env.client().list_buckets()["Buckets"] == []


def test_s3_env_variables(s3_env):
    assert os.environ["AWS_ENDPOINT_URL"] == s3_env.endpoint_url
    assert s3_env.endpoint_url.startswith("http://127.0.0.1:")
    assert os.environ["AWS_ACCESS_KEY_ID"] == os.environ["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert "AWS_PROFILE" not in os.environ and "AWS_SESSION_TOKEN" not in os.environ
