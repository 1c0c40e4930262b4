"""Who made a version and from which code: git facts read through dulwich, never the git CLI."""
from __future__ import annotations

import getpass
import os
from typing import Any



def _open_git(path: str):
    """The dulwich Repo of the git work tree holding `path`, or None (dulwich loads only here)."""
    from dulwich.errors import NotGitRepository
    from dulwich.repo import Repo as GitRepo

    try:
        return GitRepo.discover(path)
    except (NotGitRepository, OSError):
        return None


def git_info(path: str) -> dict[str, Any] | None:
    """Commit, branch and dirtiness of the git work tree holding `path`, or None outside git."""
    repo = _open_git(path)
    if repo is None:
        return None
    try:
        try:
            commit = repo.head().decode()
        except KeyError:
            commit = None
        branch = None
        chain, _ = repo.refs.follow(b"HEAD")
        if len(chain) > 1 and chain[-1].startswith(b"refs/heads/"):
            branch = chain[-1][len(b"refs/heads/") :].decode()
        return {"commit": commit, "branch": branch, "dirty": _is_dirty(repo)}
    finally:
        repo.close()


def _is_dirty(repo) -> bool:
    """True when tracked files differ from HEAD (untracked files do not count, as in `git describe --dirty`)."""
    from dulwich import porcelain

    try:
        status = porcelain.status(repo, untracked_files="no")
    except (KeyError, OSError):
        return False
    return bool(any(status.staged.values()) or status.unstaged)


def author(path: str) -> str:
    """`Name <email>` from git config when present, else the login name."""
    repo = _open_git(path)
    config = None
    try:
        if repo is not None:
            config = repo.get_config_stack()
        else:
            from dulwich.config import StackedConfig

            config = StackedConfig.default()
        name = _config_value(config, b"name")
        email = _config_value(config, b"email")
    finally:
        if repo is not None:
            repo.close()
    if not name:
        name = os.environ.get("ARTVC_AUTHOR") or _login()
    return f"{name} <{email}>" if email else name


def _config_value(config, key: bytes) -> str:
    try:
        return config.get((b"user",), key).decode()
    except KeyError:
        return ""


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
