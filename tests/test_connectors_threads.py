"""Every built-in connector under ``mafhir sync``'s default worker threads: what the
destination holds is counted exactly, by means that share no code with the connector.

The ``dir`` connector once lost Bundles here (each thread numbered files from its own
count and wrote through one fixed temporary name: 1,000 Bundles "sent", 930 files).
"""

from __future__ import annotations

import json
import socketserver
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import hl7
import pytest
import requests

from outbox_helpers import clinic_ctx, vitals_task, write_ndjson

MAFHIR = str(Path(sys.executable).parent / "mafhir")
NPI = "1234567893"


def _sync(tmp: Path, to: str, tasks: list[dict[str, Any]], clinic: Any) -> dict[str, Any]:
    """``mafhir sync`` with its default thread count; its JSON summary."""
    (tmp / "clinic.json").write_text(clinic.model_dump_json())
    source = write_ndjson(tmp / "tasks.ndjson", tasks)
    proc = subprocess.run([MAFHIR, "sync", "--to", to, "--db", str(tmp / "outbox.db"),
                           "--clinic", str(tmp / "clinic.json"), "--json", "--no-progress",
                           "--retry-base", "0.05", str(source)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["sent"] == len(tasks) and summary["dead"] == 0
    return summary


def _observation_ids(resources: list[dict[str, Any]], system: str) -> Counter[str]:
    return Counter(i["value"] for r in resources if r["resourceType"] == "Observation"
                   for i in r.get("identifier", []) if i["system"] == system)


def test_dir_holds_every_bundle_sent_under_four_threads(tmp_path):
    n = 600
    ctx = clinic_ctx()
    _sync(tmp_path, f"dir:{tmp_path / 'out'}", [vitals_task(i, i) for i in range(n)],
          ctx.clinic)
    out = tmp_path / "out"
    obs_system = f"{ctx.clinic.system}/observation"
    in_bundles: Counter[str] = Counter()
    for path in (out / "bundles").iterdir():
        assert path.suffix == ".json", f"a stray file is left: {path.name}"
        bundle = json.loads(path.read_bytes())
        in_bundles += _observation_ids([e["resource"] for e in bundle["entry"]], obs_system)
    expected = Counter({f"v-{i}/heart-rate": 1 for i in range(n)})
    assert in_bundles == expected  # every task's Bundle is there, once
    lines = [json.loads(x) for x in (out / "Observation.ndjson").read_text().splitlines()]
    assert _observation_ids(lines, obs_system) == expected
    patients = [json.loads(x) for x in (out / "Patient.ndjson").read_text().splitlines()]
    assert sorted(p["identifier"][0]["value"] for p in patients) == \
        sorted(f"P{i:05d}" for i in range(n))


def test_local_store_holds_every_record_sent_under_four_threads(tmp_path):
    n = 300
    ctx = clinic_ctx()
    store = tmp_path / "store.db"
    _sync(tmp_path, f"local:{store}", [vitals_task(i, i) for i in range(n)], ctx.clinic)
    with sqlite3.connect(store) as db:  # read with sqlite3 itself, not mafhir's store
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM resources")]
    assert _observation_ids(bodies, f"{ctx.clinic.system}/observation") == \
        Counter({f"v-{i}/heart-rate": 1 for i in range(n)})
    assert Counter(b["resourceType"] for b in bodies) == \
        {"Observation": n, "Patient": n, "Practitioner": 2}


def test_fhir_rest_server_holds_every_record_sent_under_four_threads(tmp_path, fhir_base_url):
    n = 200
    ctx = clinic_ctx()
    _sync(tmp_path, fhir_base_url, [vitals_task(i, i) for i in range(n)], ctx.clinic)

    def count(rtype: str, system: str) -> int:
        r = requests.get(f"{fhir_base_url}/{rtype}",
                         params={"identifier": f"{system}|", "_summary": "count"},
                         headers={"Accept": "application/fhir+json"}, timeout=60)
        r.raise_for_status()
        return r.json()["total"]

    assert count("Observation", f"{ctx.clinic.system}/observation") == n
    assert count("Patient", f"{ctx.clinic.system}/mrn") == n


class _Lab(socketserver.ThreadingTCPServer):
    """A loopback MLLP receiver written for this test: it counts what arrives and answers
    each message ``MSA|AA`` with the message's own MSH-10."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LabHandler)
        self.lock = threading.Lock()
        self.messages: list[hl7.Message] = []
        self.connections = 0


class _LabHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        lab: _Lab = self.server  # type: ignore[assignment]
        with lab.lock:
            lab.connections += 1
        buffer = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\x1c\r" in buffer:
                frame, _, buffer = buffer.partition(b"\x1c\r")
                text = frame[frame.index(b"\x0b") + 1:].decode("utf-8")
                message = hl7.parse(text.replace("\n", "\r"))
                control = str(message.segment("MSH")[10])
                with lab.lock:
                    lab.messages.append(message)
                ack = (f"MSH|^~\\&|LAB|QUESTLAB|MAFHIR|CLINIC|20261127101500||ACK^O21^ACK|"
                       f"a-{control}|P|2.5.1\rMSA|AA|{control}\r")
                self.request.sendall(b"\x0b" + ack.encode() + b"\x1c\r")


def _lab_order(i: int) -> dict[str, Any]:
    return {"task": "lab_order", "id": f"ord-{i}",
            "patient": {"mrn": f"L{i:05d}", "family": "Lab", "given": ["Ann"],
                        "gender": "female", "birth_date": "1961-04-02"},
            "ordered": "2026-11-27T09:10:00-05:00",
            "requester": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
            "tests": [{"name": "hba1c"}], "priority": "routine"}


def test_mllp_receiver_gets_every_message_sent_under_four_threads(tmp_path):
    from mafhir.context import Clinic

    n = 200
    clinic = Clinic(name="Maple Street Family Clinic", system=clinic_ctx().clinic.system,
                    npi=NPI)
    with _Lab() as lab:
        server = threading.Thread(target=lab.serve_forever, daemon=True)
        server.start()
        try:
            _sync(tmp_path, f"mllp:127.0.0.1:{lab.server_address[1]}/OML^O21",
                  [_lab_order(i) for i in range(n)], clinic)
        finally:
            lab.shutdown()
    placers = Counter(str(m.segment("ORC")[2]).split("^")[0] for m in lab.messages)
    assert placers == Counter({f"ord-{i}": 1 for i in range(n)})
    assert len({str(m.segment("MSH")[10]) for m in lab.messages}) == n
    assert lab.connections >= 2  # the work really went out on parallel connections


def test_dir_second_run_adds_to_what_the_first_wrote(tmp_path):
    """The NDJSON is the folder's state: a later run into the same folder keeps the
    resources of the earlier one (it used to rewrite the files with its own alone)."""
    ctx = clinic_ctx()
    out = tmp_path / "out"
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    _sync(first, f"dir:{out}", [vitals_task(i, i) for i in range(20)], ctx.clinic)
    _sync(second, f"dir:{out}", [vitals_task(i, i) for i in range(20, 30)], ctx.clinic)
    lines = [json.loads(x) for x in (out / "Observation.ndjson").read_text().splitlines()]
    assert _observation_ids(lines, f"{ctx.clinic.system}/observation") == \
        Counter({f"v-{i}/heart-rate": 1 for i in range(30)})


def test_mllp_destination_names_the_receiving_application_and_facility(tmp_path):
    """MSH-5/MSH-6 come from the destination (``?receiving=APP^FACILITY``), as ``convert
    --receiving`` gives them: they were left empty on the outbox path (issue 19, item 9)."""
    from mafhir.context import Clinic

    clinic = Clinic(name="Maple Street Family Clinic", system=clinic_ctx().clinic.system,
                    npi=NPI)
    with _Lab() as lab:
        server = threading.Thread(target=lab.serve_forever, daemon=True)
        server.start()
        try:
            _sync(tmp_path, f"mllp:127.0.0.1:{lab.server_address[1]}/OML%5EO21"
                            f"?receiving=LABAPP%5EQUESTLAB", [_lab_order(1)], clinic)
        finally:
            lab.shutdown()
    (msg,) = lab.messages
    assert (str(msg.segment("MSH")[5]), str(msg.segment("MSH")[6])) == ("LABAPP", "QUESTLAB")


def test_an_unknown_mllp_option_is_refused():
    from mafhir.connectors.mllp import MLLPConnector
    from mafhir.errors import PermanentError

    with pytest.raises(PermanentError, match="unknown option 'recieving'"):
        MLLPConnector("127.0.0.1:2575/OML^O21?recieving=LAB^X")


def test_an_order_and_its_specimen_travel_as_one_message_through_the_outbox(tmp_path):
    """A lab_order and the specimen_collection for it, in one input, are one unit of work
    (``Mapper.unit``): one outbox item, one OML^O21 with ORC/OBR and its SPM — as ``map``
    + ``convert`` make it. Before, the order went out without SPM and the specimen was
    dead-lettered ("there is no ServiceRequest to send") (issue 19, item 9)."""
    from mafhir.context import Clinic

    clinic = Clinic(name="Maple Street Family Clinic", system=clinic_ctx().clinic.system,
                    npi=NPI)
    order = {**_lab_order(7), "specimens": ["spec-7"]}
    specimen = {"task": "specimen_collection", "id": "spec-7", "order": "ord-7",
                "patient": {"mrn": "L00007"}, "type": "venous-blood",
                "method": "venipuncture", "collected": "2026-11-27T09:20:00-05:00",
                "label": "TUBE-000731"}
    other = _lab_order(8)  # an order without specimens goes on its own
    (tmp_path / "clinic.json").write_text(clinic.model_dump_json())
    source = write_ndjson(tmp_path / "tasks.ndjson", [order, other, specimen])
    with _Lab() as lab:
        server = threading.Thread(target=lab.serve_forever, daemon=True)
        server.start()
        try:
            proc = subprocess.run([MAFHIR, "sync", "--to",
                                   f"mllp:127.0.0.1:{lab.server_address[1]}/OML^O21",
                                   "--db", str(tmp_path / "o.db"), "--clinic",
                                   str(tmp_path / "clinic.json"), "--json", "--no-progress",
                                   str(source)], capture_output=True, text=True, timeout=300)
        finally:
            lab.shutdown()
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (summary["sent"], summary["dead"]) == (2, 0)  # two orders, no dead specimen
    by_order = {str(m.segment("ORC")[2]).split("^")[0]: m for m in lab.messages}
    assert set(by_order) == {"ord-7", "ord-8"}
    with_spm = by_order["ord-7"]
    spm = [s for s in with_spm if str(s[0]) == "SPM"]
    assert len(spm) == 1, str(with_spm)
    assert str(spm[0][2]).startswith("TUBE-000731&")  # SPM-2: the label on the tube
    assert str(spm[0][4]).startswith("122555007^Venous blood specimen")  # SPM-4 type
    assert str(spm[0][17]) == "20261127092000-0500"  # SPM-17 collected
    assert not [s for s in by_order["ord-8"] if str(s[0]) == "SPM"]
