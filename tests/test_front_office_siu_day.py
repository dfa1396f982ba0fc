"""The MA's front-office day fed by the EHR's schedule (issue 18), on real parts.

SIU^S12 messages go over a real MLLP loopback socket to ``mafhir listen`` and build
tomorrow's schedule in the local store; yesterday's visit is booked and reported a
no-show (S26); an S15 for an appointment never booked is held for review. The
``reminder`` tasks name the appointments by the EHR's filler id (SCH-2, the clinic's
appointment id) and go out through the ``messaging`` destination (the outbox, a webhook
on loopback). A reply cancels one: only its status changes — the participants, reason
and comments the SIU wrote stay. The worklist shows the slot to refill and the no-show to
call; ``worklist done`` closes both and they leave it. A reply for an appointment nobody
booked is not written as a thin new one: it is held (dead letter) with its reason.

The same SIUs through ``mafhir convert`` and ``mafhir sync`` reach SEKMET (the FHIR test
server), where the reply cancels the Appointment the SIU wrote, participants kept.

Expected values are the messages' own fields, written here by hand.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import hl7
import requests
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir.connectors.local import LocalStore
from mafhir.hl7v2 import MessageStore, MLLPClient, read_ack
from test_messaging import Hook

MAFHIR = Path(sys.executable).parent / "mafhir"
EST = timezone(timedelta(hours=-5))
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
CLINIC = {"name": "Maple Street Family Clinic", "system": "https://maple.example.org/id",
          "phone": "555-201-4400", "mrn_system": MRN_SYSTEM}
SYS = CLINIC["system"]
NPI = "1234567893"  # check digit holds (Luhn over 80840 + the id)


def v2_time(at: datetime) -> str:
    return at.strftime("%Y%m%d%H%M%S%z")


def siu(trigger: str, control: str, sent: datetime, appt: str, mrn: str, family: str,
        start: datetime, minutes: int = 20) -> bytes:
    """One SIU: SCH-1 placer id, SCH-2 filler id (the EHR's), the visit's time, a
    patient, the clinician (AIP), the room (AIL) and a note (NTE)."""
    end = start + timedelta(minutes=minutes)
    return (f"MSH|^~\\&|EHR|CLINIC|MAFHIR|CLINIC|{v2_time(sent)}||SIU^{trigger}^SIU_S12|"
            f"{control}|P|2.5.1\r"
            f"SCH|P-{appt}^PORTAL|{appt}^EHR||||Add|CHECKUP^^HL70276|Normal|{minutes}|min|"
            f"^^{minutes}^{v2_time(start)}^{v2_time(end)}||||||||||||||Booked\r"
            f"NTE|1||Bring the insurance card\r"
            f"PID|1||{mrn}^^^CLINIC^MR||{family}^Ann||19800214|F\r"
            f"RGS|1\r"
            f"AIP|1||{NPI}^Reyes^Lena^^^^^^NPI|ATND^Attender^HL70443\r"
            f"AIL|1||Exam Room 1\r").encode()


def errs(ack: bytes) -> list[tuple[str, str]]:
    """(ERR-2.1 segment, ERR-3.1 code) read with python-hl7."""
    return [(str(s[2][0][0]), str(s[3][0][0]))
            for s in hl7.parse(ack.decode()) if str(s[0]) == "ERR"]


def cli(*args: str) -> Any:
    return CliRunner().invoke(build_cli(), list(args))


def sync(tmp_path: Path, name: str, docs: list[dict[str, Any]], to: str,
         ok: bool = True) -> dict[str, Any]:
    source = tmp_path / f"{name}.ndjson"
    source.write_text("".join(json.dumps(d) + "\n" for d in docs))
    result = cli("sync", str(source), "--db", str(tmp_path / f"outbox-{name}.db"), "--to", to,
                 "--clinic", str(tmp_path / "clinic.json"), "--json", "--retry-base", "0.01")
    assert (result.exit_code == 0) == ok, result.output
    return json.loads(result.output[result.output.index("{"):])


def worklist(tmp_path: Path) -> list[dict[str, Any]]:
    result = cli("worklist", "--store", str(tmp_path / "store.db"), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class Day:
    """Tomorrow's three visits, yesterday's no-show, and the times around them."""

    def __init__(self) -> None:
        self.now = datetime.now(EST).replace(second=0, microsecond=0)
        tomorrow = (self.now + timedelta(days=1)).replace(hour=9, minute=0)
        self.starts = {f"APT-10{n}": tomorrow + timedelta(minutes=30 * (n - 1))
                       for n in (1, 2, 3)}
        self.yesterday = (self.now - timedelta(days=1)).replace(hour=15, minute=30)
        self.booked_at = self.now - timedelta(days=2)
        self.send_at = self.now + timedelta(hours=1)

    def bookings(self) -> list[bytes]:
        return [siu("S12", f"C-{appt}", self.booked_at + timedelta(minutes=n), appt,
                    f"MS-300{n}", f"Roe{n}", start)
                for n, (appt, start) in enumerate(self.starts.items(), 1)]

    def reminder(self, appt: str, **extra: Any) -> dict[str, Any]:
        n = int(appt[-1])
        return {"task": "reminder", "id": f"rem-{appt}", "purpose": "appointment_confirmation",
                "patient": {"mrn": f"MS-300{n}", "system": MRN_SYSTEM}, "channel": "sms",
                "to": f"555-201-77{n:02d}", "scheduled": self.send_at.isoformat(),
                "appointment": {"id": appt, "start": self.starts.get(
                    appt, self.starts["APT-101"]).isoformat()}, **extra}

    def reply(self, appt: str, answer: str = "cancel_requested") -> dict[str, Any]:
        doc = self.reminder(appt, sent=self.send_at.isoformat(), reply=answer,
                            replied_at=(self.send_at + timedelta(minutes=7)).isoformat())
        doc["appointment"]["status"] = "booked"  # as the EHR's schedule says
        return doc


def listen(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [str(MAFHIR), "listen", "--mllp", "127.0.0.1:0", "--store", str(tmp_path / "in.sqlite"),
         "--to", f"local:{tmp_path / 'store.db'}",
         "--set", f"adt.state={tmp_path / 'schedule.sqlite'}",
         "--clinic", str(tmp_path / "clinic.json"), "--namespace", f"CLINIC={MRN_SYSTEM}"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line.startswith("warning:"):
        line = proc.stderr.readline()
    found = re.search(r"on 127\.0\.0\.1:(\d+)", line)
    assert found, line
    return proc, int(found.group(1))


def test_a_front_office_day_from_the_ehrs_schedule(tmp_path):
    (tmp_path / "clinic.json").write_text(json.dumps(CLINIC))
    day = Day()
    # 1. the EHR's schedule over MLLP: tomorrow's bookings, yesterday's visit and its
    #    no-show, and a cancellation for an appointment never booked
    proc, port = listen(tmp_path)
    try:
        with MLLPClient("127.0.0.1", port, timeout=30) as client:
            acks = [client.send(m) for m in day.bookings()]
            acks.append(client.send(siu("S12", "C-APT-109", day.booked_at, "APT-109", "MS-3009",
                                        "Roe9", day.yesterday)))
            acks.append(client.send(siu("S26", "C-APT-109-noshow", day.yesterday
                                        + timedelta(hours=1), "APT-109", "MS-3009", "Roe9",
                                        day.yesterday)))
            unknown = client.send(siu("S15", "C-APT-555", day.now, "APT-555", "MS-3005",
                                      "Roe5", day.starts["APT-101"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest
    assert [(read_ack(a).code, errs(a)) for a in acks] == [("AA", [])] * 5
    # HL7 table 0357 207: held for review (no booking has been received for it)
    assert (read_ack(unknown).code, errs(unknown)) == ("AE", [("SCH", "207")])
    messages = MessageStore(tmp_path / "in.sqlite")
    try:
        held = {m.control_id: m for m in messages.messages()}["C-APT-555"]
    finally:
        messages.close()
    assert held.status == "review" and "no booking (S12)" in (held.problems or "")

    store = LocalStore(tmp_path / "store.db")
    try:
        appts = {a["identifier"][0]["value"]: a for a in store.search("Appointment")}
        # one Appointment per filler id, found by the clinic's appointment id; nothing
        # for the id never booked
        assert sorted(appts) == ["APT-101", "APT-102", "APT-103", "APT-109"]
        assert all(a["identifier"][0]["system"] == f"{SYS}/appointment"
                   for a in appts.values())
        assert appts["APT-109"]["status"] == "noshow"
        before = store.find("Appointment", f"{SYS}/appointment", "APT-102")
        assert before is not None and before["status"] == "booked"
        assert before["start"] == day.starts["APT-102"].isoformat()
        assert len(before["participant"]) == 3  # patient, clinician (AIP), room (AIL)
        assert before["comment"] == "Event reason: Add\nBring the insurance card"
    finally:
        store.close()

    # 2. tomorrow's reminders go out through the outbox to a webhook on loopback
    reminders = [day.reminder(a) for a in day.starts]
    sync(tmp_path, "schedule", reminders, f"local:{tmp_path / 'store.db'}")
    hook = Hook()
    try:
        got = sync(tmp_path, "reminders", reminders, f"messaging:{hook.url}")
    finally:
        hook.close()
    assert (got["sent"], got["dead"]) == (3, 0)
    sent = sorted((m for m, _ in hook.received), key=lambda m: m["to"])
    assert [m["to"] for m in sent] == ["555-201-7701", "555-201-7702", "555-201-7703"]
    assert sent[1]["text"] == ("Reminder from Maple Street Family Clinic: you have an "
                               f"appointment at 9:30 AM on {day.starts['APT-102']:%A, %B} "
                               f"{day.starts['APT-102'].day}, {day.starts['APT-102'].year}. "
                               "Reply C to confirm or X to cancel.")

    # 3. patient 2 answers X: the SIU's Appointment is cancelled, and only that changed
    sync(tmp_path, "reply", [day.reply("APT-102"), day.reply("APT-101", "confirmed")],
         f"local:{tmp_path / 'store.db'}")
    store = LocalStore(tmp_path / "store.db")
    try:
        after = store.find("Appointment", f"{SYS}/appointment", "APT-102")
        assert after is not None and after["id"] == before["id"]
        assert after["status"] == "cancelled"
        assert after["cancelationReason"]["coding"][0]["code"] == "pat-crs"
        unchanged = {k: v for k, v in after.items()
                     if k not in ("status", "cancelationReason", "meta")}
        assert unchanged == {k: v for k, v in before.items() if k not in ("status", "meta")}
        assert store.find("Appointment", f"{SYS}/appointment", "APT-101")["status"] == "booked"
        assert len(list(store.search("Appointment"))) == 4  # no thin second one
    finally:
        store.close()

    # 4. a reply for an appointment nobody booked is held with its reason, not written
    got = sync(tmp_path, "stray", [day.reply("APT-404")], f"local:{tmp_path / 'store.db'}",
               ok=False)
    assert (got["sent"], got["dead"]) == (0, 1)
    dead = cli("outbox", "dead", "--db", str(tmp_path / "outbox-stray.db"), "--json")
    assert "no Appointment with this identifier" in dead.output, dead.output
    store = LocalStore(tmp_path / "store.db")
    try:
        assert store.find("Appointment", f"{SYS}/appointment", "APT-404") is None
        assert store.find("Communication", f"{SYS}/reminder-reply", "rem-APT-404") is None
    finally:
        store.close()

    # 5. the worklist: the no-show to call (overdue) first, then the slot to refill
    items = worklist(tmp_path)
    assert [(i["id"], i["kind"], i["patient"]) for i in items] == [
        ("no_show:APT-109", "no_show", "MS-3009"), ("slot:APT-102", "slot", "MS-3002")]
    for item, outcome in (("slot:APT-102", "Offered to a waitlisted patient"),
                          ("no_show:APT-109", "Rebooked for next week")):
        closed = cli("worklist", "--store", str(tmp_path / "store.db"), "done", item,
                     "--outcome", outcome, "--db", str(tmp_path / "outbox-done.db"),
                     "--clinic", str(tmp_path / "clinic.json"))
        assert closed.exit_code == 0, closed.output
    assert worklist(tmp_path) == []


def test_the_schedule_converted_and_a_reply_reach_the_ehr(tmp_path, fresh_fhir_server):
    """``mafhir convert`` each SIU, ``mafhir sync`` the Bundles to SEKMET, then the reply:
    the Appointment there has the SIU's participants and the cancelled status."""
    url = fresh_fhir_server.base_url
    (tmp_path / "clinic.json").write_text(json.dumps(CLINIC))
    day = Day()
    bundles = []
    for n, message in enumerate(day.bookings()):
        path = tmp_path / f"siu-{n}.hl7"
        path.write_bytes(message)
        result = cli("convert", "--from", "hl7v2", str(path), "--clinic",
                     str(tmp_path / "clinic.json"), "--namespace", f"CLINIC={MRN_SYSTEM}")
        assert result.exit_code == 0, result.output
        bundles.append(json.loads(result.stdout))
    (tmp_path / "schedule.ndjson").write_text("".join(json.dumps(b) + "\n" for b in bundles))
    result = cli("sync", str(tmp_path / "schedule.ndjson"), "--db", str(tmp_path / "o.db"),
                 "--to", url, "--clinic", str(tmp_path / "clinic.json"), "--json")
    assert result.exit_code == 0, result.output

    got = sync(tmp_path, "reply", [day.reply("APT-102")], url)
    assert (got["sent"], got["dead"]) == (1, 0)

    def appointment(appt: str) -> dict[str, Any]:
        found = requests.get(f"{url}/Appointment", timeout=30,
                             params={"identifier": f"{SYS}/appointment|{appt}"}).json()
        (only,) = [e["resource"] for e in found["entry"]]
        return only

    cancelled = appointment("APT-102")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["coding"][0]["code"] == "pat-crs"
    patient, room, clinician = [p["actor"] for p in cancelled["participant"]]
    assert patient["reference"].startswith("Patient/")
    assert room == {"type": "Location", "display": "Exam Room 1"}  # AIL-3
    assert clinician["type"] == "Practitioner" and clinician["identifier"] == \
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": NPI}  # AIP-3
    assert cancelled["start"] == day.starts["APT-102"].isoformat()
    assert "Bring the insurance card" in cancelled["comment"]
    assert [i.get("type", {}).get("coding", [{}])[0].get("code") for i in
            cancelled["identifier"]] == [None, "FILL", "PLAC"]
    assert appointment("APT-101")["status"] == "booked"
