"""``mafhir sync``, ``mafhir worker`` and ``mafhir outbox …``: the outbox on the command line.

Nothing here decides delivery semantics; it reads options, installs the SIGINT/SIGTERM
handlers that stop workers gracefully, shows progress (rich) and prints the summary.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..cli.options import clinic_option, load_clinic
from ..context import MapContext
from ..errors import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    InputError,
    MafhirError,
    Problem,
    exit_code,
)
from ..io import dumps, loads
from ..plugins import get_registry
from ..redact import redact_text, without_password
from .audit import phi_view_event
from .delivery import connect, resolve_destination
from .engine import Engine
from .enqueue import Enqueuer
from .model import Item, Tally
from .outcome import error_code, issues_only
from .retry import RetryPolicy
from .store import OutboxStore, open_store

__all__ = ["os_viewer", "outbox_group", "print_summary", "run_sync", "showing_progress",
           "sync_command", "worker_command"]

#: The largest id an outbox row can have (BIGINT on PostgreSQL, INTEGER on SQLite).
MAX_ID = 2**63 - 1
#: Bytes read to tell a blank input file (whitespace only) from one holding work.
BLANK_PROBE = 4096


def _usage_error(message: str) -> NoReturn:
    """One line on stderr and exit 2: the command line is wrong, nothing was done."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_INPUT)


def _fail(exc: MafhirError) -> NoReturn:
    """One line per problem (or the error's message); the exit code from the one table
    (:func:`mafhir.errors.exit_code`: bad input 2, may work later 75, else 1)."""
    if isinstance(exc, InputError):
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exit_code(exc))


def _db_without_password(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A password in ``--db`` on the command line is refused (shell history, ``ps``)."""
    source = ctx.get_parameter_source(param.name or "db")
    if source == ParameterSource.COMMANDLINE and "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password is not None:
            _usage_error("--db: a password in the URL is refused on the command line; use "
                         "PGPASSWORD or ~/.pgpass (or MAFHIR_OUTBOX in the environment)")
    return value


def _item_id(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """An outbox id must fit the id column; a bigger number is a clear error, not SQL's."""
    if value is not None and not 1 <= value <= MAX_ID:
        _usage_error(f"{param.human_readable_name}: outbox ids run from 1 to {MAX_ID}")
    return value


db_option = click.option(
    "--db", "db", envvar="MAFHIR_OUTBOX", default="mafhir.db", show_default=True,
    callback=_db_without_password,
    help="The outbox: a SQLite file, or postgresql://user@host:port/db for several workers "
         "(env MAFHIR_OUTBOX; a password only from PGPASSWORD, ~/.pgpass or the env).")


def _engine_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
                     help="Worker threads (parallel across patients)."),
        click.option("--max-attempts", default=8, show_default=True, type=click.IntRange(1),
                     help="Failures before an item is dead-lettered."),
        click.option("--max-age", default=24 * 3600.0, show_default=True, type=float,
                     help="Seconds after which a failing item is dead-lettered."),
        click.option("--retry-base", default=1.0, show_default=True, type=float,
                     help="First backoff in seconds (doubles per attempt, with jitter)."),
        click.option("--timeout", default=60.0, show_default=True, type=float,
                     help="Seconds to wait for a server's answer."),
        click.option("--lease", default=300.0, show_default=True, type=float,
                     help="Seconds an item stays claimed by a worker that went silent."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar (default: when stderr is a terminal)."),
    ]):
        fn = opt(fn)
    return fn


def _open(db: str) -> OutboxStore:
    try:
        return open_store(db)
    except MafhirError:
        raise
    except Exception as exc:
        first = redact_text(str(exc).splitlines()[0]) if str(exc) else ""
        raise click.ClickException(f"cannot open the outbox {without_password(db)!r}: "
                                   f"{type(exc).__name__}: {first}") from None


@contextmanager
def _graceful(engine: Engine, console: Console) -> Iterator[None]:
    """SIGINT/SIGTERM: finish in-flight items, claim nothing more; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hits = {"n": 0}

    def handler(signum: int, _frame: Any) -> None:
        hits["n"] += 1
        if hits["n"] > 1:
            raise KeyboardInterrupt
        console.print(f"[yellow]{signal.Signals(signum).name}: finishing what is in flight "
                      "(again to abort)…[/yellow]")
        engine.stop()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _progress_for(store: OutboxStore, show: bool, console: Console
                  ) -> tuple[Progress | None, Callable[[str, Item], None] | None]:
    if not show:
        return None, None
    progress = Progress(TextColumn("[bold]sync[/bold]"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                        console=console, transient=False)
    total = sum(n for by_state in store.counts().values()
                for s, n in by_state.items() if s in ("pending", "inflight", "retry"))
    task = progress.add_task("sync", total=total, detail="")
    lock = threading.Lock()
    seen = {"sent": 0, "unchanged": 0, "retried": 0, "dead": 0}

    def on_result(what: str, _item: Item) -> None:
        with lock:
            seen[what] += 1
            done = what != "retried"
            progress.update(task, advance=1 if done else 0,
                            detail=" ".join(f"{k} {v}" for k, v in seen.items()))

    return progress, on_result


#: Seconds between the one-line status a run without a progress bar prints (0: none).
STATUS_EVERY_ENV = "MAFHIR_STATUS_EVERY"
STATUS_EVERY = 60.0


@contextmanager
def showing_progress(store: OutboxStore, engine: Engine, show: bool,
                     console: Console) -> Iterator[None]:
    """While the block runs, a progress bar follows the engine's results (when ``show``);
    without one (a log file, a pipe, cron), a one-line status every ``MAFHIR_STATUS_EVERY``
    seconds (60 by default) says the run is alive and how far it got."""
    bar, engine.on_result = _progress_for(store, show, console)
    if bar is not None:
        with bar:
            yield
        return
    every = _status_every()
    if every <= 0:
        yield
        return
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(every):
            t = engine.tally
            console.print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} status: {t.sent} sent, "
                          f"{t.unchanged} unchanged, {t.retried} retried, {t.dead} dead, "
                          f"{store.active()} waiting", highlight=False, soft_wrap=True)

    reporter = threading.Thread(target=report, name="mafhir-status", daemon=True)
    reporter.start()
    try:
        yield
    finally:
        stop.set()
        reporter.join(5)


def _status_every() -> float:
    raw = os.environ.get(STATUS_EVERY_ENV, "")
    try:
        return float(raw) if raw.strip() else STATUS_EVERY
    except ValueError:
        raise InputError([Problem(STATUS_EVERY_ENV, "must be a number of seconds",
                                  "value")]) from None


def print_summary(tally: Tally, console: Console, store: OutboxStore) -> None:
    table = Table(title="mafhir sync")
    cols = ("sent", "unchanged", "retried", "dead", "quarantined", "writes", "skipped")
    for col in cols:
        table.add_column("already queued" if col == "skipped" else col, justify="right")
    table.add_row(*(str(getattr(tally, c)) for c in cols))
    console.print(table)
    if tally.dead:
        console.print(f"[red]{tally.dead} dead letter(s)[/red]: see `mafhir outbox dead "
                      f"--db {escape(store.url)}`")


def run_sync(store: OutboxStore, destination: str, inputs: list[str], *, ctx: MapContext,
             engine: Engine, console: Console, watch: bool = False,
             progress: bool = False, poll: float = 1.0, resend: bool = False) -> Tally:
    """Enqueue ``inputs`` (files or ``-``), then drain (or keep working with ``watch``)."""
    enq = Enqueuer(store, destination, get_registry(), ctx, resend=resend)
    tally = engine.tally
    engine.clinic = ctx.clinic

    def read_inputs() -> None:
        for name in inputs:
            got = enq.add_stream(sys.stdin.buffer, "stdin") if name == "-" \
                else enq.add_file(name)
            tally.enqueued += got.added
            tally.skipped += got.skipped
            tally.quarantined += got.quarantined
            for p in got.problems or []:
                console.print(f"[red]quarantined[/red] {escape(p)}")

    read_inputs()
    with _graceful(engine, console), showing_progress(store, engine, progress, console):
        if not watch:
            engine.run(once=True)
        else:
            runner = threading.Thread(target=engine.run, kwargs={"once": False},
                                      daemon=True)
            runner.start()
            stamps = {n: _stamp(n) for n in inputs if n != "-"}
            while runner.is_alive():
                runner.join(poll)
                for name in stamps:
                    now = _stamp(name)
                    if now != stamps[name] and not engine.stopping:
                        stamps[name] = now
                        got = enq.add_file(name)
                        tally.enqueued += got.added
                        tally.quarantined += got.quarantined
    return tally


def _stamp(name: str) -> tuple[float, int]:
    try:
        st = Path(name).stat()
    except OSError:
        return (0.0, 0)
    return (st.st_mtime, st.st_size)


def _refuse_blank(inputs: tuple[str, ...]) -> None:
    """An input file holding nothing is refused before the outbox is made (exit 2, as
    ``map`` and ``send`` do): an empty success would hide a wrong path or a failed export."""
    for name in inputs:
        if name == "-":
            continue
        with open(name, "rb") as stream:
            head = stream.read(BLANK_PROBE + 1)
        if len(head) <= BLANK_PROBE and not head.strip():
            raise InputError([Problem(name, "holds no task", "required")])


def _engine(store: OutboxStore, threads: int, max_attempts: int, max_age: float,
            retry_base: float, timeout: float, lease: float, send_provenance: bool = False
            ) -> Engine:
    return Engine(store, threads=threads,
                  retry=RetryPolicy(max_attempts=max_attempts, base=retry_base,
                                    max_age=max_age),
                  lease=lease, timeout=timeout, send_provenance=send_provenance)


@click.command("sync")
@click.argument("inputs", nargs=-1, metavar="[INPUT...]",  # checked before the outbox is made
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--to", "to", default=None, envvar="MAFHIR_TO",
              help="Destination: 'local' (default, ./mafhir-store.db), local:PATH, a FHIR "
                   "server URL, a [destinations.NAME] of mafhir.toml, or CONNECTOR:TARGET.")
@db_option
@clinic_option
@click.option("--once/--watch", default=True,
              help="Drain and exit (default), or keep running: deliver new work and "
                   "re-read INPUT files when they change, until SIGINT/SIGTERM.")
@click.option("--send-provenance", is_flag=True,
              help="Also send a Provenance for every Bundle delivered.")
@click.option("--resend", is_flag=True,
              help="Send INPUT again whatever the outbox remembers (the destination lost "
                   "its data); conditional writes still prevent duplicates.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_engine_options
def sync_command(inputs: tuple[str, ...], to: str | None, db: str, clinic_path: str | None,
                 once: bool, send_provenance: bool, resend: bool, as_json: bool, threads: int,
                 max_attempts: int, max_age: float, retry_base: float, timeout: float,
                 lease: float, progress: bool | None) -> None:
    """Enqueue tasks or transaction Bundles (JSON, NDJSON; '-' for stdin) and deliver them.

    Everything is written to the outbox before anything is sent; delivery is ordered per
    patient and parallel across patients; what was delivered before is not sent again.
    Exit status 1 when something was dead-lettered or quarantined.
    """
    console = Console(stderr=True)
    try:
        if once:  # a watched file may start empty; a one-off run of nothing is a mistake
            _refuse_blank(inputs)
        store = _open(db)
        destination = resolve_destination(to)
        connect(destination).close()  # a wrong name or URL fails now, not item by item
        engine = _engine(store, threads, max_attempts, max_age, retry_base, timeout, lease,
                         send_provenance)
        show = progress if progress is not None else console.is_terminal
        tally = run_sync(store, destination, list(inputs), ctx=MapContext(
            clinic=load_clinic(clinic_path)), engine=engine, console=console,
            watch=not once, progress=show, resend=resend)
    except MafhirError as exc:
        _fail(exc)
    _report(tally, as_json, console, store)
    sys.exit(EXIT_FAILED if tally.dead or tally.quarantined else EXIT_OK)


def _report(tally: Tally, as_json: bool, console: Console, store: OutboxStore) -> None:
    """The run's summary (JSON or a table), then let go of the outbox."""
    if as_json:
        click.echo(json.dumps(tally.as_dict()))
    else:
        print_summary(tally, console, store)
    store.close()


@click.command("worker")
@db_option
@click.option("--once", is_flag=True, help="Exit when the outbox is drained.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_engine_options
def worker_command(db: str, once: bool, as_json: bool, threads: int, max_attempts: int,
                   max_age: float, retry_base: float, timeout: float, lease: float,
                   progress: bool | None) -> None:
    """Run one worker process on the outbox (start several on PostgreSQL).

    Delivers to every destination its items name, until SIGINT/SIGTERM (or, with
    --once, until nothing is left to do).
    """
    console = Console(stderr=True)
    try:
        store = _open(db)
        engine = _engine(store, threads, max_attempts, max_age, retry_base, timeout, lease)
        with _graceful(engine, console), \
                showing_progress(store, engine, bool(progress), console):
            tally = engine.run(once=once)
    except MafhirError as exc:
        _fail(exc)
    _report(tally, as_json, console, store)
    # as sync does: something dead-lettered in this run is exit 1, even with --once
    sys.exit(EXIT_FAILED if tally.dead else EXIT_OK)


@click.group("outbox")
def outbox_group() -> None:
    """Inspect the outbox: counts, dead letters, replay and discard."""


@outbox_group.command("status")
@db_option
@click.option("--json", "as_json", is_flag=True)
def status_command(db: str, as_json: bool) -> None:
    """Items by destination and state, and the quarantine."""
    store = _open(db)
    # rows written before credentials were refused may still carry them: never shown
    counts = {redact_text(dest): by_state for dest, by_state in store.counts().items()}
    quarantined = store.quarantined_count()
    if as_json:
        click.echo(json.dumps({"destinations": counts, "quarantined": quarantined,
                               "attempts": store.attempt_totals()}))
        return
    table = Table(title=f"outbox {store.url}")
    states = ("pending", "inflight", "retry", "delivered", "dead", "discarded")
    table.add_column("destination", overflow="fold")
    for s in states:
        table.add_column(s, justify="right")
    for dest, by_state in sorted(counts.items()):
        table.add_row(escape(dest), *(str(by_state.get(s, 0)) for s in states))
    console = Console()
    console.print(table)
    console.print(f"quarantined inputs: {quarantined}")


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def os_viewer() -> str:
    """Who is looking (the OS account, the machine), for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _item_doc(store: OutboxStore, item_id: int, show_phi: bool) -> dict[str, Any]:
    """One item in full, whatever its state: where it goes, its state, attempts, last
    error, next try, the server's outcome (its free text only with ``show_phi``, audited
    first) and every attempt."""
    item = store.get(item_id)
    if item is None:
        _usage_error(f"no outbox item {item_id}")
    outcome = json.loads(item.outcome) if item.outcome else None
    if show_phi:  # audited before anything is shown: no trail, no PHI
        store.add_audit(item.id, "AuditEvent", json.dumps(
            phi_view_event(item.id, os_viewer(), time.time())))
    else:
        outcome = issues_only(outcome)
    waiting = item.state in ("pending", "retry")
    return {"id": item.id, "state": item.state, "kind": item.kind,
            "destination": redact_text(item.destination),
            "source": item.source, "attempts": item.attempts, "reason": item.reason,
            "last_error": item.last_error,
            "next_try": _when(item.next_at) if waiting else None,
            "outcome": outcome,
            "history": [{k: a[k] for k in ("attempt", "result", "status", "error")}
                        | {"at": _when(a["finished_at"])} for a in store.attempts_of(item_id)]}


@outbox_group.command("show")
@click.argument("item_id", type=int, callback=_item_id)
@db_option
@click.option("--show-phi", "show_phi", is_flag=True,
              help="Also the server's OperationOutcome text, which may name the patient; "
                   "who viewed which item, and when, is audited first.")
def show_command(item_id: int, db: str, show_phi: bool) -> None:
    """One outbox item in any state: its attempts, last error and next try (JSON)."""
    click.echo(json.dumps(_item_doc(_open(db), item_id, show_phi), indent=2))


@outbox_group.command("dead")
@db_option
@click.option("--show", "show", type=int, default=None, callback=_item_id,
              help="One dead letter in full (the server's free text hidden).")
@click.option("--show-phi", "show_phi", is_flag=True,
              help="With --show: also the server's OperationOutcome text, which may name "
                   "the patient; who viewed which item, and when, is audited first.")
@click.option("--json", "as_json", is_flag=True)
def dead_command(db: str, show: int | None, show_phi: bool, as_json: bool) -> None:
    """List dead letters (or --show ID: its reason, the server's outcome, every attempt)."""
    if show_phi and show is None:
        _usage_error("--show-phi: needs --show ID")
    store = _open(db)
    if show is not None:
        click.echo(json.dumps(_item_doc(store, show, show_phi), indent=2))
        return
    dead = store.items_in("dead")
    if as_json:
        click.echo(json.dumps([{"id": i.id, "destination": redact_text(i.destination),
                                "source": i.source, "code": error_code(i),
                                "attempts": i.attempts, "reason": i.reason} for i in dead]))
        return
    table = Table(title=f"dead letters ({len(dead)})")
    for col in ("id", "source", "destination", "code", "attempts", "reason"):
        table.add_column(col, overflow="fold")
    for i in dead:
        table.add_row(str(i.id), escape(i.source), escape(redact_text(i.destination)),
                      error_code(i), str(i.attempts),
                      escape((i.reason or "")[:300]))
    Console().print(table)


@outbox_group.command("replay")
@click.argument("item_id", required=False, type=int, callback=_item_id)
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter.")
@click.option("--with", "fixed", type=click.Path(exists=True, dir_okay=False),
              help="A fixed transaction Bundle to send instead (one ID only).")
@db_option
def replay_command(item_id: int | None, replay_all: bool, fixed: str | None, db: str) -> None:
    """Put dead letters back in line (ID, or --all); `mafhir worker` or `sync` sends them."""
    if (item_id is None) == (not replay_all):
        raise click.UsageError("give one ID or --all")
    payload = None
    if fixed is not None:
        if item_id is None:
            raise click.UsageError("--with needs one ID")
        doc = loads(Path(fixed).read_bytes())
        if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
            raise click.ClickException(f"{fixed}: not a Bundle")
        payload = dumps(doc)
    store = _open(db)
    n = store.replay(item_id, payload)
    if n == 0 and item_id is not None:
        _usage_error(f"item {item_id} is not a dead letter: nothing replayed")
    click.echo(f"{n} item(s) back to pending" if n else "no dead letters: nothing to replay")


@outbox_group.command("discard")
@click.argument("item_id", type=int, callback=_item_id)
@click.option("--reason", required=True, help="Why it is set aside (kept with the item).")
@db_option
def discard_command(item_id: int, reason: str, db: str) -> None:
    """Set a dead letter aside for good, with the reason (the item is kept, not deleted)."""
    store = _open(db)
    if store.discard(item_id, reason) == 0:
        _usage_error(f"item {item_id} is not a dead letter")
    click.echo(f"item {item_id} discarded")
