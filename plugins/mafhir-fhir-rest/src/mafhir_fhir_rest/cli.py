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
from mafhir.errors import InputError, MafhirError, Problem
from mafhir.io import dumps, iter_documents
from mafhir.outbox.local import LocalStore
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry

from . import reads
from .config import client_for
from .totasks import Unmapped, to_tasks

__all__ = ["pull_command", "send_command"]

JSON = dict[str, Any]

#: pull WHAT → the task kind --tasks maps it to
TASK_KIND = {"schedule": "appointment", "immunizations": "immunization", "vitals": "vitals",
             "coverage": "coverage", "intake": "intake", "injections": "injection",
             "poc-tests": "poc_test", "ekgs": "ekg", "skin-tests": "skin_test",
             # issue 18 part B (w10): the front office (with --tasks only)
             "calls": "phone_call", "reminders": "reminder", "follow-ups": "follow_up"}
#: what the front-office WHATs read (always as tasks)
FRONT_OFFICE = {"calls": "phone_call_set", "reminders": "reminder_set",
                "follow-ups": "follow_up_set"}


def _load_clinic(path: str | None) -> Any:
    from mafhir.clinic import load_clinic

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
    entries: list[Any] = []
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
              help="FHIR base URL, a destination named in mafhir.toml, or a plugin's "
                   "CONNECTOR:TARGET (dir:OUT, mllp:HOST:PORT/OML^O21, …).")
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
    other = _other_connector(target)
    try:
        bundles = _bundles(source, clinic_path, skip_invalid)
        if not bundles:
            raise InputError([Problem(source, "holds nothing to send", "required")])
        if other is not None:  # a plugin's destination (dir:, mllp:, iis:…): its own send
            _send_through(other, target, bundles, clinic_path)
            return
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
        accepted = len(getattr(exc, "accepted", ()))  # a batch/single delivery stores some
        if sent or accepted:
            click.echo(f"({sent + accepted} resource(s) were accepted by the server before the "
                       "failure)", err=True)
        sys.exit(75 if exc.transient else 1)


def _other_connector(target: str) -> str | None:
    """The connector named by ``CONNECTOR:TARGET`` when it is not this plugin's (a URL or
    a named destination of mafhir.toml is ours)."""
    if target.startswith(("http://", "https://")) or ":" not in target:
        return None
    name = target.partition(":")[0]
    connectors = get_registry().connectors
    if name in connectors and name != "fhir-rest":
        return name
    return None


def _send_through(name: str, target: str, bundles: list[JSON], clinic_path: str | None
                  ) -> None:
    """Send with a plugin's connector, as ``sync`` would but without the outbox: exit 0
    when it took everything, else the error's own status (docs/errors.md)."""
    import json

    from mafhir.outbox.delivery import connect, resolve_destination

    connector = connect(resolve_destination(target))
    if "use_clinic" in getattr(connector, "capabilities", ()):
        connector.use_clinic(_load_clinic(clinic_path))  # type: ignore[attr-defined]
    try:
        for bundle in bundles:
            result = connector.send(bundle)
            detail = json.dumps(result, default=str)[:300] if result else "accepted"
            click.echo(f"sent {len(bundle.get('entry', []))} resource(s) to {name}: {detail}",
                       err=True)
    finally:
        connector.close()


def _parse_day(text: str) -> date | datetime:
    try:
        return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD or an ISO date-time with offset") from None


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD", param_hint="--birthdate") from None


@click.command("pull")
@click.option("--from", "target", required=True,
              help="FHIR base URL, or a source named in mafhir.toml.")
@click.argument("what", type=click.Choice(["schedule", "patient", "immunizations", "vitals",
                                           "coverage", "allergies", "intake", "injections",
                                           "poc-tests", "ekgs", "skin-tests", "calls",
                                           "reminders", "follow-ups"]))
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
              help="schedule, immunizations, vitals, coverage, intake, injections, poc-tests, "
                   "ekgs, skin-tests, calls, reminders, follow-ups: print the tasks "
                   "(appointment, immunization, vitals, coverage, intake, injection, poc_test, "
                   "ekg, skin_test, phone_call, reminder, follow_up) instead of FHIR "
                   "resources.")
@click.option("--count", type=int, default=None, help="Page size (_count).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False),
              help="Also keep what is read in this local store file (the `local` "
                   "destination's SQLite), with the server's ids, for offline use.")
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates.")
def pull_command(target: str, what: str, config_path: str | None, day: str | None,
                 end: str | None, practitioner: str | None, location: str | None,
                 patient: str | None, mrn_system: str | None, family: str | None,
                 given: str | None, birthdate: str | None, since: str | None,
                 as_tasks: bool, count: int | None, cache_path: str | None,
                 insecure: bool) -> None:
    """Read from a FHIR server: NDJSON on stdout, one resource (or task) per line.

    With --tasks, an item that cannot be mapped back to a task is named on stderr
    (Type/id and why), the others are still written, and the exit status is 1.
    """
    out = sys.stdout.buffer
    try:
        if as_tasks and what not in TASK_KIND:
            raise InputError(f"--tasks works with {', '.join(TASK_KIND)}, not {what}")
        client = reads.keeping_decimals(
            client_for(target, config_path, insecure=insecure, page_size=count))
        with client:
            if what == "schedule":
                start = _parse_day(day) if day else date.today()
                stream: Any = reads.schedule(client, start, _parse_day(end) if end else None,
                                             practitioner, location)
            elif what == "patient":
                bd = _parse_date(birthdate) if birthdate else None
                if not (patient or family):
                    raise InputError("pull patient needs --patient MRN or --family/--birthdate")
                stream = reads.find_patient(client, mrn=patient, mrn_system=mrn_system,
                                            family=family, given=given, birthdate=bd)
            else:
                if not patient:
                    raise InputError(f"pull {what} needs --patient")
                ref = reads.patient_reference(client, patient, mrn_system)
                when = _parse_day(since) if since else None
                if what in FRONT_OFFICE:
                    stream = getattr(reads, FRONT_OFFICE[what])(client, ref)
                elif as_tasks:
                    stream = (reads.vitals_set(client, ref, when) if what == "vitals" else
                              getattr(reads, f"{TASK_KIND[what]}_set")(client, ref))
                elif what in reads.RESULT_SETS:  # the resources a result kind is made of
                    stream = reads.RESULT_SETS[what](client, ref)
                elif what == "vitals":
                    stream = reads.vitals(client, ref, when)
                else:
                    stream = getattr(reads, what)(client, ref)
            cache = LocalStore(cache_path) if cache_path else None
            try:
                if not as_tasks:
                    for resource in stream:
                        out.write(dumps(resource) + b"\n")
                        if cache is not None:
                            cache.put(resource)
                    return
                resources = list(stream)
                if cache is not None:
                    for resource in resources:
                        cache.put(resource)
            finally:
                if cache is not None:
                    cache.close()
            failed = 0
            for item in to_tasks(TASK_KIND[what], resources):
                if isinstance(item, Unmapped):
                    failed += 1
                    click.echo(f"error: cannot map {item}", err=True)
                    continue
                out.write(dumps(item.model_dump(mode="json", exclude_none=True)) + b"\n")
            if failed:
                click.echo(f"{failed} item(s) could not be mapped to {TASK_KIND[what]} tasks; "
                           "the others were written", err=True)
                sys.exit(1)
    except InputError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    except MafhirError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(75 if exc.transient else 1)
