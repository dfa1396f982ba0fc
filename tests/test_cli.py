"""Every command through the real ``mafhir`` entry point, and the demo day end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAFHIR = str(Path(sys.executable).parent / "mafhir")
DAY = ROOT / "fixtures" / "clinic-day"
CLINIC_FILE = DAY / "clinic.json"

HEART_RATE = {"task": "vitals", "id": "v-1", "patient": {"mrn": "M1"},
              "effective": "2026-03-04T09:15:00-05:00", "heart_rate": {"value": 72}}


def mafhir(*args: str, stdin: str | None = None, cwd: Path | None = None):
    return subprocess.run([MAFHIR, *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo") / "out"
    return mafhir("demo", "--out", str(out)), out


def test_version_and_help():
    assert mafhir("--version").stdout.strip() == "mafhir, version 0.1.0"
    help_text = mafhir("--help").stdout
    for command in ("map", "validate", "schema", "plugins", "demo"):
        assert f"  {command} " in help_text


def test_map_writes_a_transaction_bundle_from_stdin():
    proc = mafhir("map", "--clinic", str(CLINIC_FILE), "-", stdin=json.dumps(HEART_RATE))
    assert proc.returncode == 0, proc.stderr
    bundle = json.loads(proc.stdout)
    assert bundle["type"] == "transaction"
    (entry,) = bundle["entry"]
    obs = entry["resource"]
    assert obs["code"]["coding"][0]["code"] == "8867-4"
    assert obs["valueQuantity"] == {"value": 72, "unit": "beats/minute",  # as US Core writes
                                    "system": "http://unitsofmeasure.org", "code": "/min"}
    assert obs["subject"]["reference"] == (
        "Patient?identifier=https://maple-street-clinic.example.org/fhir/id/mrn|M1")
    assert entry["request"]["method"] == "POST"
    assert entry["request"]["ifNoneExist"].startswith(
        "identifier=https://maple-street-clinic.example.org/fhir/id/observation|v-1")


def test_map_is_deterministic_and_ndjson_gives_a_bundle_per_task(tmp_path):
    source = tmp_path / "tasks.ndjson"
    second = {**HEART_RATE, "id": "v-2", "heart_rate": {"value": 80}}
    source.write_text(json.dumps(HEART_RATE) + "\n" + json.dumps(second) + "\n")
    one = mafhir("map", str(source)).stdout
    assert one == mafhir("map", str(source)).stdout
    out = tmp_path / "out.ndjson"
    proc = mafhir("map", "--ndjson", "-o", str(out), str(source))
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text().splitlines()
    assert [json.loads(line)["entry"][0]["resource"]["valueQuantity"]["value"]
            for line in lines] == [72, 80]


def test_bad_input_exits_2_naming_task_and_field_and_writes_nothing(tmp_path):
    bad = [HEART_RATE,
           {**HEART_RATE, "id": "v-2", "effective": "2026-03-04T09:15:00"},
           {**HEART_RATE, "id": "v-3", "heart_rate": {"value": 400}},
           {**HEART_RATE, "id": "v-4", "pulse": 70}]
    out = tmp_path / "bundle.json"
    proc = mafhir("map", "-o", str(out), "-", stdin=json.dumps(bad))
    assert proc.returncode == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert errors[0].startswith("error: task[1].effective: needs an explicit UTC offset")
    assert errors[1].startswith("error: task[2].heart_rate.value:")
    assert errors[2] == "error: task[3].pulse: unknown field"
    assert len(errors) == 3
    assert "v-1" not in proc.stderr and "M1" not in proc.stderr  # no identifiers echoed


def test_validate_reports_paths_and_exit_status(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(mafhir("map", "-", stdin=json.dumps(HEART_RATE)).stdout)
    proc = mafhir("validate", str(good))
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": ok")
    bundle = json.loads(good.read_text())
    obs = bundle["entry"][0]["resource"]
    del obs["valueQuantity"]["unit"]
    obs["category"][0]["coding"][0]["code"] = "laboratory"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle))
    proc = mafhir("validate", str(bad))
    assert proc.returncode == 1
    assert "Bundle.entry[0].resource.valueQuantity.unit" in proc.stdout
    assert "Bundle.entry[0].resource.category" in proc.stdout
    as_json = mafhir("validate", "--json", str(bad))
    outcome = json.loads(as_json.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert {"error"} <= {i["severity"] for i in outcome["issue"]}


def test_schema_prints_json_schema_for_all_kinds_and_one():
    everything = json.loads(mafhir("schema").stdout)
    titles = {ref["$ref"].rsplit("/", 1)[-1] for ref in everything["oneOf"]}
    assert {"VitalsTask", "ImmunizationTask", "AppointmentTask", "CoverageTask", "IntakeTask",
            "InjectionTask"} <= titles
    vitals = json.loads(mafhir("schema", "vitals").stdout)
    assert vitals["properties"]["task"]["const"] == "vitals"
    assert vitals["additionalProperties"] is False
    unknown = mafhir("schema", "xray")
    assert unknown.returncode != 0 and "no task kind 'xray'" in unknown.stderr


def test_plugins_lists_builtins_with_their_hooks_and_what_they_add():
    listed = {p["name"]: p for p in json.loads(mafhir("plugins", "--json").stdout)}
    assert listed["mafhir.mappers.vitals"]["hooks"] == ["register_mappers"]
    assert listed["mafhir.cli.builtin"]["hooks"] == ["register_commands"]
    assert listed["mafhir.mappers.vitals"]["adds"] == {"task kind": ["vitals"]}
    table = mafhir("plugins").stdout
    assert "mafhir.validation.profiles" in table and "us-core-bmi" in table


def test_demo_maps_the_whole_day(demo):
    proc, out = demo
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    # counts worked out by hand from scripts/make_demo_day.py
    assert summary["tasks"] == {"appointment": 26, "coverage": 3, "immunization": 7,
                                "vitals": 7, "intake": 4, "injection": 2, "poc_test": 10,
                                "ekg": 2, "skin_test": 2,
                                # issue 18 part B (w10): the front office at day's end
                                "follow_up": 1, "phone_call": 1, "reminder": 2}
    # issue 18 part B (w10): the call's follow-up and the result call-back; the
    # confirmation and the recall, each sent
    assert summary["stored"]["Task"] == 2
    assert summary["stored"]["CommunicationRequest"] == 2
    assert summary["stored"]["Communication"] == 3  # the call + two sent reminders
    assert summary["stored"]["Appointment"] == 12
    assert summary["stored"]["Encounter"] == 7
    # 42 vital measurements + 3 computed BMIs (none for Ana nor the newborn: under 2
    # years); intakes: 3 smoking + 2 pregnancy, screenings PHQ-2 (2 items + total + panel),
    # PHQ-9 (9 + difficulty + total + panel), GAD-7 (7+1+1), HVS (2 + risk + panel);
    # 21 point-of-care results (the dipstick is 10 pads + its panel), 7 EKG (six
    # measurements, then the signed impression) and 1 skin test reading
    assert summary["stored"]["Observation"] == 45 + 5 + 4 + 12 + 9 + 4 + 21 + 7 + 1
    assert summary["stored"]["AllergyIntolerance"] == 4  # penicillin, sulfa, NKA, NKDA
    assert summary["stored"]["MedicationRequest"] == 3 + 2  # reported meds + 2 orders
    assert summary["stored"]["Condition"] == 2
    assert summary["stored"]["MedicationAdministration"] == 2
    assert summary["stored"]["Patient"] == 13  # every patient of the day, created once
    assert summary["stored"]["Immunization"] == 7
    assert summary["stored"]["DiagnosticReport"] == 3  # dipstick, influenza A/B, EKG
    assert summary["stored"]["Procedure"] == 3  # the EKG and two skin test placements
    assert summary["stored"]["Device"] == 10  # one kit or meter per point-of-care test
    assert [q["problems"] for q in summary["quarantined"]] == [[
        "task[58].effective: needs an explicit UTC offset (e.g. 2026-03-04T09:15:00-05:00); "
        "naive times are refused"]]
    assert any("temperature" in w for w in summary["warnings"])
    # 63 + the 4 front-office tasks of issue 18 part B (w10)
    assert len(list((out / "bundles").glob("*.json"))) == 63 + 4
    lines = (out / "quarantine.ndjson").read_text().splitlines()
    quarantined = [json.loads(line) for line in lines]
    assert quarantined[0]["task"]["id"] == "vitals-208"  # the bad task is kept, not dropped
    assert "stored once each" in proc.stdout


def test_demo_output_validates(demo):
    _, out = demo
    proc = mafhir("validate", *map(str, sorted((out / "bundles").glob("*.json"))))
    assert proc.returncode == 0, proc.stdout[-2000:]
    statuses = {json.loads(line)["status"]
                for line in (out / "Appointment.ndjson").read_text().splitlines()}
    assert statuses == {"booked", "cancelled", "noshow", "fulfilled", "checked-in"}


def test_demo_runs_from_any_directory(tmp_path):
    proc = mafhir("demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mafhir-demo" / "Patient.ndjson").exists()
