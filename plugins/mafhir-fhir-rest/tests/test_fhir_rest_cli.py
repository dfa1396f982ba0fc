"""``mafhir send`` and ``mafhir pull`` against the real server, with mapped tasks."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir.testing import Fault, FaultProxy

NPI = "1245319599"


@pytest.fixture
def day(tmp_path: Path) -> dict:
    """A small clinic day in its own identifier namespace (so counts are exact)."""
    system = f"https://clinic-{uuid.uuid4().hex[:10]}.example.org/fhir/id"
    (tmp_path / "clinic.json").write_text(json.dumps(
        {"name": "Test Clinic", "system": system, "npi": "1234567893"}))
    mrn = {"mrn": "MS-555", "system": f"{system}/mrn"}
    who = {**mrn, "family": "Quillfeather", "given": ["Rosa"], "gender": "female",
           "birth_date": "1984-07-19"}
    tasks = [
        {"task": "appointment", "id": "a-1-book", "appointment_id": "a-1", "action": "book",
         "patient": who, "start": "2026-11-27T10:30:00-05:00",
         "end": "2026-11-27T10:50:00-05:00",
         "practitioner": {"npi": NPI, "family": "Okafor", "given": ["Grace"]},
         "location": {"id": "exam-1", "name": "Exam Room 1"}, "reason": "Cough"},
        {"task": "vitals", "id": "v-1", "patient": mrn, "effective": "2026-11-27T10:35:00-05:00",
         "heart_rate": {"value": 88}},
        {"task": "immunization", "id": "i-1", "patient": mrn,
         "occurred": "2026-11-27T10:45:00-05:00", "vaccine": {"cvx": "20"},
         "manufacturer": "SKB", "lot_number": "3K7X2", "expiration_date": "2027-02-28",
         "dose_ml": 0.5, "site": "LT", "route": "IM",
         "administered_by": {"npi": "1467560003", "family": "Patel", "given": ["Priya"]},
         "vis": [{"document": "253088698300026411230724", "published": "2023-07-24",
                  "presented": "2026-11-27"}]},
        {"task": "coverage", "id": "c-1", "patient": who, "payer": {"id": "60054",
                                                                 "name": "Aetna"},
         "member_id": "W284619035", "subscriber": {"relationship": "self"},
         "period": {"start": "2026-01-01"}},
    ]
    (tmp_path / "tasks.ndjson").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return {"dir": tmp_path, "system": system, "mrn": f"{system}/mrn|MS-555"}


def run(*args: str) -> tuple[int, str, bytes]:
    result = CliRunner().invoke(build_cli(), list(args), catch_exceptions=False)
    return result.exit_code, result.stderr, result.stdout_bytes


def ndjson(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def test_send_tasks_then_pull_everything(fhir_base_url: str, day: dict):
    d = day["dir"]
    code, err, _ = run("send", "--to", fhir_base_url, "--clinic", str(d / "clinic.json"),
                       str(d / "tasks.ndjson"))
    assert code == 0, err
    assert "by transaction" in err and "201 Created" in err
    code, err, _ = run("send", "--to", fhir_base_url, "--clinic", str(d / "clinic.json"),
                       str(d / "tasks.ndjson"))
    assert code == 0 and "201" not in err and "200 OK" in err  # nothing new made

    code, _, out = run("pull", "--from", fhir_base_url, "patient", "--patient", day["mrn"])
    patients = ndjson(out)
    assert code == 0 and len(patients) == 1
    assert patients[0]["name"][0]["family"] == "Quillfeather"
    code, _, out = run("pull", "--from", fhir_base_url, "patient", "--family", "Quillfeather",
                       "--birthdate", "1984-07-19")
    assert patients[0]["id"] in {p["id"] for p in ndjson(out)}

    _, _, out = run("pull", "--from", fhir_base_url, "immunizations", "--patient", day["mrn"])
    imms = ndjson(out)
    assert [c["code"] for i in imms for c in i["vaccineCode"]["coding"]
            if c["system"] == "http://hl7.org/fhir/sid/cvx"] == ["20"]
    _, _, out = run("pull", "--from", fhir_base_url, "vitals", "--patient", day["mrn"],
                    "--since", "2026-11-01")
    hr = [o for o in ndjson(out) if o["code"]["coding"][0]["code"] == "8867-4"]
    assert [o["valueQuantity"]["value"] for o in hr] == [88]
    _, _, out = run("pull", "--from", fhir_base_url, "coverage", "--patient", day["mrn"])
    assert [c["subscriberId"] for c in ndjson(out)] == ["W284619035"]

    code, err, out = run("pull", "--from", fhir_base_url, "schedule", "--date", "2026-11-27",
                         "--practitioner", NPI, "--tasks")
    assert code == 0, err
    mine = [t for t in ndjson(out) if t.get("appointment_id") == "a-1"]
    assert len(mine) == 1
    assert mine[0]["start"].startswith("2026-11-27T10:30:00")
    assert mine[0]["patient"]["mrn"] == "MS-555"
    assert mine[0]["practitioner"]["npi"] == NPI
    _, _, out = run("pull", "--from", fhir_base_url, "schedule", "--date", "2026-11-27",
                    "--practitioner", NPI)
    types = {r["resourceType"] for r in ndjson(out)}
    assert {"Appointment", "Patient"} <= types  # patients came with _include


def test_send_rejected_bundle_names_the_entry(fhir_base_url: str, tmp_path: Path):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": {
            "resourceType": "Observation", "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}}]}
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    code, err, _ = run("send", "--to", fhir_base_url, str(tmp_path / "b.json"))
    assert code == 1
    assert "entry[0] Observation" in err and "Observation.status" in err


def test_send_invalid_tasks_sends_nothing(fhir_base_url: str, day: dict, tmp_path: Path):
    (tmp_path / "bad.ndjson").write_text(json.dumps(
        {"task": "vitals", "id": "v-x", "patient": {"mrn": "1"},
         "effective": "2026-11-27T10:35:00", "heart_rate": {"value": 88}}) + "\n")
    code, err, _ = run("send", "--to", fhir_base_url, str(tmp_path / "bad.ndjson"))
    assert code == 2 and "task[0].effective" in err and "sent" not in err


def test_named_destination_with_token_from_env(fhir_base_url: str, day: dict,
                                               monkeypatch: pytest.MonkeyPatch):
    secret = f"tok-{uuid.uuid4().hex}"
    d = day["dir"]
    with FaultProxy(fhir_base_url, auth_check=lambda h: h.get("Authorization")
                    == f"Bearer {secret}") as proxy:
        (d / "mafhir.toml").write_text(f'[destinations.ehr]\nurl = "{proxy.base_url}"\n'
                                       'auth = "bearer"\ntoken_env = "TEST_EHR_TOKEN"\n')
        monkeypatch.setenv("TEST_EHR_TOKEN", secret)
        code, err, out = run("send", "--to", "ehr", "--config", str(d / "mafhir.toml"),
                             "--clinic", str(d / "clinic.json"), str(d / "tasks.ndjson"))
        assert code == 0, err
        assert secret not in err and secret.encode() not in out
        monkeypatch.setenv("TEST_EHR_TOKEN", "wrong")
        code, err, _ = run("send", "--to", "ehr", "--config", str(d / "mafhir.toml"),
                           "--clinic", str(d / "clinic.json"), str(d / "tasks.ndjson"))
        assert code == 1 and "401" in err and "wrong" not in err


def test_unreachable_server_exits_75(tmp_path: Path):
    from mafhir.testing import free_port

    b = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    (tmp_path / "b.json").write_text(json.dumps(b))
    cfg = tmp_path / "mafhir.toml"
    cfg.write_text(f'[destinations.down]\nurl = "http://127.0.0.1:{free_port()}/fhir"\n'
                   'max_attempts = 1\n')
    code, err, _ = run("send", "--to", "down", "--config", str(cfg), str(tmp_path / "b.json"))
    assert code == 75 and "network failure" in err


def test_partial_delivery_reports_only_what_was_stored(fhir_base_url: str, tmp_path: Path):
    """Single requests are not atomic: the report counts exactly what the server kept."""
    from mafhir_fhir_rest.client import FhirClient

    from .helpers_fhir_rest import bundle, count

    system = f"urn:mafhir:test:{uuid.uuid4()}"
    (tmp_path / "b.json").write_text(json.dumps(bundle(system, n_obs=3, broken_at=1)))
    code, err, _ = run("send", "--to", fhir_base_url, "--mode", "single", str(tmp_path / "b.json"))
    assert code == 1
    assert "3 entr(y/ies) stored, 1 not (entries 2)" in err
    assert "(3 resource(s) were accepted" in err and "sent " not in err
    with FhirClient(fhir_base_url) as c:
        assert count(c, "Patient", system) + count(c, "Observation", system) == 3


def test_unreadable_transaction_answer_is_not_reported_as_sent(fhir_base_url: str,
                                                                tmp_path: Path):
    """A transaction-response without one entry per request: delivery unknown, not 'sent'."""
    from .helpers_fhir_rest import bundle

    def drop_last(body: dict) -> dict:
        body["entry"] = body.get("entry", [])[:-1]
        return body

    system = f"urn:mafhir:test:{uuid.uuid4()}"
    (tmp_path / "b.json").write_text(json.dumps(bundle(system, n_obs=2)))
    with FaultProxy(fhir_base_url) as proxy:
        proxy.add(Fault.rewrite_json(drop_last), method="POST")
        code, err, _ = run("send", "--to", proxy.base_url, str(tmp_path / "b.json"))
    assert code == 1
    assert "not a transaction-response with one entry per request; delivery unknown" in err
    assert "sent " not in err and "accepted" not in err
