"""``mafhir worklist``: the MA's open items in one list, most urgent first; ``mafhir
worklist done ID --outcome …`` closes one.

Items come from the local store (``--store``), the clinic's EHR (``--from URL``: a FHIR
search for ``Task?status=requested,in-progress`` and ``CommunicationRequest?status=active``
through the connector that claims the URL's scheme and declares ``search``, i.e. the
fhir-rest plugin) and plugins (the ``worklist_items`` hook: the pharmacy plugin's refill
requests). Closing writes a follow_up task — completing the item's own follow-up Task, or
a new completed one whose ``focus`` is the no-show, the cancelled slot or the recall —
through the outbox to ``--to`` (the local store by default), like any ``mafhir sync``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..cli.options import clinic_option, load_clinic
from ..connectors.local import DEFAULT_STORE, LocalStore
from ..errors import EXIT_FAILED, InputError, PermanentError, Problem
from ..fhirtypes import local_references
from ..identity import identifier_from_reference
from ..plugins import get_manager, get_registry
from ..registry import capabilities_of
from ..resourceset import ResourceSet
from ..storage import is_postgres
from .collect import done_task_id, open_items
from .item import KINDS, WorklistItem, due_filter, most_urgent_first

__all__ = ["gather", "worklist_group"]

JSON = dict[str, Any]
TYPES = ("Task", "Appointment", "CommunicationRequest")
ITEM_KIND = {"Appointment": "appointment", "CommunicationRequest": "reminder"}


def _referenced(resources: list[JSON], store: LocalStore) -> dict[str, JSON]:
    """The resources (``Type/id``) that ``resources`` refer to, read from the store."""
    out = {}
    for ref in sorted(local_references(resources)):
        rtype, rid = ref.split("/")
        found = store.read(rtype, rid)
        if found is not None:
            out[ref] = found
    return out


def _local(store_path: str) -> tuple[list[JSON], dict[str, JSON]]:
    """The store's Tasks, Appointments and CommunicationRequests, and what they name."""
    if not is_postgres(store_path) and not Path(store_path).exists():
        return [], {}
    store = LocalStore(store_path)
    try:
        resources = [r for t in TYPES for r in store.search(t)]
        return resources, _referenced(resources, store)
    finally:
        store.close()


def _ehr(url: str) -> list[JSON]:
    """The EHR's open Tasks and active CommunicationRequests (FHIR search), with the
    Patients they name (read by id: the MRN is what the MA looks for)."""
    scheme = url.split("://", 1)[0].lower()
    spec = get_registry().connector_for_scheme(scheme)
    if spec is None:
        raise PermanentError(f"no connector can search '{scheme}://' servers: install "
                             "mafhir-fhir-rest", code="not-supported")
    connector = spec.factory(url)
    try:
        if "search" not in capabilities_of(connector):
            raise PermanentError(f"the '{spec.name}' connector cannot search",
                                 code="not-supported")
        search = connector.search  # type: ignore[attr-defined]
        found = [*search("Task", {"status": "requested,in-progress"}),
                 *search("CommunicationRequest", {"status": "active"})]
        ids = sorted({str(ref).split("/", 1)[1] for r in found
                      for ref in [(r.get("for") or r.get("subject") or {}).get("reference")]
                      if isinstance(ref, str) and ref.startswith("Patient/")})
        for i in range(0, len(ids), 50):
            found += search("Patient", {"_id": ",".join(ids[i:i + 50])})
        return found
    finally:
        connector.close()


def _from_plugins(console: Console) -> list[WorklistItem]:
    """What each plugin's ``worklist_items`` returns; one that fails is named, not fatal."""
    out: list[WorklistItem] = []
    for impl in get_manager().hook.worklist_items.get_hookimpls():
        try:
            got: Any = impl.function()
        except Exception as exc:  # one plugin's trouble must not hide the rest of the list
            console.print(f"[yellow]warning[/yellow] {impl.plugin_name}: its worklist could "
                          f"not be read ({type(exc).__name__})")
            continue
        out.extend(i for i in got or [] if isinstance(i, WorklistItem))
    return out


def gather(store_path: str, from_url: str | None, now: datetime,
           console: Console | None = None) -> tuple[list[WorklistItem], dict[str, JSON]]:
    """Every open item, and the FHIR resources read (by ``Type/id`` and by item id)."""
    console = console or Console(stderr=True)
    resources, referenced = _local(store_path)
    items = open_items(resources, "local", now, referenced)
    if from_url:
        remote = _ehr(from_url)
        items += open_items(remote, from_url, now)
        resources += remote
    items += _from_plugins(console)
    known = {**referenced, **{f"{r['resourceType']}/{r['id']}": r for r in resources
                              if r.get("id")}}
    return most_urgent_first(items, now), known


def _show(items: list[WorklistItem], now: datetime, console: Console) -> None:
    if not items:
        console.print("nothing open")
        return
    table = Table("id", "kind", "patient", "due", "priority", "what", "from")
    for i in items:
        due = i.due.isoformat(timespec="minutes") if i.due else ""
        if i.overdue(now):
            due = f"[red]{due} overdue[/red]"
        table.add_row(escape(i.id), i.kind, escape(i.patient), due, i.priority,
                      escape(i.summary), escape(i.source))
    console.print(table)


store_option = click.option("--store", "store_path", default=DEFAULT_STORE, show_default=True,
                            help="The local store: a SQLite file or a "
                            "PostgreSQL URL.")
from_option = click.option("--from", "from_url", default=None, metavar="URL",
                           help="Also the clinic's EHR (a FHIR server) by search.")


@click.group("worklist", invoke_without_command=True)
@store_option
@from_option
@click.option("--due", "due", default=None, metavar="today|overdue|DATE",
              help="Only items due today, overdue, or due on DATE (YYYY-MM-DD).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="Only items of this kind (repeatable).")
@click.option("--patient", "patient", default=None, metavar="MRN", help="Only this patient.")
@click.option("--json", "as_json", is_flag=True, help="Print the items as a JSON array.")
@click.pass_context
def worklist_group(ctx: click.Context, store_path: str, from_url: str | None,
                   due: str | None, kinds: tuple[str, ...], patient: str | None,
                   as_json: bool) -> None:
    """The MA's open items, most urgent first: follow-ups, result calls, refill requests,
    recalls, no-shows to call and cancelled slots to refill."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"store": store_path, "from": from_url}
        return
    now = datetime.now(UTC)
    try:
        keep = due_filter(due, now) if due else None
    except ValueError:
        raise click.BadParameter("give today, overdue or a date YYYY-MM-DD",
                                 param_hint="--due") from None
    items, _ = gather(store_path, from_url, now)
    items = [i for i in items if (keep is None or keep(i)) and
             (not kinds or i.kind in kinds) and (patient is None or i.patient == patient)]
    if as_json:
        click.echo(json.dumps([i.as_json() for i in items], indent=1))
    else:
        _show(items, now, Console())


def _item_ref(ref: str) -> JSON:
    parsed = identifier_from_reference(ref)
    if parsed is None or parsed[0] not in ITEM_KIND:
        raise InputError([Problem("ID", "this item names nothing a follow-up can point at",
                                  "not-supported")])
    return {"type": ITEM_KIND[parsed[0]], "id": parsed[2], "system": parsed[1] or None}


def closing_task(item: WorklistItem, known: dict[str, JSON], outcome: str,
                 at: datetime) -> JSON:
    """The follow_up task that closes ``item`` (see the module doc)."""
    from ..mappers.follow_up import from_fhir as follow_ups
    from ..tasks.follow_up import FollowUpTask

    if item.source not in ("local",) and not item.source.startswith(("http://", "https://")):
        raise InputError([Problem("ID", f"'{item.id}' is kept by the {item.source} plugin: "
                                  "close it with that plugin's command", "not-supported")])
    if item.kind in ("follow_up", "result_call", "refill"):
        if item.id.startswith("Task/"):
            raise InputError([Problem("ID", f"'{item.id}' is the EHR's own task, not a "
                                      "mafhir follow-up: close it in the EHR", "not-supported")])
        resources = ResourceSet.of(known.values())
        found = [t for t in follow_ups(resources) if t.id == item.id]
        if len(found) != 1 or not isinstance(found[0], FollowUpTask):
            raise InputError([Problem("ID", f"the follow-up '{item.id}' could not be read "
                                      "back", "not-found")])
        data = found[0].model_dump(mode="json", exclude_none=True)
        return {**data, "status": "completed", "current_status": found[0].status,
                "at": at.isoformat(), "outcome": outcome}
    if not item.patient_system:
        raise InputError([Problem("ID", f"'{item.id}': the patient has no MRN known here",
                                  "not-found")])
    when = at.isoformat()
    return {"task": "follow_up", "id": done_task_id(item.id), "status": "completed",
            "current_status": "requested",
            "patient": {"mrn": item.patient, "system": item.patient_system},
            "created": when, "due": when, "at": when, "reason": item.summary,
            "focus": _item_ref(item.ref), "outcome": outcome}


@worklist_group.command("done")
@click.argument("item_id", metavar="ID")
@click.option("--outcome", required=True, help="How it ended (the follow-up's output).")
@click.option("--to", "to", default=None, help="Where the completion goes (default: where "
              "the item was read: the local store, or the EHR of --from).")
@click.option("--db", "db", envvar="MAFHIR_OUTBOX", default="mafhir.db", show_default=True,
              help="The outbox.")
@clinic_option
@click.pass_context
def done_command(ctx: click.Context, item_id: str, outcome: str, to: str | None, db: str,
                 clinic_path: str | None) -> None:
    """Close item ID: write its follow_up completion through the outbox."""
    from ..context import MapContext
    from ..outbox.cli import run_sync
    from ..outbox.delivery import resolve_destination
    from ..outbox.engine import Engine
    from ..outbox.store import open_store

    opts = ctx.obj or {}
    store_path = opts.get("store", DEFAULT_STORE)
    console = Console(stderr=True)
    now = datetime.now(UTC)
    # errors go to the command-line boundary (one line, the right exit status)
    items, known = gather(store_path, opts.get("from"), now, console)
    item = next((i for i in items if i.id == item_id), None)
    if item is None:
        raise InputError([Problem("ID", f"no open item '{item_id}' (see mafhir "
                                  "worklist)", "not-found")])
    task = closing_task(item, known, outcome, now)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "done.ndjson"
        source.write_text(json.dumps(task) + "\n", encoding="utf-8")
        store = open_store(db)
        try:
            # by default the completion goes back where the item was read
            home = item.source if item.source.startswith(("http://", "https://")) \
                else f"local:{store_path}"
            destination = resolve_destination(to or home)
            tally = run_sync(store, destination, [str(source)], ctx=MapContext(
                clinic=load_clinic(clinic_path)), engine=Engine(store, threads=1),
                console=console)
        finally:
            store.close()
    if tally.dead or tally.quarantined:
        console.print(f"[red]not closed[/red] {escape(item_id)}: "
                      f"{escape('; '.join(tally.errors) or 'see mafhir outbox')}")
        sys.exit(EXIT_FAILED)
    click.echo(f"closed {item_id} (follow_up {task['id']})")
