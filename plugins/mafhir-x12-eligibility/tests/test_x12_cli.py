"""What the MA runs: ``mafhir eligibility check``, and ``mafhir convert`` from and to X12."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fhir.resources.R4B import get_fhir_model_class
from helpers_x12 import clinic_ctx, coverage_task

from mafhir.cli.main import build_cli
from mafhir.io import loads
from mafhir_x12_eligibility.segments import parse_interchange
from mafhir_x12_eligibility.validate import pyx12_problems


class Clinic:
    """A clinic with a local store holding patients' cards, and a mafhir.toml."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp = tmp
        self.clinic = tmp / "clinic.json"
        self.clinic.write_text(clinic_ctx().clinic.model_dump_json())
        self.store = tmp / "store.db"
        self.config = tmp / "mafhir.toml"
        self.config.write_text(
            '[x12]\nsender_id = "CLINIC01"\nprovider_npi = "1234567893"\n'
            f'provider_name = "Maple"\ncontrol_db = "{tmp / "control.db"}"\n\n'
            f'[x12.acme]\nurl = "{url}"\nreceiver_id = "ACMECH"\n')
        self.env = {"MAFHIR_CONFIG": str(self.config), "MAFHIR_OUTBOX": str(tmp / "out.db"),
                    "MAFHIR_CLINIC": str(self.clinic)}

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(build_cli(), list(args), env=self.env,
                                  catch_exceptions=False)

    def card(self, member: str, mrn: str, relationship: str = "self") -> None:
        """The MA scanned a card (no check yet): it goes to the local store."""
        task = coverage_task(member, relationship, mrn=mrn)
        del task["eligibility"]
        source = self.tmp / f"card-{mrn}.json"
        source.write_text(json.dumps(task))
        out = self.run("sync", str(source), "--to", f"local:{self.store}", "--db",
                       str(self.tmp / "cards.db"), "--no-progress")
        assert out.exit_code == 0, out.output

    def check(self, mrn: str, *extra: str) -> Result:
        return self.run("eligibility", "check", "--patient", mrn, "--payer", "60054",
                        "--to", "acme", "--store", str(self.store), "--service-type", "98",
                        "--date", "2026-03-04", *extra)


@pytest.fixture
def clinic(tmp_path, standin) -> Clinic:
    return Clinic(tmp_path, standin.url)


def test_check_prints_what_the_ma_needs(clinic, standin):
    clinic.card("ACTIVE01", "M1")
    out = clinic.check("M1")
    assert out.exit_code == 0, out.output
    # the stand-in's ACTIVE01 (standin.py), read by hand
    assert out.output.splitlines() == [
        "Coverage: ACTIVE (GOLD PPO 1500)",
        "Plan dates: 2026-01-01 to 2026-12-31",
        "Office visit copay: $25.00",
        "Deductible left: $150.00 of $1500.00",
        "Coinsurance: 20 %",
        "Out of pocket left: $4200.00",
        "Payer note: PRIOR AUTHORIZATION REQUIRED FOR IMAGING",
        "Payer has a different period: update the card",  # the card carries no dates
    ]
    assert standin.requests[0]["answer"] == "X12_271_Response_005010X279A1"


def test_check_json_is_the_fhir(clinic):
    clinic.card("MET01", "M2")
    out = clinic.check("M2", "--json")
    assert out.exit_code == 0, out.output
    bundle = loads(out.stdout_bytes)
    request, response, card = (e["resource"] for e in bundle["entry"])
    assert card["resourceType"] == "Coverage" and card["period"] == {"start": "2026-01-01"}
    for resource in (request, response, card):
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert response["insurance"][0]["inforce"] is True
    deductible = next(b for i in response["insurance"][0]["item"] for b in i.get("benefit", [])
                      if b["type"]["coding"][0]["code"] == "deductible")
    assert str(deductible["allowedMoney"]["value"]) == "1500.00"
    assert str(deductible["usedMoney"]["value"]) == "1500.00"  # 0.00 left: all used


@pytest.mark.parametrize(("member", "code", "text"), [
    ("NOBODY01", 1, "AAA 75 Subscriber/Insured Not Found"),
    ("BUSY01", 75, "AAA 42 Unable to Respond at Current Time"),
])
def test_check_refusals_say_why_and_exit_accordingly(clinic, member, code, text):
    clinic.card(member, "M3")
    out = clinic.check("M3")
    assert out.exit_code == code, out.output
    assert text in out.output and len(out.output.splitlines()) == 1


def test_check_names_what_is_missing(clinic):
    out = clinic.check("NO-SUCH-MRN")
    assert out.exit_code == 2
    assert "--patient: no patient with this MRN" in out.output


def test_convert_from_x12(clinic, corpus):
    out = clinic.run("convert", "--from", "x12",
                     str(corpus / "x12/271/imsweb-x12-parser/x271.txt"))
    assert out.exit_code == 0, out.output
    bundle = loads(out.stdout_bytes)
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types.count("CoverageEligibilityResponse") == 1 and "Coverage" in types


def test_convert_to_x12_270(clinic, tmp_path):
    task = tmp_path / "task.json"
    task.write_text(json.dumps(coverage_task("ACTIVE01", "spouse")))
    out = clinic.run("convert", "--to", "x12", "--message", "270", str(task))
    assert out.exit_code == 2  # [x12] alone names no receiver: the partner is needed
    assert "x12.default.receiver_id: Field required" in out.output
    clinic.env["MAFHIR_X12_PARTNER"] = "acme"
    out = clinic.run("convert", "--to", "x12", "--message", "270", str(task))
    assert out.exit_code == 0, out.output
    assert pyx12_problems(out.output) == []
    ic = parse_interchange(out.output)
    assert ic.transactions[0].code == "270" and ic.receiver == "ACMECH"


def test_convert_from_an_unknown_format_is_a_usage_error(clinic, tmp_path):
    out = clinic.run("convert", "--from", "edifact", str(tmp_path / "x"))
    assert out.exit_code == 2 and "no converter for format 'edifact'" in out.output
