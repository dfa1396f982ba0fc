"""The demo's clinic day, sent with ``mafhir send`` to a server of its own and read back with
``mafhir pull --tasks``; every expectation is read from fixtures/clinic-day/day.ndjson.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir.testing import FaultProxy, FhirServer

DAY_DIR = Path(__file__).resolve().parents[3] / "fixtures" / "clinic-day"
DAY = "2026-11-27"

#: the final action of an appointment → the action its stored state reads back as (by hand,
#: from the mapping reference: book, confirm and reschedule all leave it ``booked``)
READ_BACK = {"book": "book", "confirm": "book", "reschedule": "book", "cancel": "cancel",
             "no_show": "no_show", "check_in": "check_in", "start": "start",
             "complete": "complete"}


def run(*args: str) -> tuple[int, str, bytes]:
    result = CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)
    return result.exit_code, result.stderr, result.stdout_bytes


def ndjson(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def fixture_tasks() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DAY_DIR / "day.ndjson").read_text().splitlines()
            if line.strip()]


def valid(task: dict[str, Any]) -> bool:
    """The day's one invalid task (a time without a UTC offset) is skipped on sending."""
    when = task.get("effective") or task.get("occurred") or ""
    return not (when and "T" in when and when[-6] not in "+-" and not when.endswith("Z"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def base(fresh_fhir_server: FhirServer) -> str:
    """A server holding exactly the demo day, sent once (and once more: idempotent)."""
    url = fresh_fhir_server.base_url
    args = ("send", "--to", url, "--clinic", str(DAY_DIR / "clinic.json"), "--skip-invalid",
            str(DAY_DIR / "day.ndjson"))
    code, err, _ = run(*args)
    assert code == 0, err
    assert "skipped: task[58].effective" in err and "201 Created" in err
    code, err, _ = run(*args)
    # nothing created the second time (the day happens to hold 201 resources: the status,
    # not the number, is what must be absent)
    assert code == 0 and "201 Created" not in err and "200 OK" in err, err
    return url


CLINIC = json.loads((DAY_DIR / "clinic.json").read_text())["system"]


def total(base: str, rtype: str, system: str) -> int:
    """How many ``rtype`` carry an identifier in ``system`` (the day's own namespaces)."""
    r = requests.get(f"{base}/{rtype}", params={"_summary": "count",
                                                 "identifier": f"{system}|"}, timeout=30)
    assert r.status_code == 200
    return int(r.json()["total"])


def test_each_resource_stored_once(base: str):
    tasks = [t for t in fixture_tasks() if valid(t)]
    appointments = {t["appointment_id"] for t in tasks if t["task"] == "appointment"}
    assert total(base, "Appointment", f"{CLINIC}/appointment") == len(appointments) == 12
    assert total(base, "Patient", f"{CLINIC}/mrn") == len({t["patient"]["mrn"] for t in tasks})
    assert total(base, "Immunization", f"{CLINIC}/immunization") == \
        sum(t["task"] == "immunization" for t in tasks)
    # one Encounter per visit that was checked in
    assert total(base, "Encounter", f"{CLINIC}/encounter") == len({t["appointment_id"]
                                                                   for t in tasks
                                            if t["task"] == "appointment" and
                                            t["action"] in ("check_in", "start", "complete")})


def test_schedule_as_tasks_matches_the_day(base: str):
    final: dict[str, dict[str, Any]] = {}
    for t in fixture_tasks():
        if t["task"] == "appointment" and t["start"].startswith(DAY):
            final[t["appointment_id"]] = t  # the last task of each appointment wins
    code, err, out = run("pull", "--from", base, "schedule", "--date", DAY, "--tasks")
    assert code == 0, err
    assert "Traceback" not in err
    got = {t["appointment_id"]: t for t in ndjson(out)}
    assert sorted(got) == sorted(final)
    for aid, want in final.items():
        task = got[aid]
        assert task["task"] == "appointment"
        assert task["action"] == READ_BACK[want["action"]], aid
        assert at(task["start"]) == at(want["start"]), aid
        assert task["practitioner"]["npi"] == want["practitioner"]["npi"], aid
        assert task["patient"]["mrn"] == want["patient"]["mrn"], aid
        if want["action"] == "complete":
            assert at(task["at"]) == at(want["at"])
            assert at(task["checked_in_at"]) == at(want["checked_in_at"])
            assert at(task["started_at"]) == at(want["started_at"])
        if want["action"] == "cancel":
            assert task["cancel_reason"] == want["cancel_reason"]
    # the NPI filter keeps only that practitioner's appointments
    code, _, out = run("pull", "--from", base, "schedule", "--date", DAY, "--practitioner",
                       "1932102084", "--tasks")
    assert code == 0
    assert sorted(t["appointment_id"] for t in ndjson(out)) == sorted(
        aid for aid, t in final.items() if t["practitioner"]["npi"] == "1932102084")


def test_schedule_by_location_paged(base: str):
    """``--location system|value`` (the clinic's location namespace) and ``--count 1``: the
    day's appointments in Exam Room 2, one per page through next links."""
    final: dict[str, dict[str, Any]] = {}
    for t in fixture_tasks():
        if t["task"] == "appointment" and t["start"].startswith(DAY):
            final[t["appointment_id"]] = t
    want = sorted(a for a, t in final.items() if t["location"]["id"] == "exam-2")
    with FaultProxy(base) as proxy:
        code, err, out = run("pull", "--from", proxy.base_url, "schedule", "--date", DAY,
                             "--location", f"{CLINIC}/location|exam-2", "--count", "1",
                             "--tasks")
        pages = proxy.requests("GET", "/Appointment")
    assert code == 0, err
    assert sorted(t["appointment_id"] for t in ndjson(out)) == want
    assert len(want) == 2 and len(pages) == 2  # includes ride along; matches are paged


def test_schedule_as_resources_includes_encounters(base: str):
    day = [t for t in fixture_tasks() if t["task"] == "appointment" and
           t["start"].startswith(DAY)]
    code, _, out = run("pull", "--from", base, "schedule", "--date", DAY)
    assert code == 0
    kinds = Counter(r["resourceType"] for r in ndjson(out))
    assert kinds["Appointment"] == len({t["appointment_id"] for t in day})
    assert kinds["Encounter"] == len({t["appointment_id"] for t in day
                                      if t["action"] in ("check_in", "start", "complete")})
    assert kinds["Patient"] == len({t["patient"]["mrn"] for t in day})
    assert kinds["Practitioner"] == len({t["practitioner"]["npi"] for t in day})
    assert kinds["Location"] == len({t["location"]["id"] for t in day})


def test_unmappable_appointment_is_named_and_the_rest_written(base: str):
    """A fulfilled Appointment from elsewhere, without its Encounter, next to a good one."""
    mrn_system = f"urn:mafhir:test:{uuid.uuid4()}"

    def post(resource: dict[str, Any]) -> str:
        r = requests.post(f"{base}/{resource['resourceType']}", json=resource, timeout=30,
                          headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 201, r.text
        return f"{resource['resourceType']}/{r.json()['id']}"

    pid = post({"resourceType": "Patient", "identifier": [{"system": mrn_system,
                                                           "value": "MS-90001"}],
                "name": [{"family": "Thistlewood", "given": ["Bram"]}], "gender": "male",
                "birthDate": "1970-01-01"})

    def appointment(status: str) -> dict[str, Any]:
        return {"resourceType": "Appointment", "status": status,
                "start": "2026-11-28T09:00:00-05:00", "end": "2026-11-28T09:20:00-05:00",
                "participant": [{"actor": {"reference": pid}, "status": "accepted"}]}

    good = post(appointment("booked"))
    bad = post(appointment("fulfilled"))
    code, err, out = run("pull", "--from", base, "schedule", "--date", "2026-11-28", "--tasks")
    assert code == 1
    assert "Traceback" not in err
    assert f"cannot map {bad}: " in err and "no Encounter" in err
    assert good not in err
    assert "Thistlewood" not in err and "MS-90001" not in err  # no PHI in the report
    tasks = ndjson(out)
    assert [(t["appointment_id"], t["action"]) for t in tasks] == [(good.split("/")[1], "book")]


def _by_patient(kind: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for t in fixture_tasks():
        if t["task"] == kind and valid(t):
            out.setdefault(t["patient"]["mrn"], []).append(t)
    return out


def test_immunizations_as_tasks(base: str):
    for mrn, sent in _by_patient("immunization").items():
        code, err, out = run("pull", "--from", base, "immunizations", "--patient", mrn,
                             "--tasks")
        assert code == 0, err
        got = {t["id"]: t for t in ndjson(out)}
        assert sorted(got) == sorted(t["id"] for t in sent), mrn
        for want in sent:
            task = got[want["id"]]
            assert task["status"] == want.get("status", "given")
            assert task["vaccine"]["cvx"] == want["vaccine"]["cvx"]
            assert task["patient"]["mrn"] == mrn
            for key in ("lot_number", "expiration_date", "manufacturer", "site", "route",
                        "visit", "reason_not_given", "report_origin", "occurred_date",
                        "funding_source", "eligibility", "note"):
                assert task.get(key) == want.get(key), (want["id"], key)
            if "occurred" in want:
                assert at(task["occurred"]) == at(want["occurred"])
            if "dose_ml" in want:
                assert Decimal(str(task["dose_ml"])) == Decimal(str(want["dose_ml"]))
            for role in ("administered_by", "ordered_by"):
                assert (task.get(role) or {}).get("npi") == (want.get(role) or {}).get("npi")
            for key in ("document", "document_type"):  # a barcode, or the CDC type's name
                assert [v.get(key) for v in task["vis"]] == \
                    [v.get(key) for v in want.get("vis", [])]


def _quantity(entry: dict[str, Any]) -> tuple[Decimal, str]:
    if "lb" in entry:  # an infant weight in lb + oz is written as decimal pounds
        return Decimal(entry["lb"]) + Decimal(entry.get("oz", 0)) / 16, "[lb_av]"
    return Decimal(str(entry["value"])), entry["unit"]


def test_vitals_as_tasks(base: str):
    for mrn, sent in _by_patient("vitals").items():
        code, err, out = run("pull", "--from", base, "vitals", "--patient", mrn, "--tasks")
        assert code == 0, err
        got = {t["id"]: t for t in ndjson(out)}
        assert sorted(got) == sorted(t["id"] for t in sent), mrn
        for want in sent:
            task = got[want["id"]]
            assert at(task["effective"]) == at(want["effective"])
            assert task.get("visit") == want.get("visit")
            assert (task.get("performer") or {}).get("npi") == \
                (want.get("performer") or {}).get("npi")
            for key in ("heart_rate", "respiratory_rate", "spo2"):
                if key in want:
                    assert task[key]["value"] == want[key]["value"], (want["id"], key)
                else:
                    assert key not in task
            if "spo2" in want and "o2_flow" in want["spo2"]:
                assert task["spo2"]["o2_flow"] == want["spo2"]["o2_flow"]
            for key in ("height", "weight", "temperature", "head_circumference"):
                if key in want:
                    value, unit = _quantity(want[key])
                    assert (Decimal(str(task[key]["value"])), task[key]["unit"]) == \
                        (value, unit), (want["id"], key)
                else:
                    assert key not in task
            if "temperature" in want and "site" in want["temperature"]:
                assert task["temperature"]["site"] == want["temperature"]["site"]
            bp = want.get("blood_pressure")
            if bp and "systolic" in bp:
                assert (task["blood_pressure"]["systolic"],
                        task["blood_pressure"]["diastolic"]) == (bp["systolic"], bp["diastolic"])
                for key in ("position", "cuff_site"):
                    assert task["blood_pressure"].get(key) == bp.get(key)
            elif bp:
                assert task["blood_pressure"]["not_obtained"] == bp["not_obtained"]
            if "pain" in want:
                assert task["pain"]["score"] == want["pain"]["score"]
            assert "bmi" not in task  # derived: recomputed when mapped again


def test_coverage_as_tasks(base: str):
    for mrn, sent in _by_patient("coverage").items():
        code, err, out = run("pull", "--from", base, "coverage", "--patient", mrn, "--tasks")
        assert code == 0, err
        got = {t["id"]: t for t in ndjson(out)}
        assert sorted(got) == sorted(t["id"] for t in sent), mrn
        for want in sent:
            task = got[want["id"]]
            assert task["member_id"] == want["member_id"]
            assert task["payer"] == want["payer"]
            assert task["subscriber"]["relationship"] == want["subscriber"]["relationship"]
            assert task["period"] == want["period"]
            assert task.get("order") == want.get("order")
            assert task.get("payer_type") == want.get("payer_type")
            for key in ("group", "plan"):
                assert (task.get(key) or {}).get("id") == (want.get(key) or {}).get("id")
            copays = {k: Decimal(str(v)) for k, v in (task.get("copays") or {}).items()}
            assert copays == {k: Decimal(str(v)) for k, v in (want.get("copays") or {}).items()}
            elig, wel = task["eligibility"], want["eligibility"]
            assert at(elig["checked_at"]) == at(wel["checked_at"])
            assert elig["active"] is wel["active"]
            for key in ("copay", "coinsurance_percent"):
                assert (Decimal(str(elig[key])) if key in elig else None) == \
                    (Decimal(str(wel[key])) if key in wel else None), (want["id"], key)
            if "deductible" in wel:
                assert {k: Decimal(str(v)) for k, v in elig["deductible"].items()} == \
                    {k: Decimal(str(v)) for k, v in wel["deductible"].items()}


def test_tasks_for_a_read_without_a_task_kind_is_refused(base: str):
    code, err, out = run("pull", "--from", base, "allergies", "--patient", "MS-10024",
                         "--tasks")
    assert code == 2 and "--tasks works with" in err and out == b""


def test_schedule_comes_earliest_first(base: str):
    code, _, out = run("pull", "--from", base, "schedule", "--date", DAY, "--tasks")
    starts = [at(t["start"]) for t in ndjson(out)]
    assert code == 0 and len(starts) == 11 and starts == sorted(starts)


def test_pull_cache_keeps_the_schedule_in_the_local_store(base: str, tmp_path: Path) -> None:
    """``--cache`` stores what was read with the server's ids; pulling again adds nothing."""
    from mafhir.outbox.local import LocalStore

    cache = tmp_path / "cache.db"
    expected = {t["appointment_id"] for t in fixture_tasks()
                if t["task"] == "appointment" and t["start"].startswith(DAY)}
    for _ in range(2):
        code, err, raw = run("pull", "--from", base, "schedule", "--date", DAY,
                             "--cache", str(cache))
        assert code == 0, err
    pulled = ndjson(raw)
    store = LocalStore(cache)
    try:
        appointments = list(store.search("Appointment"))
        assert {a["identifier"][0]["value"] for a in appointments} == expected
        assert len(appointments) == len(expected)  # the second pull replaced, not added
        assert {r["id"] for r in appointments} == {
            r["id"] for r in pulled if r["resourceType"] == "Appointment"}
        for appointment in appointments:  # the included patients resolve locally
            (patient,) = [p["actor"]["reference"] for p in appointment["participant"]
                          if p["actor"]["reference"].startswith("Patient/")]
            assert store.read("Patient", patient.split("/")[1]) is not None
    finally:
        store.close()


def _as_sent(model: Any, want: dict[str, Any], got: Any) -> Any:
    """The task as sent, read as the model; the patient as the server knows them (the day
    sends demographics once), screening totals dropped (derived data, recomputed)."""
    task = model.model_validate(want)
    update: dict[str, Any] = {"patient": got.patient}
    if hasattr(task, "screenings"):
        update["screenings"] = [s.model_copy(update={"total": None}) for s in task.screenings]
    return task.model_copy(update=update)


@pytest.mark.parametrize(("what", "kind"), [("intake", "intake"), ("injections", "injection")])
def test_intake_and_injections_as_tasks(base: str, what: str, kind: str):
    from mafhir.plugins import get_registry

    model = get_registry().mapper(kind).model
    for mrn, sent in _by_patient(kind).items():
        code, err, out = run("pull", "--from", base, what, "--patient", mrn, "--tasks")
        assert code == 0, err
        got = {t["id"]: model.model_validate(t) for t in ndjson(out)}
        assert sorted(got) == sorted(t["id"] for t in sent), mrn
        for want in sent:
            task = got[want["id"]]
            assert task.patient.mrn == mrn
            assert task == _as_sent(model, want, task), want["id"]


def test_intake_and_injections_as_resources(base: str):
    """Without --tasks: the resources themselves (June: a sulfonamide allergy, two reported
    meds, a problem, smoking, the PHQ-9 panel of 12 Observations; one B12 shot)."""
    code, err, out = run("pull", "--from", base, "intake", "--patient", "MS-10023")
    assert code == 0, err
    kinds: dict[str, int] = {}
    for r in ndjson(out):
        kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
    assert kinds == {"AllergyIntolerance": 1, "MedicationRequest": 2, "Condition": 1,
                     "Observation": 1 + 12}
    code, err, out = run("pull", "--from", base, "injections", "--patient", "MS-10023")
    assert code == 0, err
    assert [r["resourceType"] for r in ndjson(out)] == ["MedicationAdministration"]


@pytest.mark.parametrize("what, kind", [("poc-tests", "poc_test"), ("ekgs", "ekg"),
                                        ("skin-tests", "skin_test")])
def test_results_as_tasks(base: str, what: str, kind: str):
    """Point-of-care tests, EKGs and skin tests come back as the tasks sent (the last one
    sent of each id: the EKG sent unsigned and then signed reads back signed)."""
    from mafhir.plugins import get_registry

    model = get_registry().mapper(kind).model
    sent = {mrn: {t["id"]: t for t in tasks} for mrn, tasks in _by_patient(kind).items()}
    assert sent
    for mrn, tasks in sent.items():
        code, err, out = run("pull", "--from", base, what, "--patient", mrn, "--tasks")
        assert code == 0, err
        got = {t["id"]: t for t in ndjson(out)}
        assert sorted(got) == sorted(tasks), mrn
        for task_id, want in tasks.items():
            assert got[task_id]["patient"]["mrn"] == mrn
            # the patient reads back with the demographics the server holds
            back = model.model_validate(got[task_id]).model_copy(update={"patient": None})
            assert back == model.model_validate(want).model_copy(update={"patient": None})
