"""``mafhir send --to CONNECTOR:TARGET`` sends through any plugin's connector, not only to
FHIR servers (issue 19, item 12): a ``dir:`` destination gets the Bundle of the tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MAFHIR = Path(sys.executable).parent / "mafhir"
DAY = Path(__file__).resolve().parents[3] / "fixtures" / "clinic-day"


def test_send_to_a_dir_destination_writes_the_bundle(tmp_path):
    tasks = [json.loads(x) for x in (DAY / "day.ndjson").read_text().splitlines()
             if '"task": "immunization"' in x][:2]
    src = tmp_path / "t.ndjson"
    src.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    out = tmp_path / "out"
    proc = subprocess.run([str(MAFHIR), "send", "--to", f"dir:{out}", "--clinic",
                           str(DAY / "clinic.json"), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "resource(s) to dir" in proc.stderr
    written = [json.loads(x) for x in (out / "Immunization.ndjson").read_text().splitlines()]
    ids = sorted(i["value"] for r in written for i in r["identifier"])
    assert ids == sorted(t["id"] for t in tasks)  # each task's Immunization, once


def test_an_unknown_connector_name_is_still_a_named_destination_error(tmp_path):
    src = tmp_path / "t.json"
    src.write_text((DAY / "day.ndjson").read_text().splitlines()[0])
    proc = subprocess.run([str(MAFHIR), "send", "--to", "nosuch:thing", "--clinic",
                           str(DAY / "clinic.json"), str(src)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
