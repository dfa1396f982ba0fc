"""``mafhir demo`` goes through the outbox: to the local store by default, to a FHIR server
with ``--to URL``; run again, it sends nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mafhir.outbox import LocalStore

MAFHIR = Path(sys.executable).parent / "mafhir"
#: The demo day's outbox items: 63 + the 4 front-office tasks of issue 18 part B (w10).
DAY_ITEMS = 63 + 4


def demo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAFHIR), "demo", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_demo_drains_the_day_into_the_local_store_once(tmp_path):
    first = demo("--out", "day", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    summary = json.loads((tmp_path / "day" / "summary.json").read_text())
    sync = summary["sync"]
    assert (sync["enqueued"], sync["sent"], sync["dead"]) == (DAY_ITEMS, DAY_ITEMS, 0)
    assert sync["destination"] == f"local:{tmp_path / 'day' / 'store.db'}"
    # the store holds what the per-type NDJSON holds: the latest state of each resource
    counts = LocalStore(tmp_path / "day" / "store.db").counts()
    for rtype, n in summary["stored"].items():
        assert counts[rtype] == n, rtype
    assert "through the outbox" in first.stdout

    again = demo("--out", "day", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    sync = json.loads((tmp_path / "day" / "summary.json").read_text())["sync"]
    assert (sync["enqueued"], sync["skipped"], sync["sent"], sync["writes"]) == \
        (0, DAY_ITEMS, 0, 0)


def test_demo_to_a_fhir_server(tmp_path, fhir_base_url):
    proc = demo("--out", "day", "--to", fhir_base_url, "--db", str(tmp_path / "o.db"),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sync = json.loads((tmp_path / "day" / "summary.json").read_text())["sync"]
    assert (sync["destination"], sync["sent"], sync["dead"]) == (fhir_base_url, DAY_ITEMS, 0)
    import requests

    r = requests.get(f"{fhir_base_url}/Appointment", params={
        "identifier": "https://maple-street-clinic.example.org/fhir/id/appointment|appt-204",
        "_count": "10"}, headers={"Accept": "application/fhir+json"}, timeout=30)
    (entry,) = [e for e in r.json().get("entry", []) if e.get("search", {}).get("mode",
                                                                               "match") == "match"]
    assert entry["resource"]["status"] == "fulfilled"  # book, check in, start, complete
    # the EKG was sent unsigned, then signed: the server holds one report, now final
    r = requests.get(f"{fhir_base_url}/DiagnosticReport", params={
        "identifier": "https://maple-street-clinic.example.org/fhir/id/ekg|ekg-202/report"},
        headers={"Accept": "application/fhir+json"}, timeout=30)
    (report,) = [e["resource"] for e in r.json().get("entry", [])
                 if e.get("search", {}).get("mode", "match") == "match"]
    assert report["status"] == "final" and report["presentedForm"][0]["size"] > 0
