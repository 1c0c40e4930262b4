"""The command line: parses arguments, calls the Python API, prints results. Nothing else lives here."""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Any, Iterator

import click

from . import __version__
from .api import Repo
from .artifact import entry_json
from .errors import ArtvcError
from .progress import Reporter, Task


class Settings:
    quiet = False
    verbose = False


SETTINGS = Settings()


class CliReporter(Reporter):
    """Warnings to stderr; progress bars on a TTY for work that runs over a second."""

    def warn(self, message: str) -> None:
        super().warn(message)
        click.echo(f"warning: {message}", err=True)

    def info(self, message: str) -> None:
        if not SETTINGS.quiet:
            click.echo(message, err=True)

    @property
    def shows_progress(self) -> bool:
        return not SETTINGS.quiet and sys.stderr.isatty()

    @contextmanager
    def task(self, label: str, total: int | None = None, unit: str = "B") -> Iterator[Task]:
        if not self.shows_progress or not total:
            yield Task()
            return
        yield _DelayedBar(label, total)


class _DelayedBar(Task):
    """A click progress bar that appears only once the work has taken a second."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.start = time.monotonic()
        self.bar = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is None and time.monotonic() - self.start > 1.0:
            self.bar = click.progressbar(length=self.total, label=self.label, file=sys.stderr)
            self.bar.__enter__()
            self.bar.update(self.done)
        elif self.bar is not None:
            self.bar.update(n)
        if self.bar is not None and self.done >= self.total:
            self.bar.__exit__(None, None, None)
            self.bar = None
            self.total = 0


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        SETTINGS.quiet = True


def _set_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        SETTINGS.verbose = True


def verbosity(f):
    """-q/-v accepted after the command name as well as before it."""
    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set_quiet, help="Only print results.")(f)
    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_set_verbose, help="Show tracebacks on errors.")(f)


def open_repo() -> Repo:
    return Repo(".", reporter=CliReporter())


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


def echo(message: str) -> None:
    if not SETTINGS.quiet:
        click.echo(message)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="artvc")
@verbosity
def cli() -> None:
    """artvc: version data sets, models and checkpoints, local-first."""


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@verbosity
def init(directory: str) -> None:
    """Create a repository in DIRECTORY (default: here)."""
    repo = Repo.init(directory, reporter=CliReporter())
    if repo.created:
        echo(f"Initialized empty artvc repository in {os.path.join(repo.root, '.artvc')}")
    else:
        echo(f"{repo.root} is already an artvc repository; nothing to do")


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("-a", "--artifact", "name", help="Artifact name (default: first PATH's basename up to its first '.').")
@click.option("-t", "--type", "type_", help="Artifact type (default: dataset).")
@click.option("--ref", "ref", metavar="URI", help="Track an external reference: URI and checksum only, never the bytes.")
@click.option("--as", "as_path", metavar="PATH", help="Entry path of the reference (default: the URI's last component).")
@click.option("--no-checksum", is_flag=True, help="Record the URI alone (a new version appears only when the URI set changes).")
@click.option("--max-objects", type=int, default=None, help="Most objects a reference prefix may name (default 10000).")
@verbosity
def add(paths: tuple[str, ...], name: str | None, type_: str | None, ref: str | None, as_path: str | None,
        no_checksum: bool, max_objects: int | None) -> None:
    """Track PATHS (or, with --ref, an external URI) in an artifact; the next commit snapshots them."""
    if ref:
        if paths:
            raise click.UsageError("give either PATHS or --ref URI, not both")
        if not name:
            raise click.UsageError("--ref needs -a NAME")
        entries = open_repo().add_reference(ref, name, as_path, checksum=not no_checksum, max_objects=max_objects, type=type_)
        kinds = sorted({k for e in entries for k, _ in e.checksums}) or ["uri only"]
        echo(f"{name}: tracking reference {ref} ({len(entries)} objects; checksum: {', '.join(kinds)})")
        return
    if not paths:
        raise click.UsageError("give one or more PATHS (or --ref URI)")
    name, rel = open_repo().add(paths, name=name, type=type_)
    echo(f"{name}: tracking {', '.join(rel)}")


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("-a", "--artifact", "name", required=True, help="Artifact to stop tracking PATHS in.")
@verbosity
def rm(paths: tuple[str, ...], name: str) -> None:
    """Stop tracking PATHS (the files stay on disk)."""
    removed = open_repo().remove(paths, name)
    echo(f"{name}: no longer tracking {', '.join(removed)}")


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@verbosity
def status(name: str | None, as_json: bool) -> None:
    """Added, modified and deleted files per artifact, against the checked-out version."""
    repo = open_repo()
    result = repo.status(name)
    heads = {n: repo.head(n) for n in result}
    lock = [d for d in repo.lock_differences() if not name or d[0] == name]
    if as_json:
        emit_json({"artifacts": {n: {"head": heads[n].spec if heads[n] else None, "added": c.added,
                                     "modified": c.modified, "deleted": c.deleted, "clean": c.clean}
                                 for n, c in result.items()},
                   "lock": [{"artifact": n, "lock": e.spec if e else None, "lock_id": e.version_id if e else None,
                             "head": h.spec if h else None} for n, e, h in lock]})
        return
    for n, entry, head in lock:
        click.echo(f"{n}: artvc.lock names {entry.spec if entry else 'nothing'}, checked out: "
                   f"{head.spec if head else 'nothing'} ('artvc checkout --lock' restores the lock's versions)")
    if not result:
        click.echo("no artifacts yet; track files with 'artvc add PATH'")
    for n, changes in result.items():
        at = f" (at {heads[n].spec})" if heads[n] else " (no version checked out)"
        if changes.clean:
            click.echo(f"{n}{at}: clean")
            continue
        click.echo(f"{n}{at}:")
        for label, paths in (("added", changes.added), ("modified", changes.modified), ("deleted", changes.deleted)):
            for p in paths:
                click.echo(f"  {label + ':':10s} {p}")


def _parse_meta(values: tuple[str, ...]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ArtvcError(f"invalid --meta {item!r}: use KEY=VALUE")
        try:
            meta[key] = json.loads(value)
        except ValueError:
            meta[key] = value
    return meta


@cli.command()
@click.argument("names", nargs=-1)
@click.option("-m", "--message", default="", help="What changed.")
@click.option("--alias", "aliases", multiple=True, help="Alias to give the new version (repeatable).")
@click.option("--meta", "meta", multiple=True, help="KEY=VALUE metadata (VALUE parsed as JSON when it can be).")
@click.option("--input", "inputs", multiple=True, help="Version spec this version was made from (repeatable).")
@verbosity
def commit(names: tuple[str, ...], message: str, aliases: tuple[str, ...], meta: tuple[str, ...], inputs: tuple[str, ...]) -> None:
    """Snapshot the tracked paths of NAMES (default: every artifact)."""
    results = open_repo().commit(names, message=message, aliases=aliases, metadata=_parse_meta(meta), inputs=inputs)
    for r in results:
        if r.created:
            click.echo(f"{r.version.spec} {r.version.short_id}")
        else:
            echo(f"{r.version.name}: nothing to commit (identical to {r.version.spec})")


@cli.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@verbosity
def log(name: str | None, as_json: bool) -> None:
    """Versions, newest first."""
    versions = open_repo().log(name)
    if as_json:
        emit_json([v.to_json() for v in versions])
        return
    for v in versions:
        info = v.to_json()
        aliases = f" ({', '.join(info['aliases'])})" if info["aliases"] else ""
        click.echo(f"{v.spec} {v.short_id}{aliases}")
        click.echo(f"  date:   {info['created']}   author: {info['author']}")
        refs = v.record.stats.get("references", 0)
        click.echo(f"  files:  {info['files']}   bytes: {info['bytes']}" + (f"   references: {refs}" if refs else ""))
        if info["message"]:
            click.echo(f"  {info['message']}")


@cli.command()
@click.argument("spec")
@click.argument("prefix", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@verbosity
def ls(spec: str, prefix: str | None, as_json: bool) -> None:
    """Entries of a version (optionally only those under PREFIX)."""
    version = open_repo().resolve(spec)
    entries = [e for e in version.entries if not prefix or e.path == prefix.strip("/") or e.path.startswith(prefix.strip("/") + "/")]
    if as_json:
        emit_json([entry_json(e) for e in entries])
        return
    for e in entries:
        extra = f" -> {e.target}" if e.kind_name == "symlink" else ""
        if e.kind_name == "reference":
            extra = f" <- {e.uri} [{', '.join(k for k, _ in e.checksums) or 'uri only'}]"
        click.echo(f"{e.size:>12d}  {e.path}{extra}")


@cli.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@verbosity
def show(spec: str, as_json: bool) -> None:
    """A version's record: metadata, inputs, git provenance, stats."""
    info = open_repo().resolve(spec).to_json()
    if as_json:
        emit_json(info)
        return
    for key in ("spec", "id", "type", "aliases", "created", "author", "message", "files", "bytes", "metadata", "inputs", "git", "job_type", "paths"):
        value = info[key]
        if isinstance(value, (dict, list)) or value is None:
            value = json.dumps(value, sort_keys=True)
        click.echo(f"{key + ':':10s} {value}")


@cli.command()
@click.argument("spec_a")
@click.argument("spec_b", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences.")
@verbosity
def diff(spec_a: str, spec_b: str | None, as_json: bool, exit_code: bool) -> None:
    """Added, removed and modified paths between two versions (one SPEC: against the workspace)."""
    result = open_repo().diff(spec_a, spec_b)
    if as_json:
        emit_json({"added": result.added, "removed": result.removed, "modified": result.modified})
    else:
        for mark, paths in (("A", result.added), ("D", result.removed), ("M", result.modified)):
            for p in paths:
                click.echo(f"{mark}  {p}")
    if exit_code and not result.empty:
        sys.exit(1)


@cli.command()
@click.argument("spec")
@click.argument("path")
@verbosity
def cat(spec: str, path: str) -> None:
    """Write one entry's bytes to stdout."""
    version = open_repo().resolve(spec)
    out = sys.stdout.buffer
    with version.open(path) as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            out.write(block)
    out.flush()


@cli.command()
@click.argument("spec", required=False)
@click.argument("paths", nargs=-1)
@click.option("--to", "to", type=click.Path(file_okay=False), help="Materialize into this folder instead of the workspace.")
@click.option("--force", is_flag=True, help="Overwrite or delete modified and untracked files in the way.")
@click.option("--lock", "use_lock", is_flag=True, help="Restore the versions artvc.lock names (fetching what is missing).")
@click.option("--strict", is_flag=True, help="Fail when an external reference cannot be read (default: skip it with a warning).")
@verbosity
def checkout(spec: str | None, paths: tuple[str, ...], to: str | None, force: bool, use_lock: bool, strict: bool) -> None:
    """Materialize a version (or some of its PATHS) in the workspace or under --to."""
    if use_lock:
        if spec or paths or to:
            raise click.UsageError("--lock takes no SPEC, PATH or --to")
        for r in open_repo().checkout_lock(force=force):
            echo(f"checked out {r.version.spec}: {r.written} written, {r.deleted} deleted, {r.unchanged} unchanged")
        return
    if spec is None:
        raise click.UsageError("give a SPEC (or --lock)")
    result = open_repo().checkout(spec, paths, to=to, force=force, strict=strict)
    where = f" into {to}" if to else ""
    echo(f"checked out {result.version.spec}{where}: {result.written} written, {result.deleted} deleted, {result.unchanged} unchanged")


@cli.command()
@click.argument("args", nargs=-1, required=True)
@click.option("--delete", is_flag=True, help="Delete alias: artvc alias --delete NAME ALIAS.")
@verbosity
def alias(args: tuple[str, ...], delete: bool) -> None:
    """Point ALIAS at a version: artvc alias SPEC ALIAS (or --delete NAME ALIAS)."""
    if len(args) != 2:
        raise click.UsageError("give SPEC ALIAS (or --delete NAME ALIAS)")
    repo = open_repo()
    if delete:
        repo.delete_alias(args[0], args[1])
        echo(f"deleted alias {args[0]}:{args[1]}")
    else:
        version = repo.set_alias(args[0], args[1])
        echo(f"{version.name}:{args[1]} -> {version.spec} {version.short_id}")


@cli.command()
@click.argument("specs", nargs=-1)
@click.option("--refs", "refs", is_flag=True, help="Check that external references still match what was recorded.")
@click.option("--remote", "remote", default=None, help="Check a remote by its indexes and metadata instead.")
@click.option("--repair", is_flag=True, help="Rebuild indexes from the packs, salvage damaged packs, re-fetch lost chunks.")
@click.option("--read-data", is_flag=True, help="With --remote: also read every chunk by byte range and re-hash it.")
@verbosity
def verify(specs: tuple[str, ...], refs: bool, remote: str | None, repair: bool, read_data: bool) -> None:
    """Re-read and re-hash stored data; exit 1 if anything is damaged."""
    if repair:
        r = open_repo().repair(remote)
        click.echo(f"repair: {r.packs_reindexed} packs indexed, {len(r.packs_salvaged)} damaged packs salvaged "
                   f"({r.blobs_dropped} bad blobs dropped), {len(r.versions_renumbered)} versions numbered again, "
                   f"{r.chunks_fetched} chunks fetched back, {r.chunks_missing} still missing")
        if r.chunks_missing:
            raise ArtvcError(f"{r.chunks_missing} chunks are lost here and on the remote; the versions that need them cannot be checked out")
        return
    if remote is not None:
        problems = open_repo().verify_remote(remote, read_data=read_data)
        for what, problem in problems:
            click.echo(f"damaged {what}: {problem}")
        if problems:
            raise ArtvcError(f"the remote has {len(problems)} problems")
        echo("the remote is complete: every version's records, manifests and chunks are there")
        return
    if refs:
        drifted = open_repo().verify_references(specs)
        for spec, path, uri, problem in drifted:
            click.echo(f"drifted {spec} {path} <- {uri}: {problem}")
        if drifted:
            raise ArtvcError(f"{len(drifted)} external references no longer match their versions")
        echo("every external reference still matches")
        return
    report = open_repo().verify(specs)
    for name, problem in report.damaged_packs:
        click.echo(f"damaged pack {name[:12]}: {problem}")
    for spec, problem in report.damaged_versions:
        click.echo(f"damaged {spec}: {problem}")
    for spec in report.not_fetched:
        echo(f"not fetched: {spec} (its data is on a remote; 'artvc fetch {spec}' gets it)")
    if report.unindexed_packs:
        echo(f"{len(report.unindexed_packs)} packs are in no index (left by an interrupted write, or an index that was lost): "
             f"'artvc gc' removes them, 'artvc verify --repair' indexes them and recovers their versions")
    if not report.ok:
        affected = sorted({s for s, _ in report.damaged_versions})
        raise ArtvcError(f"verify found damage ({len(report.damaged_packs)} packs, versions: {', '.join(affected) or 'none named'})")
    echo(f"verified {report.versions_checked} versions, {report.chunks_checked} chunks, {report.packs_checked} packs: all good")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@verbosity
def gc(dry_run: bool) -> None:
    """Remove data that no version references (waits for running commits)."""
    report = open_repo().gc(dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    click.echo(f"{verb} {report.bytes_freed / 1048576:.1f} MiB: {len(report.packs_deleted)} packs deleted, "
               f"{len(report.packs_repacked)} repacked, {len(report.orphan_packs)} orphan packs; "
               f"{report.live_blobs} blobs kept, {report.dead_blobs} unreferenced")


@cli.command()
@click.argument("spec")
@click.option("--down", is_flag=True, help="Show what was made from SPEC instead of what it came from.")
@click.option("--depth", type=int, default=None, help="Follow at most this many steps.")
@click.option("--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "json"]), default="text", show_default=True)
@verbosity
def lineage(spec: str, down: bool, depth: int | None, fmt: str) -> None:
    """The graph of inputs of SPEC (with --down, of its consumers), offline."""
    from . import lineage as lineage_mod

    graph = open_repo().lineage(spec, down=down, depth=depth)
    render = {"text": lambda g: lineage_mod.to_text(g, down), "dot": lineage_mod.to_dot,
              "mermaid": lineage_mod.to_mermaid, "json": lineage_mod.to_json}[fmt]
    click.echo(render(graph), nl=False)


def _options(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ArtvcError(f"invalid -o {item!r}: use KEY=VALUE")
        out[key] = value
    return out


@cli.group()
@verbosity
def remote() -> None:
    """Add, remove and list remotes (folders, sftp://, s3://, any fsspec URL)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("-o", "options", multiple=True, help="KEY=VALUE option (endpoint_url, timeout, accept_new_host_key, ...).")
@click.option("--default", "default", is_flag=True, help="Use this remote when a command names none.")
@verbosity
def remote_add(name: str, url: str, options: tuple[str, ...], default: bool) -> None:
    """Add a remote."""
    config = open_repo().add_remote(name, url, _options(options), default)
    echo(f"added remote {config.name}: {config.url}{' (default)' if config.default else ''}")


@remote.command("remove")
@click.argument("name")
@verbosity
def remote_remove(name: str) -> None:
    """Remove a remote (nothing on the remote is touched)."""
    open_repo().remove_remote(name)
    echo(f"removed remote {name}")


@remote.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@verbosity
def remote_list(as_json: bool) -> None:
    """List the remotes."""
    remotes = open_repo().remotes()
    if as_json:
        emit_json([{"name": r.name, "url": r.url, "options": r.options, "default": r.default} for r in remotes])
        return
    for r in remotes:
        click.echo(f"{r.name}\t{r.url}{'  (default)' if r.default else ''}")


@cli.command()
@click.argument("args", nargs=-1)
@click.option("--force", is_flag=True, help="Move aliases even when the remote's moved since this repository saw it.")
@click.option("-j", "--jobs", default=4, show_default=True, help="Parallel transfers.")
@verbosity
def push(args: tuple[str, ...], force: bool, jobs: int) -> None:
    """Upload versions and aliases: push [REMOTE] [SPEC...]."""
    repo = open_repo()
    name, specs = repo.split_remote(args)
    result = repo.push(name, specs, force=force, jobs=jobs)
    for artifact, number, vid in result.versions:
        click.echo(f"{artifact}:v{number} {vid.hex()[:12]}")
    for artifact, alias, vid in result.aliases:
        echo(f"{artifact}:{alias} -> {vid.hex()[:12] if vid else '(deleted)'}")
    if not result.versions and not result.aliases and not result.rejected_aliases:
        echo(f"everything up to date ({result.requests} requests)")
    else:
        echo(f"pushed {len(result.versions)} versions, {result.bytes_up / 1048576:.1f} MiB in {result.packs} packs ({result.requests} requests)")
    if result.rejected_aliases:
        names = ", ".join(f"{a}:{b}" for a, b in result.rejected_aliases)
        raise ArtvcError(f"the remote's aliases {names} moved since this repository last saw them; pull, or push --force to overwrite")


def _report_fetch(result) -> None:
    for artifact, old, new in result.renumbered:
        click.echo(f"{artifact}:v{old} -> {artifact}:v{new}")
    for artifact, number, vid in result.new_versions:
        echo(f"new {artifact}:v{number} {vid.hex()[:12]}")
    for artifact, alias in result.kept_local_aliases:
        echo(f"kept local alias {artifact}:{alias} (the remote's moved too; push --force to overwrite it there)")
    echo(f"fetched {result.bytes_down / 1048576:.1f} MiB ({result.requests} requests)" if result.bytes_down else f"no new data to fetch ({result.requests} requests)")


@cli.command()
@click.argument("args", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Fetch the data of every version.")
@click.option("-j", "--jobs", default=4, show_default=True, help="Parallel transfers.")
@verbosity
def fetch(args: tuple[str, ...], every: bool, jobs: int) -> None:
    """Download records and aliases, and data: fetch [REMOTE] [SPEC...]."""
    repo = open_repo()
    name, specs = repo.split_remote(args)
    _report_fetch(repo.fetch(name, specs, all=every, jobs=jobs))


@cli.command()
@click.argument("args", nargs=-1)
@click.option("--force", is_flag=True, help="Overwrite modified files in the way.")
@click.option("-j", "--jobs", default=4, show_default=True, help="Parallel transfers.")
@verbosity
def pull(args: tuple[str, ...], force: bool, jobs: int) -> None:
    """fetch, then check out: pull [REMOTE] [SPEC...]."""
    repo = open_repo()
    name, specs = repo.split_remote(args)
    result, outcomes = repo.pull(name, specs, force=force, jobs=jobs)
    _report_fetch(result)
    for o in outcomes:
        echo(f"checked out {o.version.spec}: {o.written} written, {o.deleted} deleted, {o.unchanged} unchanged")


@cli.command()
@click.argument("url")
@click.argument("directory", required=False)
@click.option("-o", "options", multiple=True, help="KEY=VALUE remote option.")
@click.option("-j", "--jobs", default=4, show_default=True, help="Parallel transfers.")
@verbosity
def clone(url: str, directory: str | None, options: tuple[str, ...], jobs: int) -> None:
    """A new repository with URL as its remote 'origin' (records and aliases; data on fetch/pull)."""
    repo = Repo.clone(url, directory, _options(options), jobs, reporter=CliReporter())
    echo(f"cloned {url} into {repo.root}: {len(repo.artifacts())} artifacts; 'artvc pull' checks them out")


@cli.command()
@click.argument("url")
@click.argument("spec")
@click.argument("path", required=False)
@click.option("--to", "dest", help="Destination (default ./NAME, or ./basename of PATH).")
@click.option("-o", "options", multiple=True, help="KEY=VALUE remote option.")
@click.option("-j", "--jobs", default=4, show_default=True, help="Parallel transfers.")
@verbosity
def get(url: str, spec: str, path: str | None, dest: str | None, options: tuple[str, ...], jobs: int) -> None:
    """Download a version, or one entry PATH of it, with no repository (like 'dvc get')."""
    from .api import get as get_version

    where = get_version(url, spec, path, dest, _options(options), jobs, reporter=CliReporter())
    echo(f"got {spec}{' ' + path if path else ''} into {where}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: `error: ...` and exit 1 for artvc errors; tracebacks only with -v."""
    args = list(sys.argv[1:] if argv is None else argv)
    SETTINGS.quiet = SETTINGS.verbose = False
    try:
        code = cli.main(args=args, prog_name="artvc", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ArtvcError as exc:
        if SETTINGS.verbose or "-v" in args or "--verbose" in args:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        if SETTINGS.verbose or "-v" in args:
            traceback.print_exc()
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback only with -v
        if SETTINGS.verbose or "-v" in args:
            traceback.print_exc()
        click.echo(f"error: unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)", err=True)
        sys.exit(1)
