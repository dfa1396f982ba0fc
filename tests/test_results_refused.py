"""Impossible results in a file of tasks: ``mafhir map`` names each field and writes nothing
(issue 17: a glucose of 4,000 mg/dL, an induration of -3 mm, a reading 10 days after its
placement), while the valid tasks beside them would have mapped."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from mafhir.cli.main import build_cli

PATIENT = {"mrn": "MRN-1"}
PLACED = {"placed": "2026-03-02T10:00:00-05:00", "site": "left-forearm", "lot": "C1"}
GOOD = {"task": "poc_test", "id": "ok-1", "patient": PATIENT, "test": "glucose",
        "value": 104, "effective": "2026-03-04T09:15:00-05:00"}
BAD = [
    {**GOOD, "id": "bad-glucose", "value": 4000},
    {"task": "skin_test", "id": "bad-mm", "patient": PATIENT, "placement": PLACED,
     "reading": {"read": "2026-03-04T10:00:00-05:00", "induration_mm": -3,
                 "positive_from_mm": 10}},
    {"task": "skin_test", "id": "bad-late", "patient": PATIENT, "placement": PLACED,
     "reading": {"read": "2026-03-12T10:00:00-05:00", "induration_mm": 3,
                 "positive_from_mm": 10}},
]


def test_impossible_results_are_refused_by_field_and_nothing_is_written(tmp_path: Path):
    tasks = tmp_path / "tasks.ndjson"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in [GOOD, *BAD]))
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(build_cli(), ["map", str(tasks), "-o", str(out)])
    assert result.exit_code == 2
    assert not out.exists()
    err = result.stderr
    assert "task[1].value: is outside what the test can read (10–1000 mg/dL)" in err
    assert "task[2].reading.induration_mm: an induration cannot be negative" in err
    assert "task[3].reading.read: is 10 days after the placement" in err
    assert "error: task[0]" not in err  # the good one was not the problem
    assert "3 of 4 task(s) failed; nothing written" in err
    assert "MRN-1" not in err  # no patient data in refusals


def test_the_good_task_alone_maps(tmp_path: Path):
    tasks = tmp_path / "tasks.ndjson"
    tasks.write_text(json.dumps(GOOD) + "\n")
    out = tmp_path / "bundle.json"
    result = CliRunner().invoke(build_cli(), ["map", str(tasks), "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    kinds = [e["resource"]["resourceType"] for e in json.loads(out.read_text())["entry"]]
    assert kinds.count("Observation") == 1
