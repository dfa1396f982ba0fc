"""``mafhir iis query NAME --patient MRN [--forecast] [--json]``: what the registry knows.

The patient's demographics (the registry matches on name and birth date as well as the
MRN) come from where the clinic keeps them — ``$MAFHIR_PATIENTS`` or the local store, as
for outbound v2 messages — or from ``--family/--given/--birth-date/--sex`` when given.
A readable table by default (vaccine, date, source; with ``--forecast`` the vaccine group,
due, earliest, latest, overdue dates and status); ``--json`` prints the FHIR Bundle.
Exit codes: 0 found, 1 not found / too many / protected / candidates (an answer the MA
must act on), 2 a refused query or bad input, 75 the registry could not be reached.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from mafhir.cli.options import clinic_option
from mafhir.errors import MafhirError, exit_code

from .rsp import QueryResult

__all__ = ["query_command", "render"]

JSON = dict[str, Any]
MESSAGES = {"not-found": "the registry has no record of this patient (NF)",
            "too-many": "the registry found several patients; add demographics (TM)",
            "protected": "the registry holds this record as protected (PD)",
            "candidates": "the registry returned candidate patients; pick one by its id"}


def _code(concept: JSON | None) -> str:
    for c in (concept or {}).get("coding", []):
        if c.get("code"):
            shown = c.get("display")
            return f"{c['code']} {shown}" if shown else str(c["code"])
    return str((concept or {}).get("text", ""))


def _table(rows: list[list[str]], head: list[str]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return [line.rstrip() for line in out]


def render(result: QueryResult, forecast: bool) -> list[str]:
    """The lines ``mafhir iis query`` prints for a result."""
    lines: list[str] = []
    if result.outcome != "found":
        lines.append(MESSAGES[result.outcome])
        for cand in result.candidates:
            name = (cand.get("name") or [{}])[0]
            ident = (cand.get("identifier") or [{}])[0].get("value", "")
            lines.append(f"  {ident}  {name.get('family', '')}, "
                         f"{' '.join(name.get('given', []))}  {cand.get('birthDate', '')}")
    else:
        rows = []
        for imm in result.of_type("Immunization"):
            origin = imm.get("reportOrigin", {})
            rows.append([_code(imm.get("vaccineCode")), imm.get("occurrenceDateTime", ""),
                         imm.get("status", ""), origin.get("text", "")])
        lines += _table(rows, ["vaccine", "date", "status", "source"]) if rows else \
            ["no doses recorded"]
        if forecast:
            lines.append("")
            recs = [r for rec in result.of_type("ImmunizationRecommendation")
                    for r in rec["recommendation"]]
            frows = []
            for r in recs:
                dates = {c["code"]["coding"][0]["code"]: c["value"]
                         for c in r.get("dateCriterion", [])}
                frows.append([_code((r.get("vaccineCode") or [None])[0]),
                              dates.get("30980-7", ""), dates.get("30981-5", ""),
                              dates.get("59777-3", ""), dates.get("59778-1", ""),
                              _code(r.get("forecastStatus"))])
            lines += _table(frows, ["vaccine group", "due", "earliest", "latest", "overdue",
                                    "status"]) if frows else ["no forecast given"]
    for err in result.errors:
        lines.append(f"registry says: {err}")
    for warning in result.warnings:
        lines.append(f"warning: {warning}")
    return lines


def _patient(mrn: str, system: str, family: str | None, given: str | None,
             birth_date: str | None, sex: str | None) -> JSON:
    from mafhir.hl7v2.patients import close_lookup, default_lookup
    from mafhir.hl7v2.segments import GENDER

    patient: JSON | None = None
    if not (family and given and birth_date):
        lookup = default_lookup()
        try:
            patient = lookup(system, mrn) if lookup is not None else None
        finally:
            close_lookup(lookup)
    patient = dict(patient or {"resourceType": "Patient"})
    patient["identifier"] = [{"type": {"coding": [{"code": "MR"}]}, "system": system,
                              "value": mrn}, *[i for i in patient.get("identifier", [])
                                               if i.get("system") != system]]
    if family or given:
        patient["name"] = [{"use": "official", "family": family or "",
                            "given": (given or "").split()}]
    if birth_date:
        patient["birthDate"] = birth_date
    if sex:
        reverse = {v: k for k, v in GENDER.items()}
        patient["gender"] = reverse.get(sex.upper(), sex)
    return patient


@click.command("query")
@click.argument("name")
@click.option("--patient", "mrn", required=True, help="The patient's MRN (the clinic's).")
@click.option("--forecast", is_flag=True,
              help="Ask for the evaluated history and forecast (Z44) instead of the history "
                   "(Z34).")
@click.option("--json", "as_json", is_flag=True, help="Print the FHIR Bundle.")
@click.option("--family", default=None, help="Family name (else from the clinic's store).")
@click.option("--given", default=None, help="Given name(s).")
@click.option("--birth-date", default=None, help="Birth date YYYY-MM-DD.")
@click.option("--sex", default=None, help="F, M, O or U.")
@click.option("--config", "config_path", default=None, metavar="PATH",
              help="mafhir.toml to read [iis.NAME] from (default: $MAFHIR_CONFIG, "
                   "./mafhir.toml).")
@clinic_option
def query_command(name: str, mrn: str, forecast: bool, as_json: bool, family: str | None,
                  given: str | None, birth_date: str | None, sex: str | None,
                  config_path: str | None, clinic_path: str | None) -> None:
    """What registry NAME knows about a patient: history, or history and forecast."""
    from mafhir import io
    from mafhir.clinic import load_clinic
    from mafhir.context import MapContext
    from mafhir.hl7v2 import V2Context

    from .asking import ask_registry
    from .config import load_iis

    try:
        config = load_iis(name, Path(config_path) if config_path else None)
        clinic = load_clinic(clinic_path)
        patient = _patient(mrn, clinic.mrn_namespace, family, given, birth_date, sex)
        result = ask_registry(config, patient, "Z44" if forecast else "Z34",
                              V2Context(map=MapContext(clinic=clinic)))
    except MafhirError as exc:
        for line in (str(p) for p in exc.problems) if exc.problems else [str(exc)]:
            click.echo(f"error: {line}", err=True)
        sys.exit(exit_code(exc))
    if as_json:
        click.echo(io.dumps(result.bundle, pretty=True).decode())
    else:
        for line in render(result, forecast):
            click.echo(line)
    if result.outcome != "found":
        sys.exit(1)
