"""``mafhir eligibility``: check a patient's insurance now, run the stand-in, read results.

``check`` reads the patient and their card (Coverage) from the clinic's local store
(``--store``, default ``mafhir-store.db``; ``mafhir sync`` writes it), asks the partner
(``--to NAME``, a ``[x12.NAME]`` of mafhir.toml), and prints the summary — or with
``--json`` the FHIR request and response. Exit 0 answered, 1 refused by the payer or the
clearinghouse (reason printed), 2 bad input, 75 try later (AAA 42, a 5xx, a timeout).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, date, datetime
from typing import Any

import click

from mafhir.bundle import create
from mafhir.cli.options import clinic_option
from mafhir.clinic import load_clinic
from mafhir.errors import InputError, MafhirError, Problem, exit_code
from mafhir.fhirtypes import coding, identifier
from mafhir.io import dumps
from mafhir.mappers.coverage import X12_SERVICE_TYPE
from mafhir.resourceset import ResourceSet

__all__ = ["eligibility_group"]

@click.group("eligibility")
def eligibility_group() -> None:
    """Payer eligibility (X12 270/271 over CAQH CORE): check, standin, show."""


def _fail(exc: MafhirError) -> None:
    """Bad input: one line per problem; a refusal: the one reason (it names the code)."""
    lines = exc.problems if isinstance(exc, InputError) else (Problem("", str(exc), exc.code),)
    for p in lines:
        click.echo(f"error: {p}", err=True)
    sys.exit(exit_code(exc))


def _card(store_path: str, mrn: str, payer: str, clinic_path: str | None) -> ResourceSet:
    """Patient, Coverage (active, by this payer), payer and subscriber from the store."""
    from mafhir.connectors.local import LocalStore

    clinic = load_clinic(clinic_path)
    store = LocalStore(store_path)
    try:
        patient = store.find("Patient", clinic.mrn_namespace, mrn)
        if patient is None:
            raise InputError([Problem("--patient", f"no patient with this MRN in {store_path}",
                                      "not-found")])
        payer_org = store.find("Organization", clinic.task_system("payer"), payer)
        if payer_org is None:
            raise InputError([Problem("--payer", "no payer with this id in the store",
                                      "not-found")])
        ref = f"Patient/{patient['id']}"
        cards = [c for c in store.search("Coverage", patient=ref)
                 if c.get("status") == "active"
                 and any(p.get("reference") == f"Organization/{payer_org['id']}"
                         for p in c.get("payor") or [])]
        if not cards:
            raise InputError([Problem("--payer", "the patient has no active card (Coverage) "
                                      "of this payer in the store", "not-found")])
        coverage = cards[-1]
        resources = ResourceSet.of([patient, payer_org, coverage])
        sub = (coverage.get("subscriber") or {}).get("reference", "")
        if sub.startswith("RelatedPerson/"):
            person = store.read("RelatedPerson", sub.split("/", 1)[1])
            if person is not None:
                resources.add(person)
        return resources
    finally:
        store.close()


@eligibility_group.command("check")
@click.option("--patient", "mrn", required=True, help="The patient's MRN.")
@click.option("--payer", required=True, help="The payer's EDI id (as on the card).")
@click.option("--to", "partner_name", default="default", show_default=True,
              help="The clearinghouse: a [x12.NAME] of mafhir.toml.")
@click.option("--store", "store_path", default="mafhir-store.db", show_default=True,
              help="Where the clinic's patients and cards are (the local store).")
@click.option("--service-type", "service_types", multiple=True, metavar="CODE",
              help="X12 service type besides 30 (e.g. 98 office visit). Repeatable.")
@click.option("--date", "service_date", default=None, metavar="YYYY-MM-DD",
              help="Date of service (default: today).")
@click.option("--config", "config_path", default=None, help="mafhir.toml (env MAFHIR_CONFIG).")
@click.option("--json", "as_json", is_flag=True, help="Print the FHIR request and response.")
@clinic_option
def check_command(mrn: str, payer: str, partner_name: str, store_path: str,
                  service_types: tuple[str, ...], service_date: str | None,
                  config_path: str | None, as_json: bool, clinic_path: str | None) -> None:
    """Is the patient's plan active today, what is the copay, how much deductible is left?"""
    from .config import load_partner
    from .connector import check
    from .controlnumbers import ControlNumbers
    from .fhir import response_resource
    from .summary import summary_text
    from .transport import CoreClient

    try:
        when = date.fromisoformat(service_date) if service_date else date.today()
    except ValueError:
        raise click.BadParameter("not a date (YYYY-MM-DD)", param_hint="--date") from None
    try:
        partner = load_partner(partner_name, config_path)
        resources = _card(store_path, mrn, payer, clinic_path)
        patient = resources.of_type("Patient")[0]
        payer_org = resources.of_type("Organization")[0]
        coverage = resources.of_type("Coverage")[0]
        now = datetime.now(UTC)
        request: dict[str, Any] = {
            "resourceType": "CoverageEligibilityRequest",
            "status": "active", "purpose": ["validation", "benefits"],
            "patient": {"reference": f"Patient/{patient['id']}"},
            "servicedDate": when.isoformat(),
            "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "insurer": {"reference": f"Organization/{payer_org['id']}"},
            "insurance": [{"focal": True,
                           "coverage": {"reference": f"Coverage/{coverage['id']}"}}],
            "item": [{"category": {"coding": [coding(X12_SERVICE_TYPE, code)]}}
                     for code in ("30", *service_types)],
        }
        resources.add(request)
        client = CoreClient(partner)
        numbers = ControlNumbers(partner.control_location)
        try:
            answer = check(resources, partner, client, numbers, now)
        finally:
            client.close()
            numbers.close()
    except MafhirError as exc:
        _fail(exc)
        return
    if as_json:
        request["identifier"] = [identifier(f"{load_clinic(clinic_path).system}/x12-trace",
                                            answer.request.reference)]
        entry = create(request)
        response = response_resource(
            answer.result, request={"reference": entry.full_url},
            patient=request["patient"], insurer=request["insurer"],
            coverage=request["insurance"][0]["coverage"], created=request["created"])
        entries: list[dict[str, Any]] = [{"fullUrl": entry.full_url, "resource": request},
                                         {"resource": response}]
        if answer.coverage_update is not None:  # the card as the payer has it, to apply
            entries.append({"resource": answer.coverage_update})
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        sys.stdout.buffer.write(dumps(bundle, pretty=True) + b"\n")
        return
    click.echo(summary_text(answer.summary), nl=False)


@eligibility_group.command("standin")
@click.option("--port", type=int, default=0, show_default=True, help="0: a free port.")
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--username", default=None, help="Require this CORE username …")
@click.option("--password-env", default=None, help="… and the password in this env var.")
def standin_command(port: int, tls_cert: str | None, tls_key: str | None,
                    username: str | None, password_env: str | None) -> None:
    """Run the loopback clearinghouse stand-in (answers 270s from its member table)."""
    import os

    from .standin import Standin

    password = os.environ.get(password_env) if password_env else None
    if password_env and not password:
        raise click.BadParameter("the environment variable is not set",
                                 param_hint="--password-env")
    tls = (tls_cert, tls_key) if tls_cert and tls_key else None
    with Standin(port, username=username, password=password, tls=tls) as standin:
        click.echo(f"x12 stand-in listening on {standin.url} (Ctrl-C stops it)", err=True)
        try:
            while True:
                time.sleep(3600)  # serve until interrupted
        except KeyboardInterrupt:
            pass


@eligibility_group.command("show")
@click.argument("item_id", type=int)
@click.option("--db", "db", envvar="MAFHIR_OUTBOX", default="mafhir.db", show_default=True,
              help="The outbox (env MAFHIR_OUTBOX).")
@click.option("--json", "as_json", is_flag=True)
def show_command(item_id: int, db: str, as_json: bool) -> None:
    """The eligibility summary kept with an outbox item delivered to x12:NAME."""
    from mafhir.outbox.store import open_store

    from .summary import summary_text

    store = open_store(db)
    try:
        rows = [r for r in store.audit_of(item_id)
                if r["resource_type"] == "x12-eligibility-summary"]
    finally:
        store.close()
    if not rows:
        raise click.ClickException(f"no eligibility answer is kept with item {item_id}")
    data = json.loads(rows[-1]["resource"])
    click.echo(json.dumps(data, indent=2) if as_json else summary_text(data).rstrip("\n"))
