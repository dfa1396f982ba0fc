"""The built-in commands: map, validate, schema, plugins, demo (a plugin like any other)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from ..errors import InputError, MafhirError, Problem
from ..io import dumps, iter_documents, iter_paths
from ..plugins import get_profiles, get_registry, plugin_infos
from .options import clinic_option

if TYPE_CHECKING:  # each command imports what it works with: `validate` needs no pipeline
    from ..pipeline import Failed

__all__ = ["register_commands"]


@contextmanager
def _atomic_output(path: str | None):
    """A binary file that appears at ``path`` (or on stdout) only if the block succeeds."""
    if path and path != "-":
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    else:
        with tempfile.TemporaryFile() as spool:
            yield spool
            spool.seek(0)
            shutil.copyfileobj(spool, sys.stdout.buffer)
            sys.stdout.buffer.flush()


def _open_input(name: str) -> IO[bytes]:
    return sys.stdin.buffer if name == "-" else open(name, "rb")


class _Abort(Exception):
    pass


def _refuse(problems: Iterable[object]) -> NoReturn:
    """Bad input or a path that cannot be used: one line per problem, exit 2."""
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(2)


def _unusable(what: str, exc: OSError) -> Problem:
    """A path that cannot be read or written, named as the user gave it (no traceback)."""
    return Problem(what, f"cannot be used ({exc.strerror or type(exc).__name__})",
                   "not-found" if isinstance(exc, FileNotFoundError) else "invalid")


#: How many failed tasks ``map`` prints in full before it only counts them.
SHOWN_FAILURES = 20


@click.command("map")
@click.argument("source", default="-", metavar="FILE|-")
@click.option("--ndjson", is_flag=True, help="One transaction Bundle per task, one per line.")
@click.option("-o", "--out", default=None, help="Write here instead of stdout (atomically).")
@click.option("--no-validate", is_flag=True, help="Skip validating the FHIR made (faster).")
@click.option("--skip-invalid", is_flag=True,
              help="Write what maps and set bad tasks aside (exit 1) instead of writing "
                   "nothing (exit 2).")
@click.option("--quarantine", "quarantine_path", default=None, metavar="FILE",
              help="With --skip-invalid: write each bad task and its reasons here as NDJSON "
                   "(default: OUT.quarantine.ndjson, or mafhir-quarantine.ndjson).")
@clinic_option
def map_command(source: str, ndjson: bool, out: str | None, no_validate: bool,
                skip_invalid: bool, quarantine_path: str | None,
                clinic_path: str | None) -> None:
    """Map tasks (JSON object, JSON list or NDJSON) to a FHIR transaction Bundle.

    Bad input exits 2 with the problems naming the task and field, and nothing is written.
    With --skip-invalid the good tasks are written, the bad ones are kept in a quarantine
    file with their reasons, and the exit status is 1. An input with no task exits 2.
    """
    from ..bundle import transaction
    from ..clinic import load_clinic
    from ..context import MapContext
    from ..pipeline import Failed, Pipeline

    if quarantine_path and not skip_invalid:
        raise click.UsageError("--quarantine goes with --skip-invalid")
    try:
        ctx = MapContext(clinic=load_clinic(clinic_path))
        pipeline = Pipeline(get_registry(), ctx, validate=not no_validate)
    except InputError as exc:
        _refuse(exc.problems)
    failures: list[Failed] = []
    tasks = 0
    try:
        stream = _open_input(source)
    except OSError as exc:
        _refuse([_unusable(source, exc)])
    if skip_invalid:
        quarantine_path = quarantine_path or (f"{out}.quarantine.ndjson" if out and out != "-"
                                              else "mafhir-quarantine.ndjson")
    try:
        with stream, _atomic_output(out) as sink, _counting(sys.stderr.isatty()) as counted:
            entries: list[Any] = []
            for result in pipeline.run(iter_documents(stream, label=source)):
                counted()
                if isinstance(result, Failed):
                    failures.append(result)
                    _show_failure(result, len(failures))
                    continue
                tasks += 1
                for w in result.warnings:
                    click.echo(f"warning: {w}", err=True)
                if failures and not skip_invalid:
                    continue  # keep checking, stop building
                if ndjson:
                    sink.write(dumps(transaction(result.entries)) + b"\n")
                else:
                    entries.extend(result.entries)
            if not tasks and not failures:
                raise InputError([Problem(source, "holds no task", "required")])
            if failures and not skip_invalid:
                raise _Abort
            if not ndjson:
                sink.write(dumps(transaction(entries), pretty=True) + b"\n")
            if failures and quarantine_path:
                _write_quarantine(quarantine_path, source, failures)
    except _Abort:
        click.echo(f"{len(failures)} of {len(failures) + tasks} task(s) failed; nothing "
                   f"written (--skip-invalid writes the others).", err=True)
        sys.exit(2)
    except InputError as exc:
        _refuse(exc.problems)
    except OSError as exc:  # the output (-o) or the quarantine cannot be written
        _refuse([_unusable(f"-o {out}" if out else "stdout", exc)])
    if failures:
        click.echo(f"mapped {tasks} task(s); {len(failures)} set aside in {quarantine_path} "
                   f"with their reasons", err=True)
        sys.exit(1)
    click.echo(f"mapped {tasks} task(s)", err=True)


@contextmanager
def _counting(show: bool) -> Any:
    """On a terminal, a live count of the tasks read (a long file is not a hung command);
    elsewhere nothing. Yields the function to call once per task."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(SpinnerColumn(), TextColumn("map: {task.completed} task(s) read"),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = progress.add_task("map", total=None)
    with progress:
        yield lambda: progress.advance(task)


def _show_failure(failure: Failed, n: int) -> None:
    """Each failed task's problems once, for the first few; after that only the count."""
    if n <= SHOWN_FAILURES:
        for problem in failure.problems:
            click.echo(f"error: {problem}", err=True)
    elif n == SHOWN_FAILURES + 1:
        click.echo(f"… more tasks failed; only the first {SHOWN_FAILURES} are shown "
                   f"(--skip-invalid keeps every reason in a quarantine file)", err=True)


def _write_quarantine(path: str, source: str, failures: list[Failed]) -> None:
    """One NDJSON line per bad task: where it was, why, and the task as it was given."""
    with open(path, "wb") as out:
        for f in failures:
            out.write(dumps({"source": source, "index": f.index,
                             "problems": [str(p) for p in f.problems],
                             "task": f.raw}) + b"\n")


@click.command("validate")
@click.argument("files", nargs=-1, required=True, metavar="FILE|DIR|-...",
                type=click.Path(exists=True, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print an OperationOutcome per document.")
@click.option("--profile", "explicit", multiple=True, metavar="URL",
              help="Also check against this profile (repeatable).")
@click.option("--ig", default=None, metavar="NAME@VER",
              help="Prefer this package's definitions (e.g. us-core@6.1.0); its profile "
                   "for a type applies when it has exactly one.")
@click.option("--must-support", is_flag=True, help="Report absent must-support elements.")
def validate_command(files: tuple[str, ...], as_json: bool, explicit: tuple[str, ...],
                     ig: str | None, must_support: bool) -> None:
    """Validate FHIR JSON (a resource, a Bundle, or NDJSON) against R4, the profiles it
    claims (US Core 6.1.0/7.0.0 ship with mafhir; `mafhir ig add` adds others) and
    mafhir's own rules.

    Takes files, folders (their files in name order) and '-' for stdin; NDJSON is read a
    line at a time (memory stays flat however long the stream). One result per document
    (FILE, or FILE[N] in a file of many); with more than one document, a count of each
    outcome on stderr. Exit status 1 when any error is found (warnings do not fail), 2
    when the inputs hold no document at all.
    """
    from ..profiles import Validator
    from ..validation import check_document, has_errors, operation_outcome

    profiles = get_profiles().profiles  # the rules only: no mapper or connector loaded
    try:
        engine = Validator.default(prefer=ig, must_support=must_support) \
            if ig or must_support else None
    except InputError as exc:
        _refuse(exc.problems)
    counts: Counter[str] = Counter()
    try:
        for name in iter_paths(files):
            with _open_input(name) as stream:
                for label, doc in _labelled_documents(stream, "stdin" if name == "-"
                                                      else name):
                    if isinstance(doc, _NoDocument):  # a mistake to name, as every command does
                        counts["error"] += 1
                        counts["empty"] += 1
                        click.echo(f"{label}: error: holds no FHIR document")
                        click.echo(f"error: {label}: holds no FHIR document", err=True)
                        continue
                    if isinstance(doc, InputError):
                        counts["error"] += 1
                        click.echo(f"{label}: error: {doc}")
                        continue
                    issues = check_document(doc, profiles, engine=engine, explicit=explicit,
                                            notes=must_support)
                    counts["error" if has_errors(issues) else "ok"] += 1
                    counts["warned"] += any(i.severity == "warning" for i in issues)
                    if as_json:
                        click.echo(json.dumps({"document": label,
                                               **operation_outcome(issues)}))
                        continue
                    errors = [i for i in issues if i.severity in ("error", "fatal")]
                    for issue in issues:
                        if issue.severity != "information" or (
                                must_support and "must-support" in issue.diagnostics):
                            click.echo(f"{label}: {issue}")
                    if not errors:
                        click.echo(f"{label}: ok")
    except InputError as exc:
        _refuse(exc.problems)
    total = counts["ok"] + counts["error"]
    if total > 1:
        click.echo(f"validated {total} document(s): {counts['ok']} ok, {counts['error']} "
                   f"with errors, {counts['warned']} with warnings", err=True)
    if total == counts["empty"]:  # not one document in all: nothing was validated
        sys.exit(2)
    sys.exit(1 if counts["error"] else 0)


class _NoDocument(InputError):
    """An input that holds no document at all (an empty file)."""


def _labelled_documents(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any]]:
    """``(label, document)`` of a file, as it is read: the file's name when it holds one
    document, ``NAME[N]`` when it holds several (one document is read ahead to know); a
    file that is not JSON, or holds none, is one InputError in its place."""
    try:
        docs = iter_documents(stream, label=name)
        first = next(docs, None)
        if first is None:
            yield name, _NoDocument([Problem("", "holds no FHIR document", "required")])
            return
        second = next(docs, None)
    except InputError as exc:
        yield name, exc
        return
    if second is None:
        yield name, first[1]
        return
    for index, doc in itertools.chain((first, second), docs):
        yield f"{name}[{index}]", doc


@click.command("schema")
@click.argument("task", required=False)
def schema_command(task: str | None) -> None:
    """Print the JSON Schema of task inputs (all kinds, or one TASK)."""
    registry = get_registry()
    if task:
        try:
            model = registry.mapper(task).model
        except MafhirError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(json.dumps(model.model_json_schema(), indent=2))
        return
    schemas = {k: m.model.model_json_schema() for k, m in sorted(registry.mappers.items())}
    defs: dict[str, Any] = {}
    one_of = []
    for kind, schema in schemas.items():
        defs.update(schema.pop("$defs", {}))
        defs[schema.get("title", kind)] = schema
        one_of.append({"$ref": f"#/$defs/{schema.get('title', kind)}"})
    click.echo(json.dumps({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mafhir task",
        "description": "One MA task; the 'task' field selects the kind.",
        "oneOf": one_of,
        "$defs": defs,
    }, indent=2))


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins_command(as_json: bool) -> None:
    """List loaded plugins, their versions, what each adds (task kinds, profiles,
    connectors, converters, handlers, commands) and the ones that failed, with why."""
    from ..plugins import plugin_contents, unknown_plugin_names
    from .doctor import adds_summary

    infos = plugin_infos()
    adds = plugin_contents()
    if as_json:
        click.echo(json.dumps([{**info.__dict__, "adds": adds.get(info.name, {})}
                               for info in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="mafhir plugins")
    table.add_column("name", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("adds", overflow="fold")
    for info in infos:
        what = f"[red]failed to load: {info.error}[/red]" if info.error else \
            adds_summary(adds.get(info.name, {})) or ", ".join(info.hooks)
        table.add_row(info.name, info.version or "?", "built-in" if info.builtin else "installed",
                      what)
    Console().print(table)
    for line in unknown_plugin_names():
        click.echo(f"warning: {line}", err=True)


@click.command("demo")
@click.option("--out", "out_dir", default="mafhir-demo", show_default=True,
              type=click.Path(file_okay=False), help="Output folder.")
@click.option("--to", "to", default=None,
              help="Also deliver through the outbox to this FHIR server URL (or destination "
                   "name); default: the local store OUT/store.db.")
@click.option("--db", "db", default=None,
              help="The outbox (SQLite file or postgresql:// URL); default OUT/mafhir.db.")
@click.option("--force", is_flag=True,
              help="Use OUT even when it holds files the demo did not write (the demo's "
                   "Bundles and NDJSON there are replaced).")
def demo_command(out_dir: str, to: str | None, db: str | None, force: bool) -> None:
    """Run a realistic MA day from the built-in synthetic clinic; no server needed.

    OUT must be new, empty, or a folder only the demo wrote to (unless --force).
    """
    from ..demo import run_demo

    try:
        code = run_demo(Path(out_dir), to=to, db=db, force=force)
    except InputError as exc:
        _refuse(exc.problems)
    except MafhirError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        _refuse([_unusable(f"--out {out_dir}", exc)])
    sys.exit(code)


def register_commands(cli: click.Group) -> None:
    """The built-in commands, loaded now (``mafhir.cli.builtin`` registers them lazily)."""
    from .doctor import doctor_command

    for command in (map_command, validate_command, schema_command, plugins_command,
                    demo_command, doctor_command):
        cli.add_command(command)


