"""The front-office task kinds (issue 18 part B): phone_call, reminder, follow_up.

Expected values are written by hand from the mapping reference §11 (R4 Communication,
CommunicationRequest and Task elements, THO codes) — never copied from the mappers'
output. Each kind also passes the mapper conformance kit (deterministic, valid R4,
round trip task → FHIR → task).
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

import uscore
from conftest import CTX, assert_valid_bundle, load_json
from mafhir.bundle import transaction
from mafhir.errors import TransitionError
from mafhir.pipeline import Failed, Mapped, Pipeline
from mafhir.resourceset import ResourceSet
from mafhir.testing import check_mapper

SYS = "https://maple-clinic.example.org/fhir/id"
MRN = {"mrn": "MS-10024", "system": "urn:oid:2.16.840.1.113883.19.5"}
NEW_PATIENT = {"mrn": "MS-20001", "family": "Reyes", "given": ["Ana"], "gender": "female",
               "birth_date": "1980-02-14", "phone": "555-201-7788"}
NURSE = {"npi": "1245319599", "family": "Okafor", "given": ["Grace"]}
MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
TOPIC = "http://terminology.hl7.org/CodeSystem/communication-topic"

FOLLOW_UP = {"task": "follow_up", "id": "fu-1", "patient": MRN,
             "created": "2030-06-03T09:00:00-05:00", "due": "2030-06-05T17:00:00-05:00",
             "reason": "Call back with normal lipid panel",
             "focus": {"type": "result", "id": "LAB-778"}, "owner": NURSE,
             "priority": "urgent"}
CALL = {"task": "phone_call", "id": "call-1", "patient": MRN, "direction": "outbound",
        "party": "patient", "topic": "result", "about": [{"type": "result", "id": "LAB-778"}],
        "outcome": "reached", "at": "2030-06-04T10:15:00-05:00",
        "message": "Told patient the lipid panel is normal."}
APPT = {"id": "appt-900", "start": "2030-06-10T09:30:00-05:00", "minutes": 20,
        "practitioner": NURSE, "location": {"id": "exam-1", "name": "Exam Room 1"},
        "service_type": {"system": "snomed", "code": "394814009",
                         "display": "General practice"}}
REMINDER = {"task": "reminder", "id": "rem-1", "patient": MRN,
            "purpose": "appointment_confirmation", "channel": "sms", "to": "+1 555 201 7788",
            "scheduled": "2030-06-09T09:00:00-05:00", "appointment": APPT}


def doc(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def run(registry, docs: list[dict[str, Any]]) -> list[Mapped | Failed]:
    return list(Pipeline(registry, CTX).run(enumerate(docs)))


def mapped(registry, raw: dict[str, Any]) -> list[Any]:
    (result,) = run(registry, [raw])
    assert isinstance(result, Mapped), getattr(result, "problems", result)
    assert_valid_bundle(result.entries, registry)
    return list(result.entries)


def only(entries, rtype: str, suffix: str = "") -> dict[str, Any]:
    found = [e.resource for e in entries if e.resource_type == rtype and
             (not suffix or e.resource["identifier"][0]["system"].endswith(suffix))]
    assert len(found) == 1, [e.resource_type for e in entries]
    return found[0]


def refused(registry, raw: dict[str, Any]) -> dict[str, str]:
    (result,) = run(registry, [raw])
    assert isinstance(result, Failed)
    return {p.location: p.message for p in result.problems}


# ------------------------------------------------------------------------ follow_up

def test_follow_up_is_a_task_with_owner_due_date_reason_and_focus(registry):
    entries = mapped(registry, FOLLOW_UP)
    task = only(entries, "Task")
    assert task["identifier"] == [{"system": f"{SYS}/follow-up", "value": "fu-1"}]
    assert (task["status"], task["intent"], task["priority"]) == ("requested", "order", "urgent")
    assert task["focus"] == {"reference": f"DiagnosticReport?identifier={SYS}/result|LAB-778"}
    assert task["for"] == {"reference": "Patient?identifier=urn:oid:2.16.840.1.113883.19.5|"
                                        "MS-10024"}
    assert task["authoredOn"] == "2030-06-03T09:00:00-05:00"
    assert task["lastModified"] == "2030-06-03T09:00:00-05:00"
    assert task["restriction"] == {"period": {"end": "2030-06-05T17:00:00-05:00"}}
    assert task["reasonCode"] == {"text": "Call back with normal lipid panel"}
    assert "output" not in task
    practitioner = only(entries, "Practitioner")
    assert practitioner["identifier"][0]["value"] == "1245319599"
    entry = next(e for e in entries if e.resource_type == "Task")
    assert (entry.method, entry.url) == ("PUT", f"Task?identifier={SYS}/follow-up|fu-1")


def test_follow_up_completion_carries_the_outcome(registry):
    results = run(registry, [FOLLOW_UP, doc(FOLLOW_UP, status="completed",
                                            at="2030-06-04T11:00:00-05:00",
                                            outcome="Patient informed; no questions")])
    assert all(isinstance(r, Mapped) for r in results)
    task = only(results[1].entries, "Task")
    assert task["status"] == "completed"
    assert task["lastModified"] == "2030-06-04T11:00:00-05:00"
    assert task["output"][0]["valueString"] == "Patient informed; no questions"


@pytest.mark.parametrize(("before", "status", "current"), [
    (["cancelled"], "completed", "cancelled"),
    (["completed"], "in-progress", "completed"),
    (["completed"], "completed", "completed"),
])
def test_an_out_of_order_step_is_refused_naming_both_states(registry, before, status, current):
    extra = {"completed": {"outcome": "done"}}
    docs = [FOLLOW_UP] + [doc(FOLLOW_UP, status=s, at="2030-06-04T11:00:00-05:00",
                              **extra.get(s, {})) for s in [*before, status]]
    results = run(registry, docs)
    assert all(isinstance(r, Mapped) for r in results[:-1])
    last = results[-1]
    assert isinstance(last, Failed)
    (problem,) = last.problems
    assert problem.location == f"task[{len(docs) - 1}].status"
    assert f"'{current}'" in problem.message and f"'{status}'" in problem.message


def test_the_step_itself_raises_a_transition_error(registry):
    lifecycle = registry.mapper("follow_up").lifecycle
    task = Pipeline(registry, CTX).parse(0, doc(FOLLOW_UP, status="completed",
                                                at="2030-06-04T11:00:00-05:00", outcome="ok"))
    with pytest.raises(TransitionError) as info:
        lifecycle.step(task, "cancelled")
    assert (info.value.current, info.value.requested) == ("cancelled", "completed")


def test_completing_an_unknown_item_needs_its_current_status(registry):
    problems = refused(registry, doc(FOLLOW_UP, status="completed",
                                     at="2030-06-04T11:00:00-05:00", outcome="ok"))
    assert list(problems) == ["task[0].current_status"]
    ok = run(registry, [doc(FOLLOW_UP, status="completed", current_status="in-progress",
                            at="2030-06-04T11:00:00-05:00", outcome="ok")])
    assert isinstance(ok[0], Mapped)


@pytest.mark.parametrize(("changes", "field"), [
    ({"due": "2030-06-02T09:00:00-05:00"}, "due"),
    ({"status": "completed", "at": "2030-06-04T11:00:00-05:00"}, "outcome"),
    ({"status": "in-progress"}, "at"),
    ({"outcome": "early"}, "outcome"),
    ({"focus": {"type": "x-ray", "id": "1"}}, "focus.type"),
])
def test_bad_follow_ups_are_refused_naming_the_field(registry, changes, field):
    problems = refused(registry, doc(FOLLOW_UP, **changes))
    assert f"task[0].{field}" in problems, problems


# ------------------------------------------------------------------------ phone_call

def test_a_reached_result_call_is_a_completed_phone_communication(registry):
    entries = mapped(registry, CALL)
    com = only(entries, "Communication")
    assert com["identifier"] == [{"system": f"{SYS}/phone-call", "value": "call-1"}]
    assert com["status"] == "completed"
    assert com["medium"] == [{"coding": [{"system": MODE, "code": "PHONE",
                                          "display": "telephone"}]}]
    assert {"system": TOPIC, "code": "report-labs", "display": "Report Labs"} in \
        com["topic"]["coding"]
    assert com["about"] == [{"reference": f"DiagnosticReport?identifier={SYS}/result|LAB-778"}]
    assert com["sent"] == "2030-06-04T10:15:00-05:00" and "received" not in com
    patient = "Patient?identifier=urn:oid:2.16.840.1.113883.19.5|MS-10024"
    assert com["recipient"] == [{"reference": patient}]
    assert com["payload"] == [{"contentString": "Told patient the lipid panel is normal."}]
    assert not [e for e in entries if e.resource_type == "Task"]
    entry = next(e for e in entries if e.resource_type == "Communication")
    assert entry.method == "POST" and entry.if_none_exist == \
        f"identifier={SYS}/phone-call|call-1"


def test_a_voicemail_carries_only_a_call_back_request(registry):
    entries = mapped(registry, doc(CALL, outcome="voicemail", message=None))
    com = only(entries, "Communication")
    assert com["status"] == "completed"
    assert com["statusReason"]["coding"][0]["code"] == "voicemail"
    assert com["payload"] == [{"contentString":
                               "This is Maple Street Family Clinic. Please call us back."}]
    problems = refused(registry, CALL | {"outcome": "voicemail"})
    assert "task[0].message" in problems and "clinical" in problems["task[0].message"]


@pytest.mark.parametrize("outcome", ["no_answer", "wrong_number"])
def test_a_failed_call_is_not_done_with_why(registry, outcome):
    com = only(mapped(registry, doc(CALL, outcome=outcome, message=None)), "Communication")
    assert com["status"] == "not-done"
    assert com["statusReason"]["coding"][0]["code"] == outcome
    assert "payload" not in com


def test_triage_is_handed_to_a_nurse_as_a_follow_up_task(registry):
    raw = doc(CALL, id="call-2", direction="inbound", topic="triage", about=None,
              message="Sore throat for 3 days, no fever",
              follow_up={"due": "2030-06-04T12:15:00-05:00", "owner": NURSE,
                         "reason": "Nurse triage call-back", "priority": "asap"})
    entries = mapped(registry, raw)
    com = only(entries, "Communication")
    assert com["received"] == "2030-06-04T10:15:00-05:00" and "sent" not in com
    assert {"system": TOPIC, "code": "phone-consult", "display": "Phone Consult"} in \
        com["topic"]["coding"]
    task = only(entries, "Task")
    assert task["identifier"] == [{"system": f"{SYS}/follow-up", "value": "call-2.follow-up"}]
    assert (task["status"], task["priority"]) == ("requested", "asap")
    assert task["basedOn"] == [{"reference": f"Communication?identifier={SYS}/phone-call|"
                                             "call-2"}]
    assert task["restriction"]["period"]["end"] == "2030-06-04T12:15:00-05:00"
    nurse = next(e for e in entries if e.resource_type == "Practitioner")
    assert nurse.resource["identifier"][0]["value"] == "1245319599"
    assert task["owner"] == {"reference": nurse.full_url}
    task_entry = next(e for e in entries if e.resource_type == "Task")
    assert task_entry.method == "POST"  # a resent call never undoes a later step
    no_nurse = refused(registry, doc(raw, follow_up=None))
    assert "task[0].follow_up.owner" in no_nurse


@pytest.mark.parametrize(("changes", "field"), [
    ({"party": "pharmacy", "topic": "result"}, "topic"),
    ({"party": "pharmacy", "topic": "refill"}, "about[0]"),
    ({"party": "payer", "topic": "triage", "about": []}, "topic"),
    ({"direction": "inbound", "outcome": "voicemail", "message": None}, "outcome"),
    ({"party_name": "Ana"}, "party_name"),
    ({"follow_up": {"due": "2030-06-01T09:00:00-05:00", "reason": "x"}}, "follow_up.due"),
])
def test_bad_calls_are_refused_naming_the_field(registry, changes, field):
    problems = refused(registry, doc(CALL, **changes))
    assert f"task[0].{field}" in problems, problems


# ------------------------------------------------------------------------ reminder

def test_a_scheduled_sms_confirmation_is_an_active_communication_request(registry):
    entries = mapped(registry, REMINDER)
    req = only(entries, "CommunicationRequest")
    assert req["identifier"] == [{"system": f"{SYS}/reminder", "value": "rem-1"}]
    assert req["status"] == "active"
    assert req["category"][0]["coding"][0]["code"] == "reminder"
    assert req["medium"][0]["coding"][0] == {"system": MODE, "code": "SMSWRIT",
                                             "display": "SMS message"}
    assert req["occurrenceDateTime"] == "2030-06-09T09:00:00-05:00"
    assert req["about"] == [{"reference": f"Appointment?identifier={SYS}/appointment|"
                                          "appt-900"}]
    # 2030-06-10 is a Monday; nothing clinical: no service, reason, clinician or room
    assert req["payload"] == [{"contentString":
                               "Reminder from Maple Street Family Clinic: you have an "
                               "appointment at 9:30 AM on Monday, June 10, 2030. Reply C to "
                               "confirm or X to cancel."}]
    address = req["extension"][0]
    assert address["valueContactPoint"] == {"system": "phone", "value": "+1 555 201 7788"}
    assert not [e for e in entries if e.resource_type in ("Communication", "Appointment")]


def test_a_sent_reminder_has_its_communication_based_on_the_request(registry):
    entries = mapped(registry, doc(REMINDER, sent="2030-06-09T09:00:05-05:00"))
    assert only(entries, "CommunicationRequest")["status"] == "completed"
    com = only(entries, "Communication")
    assert com["basedOn"] == [{"reference": f"CommunicationRequest?identifier={SYS}/reminder|"
                                            "rem-1"}]
    assert com["sent"] == "2030-06-09T09:00:05-05:00"
    assert com["topic"]["coding"][0]["code"] == "appointment-reminder"


def test_a_recall_names_no_vaccine_or_lab(registry):
    raw = {"task": "reminder", "id": "recall-1", "patient": MRN, "purpose": "recall_vaccine",
           "channel": "mail", "scheduled": "2030-07-01T09:00:00-05:00", "due": "2030-07-15"}
    req = only(mapped(registry, raw), "CommunicationRequest")
    assert req["payload"][0]["contentString"] == \
        "Maple Street Family Clinic: it is time to schedule a visit. Call us to book."
    assert req["medium"][0]["coding"][0]["code"] == "MAILWRIT"
    assert "about" not in req and "extension" not in req


def test_a_cancel_reply_cancels_the_appointment_through_its_lifecycle(registry):
    book = {"task": "appointment", "id": "appt-900-book", "appointment_id": "appt-900",
            "action": "book", "patient": MRN, "start": APPT["start"], "minutes": 20}
    reply = doc(REMINDER, sent="2030-06-09T09:00:05-05:00", reply="cancel_requested",
                replied_at="2030-06-09T09:12:00-05:00")
    again = doc(reply, id="rem-2")
    results = run(registry, [book, reply, again])
    assert isinstance(results[0], Mapped) and isinstance(results[1], Mapped)
    # the reply changes the status only: a JSON Patch on the clinic's appointment id
    # (R4 http.html#patch), never the Appointment rewritten whole
    assert not [e for e in results[1].entries if e.resource_type == "Appointment"]
    (change,) = [e for e in results[1].entries if e.method == "PATCH"]
    assert change.url == f"Appointment?identifier={SYS}/appointment|appt-900"
    assert (change.resource["resourceType"], change.resource["contentType"]) == \
        ("Binary", "application/json-patch+json")
    assert json.loads(base64.b64decode(change.resource["data"])) == [
        {"op": "replace", "path": "/status", "value": "cancelled"},
        {"op": "add", "path": "/cancelationReason", "value": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason",
            "code": "pat-crs", "display": "Patient: Canceled via automated reminder system"}]}}]
    # in one Bundle with the booking, it is applied to the booked Appointment
    bundle = transaction([*results[0].entries, *results[1].entries])
    (appt,) = [e["resource"] for e in bundle["entry"]
               if e["resource"]["resourceType"] == "Appointment"]
    assert (appt["status"], appt["minutesDuration"]) == ("cancelled", 20)
    assert appt["cancelationReason"]["coding"][0]["code"] == "pat-crs"
    assert not [e for e in bundle["entry"] if e["request"]["method"] == "PATCH"]
    reply_com = only(results[1].entries, "Communication", "/reminder-reply")
    assert reply_com["inResponseTo"] == [{"reference": f"Communication?identifier="
                                                       f"{SYS}/reminder-sent|rem-1"}]
    assert reply_com["reasonCode"][0]["coding"][0]["code"] == "cancel_requested"
    # the appointment's one state machine: a second reply cannot cancel it again
    assert isinstance(results[2], Failed)
    (problem,) = results[2].problems
    assert problem.location == "task[2].reply"
    assert "'cancelled'" in problem.message


def test_a_reply_to_an_appointment_of_unknown_state_needs_its_status(registry):
    reply = doc(REMINDER, sent="2030-06-09T09:00:05-05:00", reply="confirmed",
                replied_at="2030-06-09T09:12:00-05:00")
    assert "task[0].appointment.status" in refused(registry, reply)
    ok = doc(reply, appointment={"id": "appt-900", "start": APPT["start"],
                                 "status": "booked"})  # no duration: nothing is rewritten
    (change,) = [e for e in mapped(registry, ok) if e.method == "PATCH"]
    # the status it was is tested where the change lands: changed meanwhile → refused
    assert json.loads(base64.b64decode(change.resource["data"])) == [
        {"op": "test", "path": "/status", "value": "booked"},
        {"op": "replace", "path": "/status", "value": "booked"}]


@pytest.mark.parametrize(("changes", "field"), [
    ({"scheduled": "2020-01-01T09:00:00-05:00"}, "scheduled"),
    ({"scheduled": "2030-06-10T10:00:00-05:00"}, "scheduled"),
    ({"reply": "confirmed", "replied_at": "2030-06-09T09:12:00-05:00"}, "reply"),
    ({"to": None}, "to"),
    ({"channel": "email", "to": "not-an-address"}, "to"),
    ({"appointment": None}, "appointment"),
    ({"purpose": "recall_lab"}, "appointment"),
])
def test_bad_reminders_are_refused_naming_the_field(registry, changes, field):
    problems = refused(registry, doc(REMINDER, **changes))
    assert f"task[0].{field}" in problems, problems


def test_a_past_reminder_that_was_sent_is_taken(registry):
    sent = doc(REMINDER, scheduled="2020-01-01T09:00:00-05:00",
               sent="2020-01-01T09:00:03-05:00",
               appointment=APPT | {"start": "2020-01-02T09:30:00-05:00"})
    assert mapped(registry, sent)


# ------------------------------------------------------------------------ the kit, round trip

SAMPLES = {
    "follow_up": [FOLLOW_UP,
                  doc(FOLLOW_UP, id="fu-2", status="completed", current_status="requested",
                      at="2030-06-04T11:00:00-05:00", outcome="Reached; booked",
                      focus={"type": "referral", "id": "REF-9"}, owner=None,
                      patient=NEW_PATIENT)],
    "phone_call": [CALL, doc(CALL, id="call-3", outcome="voicemail", message=None),
                   doc(CALL, id="call-4", direction="inbound", topic="triage", about=None,
                       by=NURSE, follow_up={"due": "2030-06-04T12:15:00-05:00",
                                            "owner": NURSE, "reason": "Nurse call-back"}),
                   doc(CALL, id="call-5", party="pharmacy", party_name="Main St Pharmacy",
                       topic="refill", about=[{"type": "prescription", "id": "RX-1"}],
                       patient=NEW_PATIENT)],
    "reminder": [REMINDER, doc(REMINDER, id="rem-3", sent="2030-06-09T09:00:05-05:00"),
                 doc(REMINDER, id="rem-4", sent="2030-06-09T09:00:05-05:00",
                     reply="confirmed", replied_at="2030-06-09T09:10:00-05:00",
                     appointment=APPT | {"status": "booked"}),
                 {"task": "reminder", "id": "recall-2", "patient": NEW_PATIENT,
                  "purpose": "recall_annual_exam", "channel": "email",
                  "to": "ana@example.org", "scheduled": "2030-07-01T09:00:00-05:00",
                  "due": "2030-07-15"}],
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_each_kind_keeps_the_mapper_contract(kind):
    assert check_mapper(kind, SAMPLES[kind], CTX) == []


def test_round_trip_keeps_the_task(registry):
    """task → FHIR → task gives the task back, field for field (not only the same FHIR)."""
    for kind in ("follow_up", "phone_call"):
        mapper = registry.mapper(kind)
        for raw in SAMPLES[kind]:
            task = mapper.model.model_validate(raw)
            bundle = assert_valid_bundle(mapper.to_fhir(task, CTX), registry)
            back = [t for t in mapper.from_fhir(ResourceSet.from_bundle(bundle))
                    if t.id == task.id]
            assert [named(t) for t in back] == [named(task)]


def named(task: Any) -> dict[str, Any]:
    """A task as a dict, with what it points at in the clinic's namespace spelled out (the
    reader cannot tell a default namespace from a stated one) and no ``current_status``
    (the status before a step is not kept in FHIR)."""
    data = task.model_dump(mode="json", exclude_none=True)
    data.pop("current_status", None)
    data["patient"].setdefault("system", f"{SYS}/mrn")
    for item in [*data.get("about", []), *([data["focus"]] if "focus" in data else [])]:
        namespace = {"result": "result", "prescription": "prescription",
                     "referral": "referral"}[item["type"]]
        item.setdefault("system", f"{SYS}/{namespace}")
    return data


def _codes(corpus, name: str) -> set[str]:
    cs = load_json(corpus / f"fhir-r4-core/codesystems/CodeSystem-{name}.json")
    return {c["code"] for c in cs["concept"]}


def test_codes_are_r4_and_the_profiled_resources_meet_us_core(registry, corpus):
    """Statuses, intents and priorities from the R4 CodeSystems in the corpus; the Patient,
    Practitioner and Organization these kinds write pass the independent US Core snapshot
    reader (tests/uscore.py) in 6.1.0 and 7.0.0 — the only resources here with a profile."""
    allowed = {("Communication", "status"): _codes(corpus, "event-status"),
               ("CommunicationRequest", "status"): _codes(corpus, "request-status"),
               ("CommunicationRequest", "priority"): _codes(corpus, "request-priority"),
               ("Task", "status"): _codes(corpus, "task-status"),
               ("Task", "priority"): _codes(corpus, "request-priority"),
               ("Task", "intent"): _codes(corpus, "request-intent") | _codes(corpus,
                                                                            "task-intent")}
    profiled: set[str] = set()
    seen: set[tuple[str, str]] = set()
    for kind, samples in SAMPLES.items():
        mapper = registry.mapper(kind)
        for raw in samples:
            for entry in mapper.to_fhir(mapper.model.model_validate(raw), CTX):
                res = entry.resource
                for (rtype, element), codes in allowed.items():
                    if res["resourceType"] == rtype:
                        assert res[element] in codes, (rtype, element, res[element])
                        seen.add((rtype, element))
                if res.get("meta", {}).get("profile"):
                    profiled.add(res["resourceType"])
                    for version in ("6.1.0", "7.0.0"):
                        assert uscore.check(res, corpus, version) == []
    assert seen == set(allowed)
    # (a reply no longer rewrites the Appointment, so it writes no Location of its own)
    assert profiled == {"Patient", "Practitioner", "Organization"}
