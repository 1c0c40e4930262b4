"""Remotes that cannot be used: each gives one clear `error: ...` line, exit 1, and leaves the local repository
as it was (log and store). SFTP against a real sshd and S3 against moto, both on 127.0.0.1."""
from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

import pytest

from conftest import assert_error, assert_ok, sha, snapshot, write
from servers import free_port, ssh_keygen


# ---- helpers ---------------------------------------------------------------------------------------
@pytest.fixture
def committed(repo, cli):
    """The `repo` fixture with one committed version of artifact `ds`."""
    write(repo / "data" / "file.bin", os.urandom(20_000))
    write(repo / "data" / "note.txt", "note\n")
    assert_ok(cli("add", "data", "-a", "ds"))
    assert_ok(cli("commit", "-m", "first"))
    return repo


def local_state(cli, root: Path):
    """What must not change when a remote operation fails: the log and every byte of the store's packs."""
    log = assert_ok(cli("log", "--json")).json()
    packs = root / ".artvc" / "packs"
    files = {str(p.relative_to(packs)): sha(p) for p in packs.rglob("*") if p.is_file()}
    workspace = snapshot(root)
    return log, files, workspace


def fails_cleanly(cli, root: Path, args, *fragments):
    """Run a remote command that must fail: one `error:` line holding `fragments`, nothing changed locally."""
    before = local_state(cli, root)
    result = cli(*args)
    assert_error(result, *fragments)
    assert local_state(cli, root) == before
    return result


def sftp_url(server, name: str | None = None) -> str:
    return server.url(name or f"errors-{uuid.uuid4().hex}")


# ---- SFTP ------------------------------------------------------------------------------------------
def test_sftp_connection_refused(committed, cli, ssh_home, tmp_path, monkeypatch):
    port = free_port()  # nothing listens there
    url = f"sftp://{ssh_home.server.user}@127.0.0.1:{port}/srv/remote"
    assert_ok(cli("remote", "add", "origin", url))
    for args in (("push",), ("fetch",), ("pull",)):
        fails_cleanly(cli, committed, args, "127.0.0.1")
    result = cli("push")
    assert "reach" in result.err or "refused" in result.err.lower(), str(result)
    monkeypatch.chdir(tmp_path)
    assert_error(cli("clone", url, "clone"), "127.0.0.1")
    assert not (tmp_path / "clone").exists()


def test_sftp_server_that_never_answers_times_out(committed, cli, ssh_home):
    """A TCP peer that accepts and stays silent: `-o timeout=1` bounds the wait; a clear error, not a hang."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        url = f"sftp://{ssh_home.server.user}@127.0.0.1:{port}/srv/remote"
        assert_ok(cli("remote", "add", "origin", url, "-o", "timeout=1"))
        fails_cleanly(cli, committed, ("push",), "127.0.0.1")
    finally:
        stop.set()
        thread.join()
        for s in accepted:
            s.close()
        listener.close()


def test_sftp_unknown_host_key(committed, cli, sshd_server, ssh_home):
    name = f"errors-{uuid.uuid4().hex}"
    url = sshd_server.url(name)
    assert not ssh_home.known_hosts.exists()
    assert_ok(cli("remote", "add", "origin", url))
    result = fails_cleanly(cli, committed, ("push",), "known_hosts", "accept_new_host_key=true")
    assert not ssh_home.known_hosts.exists() or sshd_server.host_key_line.split()[2] not in ssh_home.known_hosts.read_text()
    assert not (sshd_server.data_dir / name).exists(), str(result)

    # opting in trusts the key, records it, and the push goes through
    assert_ok(cli("remote", "remove", "origin"))
    assert_ok(cli("remote", "add", "origin", url, "-o", "accept_new_host_key=true"))
    pushed = assert_ok(cli("push"))
    assert [line[:2] for line in pushed.commit_lines()] == [("ds", 0)]
    host, key_type, key = sshd_server.host_key_line.split()
    recorded = [line.split() for line in ssh_home.known_hosts.read_text().splitlines() if line.strip()]
    assert [host, key_type, key] in recorded, recorded

    # from then on the key is known: no option needed
    assert_ok(cli("remote", "remove", "origin"))
    assert_ok(cli("remote", "add", "origin", url))
    assert "everything up to date" in assert_ok(cli("push")).out


def test_sftp_changed_host_key_is_always_refused(committed, cli, sshd_server, ssh_home, tmp_path):
    other = ssh_keygen(tmp_path / "impostor_host_key", "impostor")
    key_type, key = other.with_suffix(".pub").read_text().split()[:2]
    ssh_home.known_hosts.write_text(f"[127.0.0.1]:{sshd_server.port} {key_type} {key}\n")
    recorded = ssh_home.known_hosts.read_bytes()
    url = sftp_url(sshd_server)
    assert_ok(cli("remote", "add", "origin", url, "-o", "accept_new_host_key=true"))
    result = fails_cleanly(cli, committed, ("push",), "host key")
    assert "changed" in result.err.lower(), str(result)
    fails_cleanly(cli, committed, ("fetch",), "host key")
    assert ssh_home.known_hosts.read_bytes() == recorded


def test_sftp_wrong_client_key(committed, cli, sshd_server, ssh_home, tmp_path):
    stranger = ssh_keygen(tmp_path / "stranger", "not-authorized")
    ssh_home.key.write_bytes(stranger.read_bytes())
    (ssh_home.ssh_dir / "id_ed25519.pub").write_bytes(stranger.with_suffix(".pub").read_bytes())
    ssh_home.trust_host()
    url = sftp_url(sshd_server)
    assert_ok(cli("remote", "add", "origin", url))
    result = fails_cleanly(cli, committed, ("push",), "authentication")
    assert "key" in result.err, str(result)


def test_sftp_ssh_config_host_alias(committed, cli, sshd_server, ssh_home, tmp_path, monkeypatch):
    ssh_home.write_config("artvc-box")
    ssh_home.trust_host()
    folder = sshd_server.data_dir / f"alias-{uuid.uuid4().hex}"
    url = f"sftp://artvc-box{folder}"  # host, port, user and key all come from ~/.ssh/config
    assert_ok(cli("remote", "add", "origin", url))
    pushed = assert_ok(cli("push"))
    assert [line[:2] for line in pushed.commit_lines()] == [("ds", 0)]
    assert (folder / "versions" / "ds" / "0000000000").is_file()
    monkeypatch.chdir(tmp_path)
    assert_ok(cli("clone", url, "clone"))
    monkeypatch.chdir(tmp_path / "clone")
    assert_ok(cli("pull"))
    assert (tmp_path / "clone" / "data" / "file.bin").read_bytes() == (committed / "data" / "file.bin").read_bytes()


# ---- S3 --------------------------------------------------------------------------------------------
def test_s3_missing_bucket(committed, cli, s3_env, tmp_path, monkeypatch):
    bucket = s3_env.unique_bucket()
    url = f"s3://{bucket}/team"
    assert_ok(cli("remote", "add", "origin", url))
    for args in (("push",), ("fetch",)):
        fails_cleanly(cli, committed, args, bucket, "does not exist")
    monkeypatch.chdir(tmp_path)
    assert_error(cli("clone", url, "clone"), bucket, "does not exist")
    assert not (tmp_path / "clone").exists()
    assert bucket not in [b["Name"] for b in s3_env.client().list_buckets()["Buckets"]]


def _moto_auth(s3, count: str) -> None:
    """Turn moto's request authentication on ("0": from now on) or off ("inf"); off is moto's default."""
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{s3.endpoint_url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with opener.open(request, timeout=10) as response:
        assert response.status == 200


def test_s3_wrong_credentials(committed, cli, s3_env, monkeypatch):
    """moto checks signatures only when asked (its reset-auth API); then only IAM users' keys are accepted."""
    import json

    import boto3

    bucket = s3_env.make_bucket(s3_env.unique_bucket())
    iam = boto3.client("iam", endpoint_url=s3_env.endpoint_url, region_name=s3_env.region,
                       aws_access_key_id=s3_env.access_key, aws_secret_access_key=s3_env.secret_key)
    iam.create_user(UserName="artvc-tester")
    iam.put_user_policy(UserName="artvc-tester", PolicyName="everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    good = iam.create_access_key(UserName="artvc-tester")["AccessKey"]
    url = f"s3://{bucket}/team"
    assert_ok(cli("remote", "add", "origin", url))
    _moto_auth(s3_env, "0")
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        fails_cleanly(cli, committed, ("push",), url, "credentials")
        fails_cleanly(cli, committed, ("fetch",), url, "credentials")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", good["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        fails_cleanly(cli, committed, ("push",), url, "credentials")  # a known key with the wrong secret
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", good["SecretAccessKey"])
        pushed = assert_ok(cli("push"))  # the same server takes the right credentials
        assert [line[:2] for line in pushed.commit_lines()] == [("ds", 0)]
    finally:
        _moto_auth(s3_env, "inf")


# ---- folders that are not artvc remotes ----------------------------------------------------------------
def test_clone_and_fetch_from_a_folder_that_is_not_a_remote(committed, cli, tmp_path, monkeypatch):
    stranger = tmp_path / "just-files"
    write(stranger / "hello.txt", "hello\n")
    write(stranger / "versions" / "ds" / "0000000000", "ab" * 32 + "\n")
    before = snapshot(stranger)
    assert_ok(cli("remote", "add", "origin", str(stranger)))
    fails_cleanly(cli, committed, ("fetch",), str(stranger), "not an artvc remote")
    fails_cleanly(cli, committed, ("pull",), str(stranger), "not an artvc remote")
    monkeypatch.chdir(tmp_path)
    assert_error(cli("clone", str(stranger), "clone"), str(stranger), "not an artvc remote")
    assert not (tmp_path / "clone").exists()
    assert_error(cli("get", str(stranger), "ds"), str(stranger), "not an artvc remote")
    assert not (tmp_path / "ds").exists()
    assert snapshot(stranger) == before


def test_clone_from_a_folder_with_a_foreign_marker(tmp_path, cli, workdir):
    stranger = tmp_path / "other-tool"
    write(stranger / "artvc-remote.json", '{"kind": "something-else", "format": 1}\n')
    assert_error(cli("clone", str(stranger), "clone"), str(stranger), "not an artvc remote")
    assert not (workdir / "clone").exists()


def test_clone_from_a_missing_folder(tmp_path, cli, workdir):
    missing = tmp_path / "no-such-folder"
    assert_error(cli("clone", str(missing), "clone"), str(missing))
    assert not (workdir / "clone").exists()
    assert not missing.exists()


# ---- arguments ------------------------------------------------------------------------------------------
def test_push_with_an_unknown_name(committed, cli, tmp_path):
    """`push NAME` where NAME is no configured remote: NAME is a spec, and no artifact has that name."""
    url = tmp_path / "remote"
    assert_ok(cli("remote", "add", "origin", str(url)))
    fails_cleanly(cli, committed, ("push", "upstream"), "upstream")
    fails_cleanly(cli, committed, ("push", "origin", "nosuch:v3"), "nosuch")
    fails_cleanly(cli, committed, ("push", "ds:v7"), "ds:v7")
    assert not url.exists()  # nothing was pushed
    assert_ok(cli("push"))
    fails_cleanly(cli, committed, ("fetch", "upstream"), "upstream")
    fails_cleanly(cli, committed, ("pull", "upstream"), "upstream")
    # and with no remote configured at all, the error says how to add one
    assert_ok(cli("remote", "remove", "origin"))
    fails_cleanly(cli, committed, ("push",), "remote add")


def test_clone_into_a_non_empty_folder(committed, cli, tmp_path, monkeypatch):
    url = tmp_path / "remote"
    assert_ok(cli("remote", "add", "origin", str(url)))
    assert_ok(cli("push"))
    target = tmp_path / "occupied"
    write(target / "mine.txt", "my own file\n")
    before = snapshot(target)
    monkeypatch.chdir(tmp_path)
    assert_error(cli("clone", str(url), "occupied"), "occupied", "not empty")
    assert snapshot(target) == before
    assert not (target / ".artvc").exists()
