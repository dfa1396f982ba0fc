"""``mafhir send`` and ``mafhir pull``: the connector on the command line.

Secrets never come from arguments: a destination named in ``mafhir.toml`` names the
environment variable or file that holds them.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import Any

import click

from mafhir.bundle import transaction
from mafhir.context import MapContext
from mafhir.errors import InputError, MafhirError
from mafhir.io import dumps, iter_documents
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry

from . import reads
from .config import client_for

__all__ = ["pull_command", "send_command"]

JSON = dict[str, Any]


def _load_clinic(path: str | None) -> Any:
    from mafhir.cli.options import load_clinic

    return load_clinic(path)


def _bundles(source: str, clinic_path: str | None, skip_invalid: bool = False) -> list[JSON]:
    """The Bundle in ``source``, or the tasks in it mapped (and validated) to one."""
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    with stream:
        docs = list(iter_documents(stream, label=source))
    if len(docs) == 1 and isinstance(docs[0][1], dict) and \
            docs[0][1].get("resourceType") == "Bundle":
        return [docs[0][1]]
    pipeline = Pipeline(get_registry(), MapContext(clinic=_load_clinic(clinic_path)))
    entries = []
    failures: list[Failed] = []
    for result in pipeline.run(docs):
        if isinstance(result, Failed):
            failures.append(result)
        else:
            entries.extend(result.entries)
    if failures and not skip_invalid:
        raise InputError([p for f in failures for p in f.problems])
    for f in failures:
        for problem in f.problems:
            click.echo(f"skipped: {problem}", err=True)
    return [transaction(entries)] if entries else []


@click.command("send")
@click.option("--to", "target", required=True,
              help="FHIR base URL, or a destination named in mafhir.toml.")
@click.argument("source", default="-", metavar="FILE|-")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Destinations file (default ./mafhir.toml or $MAFHIR_CONFIG).")
@click.option("--clinic", "clinic_path", type=click.Path(exists=True, dir_okay=False),
              help="Clinic settings, when FILE holds tasks.")
@click.option("--mode", type=click.Choice(["transaction", "batch", "single"]), default=None,
              help="Force a delivery mode (default: what /metadata offers).")
@click.option("--skip-invalid", is_flag=True,
              help="Send the valid tasks and list the invalid ones (default: send nothing).")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates (never in "
                                               "production).")
def send_command(target: str, source: str, config_path: str | None, clinic_path: str | None,
                 mode: str | None, skip_invalid: bool, insecure: bool) -> None:
    """Send a FHIR Bundle, or tasks (mapped and validated first), to a FHIR server.

    Exit 0 when the server accepted everything; 2 for bad input; 1 when the server
    refused (the reason and the failing entry are printed); 75 when it may work later.
    """
    try:
        bundles = _bundles(source, clinic_path, skip_invalid)
        if insecure:
            click.echo("warning: TLS verification is off", err=True)
        client = client_for(target, config_path, insecure=insecure)
    except InputError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    sent = 0
    try:
        with client:
            for bundle in bundles:
                result = client.send(bundle, mode)
                sent += len(result.entries)
                statuses = ", ".join(f"{n} × {s}" for s, n in
                                     sorted(result.summary()["statuses"].items()))
                click.echo(f"sent {len(result.entries)} resource(s) by {result.mode}: {statuses}",
                           err=True)
    except MafhirError as exc:
        click.echo(f"error: {exc}", err=True)
        if sent:
            click.echo(f"({sent} resource(s) were accepted before the failure)", err=True)
        sys.exit(75 if exc.transient else 1)


def _parse_day(text: str) -> date | datetime:
    try:
        return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD or an ISO date-time with offset") from None


@click.command("pull")
@click.option("--from", "target", required=True,
              help="FHIR base URL, or a source named in mafhir.toml.")
@click.argument("what", type=click.Choice(["schedule", "patient", "immunizations", "vitals",
                                           "coverage", "allergies"]))
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--date", "day", help="schedule: first day (YYYY-MM-DD; default today).")
@click.option("--end", help="schedule: end (exclusive; default the day after --date).")
@click.option("--practitioner", help="schedule: Practitioner/id or NPI.")
@click.option("--location", help="schedule: Location/id or identifier system|value.")
@click.option("--patient", help="Patient/id or MRN (system|value, or value with --mrn-system).")
@click.option("--mrn-system", help="Identifier system of a bare MRN.")
@click.option("--family", help="patient: family name (with --birthdate).")
@click.option("--given", help="patient: given name.")
@click.option("--birthdate", help="patient: birth date YYYY-MM-DD.")
@click.option("--since", help="vitals: only from this date.")
@click.option("--tasks", "as_tasks", is_flag=True,
              help="schedule: print appointment tasks instead of FHIR.")
@click.option("--count", type=int, default=None, help="Page size (_count).")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
def pull_command(target: str, what: str, config_path: str | None, day: str | None,
                 end: str | None, practitioner: str | None, location: str | None,
                 patient: str | None, mrn_system: str | None, family: str | None,
                 given: str | None, birthdate: str | None, since: str | None,
                 as_tasks: bool, count: int | None, insecure: bool) -> None:
    """Read from a FHIR server: NDJSON on stdout, one resource (or task) per line."""
    out = sys.stdout.buffer
    try:
        client = client_for(target, config_path, insecure=insecure, page_size=count)
        with client:
            if what == "schedule":
                start = _parse_day(day) if day else date.today()
                found = list(reads.schedule(client, start, _parse_day(end) if end else None,
                                            practitioner, location))
                items: Any = reads.schedule_tasks(found) if as_tasks else found
                for item in items:
                    doc = item.model_dump(mode="json", exclude_none=True) if as_tasks else item
                    out.write(dumps(doc) + b"\n")
                return
            if what == "patient":
                bd = date.fromisoformat(birthdate) if birthdate else None
                if not (patient or family):
                    raise InputError("pull patient needs --patient MRN or --family/--birthdate")
                stream: Any = reads.find_patient(client, mrn=patient, mrn_system=mrn_system,
                                                 family=family, given=given, birthdate=bd)
            else:
                if not patient:
                    raise InputError(f"pull {what} needs --patient")
                ref = reads.patient_reference(client, patient, mrn_system)
                if what == "vitals":
                    stream = reads.vitals(client, ref, _parse_day(since) if since else None)
                else:
                    stream = getattr(reads, what)(client, ref)
            for resource in stream:
                out.write(dumps(resource) + b"\n")
    except InputError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    except MafhirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(75 if exc.transient else 1)
