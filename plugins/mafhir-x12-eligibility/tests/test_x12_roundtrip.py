"""Round trip on real sockets: coverage tasks → ``mafhir sync --to x12:NAME`` → 270 over CORE
(SOAP and MIME) → the stand-in → 271 → the answer kept with the outbox item."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fhir.resources.R4B import get_fhir_model_class
from helpers_x12 import clinic_ctx, coverage_task

from mafhir.cli.main import build_cli
from mafhir.outbox import open_store
from mafhir_x12_eligibility.standin import Standin


class Setup:
    """A clinic, a mafhir.toml naming the stand-in, and ``sync`` run as a real process."""

    def __init__(self, tmp: Path, standin: Standin, envelope: str = "soap") -> None:
        self.tmp = tmp
        self.db = str(tmp / "outbox.db")
        self.clinic = tmp / "clinic.json"
        self.clinic.write_text(clinic_ctx().clinic.model_dump_json())
        self.config = tmp / "mafhir.toml"
        self.config.write_text(
            '[x12]\nsender_id = "CLINIC01"\nprovider_npi = "1234567893"\n'
            'provider_name = "Maple Street Family Clinic"\n\n'
            f'[x12.acme]\nurl = "{standin.url}"\nreceiver_id = "ACMECH"\n'
            f'envelope = "{envelope}"\ntimeout = 5.0\n')
        self.env = {"MAFHIR_CONFIG": str(self.config), "MAFHIR_OUTBOX": self.db,
                    "MAFHIR_PATIENTS": f"local:{tmp / 'store.db'}"}

    def run(self, *args: str) -> Result:
        """The mafhir command line, in this process (the sockets are real all the same)."""
        return CliRunner().invoke(build_cli(), list(args), env=self.env, catch_exceptions=False)

    def sync(self, tasks: list[dict], *extra: str) -> Result:
        source = self.tmp / f"tasks-{len(list(self.tmp.glob('tasks-*')))}.ndjson"
        source.write_text("".join(json.dumps(t) + "\n" for t in tasks))
        return self.run("sync", str(source), "--db", self.db, "--to", "x12:acme",
                        "--clinic", str(self.clinic), "--retry-base", "0.05", "--no-progress",
                        "--json", *extra)

    def show(self, item_id: int) -> dict:
        out = self.run("eligibility", "show", str(item_id), "--db", self.db, "--json")
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)


@pytest.mark.parametrize("envelope", ["soap", "mime"])
def test_round_trip_over_core(tmp_path, standin, envelope):
    setup = Setup(tmp_path, standin, envelope)
    tasks = [coverage_task("ACTIVE01", mrn="M1"), coverage_task("DEPEND01", "child", mrn="M2"),
             coverage_task("INACTIVE01", mrn="M3"), coverage_task("MET01", mrn="M4")]
    run = setup.sync(tasks)
    assert run.exit_code == 0, run.output
    assert [r["envelope"] for r in standin.requests] == [envelope] * 4
    assert {r["answer"] for r in standin.requests} == {"X12_271_Response_005010X279A1"}
    controls = [int(r["control"]) for r in standin.requests]
    assert sorted(controls) == [1, 2, 3, 4]  # from the durable counter, none repeated

    store = open_store(setup.db)
    try:
        delivered = {json.loads(i.payload)["entry"][-1]["resource"]["identifier"][0]["value"]:
                     i.id for i in store.items_in("delivered")}
        responses = {i: [json.loads(a["resource"]) for a in store.audit_of(i)
                         if a["resource_type"] == "CoverageEligibilityResponse"]
                     for i in delivered.values()}
    finally:
        store.close()
    assert len(delivered) == 4
    by_member = {t["member_id"]: setup.show(delivered[t["id"]]) for t in tasks}
    # the stand-in's member table (standin.py), read by hand
    active = by_member["ACTIVE01"]
    assert (active["active"], active["office_copay"], active["deductible"],
            active["deductible_remaining"], active["coinsurance_percent"]) == \
        (True, "25.00", "1500.00", "150.00", "20")
    assert (active["plan_start"], active["plan_end"]) == ("2026-01-01", "2026-12-31")
    assert active["messages"] == ["PRIOR AUTHORIZATION REQUIRED FOR IMAGING"]
    assert by_member["DEPEND01"]["office_copay"] == "40.00"
    assert by_member["DEPEND01"]["active"] is True
    assert by_member["INACTIVE01"]["active"] is False
    assert by_member["INACTIVE01"]["plan_end"] == "2025-12-31"
    assert by_member["MET01"]["deductible_remaining"] == "0.00"
    for kept in responses.values():
        assert len(kept) == 1 and kept[0]["outcome"] == "complete"
        get_fhir_model_class("CoverageEligibilityResponse").model_validate(kept[0])


def test_aaa_42_is_retried_then_delivered(tmp_path, standin):
    setup = Setup(tmp_path, standin)
    run = setup.sync([coverage_task("BUSY01")])
    assert run.exit_code == 0, run.output
    assert len(standin.requests) == 2  # AAA 42, then the answer
    first, second = (int(r["control"]) for r in standin.requests)
    assert second > first  # the retry is a new interchange: a control number never reused
    store = open_store(setup.db)
    try:
        (item,) = store.items_in("delivered")
        results = [a["result"] for a in store.attempts_of(item.id)]
        errors = [a["error"] or "" for a in store.attempts_of(item.id)]
    finally:
        store.close()
    assert results == ["retry", "sent"]
    assert "42 Unable to Respond at Current Time" in errors[0]
    assert setup.show(item.id)["active"] is True


def test_aaa_72_is_dead_lettered_with_its_meaning(tmp_path, standin):
    setup = Setup(tmp_path, standin)
    run = setup.sync([coverage_task("bad-id")])
    assert run.exit_code == 1
    assert len(standin.requests) == 1  # permanent: not retried
    dead = setup.run("outbox", "dead", "--db", setup.db, "--json")
    (letter,) = json.loads(dead.stdout)
    assert "AAA 72 Invalid/Missing Subscriber/Insured ID" in letter["reason"]
    assert letter["code"] == "business-rule"


def test_http_503_is_retried_and_each_try_has_its_own_control_number(tmp_path, standin):
    standin.fail_next(503, times=2)
    setup = Setup(tmp_path, standin)
    run = setup.sync([coverage_task("ACTIVE01")])
    assert run.exit_code == 0, run.output
    assert [r["status"] for r in standin.requests] == [503, 503, 200]
    controls = [int(r["control"]) for r in standin.requests if r.get("control")]
    assert controls == sorted(set(controls))


def test_http_400_is_permanent_with_the_reason(tmp_path, standin):
    standin.fail_next(400)
    setup = Setup(tmp_path, standin)
    run = setup.sync([coverage_task("ACTIVE01")])
    assert run.exit_code == 1
    assert len(standin.requests) == 1
    store = open_store(setup.db)
    try:
        (item,) = store.items_in("dead")
    finally:
        store.close()
    assert "HTTP 400" in item.reason and "told to fail" in item.reason


def test_a_slow_answer_times_out_and_is_retried(tmp_path, standin):
    standin.slow_next(3.0)
    setup = Setup(tmp_path, standin)
    run = setup.sync([coverage_task("ACTIVE01")], "--timeout", "1")
    assert run.exit_code == 0, run.output
    assert len(standin.requests) == 2
    store = open_store(setup.db)
    try:
        (item,) = store.items_in("delivered")
        first = store.attempts_of(item.id)[0]
    finally:
        store.close()
    assert first["result"] == "retry" and "did not answer" in first["error"]
