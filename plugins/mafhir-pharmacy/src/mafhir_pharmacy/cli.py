"""``mafhir pharmacy``: send prescriptions, follow them, keep the refill worklist.

``send`` maps prescription tasks, sends them through a channel (``pharmacy-fhir:URL`` or
``pharmacy-v2:HOST:PORT``) and records them on the worklist; ``listen`` receives refill
requests (RDE^O25/OMP^O09) over MLLP onto the worklist; ``worklist`` lists it; ``decide``
answers one request (printing the ``refill_decision`` task to map, send and convert to
RRE^O26); ``follow`` reads what the pharmacy did with a prescription.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from mafhir.cli.options import clinic_option
from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.errors import InputError, MafhirError
from mafhir.io import iter_documents
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry

__all__ = ["pharmacy_group"]

worklist_option = click.option("--worklist", "worklist_path", default="mafhir-pharmacy.sqlite",
                               show_default=True,
                               help="The worklist: a SQLite file or a PostgreSQL URL "
                                    "(postgresql://…).")


def _fail(problems) -> None:
    for p in problems:
        click.echo(f"error: {p}", err=True)
    sys.exit(2)


@click.group("pharmacy")
def pharmacy_group() -> None:
    """Prescriptions to pharmacies, refill requests back (FHIR and HL7 v2)."""


@pharmacy_group.command("send")
@click.argument("source", type=click.File("rb"))
@click.option("--via", required=True, metavar="CHANNEL:TARGET",
              help="pharmacy-fhir:URL or pharmacy-v2:HOST:PORT (any registered connector).")
@worklist_option
@clinic_option
def send_command(source, via: str, worklist_path: str, clinic_path: str | None) -> None:
    """Map prescription tasks, send them, and record them on the worklist."""
    from mafhir.bundle import transaction

    from .tasks import PrescriptionTask
    from .worklist import LocalWorklist

    clinic = load_clinic(clinic_path)
    registry = get_registry()
    entries: list[Any] = []
    tasks: list[Any] = []
    problems: list[Any] = []
    for result in Pipeline(registry, MapContext(clinic=clinic)).run(
            iter_documents(source, label=source.name)):
        if isinstance(result, Failed):
            problems += result.problems
        else:
            entries += result.entries
            if isinstance(result.task, PrescriptionTask):
                tasks.append(result.task)
    if problems:
        _fail(problems)
    name, _, target = via.partition(":")
    if name not in registry.connectors or not target:
        raise click.BadParameter(f"expected CHANNEL:TARGET, one of "
                                 f"{', '.join(sorted(registry.connectors))}", param_hint="--via")
    connector = registry.connectors[name].factory(target)
    configure = getattr(connector, "use_clinic", None)
    if configure is not None:
        configure(clinic)
    try:
        summary = connector.send(transaction(entries))
    except InputError as exc:
        _fail(exc.problems)
    except MafhirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(75 if exc.transient else 1)
    finally:
        connector.close()
    worklist = LocalWorklist(worklist_path)
    for task in tasks:
        worklist.add_prescription(task)
    worklist.close()
    click.echo(json.dumps({"sent": len(tasks), "result": summary}))


@pharmacy_group.command("follow")
@click.argument("prescription")
@click.option("--at", "url", required=True, help="The pharmacy's FHIR base URL (or a "
              "mafhir.toml destination).")
@click.option("--wait", type=float, default=0.0, help="Wait up to this many seconds for a "
              "dispense (polling, or see --subscribe).")
@click.option("--subscribe", is_flag=True, help="While waiting, have the server notify a "
              "loopback rest-hook (an R4 Subscription, deleted afterwards) instead of polling; "
              "falls back to polling when it refuses or stays silent.")
@clinic_option
def follow_command(prescription: str, url: str, wait: float, subscribe: bool,
                   clinic_path: str | None) -> None:
    """What the pharmacy did with a prescription: dispensed, not picked up, pending…"""
    from .channels import FhirPharmacy

    if subscribe and not wait:
        raise click.UsageError("--subscribe needs --wait SECONDS")
    pharmacy = FhirPharmacy(url, clinic_system=load_clinic(clinic_path).system)
    try:
        status = pharmacy.wait_for_dispense(prescription, timeout=wait,
                                            subscribe=subscribe) if wait else \
            pharmacy.follow(prescription)
    except InputError as exc:
        _fail(exc.problems)
    except MafhirError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        pharmacy.close()
    click.echo(json.dumps(status.__dict__))
    sys.exit(0 if status.state == "dispensed" else 1)


@pharmacy_group.command("worklist")
@worklist_option
@click.option("--status", type=click.Choice(["requested", "review", "approved", "denied",
                                            "unreadable"]),
              help="Only these; 'unreadable': a pharmacy's Tasks `poll` could not read.")
def worklist_command(worklist_path: str, status: str | None) -> None:
    """The refill requests on the worklist, one JSON line each (no status: all)."""
    from .worklist import LocalWorklist

    worklist = LocalWorklist(worklist_path)
    if status == "unreadable":
        for request, source, task_ref, reason in worklist.unreadable():
            click.echo(json.dumps({"status": "unreadable", "request": request,
                                   "task": task_ref, "source": source, "reason": reason}))
        worklist.close()
        return
    for state, task in worklist.items(status):
        click.echo(json.dumps({"status": state, "request": task.id,
                               "prescription": task.prescription,
                               "received": task.received.isoformat(),
                               "pharmacy": task.pharmacy.name}))
    worklist.close()


@pharmacy_group.command("decide")
@click.argument("request")
@click.option("--approve", "decision", flag_value="approved", help="Renew the prescription.")
@click.option("--deny", "reason", default=None,
              help="Deny, with a reason: needs-appointment, discontinued, wrong-patient, "
                   "not-our-patient, too-soon, changed-therapy, other.")
@click.option("--quantity", type=float, help="Approved with another quantity.")
@click.option("--refills", type=int, help="Approved with another number of refills.")
@click.option("--note", "reason_text", help="Free text for the pharmacy.")
@click.option("--id", "decision_id", help="The decision's id (default: REQUEST-decision); it "
              "is also the renewal's prescription id.")
@click.option("--at", "at", help="When decided (ISO time with offset; default now).")
@click.option("--answer", "answer_to", metavar="CHANNEL:TARGET", help="Send the answer there: "
              "pharmacy-v2:HOST:PORT (RRE^O26). A request polled from a FHIR server is "
              "answered there without this.")
@worklist_option
@clinic_option
def decide_command(request: str, decision: str | None, reason: str | None,
                   quantity: float | None, refills: int | None, reason_text: str | None,
                   decision_id: str | None, at: str | None, answer_to: str | None,
                   worklist_path: str, clinic_path: str | None) -> None:
    """Answer a refill request once; prints the refill_decision task (JSON).

    The answer owed to the pharmacy is recorded with the decision and sent at once; if
    the pharmacy cannot take it now it stays pending (exit 75) for `mafhir pharmacy answer`.
    """
    from .answers import deliver_answers, v2_address
    from .worklist import LocalWorklist

    if answer_to is not None:
        channel, _, address = answer_to.partition(":")
        if channel not in ("pharmacy-v2", "pharmacy-fhir") or not address:
            raise click.BadParameter("expected pharmacy-v2:HOST:PORT", param_hint="--answer")
        if channel == "pharmacy-v2":
            try:  # checked before deciding: a bad target would leave an answer undeliverable
                v2_address(address)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--answer") from exc

    if bool(decision) == bool(reason):
        raise click.UsageError("give exactly one of --approve or --deny REASON")
    when = datetime.fromisoformat(at) if at else datetime.now(UTC)
    if when.tzinfo is None:
        raise click.BadParameter("needs a UTC offset", param_hint="--at")
    worklist = LocalWorklist(worklist_path)
    try:
        task = worklist.decide(request, decision or "denied", when,
                               decision_id or f"{request}-decision", reason=reason,
                               reason_text=reason_text, quantity=quantity, refills=refills,
                               answer_to=answer_to)
        click.echo(task.model_dump_json(exclude_none=True))
        sys.exit(_report(deliver_answers(worklist, load_clinic(clinic_path), only=request)))
    except InputError as exc:
        _fail(exc.problems)
    finally:
        worklist.close()


def _report(deliveries) -> int:
    """One stderr line per answer; the exit code: 0 sent, 75 pending, 1 refused."""
    code = 0
    for d in deliveries:
        click.echo(f"answer {d.request} → {d.target}: {d.status}"
                   + (f" ({d.detail})" if d.detail else ""), err=True)
        if d.status == "pending":
            code = max(code, 75) if code != 1 else 1
            click.echo("  kept on the worklist; `mafhir pharmacy answer` sends it later",
                       err=True)
        elif d.status == "refused":
            code = 1
    return code


@pharmacy_group.command("answer")
@worklist_option
@clinic_option
def answer_command(worklist_path: str, clinic_path: str | None) -> None:
    """Send the answers still owed to pharmacies (those a pharmacy could not take yet)."""
    from .answers import deliver_answers
    from .worklist import LocalWorklist

    worklist = LocalWorklist(worklist_path)
    try:
        code = _report(deliver_answers(worklist, load_clinic(clinic_path)))
    finally:
        worklist.close()
    sys.exit(code)


@pharmacy_group.command("poll")
@click.option("--at", "url", required=True, help="The pharmacy's FHIR base URL (or a "
              "mafhir.toml destination).")
@worklist_option
@clinic_option
def poll_command(url: str, worklist_path: str, clinic_path: str | None) -> None:
    """Read the pharmacy server's new refill requests (Tasks) onto the worklist."""
    from .channels import FhirPharmacy
    from .fhirrefill import poll_refill_requests
    from .worklist import LocalWorklist

    clinic = load_clinic(clinic_path)
    pharmacy = FhirPharmacy(url, clinic_system=clinic.system)
    worklist = LocalWorklist(worklist_path)
    try:
        result = poll_refill_requests(pharmacy.client, worklist, clinic.system, url)
    except MafhirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(75 if exc.transient else 1)
    finally:
        worklist.close()
        pharmacy.close()
    for p in result.problems:
        click.echo(f"error: {p}", err=True)
    click.echo(json.dumps({"requested": result.requested, "review": result.review,
                           "seen_again": result.seen_again, "unreadable": len(result.problems),
                           "cursor": result.cursor}))
    sys.exit(1 if result.problems else 0)


@pharmacy_group.command("listen")
@click.option("--mllp", "address", required=True, metavar="HOST:PORT")
@click.option("--store", "store_path", default="mafhir-hl7v2.sqlite", show_default=True)
@click.option("--to", "destination", default=None, metavar="CONNECTOR:TARGET",
              help="Also deliver the worklist Tasks there (e.g. fhir-rest:URL).")
@click.option("--ack-to", "ack_to", multiple=True, metavar="[APP^FACILITY=]HOST:PORT",
              help="Where enhanced-mode application ACKs go back.")
@click.option("--answer-to", "answer_to", default=None, metavar="pharmacy-v2:HOST:PORT",
              help="Where decisions on these requests are answered (RRE^O26), so that "
                   "`decide` needs no --answer.")
@worklist_option
@clinic_option
def listen_command(address: str, store_path: str, destination: str | None,
                   ack_to: tuple[str, ...], answer_to: str | None, worklist_path: str,
                   clinic_path: str | None) -> None:
    """Receive refill requests (RDE^O25, OMP^O09) over MLLP onto the worklist.

    The same as ``mafhir listen --set pharmacy.worklist=PATH --set
    pharmacy.answer-to=TARGET``: one listener takes a lab's results and a pharmacy's
    refill requests alike.
    """
    from mafhir.hl7v2.cli import run_listener

    run_listener(address, store_path=store_path, destination=destination,
                 check_patient=False, tz=None, clinic_path=clinic_path,
                 settings={"pharmacy.worklist": worklist_path,
                           **({"pharmacy.answer-to": answer_to} if answer_to else {})},
                 ack_to=ack_to,
                 what=f", worklist {worklist_path}")
