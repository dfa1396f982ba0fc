"""A front-office day, end to end, on real parts: tomorrow's schedule is booked into the
local store; its reminders go out through the outbox to a real loopback webhook; a reply
cancels one; the worklist shows the cancelled slot to refill, yesterday's no-show to call
and a result to call back, most urgent first; ``worklist done`` closes each through the
outbox and they leave the list. The pharmacy plugin's refill requests join the same list
through the ``worklist_items`` hook."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mafhir import hookimpl, plugins
from mafhir.cli.main import build_cli
from mafhir.connectors.local import LocalStore
from test_hl7v2_transport import load_example
from test_messaging import Hook

EST = timezone(timedelta(hours=-5))
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
CLINIC = {"name": "Maple Street Family Clinic", "system": "https://maple.example.org/id",
          "phone": "555-201-4400"}
SYS = CLINIC["system"]


def patient(n: int) -> dict[str, str]:
    return {"mrn": f"MS-300{n}", "system": MRN_SYSTEM}


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(build_cli(), list(args), env=env)
    return result


def sync(tmp_path: Path, name: str, tasks: list[dict[str, Any]], to: str) -> Any:
    source = tmp_path / f"{name}.ndjson"
    source.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    clinic = tmp_path / "clinic.json"
    clinic.write_text(json.dumps(CLINIC))
    result = cli(tmp_path, "sync", str(source), "--db", str(tmp_path / "outbox.db"), "--to", to,
                 "--clinic", str(clinic), "--json", "--retry-base", "0.01")
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{"):])


def worklist(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = cli(tmp_path, "worklist", "--store", str(tmp_path / "store.db"), *args, "--json",
                 env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def done(tmp_path: Path, item: str, outcome: str, env: dict[str, str] | None = None) -> Any:
    clinic = tmp_path / "clinic.json"
    return cli(tmp_path, "worklist", "--store", str(tmp_path / "store.db"), "done", item,
               "--outcome", outcome, "--db", str(tmp_path / "outbox.db"), "--clinic",
               str(clinic), env=env)


def test_a_front_office_day(tmp_path):
    now = datetime.now(EST).replace(second=0, microsecond=0)
    tomorrow = (now + timedelta(days=1)).replace(hour=9, minute=0)
    yesterday = (now - timedelta(days=1)).replace(hour=15, minute=30)
    send_at = now + timedelta(hours=1)
    slots = [tomorrow + timedelta(minutes=30 * i) for i in range(3)]

    def book(n: int, start: datetime) -> dict[str, Any]:
        return {"task": "appointment", "id": f"appt-{n}-book", "appointment_id": f"appt-{n}",
                "action": "book", "patient": patient(n), "start": start.isoformat(),
                "minutes": 20}

    def remind(n: int, **extra: Any) -> dict[str, Any]:
        return {"task": "reminder", "id": f"rem-{n}", "patient": patient(n),
                "purpose": "appointment_confirmation", "channel": "sms",
                "to": f"555-201-77{n:02d}", "scheduled": send_at.isoformat(),
                "appointment": {"id": f"appt-{n}", "start": slots[n - 1].isoformat(),
                                "minutes": 20}, **extra}

    # 1. tomorrow's schedule (and yesterday's no-show, and a result to call back)
    schedule = [book(n, slots[n - 1]) for n in (1, 2, 3)]
    schedule += [book(9, yesterday), {**book(9, yesterday), "id": "appt-9-noshow",
                                      "action": "no_show"}]
    result_call = {"task": "follow_up", "id": "fu-lab-1", "patient": patient(4),
                   "created": (now - timedelta(hours=2)).isoformat(),
                   "due": (now + timedelta(days=2)).isoformat(), "priority": "urgent",
                   "reason": "Call back with lipid panel", "focus": {"type": "result",
                                                                     "id": "LAB-4"}}
    reminders = [remind(n) for n in (1, 2, 3)]
    got = sync(tmp_path, "schedule", [*schedule, result_call, *reminders],
               f"local:{tmp_path / 'store.db'}")
    assert got["dead"] == 0 and got["quarantined"] == 0

    # 2. the reminders go out through the outbox to a webhook on loopback
    hook = Hook()
    try:
        got = sync(tmp_path, "reminders", reminders, f"messaging:{hook.url}")
    finally:
        hook.close()
    assert got["sent"] == 3 and got["dead"] == 0
    messages = sorted((m for m, _ in hook.received), key=lambda m: m["id"])
    assert [m["to"] for m in messages] == ["555-201-7701", "555-201-7702", "555-201-7703"]
    assert all("Maple Street Family Clinic: you have an appointment at" in m["text"]
               for m in messages)

    # 3. patient 2 answers "cancel"
    reply = remind(2, sent=send_at.isoformat(), reply="cancel_requested",
                   replied_at=(send_at + timedelta(minutes=7)).isoformat())
    reply["appointment"]["status"] = "booked"  # what the EHR's schedule says
    sync(tmp_path, "reply", [reply], f"local:{tmp_path / 'store.db'}")
    store = LocalStore(tmp_path / "store.db")
    try:
        appt = store.find("Appointment", f"{SYS}/appointment", "appt-2")
        assert appt is not None and appt["status"] == "cancelled"
        assert appt["cancelationReason"]["coding"][0]["code"] == "pat-crs"
        assert store.find("Appointment", f"{SYS}/appointment", "appt-1")["status"] == "booked"
    finally:
        store.close()

    # 4. the worklist: the no-show (overdue) first, then the urgent result call, then the slot
    items = worklist(tmp_path)
    assert [(i["id"], i["kind"], i["patient"]) for i in items] == [
        ("no_show:appt-9", "no_show", "MS-3009"),
        ("fu-lab-1", "result_call", "MS-3004"),
        ("slot:appt-2", "slot", "MS-3002"),
    ]
    assert [i["id"] for i in worklist(tmp_path, "--kind", "slot")] == ["slot:appt-2"]
    assert [i["id"] for i in worklist(tmp_path, "--patient", "MS-3004")] == ["fu-lab-1"]
    assert [i["id"] for i in worklist(tmp_path, "--due", "overdue")] == ["no_show:appt-9"]
    assert [i["id"] for i in worklist(tmp_path, "--due", slots[1].date().isoformat())] == \
        ["slot:appt-2"]

    # 5. done items leave it, each closed by a follow_up written through the outbox
    for item, outcome in (("slot:appt-2", "Offered to a waitlisted patient"),
                          ("no_show:appt-9", "Rebooked for next week"),
                          ("fu-lab-1", "Patient told the result is normal")):
        closed = done(tmp_path, item, outcome)
        assert closed.exit_code == 0, closed.output
    assert worklist(tmp_path) == []
    store = LocalStore(tmp_path / "store.db")
    try:
        lab = store.find("Task", f"{SYS}/follow-up", "fu-lab-1")
        assert lab["status"] == "completed"
        assert lab["output"][0]["valueString"] == "Patient told the result is normal"
        assert lab["priority"] == "urgent"  # the item as it was, only completed
        noshow = store.find("Task", f"{SYS}/follow-up", "done.no_show:appt-9")
        assert noshow["status"] == "completed"
        appt9 = store.find("Appointment", f"{SYS}/appointment", "appt-9")
        assert noshow["focus"] == {"reference": f"Appointment/{appt9['id']}"}
    finally:
        store.close()
    again = done(tmp_path, "fu-lab-1", "twice")
    assert again.exit_code != 0 and "no open item 'fu-lab-1'" in str(again.exception)


def test_refill_requests_join_the_worklist_through_the_hook(tmp_path):
    from mafhir_pharmacy.tasks import RefillRequestTask
    from mafhir_pharmacy.worklist import LocalWorklist, UnknownPrescription

    path = tmp_path / "pharmacy.sqlite"
    pharmacy = LocalWorklist(path)
    try:
        request = RefillRequestTask.model_validate({
            "task": "refill_request", "id": "rr-7", "patient": patient(7),
            "received": "2026-12-01T08:05:00-05:00", "prescription": "rx-77",
            "pharmacy": {"ncpdp_id": "1234567", "name": "Main Street Pharmacy"}})
        with pytest.raises(UnknownPrescription):  # held for review: still the MA's to see
            pharmacy.add_request(request)
    finally:
        pharmacy.close()
    env = {"MAFHIR_PHARMACY_WORKLIST": str(path)}
    (item,) = worklist(tmp_path, env=env)
    assert (item["id"], item["kind"], item["patient"], item["source"], item["status"]) == \
        ("refill:rr-7", "refill", "MS-3007", "pharmacy", "review")
    assert item["due"] == "2026-12-03T08:05:00-05:00"  # received + 48 h
    (tmp_path / "clinic.json").write_text(json.dumps(CLINIC))
    refused = done(tmp_path, "refill:rr-7", "approved", env=env)
    assert refused.exit_code != 0
    assert "close it with that plugin's command" in str(refused.exception)
    assert not (tmp_path / "store.db").exists()  # nothing written anywhere


class Broken:
    @hookimpl
    def worklist_items(self) -> list[Any]:
        raise OSError("the portal database is gone")


def test_hook_worklist_items(tmp_path):
    plugins.reset()
    try:
        plugins.register(load_example("worklist_items"), name="portal-example")
        plugins.register(Broken(), name="broken-example")
        result = CliRunner().invoke(build_cli(), ["worklist", "--store",
                                                  str(tmp_path / "none.db"), "--json"])
        assert result.exit_code == 0, result.output
        (item,) = json.loads(result.stdout)
        assert (item["id"], item["kind"], item["patient"], item["source"]) == \
            ("portal:msg-17", "outreach", "MS-10024", "portal-example")
        assert "broken-example: its worklist could not be read (OSError)" in result.stderr
    finally:
        plugins.reset()


def test_the_worklist_reads_the_ehr_and_closes_its_items_there(tmp_path, fresh_fhir_server):
    """Items from the clinic's EHR (a real FHIR server on loopback): a follow-up Task and
    a recall found by search, shown by MRN; ``done`` completes the Task there (where it
    was read)."""
    url = fresh_fhir_server.base_url
    now = datetime.now(EST).replace(second=0, microsecond=0)
    ana = {"mrn": "MS-3100", "system": MRN_SYSTEM, "family": "Reyes", "given": ["Ana"],
           "gender": "female", "birth_date": "1980-02-14"}
    follow = {"task": "follow_up", "id": "fu-ehr-1", "patient": ana,
              "created": now.isoformat(), "due": (now + timedelta(hours=4)).isoformat(),
              "reason": "Prior authorization to chase"}
    recall = {"task": "reminder", "id": "recall-31", "patient": ana,
              "purpose": "recall_vaccine", "channel": "portal",
              "scheduled": (now + timedelta(days=3)).isoformat(), "due": "2031-01-15"}
    got = sync(tmp_path, "ehr", [follow, recall], url)
    assert got["dead"] == 0
    items = worklist(tmp_path, "--from", url)
    assert [(i["id"], i["kind"], i["patient"], i["source"]) for i in items] == [
        ("fu-ehr-1", "follow_up", "MS-3100", url),
        ("recall:recall-31", "recall", "MS-3100", url)]
    assert items[1]["summary"] == "Recall: vaccine due, due 2031-01-15"
    closed = cli(tmp_path, "worklist", "--store", str(tmp_path / "store.db"), "--from", url,
                 "done", "fu-ehr-1", "--outcome", "Approved by the payer",  # back to the EHR
                 "--db", str(tmp_path / "outbox.db"), "--clinic", str(tmp_path / "clinic.json"))
    assert closed.exit_code == 0, closed.output
    assert [i["id"] for i in worklist(tmp_path, "--from", url)] == ["recall:recall-31"]
    import requests

    found = requests.get(f"{url}/Task", params={"identifier": f"{SYS}/follow-up|fu-ehr-1"},
                         timeout=30).json()
    (task,) = [e["resource"] for e in found["entry"]]
    assert task["status"] == "completed"
    assert task["output"][0]["valueString"] == "Approved by the payer"
    assert task["restriction"]["period"]["end"] == follow["due"]


def test_pull_reads_the_front_office_back_as_tasks(tmp_path, fresh_fhir_server):
    """task → FHIR server (resolving every reference) → ``pull … --tasks`` → the same
    tasks: a call with its follow-up, a reply that cancelled an appointment, a follow-up."""
    url = fresh_fhir_server.base_url
    now = datetime.now(EST).replace(second=0, microsecond=0)
    start = (now + timedelta(days=2)).replace(hour=10, minute=0)
    ana = {"mrn": "MS-3200", "system": MRN_SYSTEM, "family": "Reyes", "given": ["Ana"],
           "gender": "female", "birth_date": "1980-02-14"}
    nurse = {"npi": "1245319599", "family": "Okafor", "given": ["Grace"]}
    book = {"task": "appointment", "id": "appt-32-book", "appointment_id": "appt-32",
            "action": "book", "patient": ana, "start": start.isoformat(), "minutes": 20,
            "practitioner": nurse}
    call = {"task": "phone_call", "id": "call-32", "patient": {"mrn": "MS-3200",
                                                               "system": MRN_SYSTEM},
            "direction": "outbound", "topic": "appointment", "outcome": "voicemail",
            "about": [{"type": "appointment", "id": "appt-32",
                       "system": f"{SYS}/appointment"}],
            "at": now.isoformat(), "by": nurse,
            "follow_up": {"due": (now + timedelta(days=1)).isoformat(),
                          "reason": "Call again", "owner": nurse, "priority": "urgent"}}
    sent = now + timedelta(minutes=5)
    reply = {"task": "reminder", "id": "rem-32", "patient": {"mrn": "MS-3200",
                                                             "system": MRN_SYSTEM},
             "purpose": "appointment_reminder", "channel": "sms", "to": "555-201-7732",
             "scheduled": sent.isoformat(), "sent": sent.isoformat(),
             "reply": "cancel_requested", "replied_at": (sent + timedelta(minutes=3)).isoformat(),
             "appointment": {"id": "appt-32", "start": start.isoformat(), "minutes": 20,
                             "practitioner": nurse, "status": "booked"}}
    got = sync(tmp_path, "pull", [book, call, reply], url)
    assert got["dead"] == 0 and got["sent"] == 3

    def pull(what: str) -> list[dict[str, Any]]:
        result = cli(tmp_path, "pull", "--from", url, what, "--patient",
                     f"{MRN_SYSTEM}|MS-3200", "--tasks")
        assert result.exit_code == 0, result.output
        return [json.loads(x) for x in result.stdout.splitlines()]

    # read back with the Patient the server holds (its demographics) and reasons as
    # coded text, as every kind's reader gives them
    (call_back,) = pull("calls")
    assert call_back == {**call, "patient": ana, "party": "patient",
                         "follow_up": {**call["follow_up"], "reason": {"text": "Call again"}}}
    (follow,) = [t for t in pull("follow-ups") if t["task"] == "follow_up"]
    assert follow == {"task": "follow_up", "id": "call-32.follow-up", "status": "requested",
                      "patient": ana, "created": now.isoformat(),
                      "due": call["follow_up"]["due"], "reason": {"text": "Call again"},
                      "focus": call["about"][0], "owner": nurse, "priority": "urgent",
                      "call": "call-32"}
    (reminder,) = pull("reminders")
    assert reminder == {**reply, "patient": ana}
