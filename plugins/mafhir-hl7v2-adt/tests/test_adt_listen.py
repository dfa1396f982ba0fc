"""The schedule feed through a real ``mafhir listen`` (a subprocess, loopback sockets, the
local store as destination): an S14 that arrives before its S12 ends as one Appointment
in the S14's state; an S15 for an id never booked is held for review with its reason; an
older event never overwrites a newer one; an SIU without an appointment id is an AE
naming SCH-1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import hl7

from mafhir.connectors.local import LocalStore
from mafhir.context import Clinic
from mafhir.hl7v2 import MessageStore, MLLPClient, read_ack

MAFHIR = Path(sys.executable).parent / "mafhir"
CLINIC = Clinic(name="Maple Street Family Clinic", system="urn:mafhir:test:siu")


def siu(trigger: str, control: str, sent: str, appt: str, start: str, end: str,
        reason: str = "CHECKUP") -> bytes:
    return (f"MSH|^~\\&|EHR|CLINIC|MAFHIR|CLINIC|{sent}-0500||SIU^{trigger}^SIU_S12|{control}|"
            f"P|2.5.1\r"
            f"SCH|{appt}^MAFHIR|{appt}^EHR||||Add|{reason}^^HL70276|Normal|30|min|"
            f"^^30^{start}-0500^{end}-0500||||||||||||||Booked\r"
            f"PID|1||M-1^^^CLINIC^MR||Doe^Jane||19800101|F\r"
            f"RGS|1\rAIP|1||1234567893^Reyes^Lena^^^^^^NPI|PCP^Primary care^L\r").encode()


def errs(ack: bytes) -> list[tuple[str, str]]:
    """(ERR-2.1 segment, ERR-3.1 code) read with python-hl7."""
    return [(str(s[2][0][0]), str(s[3][0][0]))
            for s in hl7.parse(ack.decode()) if str(s[0]) == "ERR"]


def test_out_of_order_and_unknown_ids_over_a_real_listener(tmp_path):
    (tmp_path / "clinic.json").write_text(CLINIC.model_dump_json())
    local = tmp_path / "fhir.sqlite"
    proc = subprocess.Popen(
        [str(MAFHIR), "listen", "--mllp", "127.0.0.1:0", "--store", str(tmp_path / "in.sqlite"),
         "--to", f"local:{local}", "--set", f"adt.state={tmp_path / 'schedule.sqlite'}",
         "--clinic", str(tmp_path / "clinic.json"),
         "--namespace", f"CLINIC={CLINIC.mrn_namespace}"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line.startswith("warning:"):
            line = proc.stderr.readline()
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1))
        with MLLPClient("127.0.0.1", port, timeout=30) as client:
            # the modification (sent 09:05, moves the visit to 14:00) arrives first …
            s14 = client.send(siu("S14", "C-2", "20261127090500", "APT-1", "20261201140000",
                                  "20261201143000", "FOLLOWUP"))
            # … then its booking (sent 09:00, for 10:00)
            s12 = client.send(siu("S12", "C-1", "20261127090000", "APT-1", "20261201100000",
                                  "20261201103000"))
            # an older reschedule arriving last is not applied
            s13 = client.send(siu("S13", "C-3", "20261127090200", "APT-1", "20261201120000",
                                  "20261201123000"))
            # a cancellation for an appointment never booked
            s15 = client.send(siu("S15", "C-4", "20261127091000", "APT-9", "20261202100000",
                                  "20261202103000"))
            no_id = client.send(siu("S12", "C-5", "20261127091500", "", "20261203100000",
                                    "20261203103000"))
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest
    # HL7 table 0357: 207 application internal error (the review hold), 205 duplicate key
    # (an older event than the one standing: a W), 101 required field missing
    assert (read_ack(s14).code, errs(s14)) == ("AE", [("SCH", "207")])  # held for review
    assert (read_ack(s12).code, errs(s12)) == ("AA", [])
    assert (read_ack(s13).code, errs(s13)) == ("AA", [("MSH", "205")])  # kept, not applied
    assert (read_ack(s15).code, errs(s15)) == ("AE", [("SCH", "207")])
    assert (read_ack(no_id).code, errs(no_id)) == ("AE", [("SCH", "101")])

    store = LocalStore(local)
    try:
        found = list(store.search("Appointment"))
        (appt,) = found  # one, not two
        # the S14's state: its time (14:00 Chicago-offset -0500 → as sent) and its type
        assert appt["start"] == "2026-12-01T14:00:00-05:00"
        assert appt["end"] == "2026-12-01T14:30:00-05:00"
        assert appt["appointmentType"]["coding"][0]["code"] == "FOLLOWUP"
        assert int(appt["meta"]["versionId"]) == 2  # the booking, then the held S14
    finally:
        store.close()
    messages = MessageStore(tmp_path / "in.sqlite")
    try:
        by_id = {m.control_id: m for m in messages.messages()}
    finally:
        messages.close()
    # every message kept; the S15 held for review with its reason
    assert set(by_id) == {"C-1", "C-2", "C-3", "C-4", "C-5"}
    assert by_id["C-4"].status == "review"
    assert "no booking (S12)" in (by_id["C-4"].problems or "")
    assert "SCH-2" in (by_id["C-4"].problems or "")
    assert by_id["C-5"].status == "error" and "SCH-1" in (by_id["C-5"].problems or "")
