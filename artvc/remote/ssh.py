"""SSH settings for SFTP remotes: ~/.ssh/config, known_hosts, keys and the agent, through paramiko.

Host keys: the known_hosts files are loaded before connecting, so paramiko itself refuses a
changed key. An unknown key is refused with a message that says how to trust it, unless the
remote has the option accept_new_host_key=true, which records the key in ~/.ssh/known_hosts.
"""
from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

import paramiko

from ..errors import RemoteAuthError

DEFAULT_TIMEOUT = 15.0
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


@dataclass(frozen=True)
class SSHTarget:
    alias: str
    hostname: str
    port: int
    username: str | None
    key_filenames: tuple[str, ...]
    timeout: float
    accept_new_host_key: bool

    @property
    def known_hosts_name(self) -> str:
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"


def resolve(host: str, port: int | None, username: str | None, options: dict[str, str]) -> SSHTarget:
    """Combine the URL with ~/.ssh/config (Host aliases, HostName, User, Port, IdentityFile)."""
    config_path = os.path.expanduser("~/.ssh/config")
    found: dict = {}
    if os.path.isfile(config_path):
        found = paramiko.SSHConfig.from_path(config_path).lookup(host)
    keys = tuple(os.path.expanduser(k) for k in found.get("identityfile", []) if os.path.isfile(os.path.expanduser(k)))
    if options.get("key_filename"):
        keys = (os.path.expanduser(options["key_filename"]),) + keys
    return SSHTarget(
        alias=host,
        hostname=found.get("hostname", host),
        port=int(port or found.get("port", 22)),
        username=username or found.get("user"),
        key_filenames=keys,
        timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
        accept_new_host_key=str(options.get("accept_new_host_key", "")).lower() in ("1", "true", "yes"),
    )


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only for hosts absent from the loaded known_hosts."""

    def __init__(self, target: SSHTarget, url: str) -> None:
        self.target = target
        self.url = url

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.target.accept_new_host_key:
            raise RemoteAuthError(
                f"the host key of {hostname} ({key.get_name()} {fingerprint(key)}) is not in {USER_KNOWN_HOSTS}; "
                f"if you trust it, connect once with 'ssh -p {self.target.port} {self.target.hostname}' "
                f"or add the remote with '-o accept_new_host_key=true'"
            )
        path = os.path.expanduser(USER_KNOWN_HOSTS)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path, "a", encoding="ascii") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def prepare_client(client: paramiko.SSHClient, target: SSHTarget, url: str) -> None:
    """Load known_hosts and set the policy, before connect."""
    for path in (SYSTEM_KNOWN_HOSTS, os.path.expanduser(USER_KNOWN_HOSTS)):
        if os.path.isfile(path):
            client.load_host_keys(path) if path != SYSTEM_KNOWN_HOSTS else client.load_system_host_keys(path)
    client.set_missing_host_key_policy(KnownHostsPolicy(target, url))


def connect_kwargs(target: SSHTarget) -> dict:
    kwargs: dict = {
        "port": target.port,
        "timeout": target.timeout,
        "banner_timeout": target.timeout,
        "auth_timeout": target.timeout,
        "allow_agent": True,
        "look_for_keys": not target.key_filenames,
    }
    if target.username:
        kwargs["username"] = target.username
    if target.key_filenames:
        kwargs["key_filename"] = list(target.key_filenames)
    return kwargs
