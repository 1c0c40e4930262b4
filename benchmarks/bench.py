#!/usr/bin/env python3
"""Benchmark artvc beside its peers (DVC, restic, git-lfs, ...) in one invocation.

The data sets (`large`, `many-small`) and the peers' runs come from the shared
benchmark folder (`../shared/bench` beside the repository, or $ARTVC_BENCH_SHARED):
make_dataset.py builds v1 and edits it into v2, peers.py runs the peers, and
report.py's helpers read their results. artvc runs through its CLI, one
subprocess per step, timed for wall-clock seconds and peak RSS.

Per data set, artvc runs: init; remote add (a local folder, and an SFTP URL served by a
throw-away sshd on 127.0.0.1 that this script starts, see sshd.py); add+commit v1 (timed
together); no-op status; no-op commit; push v1 to each remote; make_dataset.py edit -> v2;
commit v2 (incremental); push v2 to each remote; a no-op push to each; checkout ds:v0
(v2 -> v1 in the workspace); checkout ds:v0 --to an empty dir (restore from the local
store); and, per remote, `artvc clone URL DIR && artvc pull origin ds:v0` (restore v1 from
the remote that holds v1 and v2). The store (`.artvc`, `du -sb`) is measured after each
version, the remotes' folders before and after each push, the push/fetch summary lines
(MiB, packs, requests) are parsed, and every checkout and restore is verified against the
manifests. The peers get a no-op push too (DVC, git-lfs), added on top of peers.py.

Prints one Markdown table (artvc, each peer, peer/artvc ratios) on stdout,
progress on stderr; --json-out writes the raw results.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
TIME_BIN = "/usr/bin/time"
DATASETS = ["large", "many-small"]
PEER_IDS = {"dvc": "dvc", "restic": "restic", "git-lfs": "gitlfs", "gitlfs": "gitlfs", "borg": "borg", "oxen": "oxen"}
PEER_TITLES = {"dvc": "DVC", "restic": "restic", "gitlfs": "git-lfs", "borg": "borg", "oxen": "oxen (Python API)"}
DEFAULT_PEERS = "dvc,restic,git-lfs"
VERSION_LINE = re.compile(r"^(\S+):v(\d+)\s+([0-9a-f]{6,})\b", re.M)

# (op, label, kind, peer ops): the peers' op for the row is the same op when the 4th field is None, else
# the tool's entry of that dict (a tool without one shows "–"). peers.py calls the no-op commit "noop_readd".
TIME, UPLOAD, NOOP_PUSH, RESTORE, BYTES, RATIO = "time", "upload", "noop_push", "restore", "bytes", "ratio"
REMOTE_PEERS = ("dvc", "gitlfs")  # the peers with a push and a clone+pull restore from a remote
ROWS: list[tuple[str, str, str, dict[str, str] | None]] = [
    ("add_v1", "first add+commit (v1)", TIME, None),
    ("add_v2", "incremental commit (v2)", TIME, None),
    ("noop_status", "no-op status", TIME, None),
    ("noop_commit", "no-op commit", TIME, {"dvc": "noop_readd", "gitlfs": "noop_readd", "oxen": "noop_readd"}),
    ("checkout_v1", "checkout v2→v1", TIME, None),
    ("restore_v1", "restore v1 into empty dir from the local store", TIME,
     {"restic": "restore_v1", "borg": "restore_v1", "oxen": "restore_v1"}),
    ("push_v1", "push v1 (local)", TIME, None),
    ("push_v1", "push v1 (local): bytes uploaded", UPLOAD, None),
    ("push_v2", "push v2 (local, incremental)", TIME, None),
    ("push_v2", "push v2 (local): bytes uploaded", UPLOAD, None),
    ("noop_push", "no-op push (local): requests / time", NOOP_PUSH, None),
    ("clone_pull", "restore v1 via clone+pull (local)", RESTORE, {t: "restore_v1" for t in REMOTE_PEERS}),
    ("push_v1_sftp", "push v1 (SFTP)", TIME, None),
    ("push_v1_sftp", "push v1 (SFTP): bytes uploaded", UPLOAD, None),
    ("push_v2_sftp", "push v2 (SFTP, incremental)", TIME, None),
    ("push_v2_sftp", "push v2 (SFTP): bytes uploaded", UPLOAD, None),
    ("noop_push_sftp", "no-op push (SFTP): requests / time", NOOP_PUSH, None),
    ("clone_pull_sftp", "restore v1 via clone+pull (SFTP)", RESTORE, None),
    ("grow_v1", "stored bytes: v1 (store growth)", BYTES, None),
    ("grow_v2", "stored bytes: v2 growth (dedup)", BYTES, None),
    ("ratio_v1", "store ÷ raw v1, after v1", RATIO, None),
    ("ratio_v2", "store ÷ raw v1, after v2", RATIO, None),
]
SFTP_OPS = ["push_v1_sftp", "push_v2_sftp", "noop_push_sftp", "clone_pull_sftp"]

# The summary lines of artvc push / fetch / pull (artvc/cli.py).
PUSHED = re.compile(r"pushed (\d+) versions?, ([\d.]+) MiB in (\d+) packs? \((\d+) requests?\)")
UP_TO_DATE = re.compile(r"everything up to date \((\d+) requests?\)")
FETCHED = re.compile(r"fetched ([\d.]+) MiB \((\d+) requests?\)|no new data to fetch \((\d+) requests?\)")


def parse_summary(text: str) -> dict[str, Any]:
    """Numbers of the last push / fetch summary line in `text` (empty if there is none)."""
    out: dict[str, Any] = {}
    for m in PUSHED.finditer(text):
        out.update(pushed_versions=int(m[1]), pushed_mib=float(m[2]), packs=int(m[3]), requests=int(m[4]))
    for m in UP_TO_DATE.finditer(text):
        out.update(pushed_versions=0, pushed_mib=0.0, packs=0, requests=int(m[1]))
    for m in FETCHED.finditer(text):
        out.update(fetched_mib=float(m[1]) if m[1] else 0.0, fetch_requests=int(m[2] or m[3]))
    return out


# Run a command and report the peak RSS / CPU of its process tree: a fresh process, so
# RUSAGE_CHILDREN holds nothing but that command (the fallback when GNU time is absent).
RUSAGE_WRAPPER = """\
import json, resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as f:
    json.dump({"max_rss_kb": r.ru_maxrss, "user_s": r.ru_utime, "sys_s": r.ru_stime, "exit_status": rc}, f)
sys.exit(rc if rc >= 0 else 128 - rc)
"""


def log(msg: str) -> None:
    """Progress goes to stderr, so that stdout holds only the table."""
    print(msg, file=sys.stderr, flush=True)


def shared_dir() -> Path:
    """The shared benchmark folder: $ARTVC_BENCH_SHARED, else ../shared/bench beside the repository."""
    env = os.environ.get("ARTVC_BENCH_SHARED")
    return Path(env).resolve() if env else REPO_ROOT.parent / "shared" / "bench"


def load_module(name: str, path: Path) -> ModuleType:
    """Import a script of the shared folder as a module (they run nothing on import)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 (Python's and child processes') to stderr: peers.py prints its progress there."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def first_error_line(stderr: str, stdout: str, rc: int) -> str:
    """The error's first line: an `error: ...` line if any, else the last line (a traceback's message)."""
    for text in (stderr, stdout):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for ln in lines:
            if ln.lower().startswith("error"):
                return ln
        if lines:
            return lines[-1]
    return f"exit status {rc}"


def fmt_bytes(n: float | None) -> str:
    """Human-readable binary size."""
    if n is None:
        return "–"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.{2 if unit == 'GiB' else 1}f} {unit}"
    return f"{int(n)} B"


def md_escape(text: str, limit: int = 90) -> str:
    """One table-safe line, cut to `limit` characters."""
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def python_with_numpy(candidates: list[str]) -> str | None:
    """The first interpreter that can import numpy (make_dataset.py needs it for `large` and `edit`)."""
    for py in candidates:
        if py and os.access(py, os.X_OK) and subprocess.run(
                [py, "-c", "import numpy"], capture_output=True).returncode == 0:
            return py
    return None


def find_artvc(override: str | None) -> list[str]:
    """The artvc CLI: --artvc, else the `artvc` script beside this interpreter or on PATH, else `python -m artvc`."""
    if override:
        return shlex.split(override)
    exe = shutil.which("artvc", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    return [exe] if exe else [sys.executable, "-m", "artvc"]


def artvc_python(cmd: list[str]) -> str:
    """The interpreter behind an artvc command line (`python -m artvc`, or the script's shebang,
    `#!/usr/bin/env python3` included)."""
    if len(cmd) >= 3 and cmd[1:3] == ["-m", "artvc"]:
        return cmd[0]
    try:
        with open(cmd[0], "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return sys.executable
    words = first[2:].split() if first.startswith("#!") else []
    if len(words) >= 2 and os.path.basename(words[0]) == "env":
        return shutil.which(words[1]) or sys.executable
    return words[0] if words else sys.executable


def byte_compile_artvc(python: str) -> None:
    """Compile artvc's modules, as pip does for an installed package, so that neither an editable
    install nor PYTHONDONTWRITEBYTECODE makes each artvc step compile them again (the peers'
    packages are compiled at install: the comparison stays fair)."""
    r = subprocess.run([python, "-c", "import artvc, compileall, os, sys; "
                        "sys.exit(not compileall.compile_dir(os.path.dirname(artvc.__file__), quiet=1))"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"warning: could not byte-compile artvc with {python}: {(r.stderr or r.stdout).strip()[-300:]}"
              " (each artvc step may compile its modules again)", file=sys.stderr)


class Data:
    """The data sets: v1 trees and the v1/v2 manifests, built once per (root, scale, seed)."""

    def __init__(self, shared: Path, py: str, data_root: Path, scale: float, seed: int) -> None:
        self.make = str(shared / "make_dataset.py")
        self.py, self.root, self.scale, self.seed = py, data_root, scale, seed

    def run(self, *args: str) -> str:
        """Run make_dataset.py; raise with its output if it fails."""
        r = subprocess.run([self.py, self.make, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"make_dataset.py {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def build(self, ds: str) -> None:
        """Make v1 with its manifest, and the manifest of v2 (from an edited copy, then removed)."""
        base = self.root / ds
        if (base / ".done").exists():
            log(f"data {ds}: reusing {base}")
            return
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        v1, v2 = base / "v1", base / "v2"
        t0 = time.perf_counter()
        self.run(ds, str(v1), "--scale", str(self.scale), "--seed", str(self.seed))
        self.run("manifest", str(v1), "-o", str(base / "v1.json"))
        subprocess.run(["cp", "-a", str(v1), str(v2)], check=True)
        self.run("edit", str(v2), "--kind", ds, "--seed", str(self.seed))
        self.run("manifest", str(v2), "-o", str(base / "v2.json"))
        shutil.rmtree(v2)
        (base / ".done").touch()
        log(f"data {ds}: built in {time.perf_counter() - t0:.1f} s")

    def raw(self, ds: str, ver: str) -> dict[str, int]:
        """Sum of file sizes and file count of a version, from its manifest."""
        m = json.loads((self.root / ds / f"{ver}.json").read_text())
        return {"bytes": sum(v[0] for v in m.values()), "files": len(m)}

    def edit(self, ds: str, d: Path) -> None:
        """Turn a v1 tree into v2 in place."""
        self.run("edit", str(d), "--kind", ds, "--seed", str(self.seed))

    def verify(self, ds: str, d: Path, ver: str) -> tuple[bool, str]:
        """Check that d holds exactly the files of the manifest of `ver`."""
        r = subprocess.run([self.py, self.make, "verify", str(d), str(self.root / ds / f"{ver}.json")],
                           capture_output=True, text=True)
        lines = (r.stdout or r.stderr).strip().splitlines()
        return r.returncode == 0, lines[0] if lines else f"verify exit {r.returncode}"


class ArtvcBench:
    """Runs artvc's CLI step by step on one data set and records peers.py-shaped results."""

    def __init__(self, cmd: list[str], data: Data, peers: ModuleType, work: Path, remote_root: Path,
                 timeout: float, keep: bool, sshd: Any = None, sftp_na: str = "") -> None:
        self.cmd, self.data, self.peers = cmd, data, peers
        self.work, self.remote_root, self.timeout, self.keep = work, remote_root, timeout, keep
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: list[dict[str, Any]] = []
        self.env = self.isolated_env(work / "home-artvc")
        # SFTP: a running sshd.SSHD (its client key and host key go into the isolated HOME), or why not
        self.sshd, self.sftp_na = sshd, sftp_na
        self.ws = work
        if sshd is not None:
            sshd.install_client(Path(self.env["HOME"]))

    @staticmethod
    def isolated_env(home: Path) -> dict[str, str]:
        """Own HOME and git identity, so no user config changes the numbers."""
        home.mkdir(parents=True, exist_ok=True)
        gitconfig = home / ".gitconfig"
        gitconfig.write_text("[user]\n\tname = bench\n\temail = bench@localhost\n")
        env = dict(os.environ)
        env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                    "XDG_CACHE_HOME": str(home / ".cache"), "GIT_CONFIG_GLOBAL": str(gitconfig),
                    "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C.UTF-8"})
        return env

    def shell(self, *argvs: list[str]) -> str:
        """A bash command line running artvc once per argv, stopping at the first failure."""
        return " && ".join(shlex.join(self.cmd + a) for a in argvs)

    def timed(self, ds: str, op: str, cmd: str, cwd: Path, note: str = "") -> dict[str, Any]:
        """Run `bash -c cmd` under GNU time (else the rusage wrapper); record wall s, peak RSS, rc, error."""
        subprocess.run(["sync"])
        stem = self.logs / f"artvc.{ds}.{op}"
        tf = Path(f"{stem}.time")
        tf.unlink(missing_ok=True)
        gnu = os.access(TIME_BIN, os.X_OK)
        prefix = [TIME_BIN, "-v", "-o", str(tf)] if gnu else [sys.executable, "-c", RUSAGE_WRAPPER, str(tf)]
        with open(f"{stem}.out", "w") as out, open(f"{stem}.err", "w") as err:
            t0 = time.perf_counter()
            p = subprocess.Popen(prefix + ["bash", "-c", cmd], cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err, start_new_session=True)
            # A blocking wait, with the time limit on a timer: Popen.wait(timeout=...) polls with
            # sleeps of up to 50 ms, which rounded every step up to the next point of its schedule.
            expired = threading.Event()

            def kill() -> None:
                expired.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)

            timer = threading.Timer(self.timeout, kill)
            timer.daemon = True
            timer.start()
            try:
                rc = p.wait()
            except BaseException:
                kill()
                raise
            finally:
                timer.cancel()
            wall = time.perf_counter() - t0
            timed_out = expired.is_set() and rc == -signal.SIGKILL
        stdout = Path(f"{stem}.out").read_text(errors="replace")
        stderr = Path(f"{stem}.err").read_text(errors="replace")
        rec: dict[str, Any] = {"tool": "artvc", "dataset": ds, "op": op, "cmd": cmd, "rc": rc,
                               "wall_s": round(wall, 3), "note": note, "stdout_head": stdout[:2000]}
        summary = parse_summary(stdout + "\n" + stderr)
        if summary:
            rec["summary"] = summary
        try:
            rec.update(self.peers.parse_time_v(tf) if gnu else json.loads(tf.read_text()))
        except (OSError, ValueError) as ex:
            rec["time_parse_error"] = str(ex)
        if rc != 0:
            rec["error"] = (f"timed out after {self.timeout:g} s" if timed_out
                            else first_error_line(stderr, stdout, rc))
            rec["stderr_tail"] = stderr[-1500:]
        self.results.append(rec)
        status = "OK " if rc == 0 else f"RC={rc}"
        log(f"  {status} artvc   {ds:10s} {op:12s} {wall:8.2f}s  rss={rec.get('max_rss_kb', 0) / 1024:7.1f} MiB"
            + (f"  {rec['error']}" if rc else ""))
        return rec

    def size(self, ds: str, label: str, paths: dict[str, Path]) -> None:
        """Record `du -sb` and file bytes/files/dirs of the given paths.

        The store is `.artvc` without the workspace's stat cache (`.artvc/cache`), as the peers'
        stores are measured without theirs (DVC's .dvc/tmp, git's index, restic's cache folder);
        the cache's size is recorded on its own and reported in the notes.
        """
        sizes = {k: self.peers.du(str(p)) for k, p in paths.items()}
        if "workspace_cache" in sizes and "store" in sizes:
            sizes["store"] -= sizes["workspace_cache"]
        self.results.append({"tool": "artvc", "dataset": ds, "op": "size", "label": label, "sizes": sizes,
                             "tree": {k: self.peers.tree_stats(str(p)) for k, p in paths.items()}})

    def check(self, ds: str, label: str, d: Path, ver: str) -> None:
        """Verify a tree against a manifest and record the outcome."""
        ok, msg = self.data.verify(ds, d, ver) if d.is_dir() else (False, f"{d.name}/ does not exist")
        self.results.append({"tool": "artvc", "dataset": ds, "op": "verify", "label": label, "ok": ok, "msg": msg})
        log(f"  verify artvc {ds} {label}: {msg}")

    def expect_version(self, rec: dict[str, Any], want: str | None) -> None:
        """Compare the `NAME:vN <id>` lines that a commit printed with what it should have made."""
        got = [f"{m[0]}:v{m[1]}" for m in VERSION_LINE.findall(rec.get("stdout_head", ""))]
        rec["versions_made"] = got
        if rec["rc"] == 0 and got != ([want] if want else []):
            rec["warning"] = f"expected {want or 'no new version'}, printed {got or 'no version line'}"
            log(f"  WARNING artvc {rec['dataset']} {rec['op']}: {rec['warning']}")

    def push(self, ds: str, op: str, remote: str, folder: Path, sfx: str, before: str | None = None) -> None:
        """`artvc push REMOTE`, timed, with `du -sb` of the remote's folder after it (and before, if asked)."""
        if before:
            self.size(ds, f"remote{sfx} {before}", {"remote": folder})
        self.timed(ds, op, self.shell(["push", remote]), self.ws)
        self.size(ds, f"remote{sfx} after {op.removesuffix('_sftp')}", {"remote": folder})

    def clone_pull(self, ds: str, op: str, url: str, dest: Path) -> None:
        """Restore v1 into an empty dir from a remote that holds v1 and v2: `artvc clone URL DIR`, then
        `artvc pull origin ds:v0` in it (fetches v1's data only and checks it out), timed together; verified."""
        cmd = f"{self.shell(['clone', url, str(dest)])} && cd {shlex.quote(str(dest))} && " \
              f"{self.shell(['pull', 'origin', 'ds:v0'])}"
        self.timed(ds, op, cmd, dest.parent, note="clone + pull origin ds:v0 into an empty dir (remote holds v1+v2)")
        self.check(ds, op, dest / "data", "v1")

    def run(self, ds: str) -> None:
        """The whole artvc sequence on one data set."""
        base = self.work / f"artvc-{ds}"
        shutil.rmtree(base, ignore_errors=True)
        ws, restore = base / "ws", base / "restore"
        self.ws = ws
        ws.mkdir(parents=True)
        subprocess.run(["cp", "-a", str(self.data.root / ds / "v1"), str(ws / "data")], check=True)
        remote = self.remote_root / f"artvc-{ds}"
        shutil.rmtree(remote, ignore_errors=True)
        remote.mkdir(parents=True)
        local_store = remote / "store"
        sftp_dir = self.remote_root / f"artvc-{ds}-sftp"
        shutil.rmtree(sftp_dir, ignore_errors=True)
        sftp = self.sshd is not None
        if sftp:
            sftp_dir.mkdir(parents=True)
            sftp_url = self.sshd.url(sftp_dir / "store")
        else:
            for op in SFTP_OPS:
                self.results.append({"tool": "artvc", "dataset": ds, "op": op, "na": self.sftp_na})
        store = {"store": ws / ".artvc", "workspace_cache": ws / ".artvc" / "cache"}
        self.timed(ds, "init", self.shell(["init"]), ws)
        self.size(ds, "after init", store)
        self.timed(ds, "remote_add", self.shell(["remote", "add", "bench", str(local_store)]), ws,
                   note="set-up for push (not in the table)")
        if sftp:
            self.timed(ds, "remote_add_sftp", self.shell(["remote", "add", "sftp", sftp_url]), ws,
                       note="set-up for push (not in the table)")
        rec = self.timed(ds, "add_v1", self.shell(["add", "data", "-a", "ds"], ["commit", "-m", "v1"]), ws,
                         note="add + first commit, timed together")
        self.expect_version(rec, "ds:v0")
        self.size(ds, "after v1", store)
        self.timed(ds, "noop_status", self.shell(["status"]), ws, note="nothing changed")
        rec = self.timed(ds, "noop_commit", self.shell(["commit", "-m", "noop"]), ws, note="nothing changed")
        self.expect_version(rec, None)
        self.size(ds, "after noop", store)
        self.push(ds, "push_v1", "bench", remote, "", before="before push_v1")
        if sftp:
            self.push(ds, "push_v1_sftp", "sftp", sftp_dir, " (sftp)", before="before push_v1")
        self.data.edit(ds, ws / "data")
        self.check(ds, "after edit (ws == v2)", ws / "data", "v2")
        self.size(ds, "before v2", store)  # the pushes above write remote-tracking state into .artvc
        rec = self.timed(ds, "add_v2", self.shell(["commit", "-m", "v2"]), ws, note="incremental commit")
        self.expect_version(rec, "ds:v1")
        self.size(ds, "after v2", store)
        self.push(ds, "push_v2", "bench", remote, "")
        if sftp:
            self.push(ds, "push_v2_sftp", "sftp", sftp_dir, " (sftp)")
        self.timed(ds, "noop_push", self.shell(["push", "bench"]), ws, note="nothing new to push")
        if sftp:
            self.timed(ds, "noop_push_sftp", self.shell(["push", "sftp"]), ws, note="nothing new to push")
        self.timed(ds, "checkout_v1", self.shell(["checkout", "ds:v0"]), ws, note="workspace v2 -> v1")
        self.check(ds, "checkout_v1", ws / "data", "v1")
        restore.mkdir()
        self.timed(ds, "restore_v1", self.shell(["checkout", "ds:v0", "--to", str(restore)]), ws,
                   note="from the local store into an empty dir")
        self.check(ds, "restore_v1", restore / "data", "v1")
        self.clone_pull(ds, "clone_pull", str(local_store), base / "clone-local")
        if sftp:
            self.clone_pull(ds, "clone_pull_sftp", sftp_url, base / "clone-sftp")
        if not self.keep:
            for d in (base, remote, sftp_dir):
                shutil.rmtree(d, ignore_errors=True)


def peer_installed(peer: str, peers: ModuleType) -> bool:
    """Whether peers.py can run this peer here (peers.sh install puts them in place)."""
    if peer == "dvc":
        return os.access(os.path.join(peers.BENCH_VENV, "bin", "dvc"), os.X_OK)
    if peer == "gitlfs":
        return subprocess.run(["git", "lfs", "version"], capture_output=True).returncode == 0 \
            if shutil.which("git") else False
    if peer == "oxen":
        py = os.path.join(peers.OXEN_VENV, "bin", "python")
        return os.access(py, os.X_OK) and subprocess.run([py, "-c", "import oxen"], capture_output=True).returncode == 0
    return shutil.which(peer) is not None


def seed_git_config(home: Path) -> None:
    """Write peers.py's isolated git config without git-lfs (its own set-up runs `git lfs install`,
    which fails when git-lfs is missing; it skips the set-up when the file exists)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@localhost\n"
                                     "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")


def dvc_sftp_missing(peers: ModuleType) -> str:
    """Why DVC cannot push over SFTP here ("" when its dvc-ssh plugin is importable)."""
    r = subprocess.run([peers.PY, "-c", "import dvc_ssh"], capture_output=True)
    return "" if r.returncode == 0 else "dvc-ssh (DVC's SFTP plugin) is not installed in the peers' venv"


def extended_runner(peers: ModuleType) -> type:
    """peers.py's Runner plus the remote steps that it lacks: a no-op push for DVC and git-lfs (after its
    sequence, in the same workspace), and "n/a" records with the reason for the SFTP rows."""
    dvc_sftp_na = dvc_sftp_missing(peers)
    sftp_na = {"dvc": dvc_sftp_na or "DVC over SFTP is not wired into this harness yet",
               "gitlfs": "git-lfs over SSH needs git-lfs-transfer or git-lfs-authenticate on the server; not measured"}

    class Runner(peers.Runner):  # type: ignore[name-defined,misc]
        def sftp_na(self, tool: str, ds: str) -> None:
            for op in SFTP_OPS:
                self.record(tool, ds, op, na=sftp_na[tool])

        def run_dvc(self, ds: str) -> str:
            base = super().run_dvc(ds)
            self.timed("dvc", ds, "noop_push", "dvc push -q", os.path.join(base, "ws"),
                       note="`dvc push` with everything already on the remote (workspace at v1)")
            self.sftp_na("dvc", ds)
            return base

        def run_gitlfs(self, ds: str) -> str:
            base = super().run_gitlfs(ds)
            self.timed("gitlfs", ds, "noop_push", "git push -q origin main v1 v2 2>&1", os.path.join(base, "ws"),
                       note="`git push` of refs already on the remote (pre-push LFS hook included)")
            self.sftp_na("gitlfs", ds)
            return base

    return Runner


def run_peers(peers: ModuleType, tools: list[str], datasets: list[str], root: Path, data: Data,
              args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, str], Path | None]:
    """Run the peers through peers.py's Runner, on the same data; returns results, versions, remote root.

    git's automatic gc is turned off in the peers' git config: a detached `git gc --auto` after the
    20,000-file commit races with the store measurement (files vanish under os.walk) and steals CPU
    from the next timed steps."""
    home = root / "work" / "home"
    (home / ".gitconfig").unlink(missing_ok=True)
    if not peer_installed("gitlfs", peers):
        seed_git_config(home)
    ns = SimpleNamespace(scale=args.scale, seed=args.seed, root=str(root), remote_root=args.remote_root,
                         keep=args.keep, tools=tools, datasets=datasets, out=None)
    with stdout_to_stderr():
        runner = extended_runner(peers)(ns)
        runner.data_root = str(data.root)
        if shutil.which("git"):
            subprocess.run(["git", "config", "--file", runner.env["GIT_CONFIG_GLOBAL"], "gc.auto", "0"], check=True)
        versions = runner.versions()
        for tool in tools:
            for ds in datasets:
                log(f"== {tool} / {ds}")
                t0 = time.time()
                try:
                    getattr(runner, f"run_{tool}")(ds)
                except Exception as ex:  # noqa: BLE001 - one failing peer must not stop the run
                    log(f"  FAILED: {ex}")
                    runner.record(tool, ds, "error", msg=str(ex)[-2000:])
                runner.record(tool, ds, "tool_total", wall_s=round(time.time() - t0, 1))
                if not args.keep:
                    shutil.rmtree(os.path.join(runner.work_root, f"{tool}-{ds}"), ignore_errors=True)
                    shutil.rmtree(os.path.join(runner.remote_root, f"{tool}-{ds}"), ignore_errors=True)
    return runner.results, versions, Path(runner.remote_root)


def combine_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One result list from several rounds: each timed step is the record of its median-time round
    (the lower middle for an even count; its peak RSS and counts come with it, and `runs_s` lists
    every round's time), or of a failed round if there is one; sizes come from the first round;
    every round's checks are kept, so one wrong restore shows."""
    if len(rounds) == 1:
        return rounds[0]
    # A step that failed in any round shows as failed (its error in the notes), not as the median.
    timed: dict[tuple, list[dict[str, Any]]] = {}
    out: list[dict[str, Any]] = []
    for i, results in enumerate(rounds):
        for r in results:
            if r["op"] not in ("size", "verify", "tool_total", "error") and "rc" in r and "wall_s" in r:
                timed.setdefault((r["tool"], r["dataset"], r["op"]), []).append(r)
            elif i == 0 or r["op"] in ("verify", "error"):
                out.append(r)
    for recs in timed.values():
        failed = [r for r in recs if r["rc"] != 0]
        ordered = sorted(recs, key=lambda r: r["wall_s"])
        chosen = dict(failed[0] if failed else ordered[(len(ordered) - 1) // 2])
        chosen["runs_s"] = [r["wall_s"] for r in recs]
        chosen["failed_rounds"] = len(failed)
        out.append(chosen)
    return out


class Table:
    """The Markdown table: rows = data set x operation, columns = artvc, then each peer and peer/artvc."""

    def __init__(self, report: ModuleType, results: list[dict[str, Any]], raw: dict[str, dict[str, Any]],
                 tools: list[str]) -> None:
        self.timed, self.na, self.sizes, verify, _ = report.index(results)
        self.errors = {(r["tool"], r["dataset"]): r["msg"] for r in results if r["op"] == "error"}
        self.bad_verify = {}
        for vs in verify.values():
            for v in vs:
                if not v["ok"]:
                    self.bad_verify.setdefault((v["tool"], v["dataset"], v["label"]), v["msg"])
        self.store_keys = dict(report.STORE_KEYS, artvc=["store"])
        self.raw, self.tools = raw, tools
        self.notes: list[str] = []

    def timed_cell(self, tool: str, ds: str, op: str) -> tuple[float | None, str, dict[str, Any] | None]:
        """(wall s, "s / MiB" text, record) of a timed step; the text says n/a / – when there is no number."""
        key = (tool, ds, op)
        rec = self.timed.get(key)
        if rec is None:
            return None, "n/a" if key in self.na else "–", None
        if rec["rc"] != 0:
            msg = rec.get("error") or first_error_line(rec.get("error_tail", ""), "", rec["rc"])
            msg = re.sub(r"\b(sftp|s3|file)://\S+|(?<![\w.])/[^\s:]+", "…", msg)  # URLs and paths: in the notes
            return None, (f"n/a ({md_escape(msg, 90)})" if tool == "artvc" else f"failed (rc={rec['rc']})"), None
        flag = " ✗" if (tool, ds, op) in self.bad_verify else ""
        flag += " ⚠" if rec.get("warning") else ""
        return rec["wall_s"], f"{rec['wall_s']:.2f} s / {rec.get('max_rss_kb', 0) / 1024:.0f} MiB{flag}", rec

    def store(self, tool: str, ds: str, label: str, keys: list[str] | None = None) -> int | None:
        """Bytes of the store (or of `keys`) at a size checkpoint; None if it was not measured."""
        d = self.sizes.get((tool, ds), {}).get(label)
        return None if d is None else sum(d[k] for k in (keys or self.store_keys[tool]) if k in d)

    def value(self, tool: str, ds: str, op: str, kind: str) -> tuple[float | None, str]:
        """(number for the ratio, cell text) of one tool on one row; `op` is already the tool's own op."""
        if kind in (TIME, NOOP_PUSH, RESTORE):
            wall, cell, rec = self.timed_cell(tool, ds, op)
            summ = (rec or {}).get("summary", {})
            if kind == NOOP_PUSH and "requests" in summ:
                cell = f"{summ['requests']} req · {cell}"
            if kind == RESTORE and "fetch_requests" in summ:
                cell += f" · fetched {summ['fetched_mib']:.1f} MiB in {summ['fetch_requests']} req"
            return wall, cell
        if kind == UPLOAD:
            # remote folder growth: du -sb after the push − before it (peers: before = 0, their remote is new)
            step = op.removesuffix("_sftp")
            sfx = " (sftp)" if op.endswith("_sftp") else ""
            prev = {"push_v1": "before push_v1", "push_v2": "after push_v1"}[step]
            wall, cell, rec = self.timed_cell(tool, ds, op)
            hi = self.store(tool, ds, f"remote{sfx} after {step}", ["remote"])
            lo = self.store(tool, ds, f"remote{sfx} {prev}", ["remote"])
            if rec is None or hi is None:
                return None, cell if rec is None else "–"
            grown = hi - (lo or 0)
            cell = fmt_bytes(grown)
            summ = rec.get("summary", {})
            if "pushed_mib" in summ:
                cell += f" · {summ['pushed_mib']:.1f} MiB in {summ['packs']} packs, {summ['requests']} req"
            return grown, cell
        # v2 growth from right before the v2 commit when measured (artvc: its pushes of v1 add remote-tracking
        # state to .artvc); the peers' stores do not change on push, so theirs start after the no-op steps
        before_v2 = "before v2" if self.store(tool, ds, "before v2") is not None else "after noop"
        a, b = {"grow_v1": ("after init", "after v1"), "grow_v2": (before_v2, "after v2"),
                "ratio_v1": (None, "after v1"), "ratio_v2": (None, "after v2")}[op]
        hi = self.store(tool, ds, b)
        if hi is None:
            return None, "–"
        if kind == BYTES:
            lo = self.store(tool, ds, a)
            return (None, "–") if lo is None else (hi - lo, fmt_bytes(hi - lo))
        x = hi / self.raw[ds]["v1"]["bytes"]
        return x, f"{x:.3f}"

    def render(self, datasets: list[str]) -> str:
        """The table, then short notes (peer step definitions, failures)."""
        head = ["operation", "artvc"]
        for t in self.tools:
            head += [PEER_TITLES[t], f"{PEER_TITLES[t]} ÷ artvc"]
        lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for ds in datasets:
            for op, label, kind, peer_ops in ROWS:
                base, cell = self.value("artvc", ds, op, kind)
                cells = [f"{ds}: {label}", cell]
                for t in self.tools:
                    pop = op if peer_ops is None else peer_ops.get(t)
                    v, c = self.value(t, ds, pop, kind) if pop else (None, "–")
                    ratio = f"{v / base:.2f}×" if v is not None and base else "–"
                    cells += [c, ratio]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def footnotes(self, results: list[dict[str, Any]], datasets: list[str], meta: dict[str, Any]) -> str:
        """What the cells mean, and everything that failed."""
        remotes = ("on the same filesystem as the workspaces (git-lfs hard-links into its remote there; "
                   "--remote-root elsewhere avoids it)" if meta["remote_same_fs"] else "on another filesystem")
        out = [
            "Seconds are wall-clock, one subprocess per step, warm page cache"
            + (f", the median of {meta['repeat']} rounds of every tool's whole sequence (peak RSS from that round)"
               if meta.get("repeat", 1) > 1 else "")
            + f"; MiB = peak RSS of the largest process ({meta['timer']}). Ratio > 1: artvc is faster / smaller. Stored bytes are `du -sb` of the store: "
            "artvc `.artvc` without its stat cache `.artvc/cache`, DVC `.dvc/cache`, git-lfs `.git/lfs/objects`, restic/borg repository; "
            "v1 growth = after v1 − after init; v2 growth = after v2 − after the no-op steps (artvc: − right before "
            "the v2 commit, since its pushes of v1 write remote-tracking state into .artvc, listed below).",
            "Restore from the local store = `artvc checkout ds:v0 --to EMPTY`, beside restic/borg restoring from "
            "their repository (which is their store and their remote). Restore via clone+pull = `artvc clone REMOTE DIR "
            "&& cd DIR && artvc pull origin ds:v0`, after v2 is pushed (the remote holds v1 and v2; only v1's data is "
            "fetched), timed together, beside DVC `git clone -b v1` + `dvc pull` and git-lfs `git clone -b v1` (smudge). "
            "Bytes uploaded = growth of `du -sb` of the remote folder (artvc: after − before the push; peers: remote size "
            "after push v1, after v2 − after v1), then the MiB / packs / requests of artvc's summary line. No-op push = a "
            "further push after v2's, with nothing new: artvc `push` (its request count), DVC `dvc push`, git-lfs `git push origin main "
            "v1 v2`. SFTP = `sftp://USER@127.0.0.1:PORT/...` served by a throw-away OpenSSH sshd that the harness starts "
            "on loopback (internal-sftp, ed25519 keys; the remote folder is on the same disk as the local one). "
            "restic/borg no-op status = a second backup; they have no checkout, no separate commit, no push. "
            f"Local-dir remotes are {remotes}; git's auto-gc is off for DVC/git-lfs.",
            "✗ = restored/checked-out files differ from the manifest; ⚠ = unexpected commit output (see below).",
        ]
        na_seen = set()
        for r in results:
            where = f"{r['tool']} / {r['dataset']} / {r['op']}"
            if r["tool"] == "artvc" and r.get("rc") and not r["op"].startswith("remote_add"):
                out.append(f"- {where}: `{md_escape(r['cmd'], 600)}` → rc {r['rc']}: {md_escape(r['error'], 400)}")
            elif r["tool"] == "artvc" and r["op"].startswith("remote_add") and r.get("rc"):
                out.append(f"- {where} (setup): `{md_escape(r['cmd'], 600)}` → rc {r['rc']}: {md_escape(r['error'], 400)}")
            if r["op"] in SFTP_OPS and "na" in r and (r["tool"], r["na"]) not in na_seen:
                na_seen.add((r["tool"], r["na"]))
                out.append(f"- {r['tool']}: SFTP rows n/a: {r['na']}")
            if r.get("warning"):
                out.append(f"- {where}: {r['warning']}")
            if r["op"] == "verify" and not r["ok"]:
                out.append(f"- {r['tool']} / {r['dataset']} verify {r['label']}: {r['msg']}")
            if r["op"] == "error":
                out.append(f"- {r['tool']} / {r['dataset']} FAILED: {md_escape(r['msg'], 300)}")
            if r["tool"] != "artvc" and r.get("rc"):
                out.append(f"- {where}: rc {r['rc']}: {md_escape(r.get('error_tail', ''), 300)}")
        raw = "; ".join(f"{ds} v1 {self.raw[ds]['v1']['files']} files {fmt_bytes(self.raw[ds]['v1']['bytes'])}, "
                        f"v2 {self.raw[ds]['v2']['files']} files {fmt_bytes(self.raw[ds]['v2']['bytes'])}"
                        for ds in datasets)
        out.append(f"Raw data: {raw}.")
        for ds in datasets:
            cache = self.store("artvc", ds, "after v1", ["workspace_cache"])
            if cache:
                out.append(f"artvc {ds}: the workspace's stat cache (.artvc/cache, not counted as store, like DVC's "
                           f".dvc/tmp and git's index) held {fmt_bytes(cache)} after v1.")
            noop, before = self.store("artvc", ds, "after noop"), self.store("artvc", ds, "before v2")
            if noop is not None and before is not None:
                out.append(f"artvc {ds}: the pushes of v1 (to every remote) added {fmt_bytes(before - noop)} to "
                           ".artvc (remote-tracking state): not in the v2 growth row, but in store ÷ raw after v2.")
        return "\n".join(out[:3]) + "\n\n" + "\n".join(out[3:])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="data set scale (1 = full; 0.125 = quick)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every tool's whole sequence this many times and report each step's median time")
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma list of large, many-small")
    ap.add_argument("--peers", default=DEFAULT_PEERS, help="comma list of dvc, restic, git-lfs, borg, oxen")
    ap.add_argument("--no-peers", action="store_true", help="run artvc only")
    ap.add_argument("--artvc", help="artvc command line (default: the `artvc` script, else `python -m artvc`)")
    ap.add_argument("--root", help="work folder (data sets are reused from it); default: a temp folder, removed")
    ap.add_argument("--remote-root", default=os.environ.get("BENCH_REMOTE_ROOT") or None,
                    help="parent folder of the local-dir remotes (default ROOT/remotes; $BENCH_REMOTE_ROOT)")
    ap.add_argument("--step-timeout", type=float, default=1800, help="seconds before an artvc step is killed")
    ap.add_argument("--json-out", help="write the raw results as JSON here")
    ap.add_argument("--md-out", help="also write the table (and notes) here")
    ap.add_argument("--keep", action="store_true", help="keep workspaces, stores and the temp folder")
    ap.add_argument("--no-sftp", action="store_true", help="skip the SFTP rows (no sshd is started)")
    a = ap.parse_args(argv)
    a.datasets = [d for d in a.datasets.split(",") if d]
    for d in a.datasets:
        if d not in DATASETS:
            ap.error(f"unknown data set {d!r} (choose from {', '.join(DATASETS)})")
    a.peers = [] if a.no_peers else [p for p in a.peers.split(",") if p]
    for p in a.peers:
        if p not in PEER_IDS:
            ap.error(f"unknown peer {p!r} (choose from dvc, restic, git-lfs, borg, oxen)")
    a.peers = list(dict.fromkeys(PEER_IDS[p] for p in a.peers))
    return a


def main(argv: list[str] | None = None) -> int:
    """Build the data, run artvc and the peers, print the table."""
    args = parse_args(argv)
    if args.repeat < 1:
        log("error: --repeat must be at least 1")
        return 1
    shared = shared_dir()
    if not (shared / "make_dataset.py").is_file() or not (shared / "peers.py").is_file():
        log(f"error: shared benchmark folder not found at {shared} (set ARTVC_BENCH_SHARED)")
        return 1
    peers = load_module("bench_peers", shared / "peers.py")
    report = load_module("bench_report", shared / "report.py")
    install_hint = f"bash {os.path.relpath(shared / 'peers.sh')} install"
    py = python_with_numpy([peers.PY, sys.executable])
    if py is None:
        log(f"error: make_dataset.py needs numpy: run `{install_hint}` (makes the venv with it) or pip install numpy")
        return 1
    root = Path(args.root).resolve() if args.root else Path(tempfile.mkdtemp(prefix="artvc-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    tag = f"scale-{args.scale:g}"
    data = Data(shared, py, root / "data" / tag, args.scale, args.seed)
    artvc_cmd = find_artvc(args.artvc)
    byte_compile_artvc(artvc_python(artvc_cmd))
    meta: dict[str, Any] = {"scale": args.scale, "seed": args.seed, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "platform": platform.platform(), "nproc": os.cpu_count(), "artvc_cmd": artvc_cmd,
                            "timer": "GNU time" if os.access(TIME_BIN, os.X_OK) else "getrusage wrapper",
                            "shared": str(shared), "root": str(root)}
    r = subprocess.run(artvc_cmd + ["--version"], capture_output=True, text=True)
    meta["artvc_version"] = ((r.stdout or r.stderr).strip().splitlines() or [f"exit {r.returncode}"])[-1]
    if r.returncode != 0:
        log(f"warning: `{shlex.join(artvc_cmd)} --version` failed: {first_error_line(r.stderr, r.stdout, r.returncode)}"
            " (artvc steps will show n/a; install with `pip install -e .` from the repository root)")
    tools = []
    for p in args.peers:
        if peer_installed(p, peers) and os.access(TIME_BIN, os.X_OK) and os.access(peers.PY, os.X_OK):
            tools.append(p)
        else:
            log(f"peer {PEER_TITLES[p]} is not installed: skipping it. Install the peers with `{install_hint}`")
    meta["peers"] = tools
    stack = contextlib.ExitStack()
    try:
        for ds in args.datasets:
            data.build(ds)
        meta["raw"] = {ds: {"v1": data.raw(ds, "v1"), "v2": data.raw(ds, "v2")} for ds in args.datasets}
        remote_root = Path(args.remote_root).resolve() / tag if args.remote_root else root / "remotes" / tag
        remote_root.mkdir(parents=True, exist_ok=True)
        sshd, sftp_na = None, "--no-sftp"
        if not args.no_sftp:
            mod = load_module("bench_sshd", Path(__file__).resolve().parent / "sshd.py")
            try:
                sshd = stack.enter_context(mod.SSHD(root / "work" / "sshd"))
                meta["sshd"] = {"port": sshd.port, "banner": sshd.banner, "user": sshd.user}
                log(f"sshd: {sshd.banner} on 127.0.0.1:{sshd.port} (user {sshd.user})")
            except (mod.SSHDUnavailable, OSError, subprocess.SubprocessError) as ex:
                sftp_na = f"sshd could not be started: {ex}"
                log(f"warning: {sftp_na}; the SFTP rows show n/a")
        rounds = []
        for round_no in range(1, args.repeat + 1):
            if args.repeat > 1:
                log(f"=== round {round_no} of {args.repeat}")
            results: list[dict[str, Any]] = []
            if tools:
                peer_results, meta["peer_versions"], peer_remote_root = run_peers(peers, tools, args.datasets, root,
                                                                                 data, args)
                results += peer_results
                remote_root = peer_remote_root
            bench = ArtvcBench(artvc_cmd, data, peers, root / "work", remote_root, args.step_timeout, args.keep,
                               sshd=sshd, sftp_na=sftp_na)
            for ds in args.datasets:
                log(f"== artvc / {ds}")
                try:
                    bench.run(ds)
                except (OSError, RuntimeError, subprocess.CalledProcessError) as ex:
                    log(f"  FAILED: {ex}")
                    bench.results.append({"tool": "artvc", "dataset": ds, "op": "error", "msg": str(ex)[-2000:]})
            rounds.append(bench.results + results)
        meta["repeat"] = args.repeat
        stack.close()  # stop sshd before the table is printed
        results = combine_rounds(rounds)
        meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        table = Table(report, results, meta["raw"], tools)
        text = table.render(args.datasets)
        meta["remote_same_fs"] = remote_root.stat().st_dev == root.stat().st_dev
        notes = table.footnotes(results, args.datasets, meta)
        print(f"artvc benchmark, scale {args.scale:g} (seed {args.seed})\n\n{text}\n\n{notes}", flush=True)
        if args.md_out:
            Path(args.md_out).write_text(f"{text}\n\n{notes}\n")
        if args.json_out:
            Path(args.json_out).write_text(json.dumps({"meta": meta, "results": results, "table": text}, indent=1))
            log(f"wrote {args.json_out}")
    finally:
        stack.close()
        if not args.root and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
