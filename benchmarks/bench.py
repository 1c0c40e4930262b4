#!/usr/bin/env python3
"""Benchmark artvc beside its peers (DVC, restic, git-lfs, ...) in one invocation.

The data sets (`large`, `many-small`) and the peers' runs come from the shared
benchmark folder (`../shared/bench` beside the repository, or $ARTVC_BENCH_SHARED):
make_dataset.py builds v1 and edits it into v2, peers.py runs the peers, and
report.py's helpers read their results. artvc runs through its CLI, one
subprocess per step, timed for wall-clock seconds and peak RSS.

Per data set, artvc runs: init; add+commit v1 (timed together); no-op status;
no-op commit; push v1; make_dataset.py edit -> v2; commit v2 (incremental);
push v2; checkout ds:v0 (v2 -> v1 in the workspace); checkout ds:v0 --to an
empty dir (restore). The store (`.artvc`, `du -sb`) is measured after each
version, and every checkout and restore is verified against the manifests.

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

# (op, label, kind); peers.py calls the no-op commit "noop_readd"
ROWS = [
    ("add_v1", "first add+commit (v1)", "time"),
    ("add_v2", "incremental commit (v2)", "time"),
    ("noop_status", "no-op status", "time"),
    ("noop_commit", "no-op commit", "time"),
    ("checkout_v1", "checkout v2→v1", "time"),
    ("restore_v1", "restore v1 into empty dir", "time"),
    ("push_v1", "push v1 to a local-dir remote", "time"),
    ("push_v2", "push v2 (incremental)", "time"),
    ("grow_v1", "stored bytes: v1 (store growth)", "bytes"),
    ("grow_v2", "stored bytes: v2 growth (dedup)", "bytes"),
    ("ratio_v1", "store ÷ raw v1, after v1", "ratio"),
    ("ratio_v2", "store ÷ raw v1, after v2", "ratio"),
]
PEER_OP = {"noop_commit": "noop_readd"}

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
                 timeout: float, keep: bool) -> None:
        self.cmd, self.data, self.peers = cmd, data, peers
        self.work, self.remote_root, self.timeout, self.keep = work, remote_root, timeout, keep
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results: list[dict[str, Any]] = []
        self.env = self.isolated_env(work / "home-artvc")

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
            try:
                rc = p.wait(timeout=self.timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                rc, timed_out = p.wait(), True
            wall = time.perf_counter() - t0
        stdout = Path(f"{stem}.out").read_text(errors="replace")
        stderr = Path(f"{stem}.err").read_text(errors="replace")
        rec: dict[str, Any] = {"tool": "artvc", "dataset": ds, "op": op, "cmd": cmd, "rc": rc,
                               "wall_s": round(wall, 3), "note": note, "stdout_head": stdout[:2000]}
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
        """Record `du -sb` and file bytes/files/dirs of the given paths."""
        self.results.append({"tool": "artvc", "dataset": ds, "op": "size", "label": label,
                             "sizes": {k: self.peers.du(str(p)) for k, p in paths.items()},
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

    def run(self, ds: str) -> None:
        """The whole artvc sequence on one data set."""
        base = self.work / f"artvc-{ds}"
        shutil.rmtree(base, ignore_errors=True)
        ws, restore = base / "ws", base / "restore"
        ws.mkdir(parents=True)
        subprocess.run(["cp", "-a", str(self.data.root / ds / "v1"), str(ws / "data")], check=True)
        remote = self.remote_root / f"artvc-{ds}"
        shutil.rmtree(remote, ignore_errors=True)
        remote.mkdir(parents=True)
        store = {"store": ws / ".artvc"}
        self.timed(ds, "init", self.shell(["init"]), ws)
        self.size(ds, "after init", store)
        self.timed(ds, "remote_add", self.shell(["remote", "add", "bench", str(remote / "store")]), ws,
                   note="set-up for push (not in the table)")
        rec = self.timed(ds, "add_v1", self.shell(["add", "data", "-a", "ds"], ["commit", "-m", "v1"]), ws,
                         note="add + first commit, timed together")
        self.expect_version(rec, "ds:v0")
        self.size(ds, "after v1", store)
        self.timed(ds, "noop_status", self.shell(["status"]), ws, note="nothing changed")
        rec = self.timed(ds, "noop_commit", self.shell(["commit", "-m", "noop"]), ws, note="nothing changed")
        self.expect_version(rec, None)
        self.size(ds, "after noop", store)
        self.timed(ds, "push_v1", self.shell(["push"]), ws)
        self.size(ds, "remote after push_v1", {"remote": remote})
        self.data.edit(ds, ws / "data")
        self.check(ds, "after edit (ws == v2)", ws / "data", "v2")
        rec = self.timed(ds, "add_v2", self.shell(["commit", "-m", "v2"]), ws, note="incremental commit")
        self.expect_version(rec, "ds:v1")
        self.size(ds, "after v2", store)
        self.timed(ds, "push_v2", self.shell(["push"]), ws)
        self.size(ds, "remote after push_v2", {"remote": remote})
        self.timed(ds, "checkout_v1", self.shell(["checkout", "ds:v0"]), ws, note="workspace v2 -> v1")
        self.check(ds, "checkout_v1", ws / "data", "v1")
        restore.mkdir()
        self.timed(ds, "restore_v1", self.shell(["checkout", "ds:v0", "--to", str(restore)]), ws,
                   note="from the local store into an empty dir")
        self.check(ds, "restore_v1", restore / "data", "v1")
        if not self.keep:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(remote, ignore_errors=True)


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
        runner = peers.Runner(ns)
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

    def value(self, tool: str, ds: str, op: str, kind: str) -> tuple[float | None, str]:
        """(number for the ratio, cell text) of one tool on one row."""
        if kind == "time":
            key = (tool, ds, op if tool == "artvc" else PEER_OP.get(op, op))
            rec = self.timed.get(key)
            if rec is None:
                if key in self.na:
                    return None, "n/a"
                return None, "–"
            if rec["rc"] != 0:
                msg = rec.get("error") or first_error_line(rec.get("error_tail", ""), "", rec["rc"])
                return None, f"n/a ({md_escape(msg, 70)})" if tool == "artvc" else f"failed (rc={rec['rc']})"
            flag = " ✗" if (tool, ds, key[2]) in self.bad_verify else ""
            flag += " ⚠" if rec.get("warning") else ""
            return rec["wall_s"], f"{rec['wall_s']:.2f} s / {rec.get('max_rss_kb', 0) / 1024:.0f} MiB{flag}"
        sz = self.sizes.get((tool, ds), {})

        def store(label: str) -> int | None:
            d = sz.get(label)
            return None if d is None else sum(d[k] for k in self.store_keys[tool] if k in d)

        a, b = {"grow_v1": ("after init", "after v1"), "grow_v2": ("after noop", "after v2"),
                "ratio_v1": (None, "after v1"), "ratio_v2": (None, "after v2")}[op]
        hi = store(b)
        if hi is None:
            return None, "–"
        if kind == "bytes":
            lo = store(a)
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
            for op, label, kind in ROWS:
                base, cell = self.value("artvc", ds, op, kind)
                cells = [f"{ds}: {label}", cell]
                for t in self.tools:
                    v, c = self.value(t, ds, op, kind)
                    ratio = f"{v / base:.2f}×" if v is not None and base else "–"
                    cells += [c, ratio]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def footnotes(self, results: list[dict[str, Any]], datasets: list[str], meta: dict[str, Any]) -> str:
        """What the cells mean, and everything that failed."""
        remotes = ("on the same filesystem as the workspaces (git-lfs hard-links into its remote there; "
                   "--remote-root elsewhere avoids it)" if meta["remote_same_fs"] else "on another filesystem")
        out = [
            "Seconds are wall-clock, one subprocess per step, warm page cache; MiB = peak RSS of the largest "
            f"process ({meta['timer']}). Ratio > 1: artvc is faster / smaller. Stored bytes are `du -sb` of the store: "
            "artvc `.artvc`, DVC `.dvc/cache`, git-lfs `.git/lfs/objects`, restic/borg repository; "
            "v1 growth = after v1 − after init; v2 growth = after v2 − after the no-op steps.",
            "artvc restore = `artvc checkout ds:v0 --to EMPTY` from the local store; DVC/git-lfs restore = "
            "git clone + pull from their local-dir remote; restic/borg restore from their repository. "
            "restic/borg no-op status = a second backup; they have no checkout, no separate commit, no push. "
            f"Local-dir remotes are {remotes}; git's auto-gc is off for DVC/git-lfs.",
            "✗ = restored/checked-out files differ from the manifest; ⚠ = unexpected commit output (see below).",
        ]
        for r in results:
            where = f"{r['tool']} / {r['dataset']} / {r['op']}"
            if r["tool"] == "artvc" and r.get("rc") and r["op"] != "remote_add":
                out.append(f"- {where}: `{md_escape(r['cmd'], 200)}` → rc {r['rc']}: {md_escape(r['error'], 300)}")
            elif r["tool"] == "artvc" and r["op"] == "remote_add" and r.get("rc"):
                out.append(f"- {where} (setup): rc {r['rc']}: {md_escape(r['error'], 300)}")
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
        return "\n".join(out[:3]) + "\n\n" + "\n".join(out[3:])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="data set scale (1 = full; 0.125 = quick)")
    ap.add_argument("--seed", type=int, default=1)
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
    try:
        for ds in args.datasets:
            data.build(ds)
        meta["raw"] = {ds: {"v1": data.raw(ds, "v1"), "v2": data.raw(ds, "v2")} for ds in args.datasets}
        results: list[dict[str, Any]] = []
        remote_root = Path(args.remote_root).resolve() / tag if args.remote_root else root / "remotes" / tag
        remote_root.mkdir(parents=True, exist_ok=True)
        if tools:
            peer_results, meta["peer_versions"], remote_root = run_peers(peers, tools, args.datasets, root, data, args)
            results += peer_results
        bench = ArtvcBench(artvc_cmd, data, peers, root / "work", remote_root, args.step_timeout, args.keep)
        for ds in args.datasets:
            log(f"== artvc / {ds}")
            try:
                bench.run(ds)
            except (OSError, RuntimeError, subprocess.CalledProcessError) as ex:
                log(f"  FAILED: {ex}")
                bench.results.append({"tool": "artvc", "dataset": ds, "op": "error", "msg": str(ex)[-2000:]})
        results = bench.results + results
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
        if not args.root and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
