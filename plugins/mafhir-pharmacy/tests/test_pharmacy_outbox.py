"""Prescriptions through the outbox: ``mafhir sync --to pharmacy-v2:HOST:PORT``.

A pharmacy stand-in on a real loopback MLLP socket receives the RDE^O11s; a re-run sends
nothing, and a controlled substance is dead-lettered with the reason instead of sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers_pharmacy import PharmacyStandIn, clinic, prescription

MAFHIR = str(Path(sys.executable).parent / "mafhir")


def sync(tmp: Path, target: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MAFHIR, "sync", "--to", f"pharmacy-v2:{target}", "--db", str(tmp / "o.db"),
         "--clinic", str(tmp / "clinic.json"), "--json", "--retry-base", "0.05",
         "--max-attempts", "2", str(tmp / "rx.ndjson")],
        capture_output=True, text=True, timeout=120)


def test_prescriptions_leave_as_rde_o11_through_the_outbox_once(tmp_path):
    c = clinic()
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    tasks = [prescription("rx-1", mrn="MS-1"), prescription("rx-2", mrn="MS-2"),
             prescription("rx-3", mrn="MS-3", medication={"rxnorm": "308048"})]  # alprazolam
    (tmp_path / "rx.ndjson").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    with PharmacyStandIn(tmp_path / "pharmacy.db") as pharmacy:
        first = sync(tmp_path, pharmacy.target)
        again = sync(tmp_path, pharmacy.target)
    summary = json.loads(first.stdout)
    # alprazolam is schedule IV in the shipped drug list: refused as a task, or dead
    assert summary["sent"] == 2, first.stdout + first.stderr
    assert summary["dead"] + summary["quarantined"] == 1
    assert [m.type for m in pharmacy.received] == ["RDE^O11", "RDE^O11"]
    assert sorted(m.first("ORC").raw(2).split("^")[0] for m in pharmacy.received) == [
        "rx-1", "rx-2"]
    assert {m.msh.get(4) for m in pharmacy.received} == {c.name}
    assert json.loads(again.stdout)["sent"] == 0
    assert len(pharmacy.received) == 2
