"""The appointment task kind: lifecycle, Appointment + Encounter mapping, reverse mapping.

Expected values are written by hand from the mapping reference §4 (status lifecycle table,
codes) or read from the public corpus (FHIR R4 Appointment examples, US Core Encounter
examples, R4 CodeSystems); none is a copy of the mapper's own output.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import uscore
from conftest import CTX, assert_valid_bundle, load_json
from mafhir.bundle import transaction
from mafhir.errors import InputError, TransitionError
from mafhir.mappers.common import encounter_ref
from mafhir.pipeline import Failed, Mapped, Pipeline
from mafhir.resourceset import ResourceSet
from mafhir.tasks.appointment import AppointmentTask, CodedText

# --------------------------------------------------------------------------- fixtures

APPT_SYSTEM = "https://maple-clinic.example.org/fhir/id/appointment"
ENC_SYSTEM = "https://maple-clinic.example.org/fhir/id/encounter"
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.19.5"
SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CANCEL_CS = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"

CHECK_IN = "2026-03-04T08:52:00-05:00"
STARTED = "2026-03-04T09:05:00-05:00"
DONE = "2026-03-04T09:40:00-05:00"

BASE = {
    "task": "appointment",
    "appointment_id": "appt-1001",
    "patient": {"mrn": "1032702", "system": MRN_SYSTEM},
    "start": "2026-03-04T09:00:00-05:00",
    "end": "2026-03-04T09:20:00-05:00",
    "service_type": {"system": "snomed", "code": "394814009", "display": "General practice"},
    "appointment_type": "FOLLOWUP",
    "reason": "Cough for three days",
    "practitioner": {"npi": "1234567893", "family": "Careful", "given": ["Adam"]},
    "location": {"id": "room-3", "name": "Exam room 3"},
}

#: The event fields each action needs (check-in, start and completion times).
EVENT = {
    "check_in": {"at": CHECK_IN},
    "start": {"at": STARTED, "checked_in_at": CHECK_IN},
    "complete": {"at": DONE, "checked_in_at": CHECK_IN, "started_at": STARTED},
    "cancel": {"cancel_reason": "pat"},
    "reschedule": {"start": "2026-03-05T10:00:00-05:00", "end": "2026-03-05T10:30:00-05:00"},
}

ACTIONS = ("book", "confirm", "reschedule", "cancel", "no_show", "check_in", "start", "complete")
#: the ten codes of R4 appointmentstatus (mapping reference §4.1)
APPOINTMENT_STATUSES = ("proposed", "pending", "booked", "arrived", "fulfilled", "cancelled",
                        "noshow", "entered-in-error", "checked-in", "waitlist")


def doc(action: str, n: int = 0, **extra) -> dict:
    out = {**copy.deepcopy(BASE), "id": f"a-{n}-{action}", "action": action,
           **copy.deepcopy(EVENT.get(action, {}))}
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def run(registry, docs: list[dict]) -> list[Mapped | Failed]:
    return list(Pipeline(registry, CTX).run(enumerate(docs)))


def of_type(entries, rtype: str) -> list[dict]:
    return [e.resource for e in entries if e.resource_type == rtype]


def the(entries, rtype: str) -> dict | None:
    found = of_type(entries, rtype)
    assert len(found) <= 1
    return found[0] if found else None


def parse(registry, raw: dict) -> AppointmentTask:
    task = Pipeline(registry, CTX).parse(0, raw)
    assert isinstance(task, AppointmentTask)
    return task


def mapped_bundle(registry, task: AppointmentTask) -> dict:
    return assert_valid_bundle(registry.mapper("appointment").to_fhir(task, CTX), registry)


# --------------------------------------------------------------------------- lifecycle

#: (actions of one run, [(Appointment.status, Encounter.status or None) after each]) —
#: the "Status lifecycle used by mafhir" table of mapping reference §4.1.
LEGAL_RUNS = [
    (["book"], [("booked", None)]),
    (["book", "confirm"], [("booked", None), ("booked", None)]),
    (["book", "reschedule", "confirm"], [("booked", None)] * 3),
    (["book", "cancel"], [("booked", None), ("cancelled", None)]),
    (["book", "no_show"], [("booked", None), ("noshow", None)]),
    (["book", "check_in"], [("booked", None), ("checked-in", "arrived")]),
    (["book", "check_in", "start", "complete"],
     [("booked", None), ("checked-in", "arrived"), ("checked-in", "in-progress"),
      ("fulfilled", "finished")]),
    (["book", "confirm", "check_in", "complete"],
     [("booked", None), ("booked", None), ("checked-in", "arrived"), ("fulfilled", "finished")]),
]


@pytest.mark.parametrize(("actions", "expected"), LEGAL_RUNS,
                         ids=["-".join(a) for a, _ in LEGAL_RUNS])
def test_legal_runs_give_the_lifecycle_statuses(registry, actions, expected):
    results = run(registry, [doc(a, i) for i, a in enumerate(actions)])
    assert all(isinstance(r, Mapped) for r in results), [getattr(r, "problems", None)
                                                         for r in results]
    for result, (appt_status, enc_status) in zip(results, expected, strict=True):
        assert the(result.entries, "Appointment")["status"] == appt_status
        enc = the(result.entries, "Encounter")
        assert (enc["status"] if enc else None) == enc_status
        assert_valid_bundle(result.entries, registry)


#: (earlier actions, the illegal action, state before it, the state it asked for)
ILLEGAL = [
    (["book", "cancel"], "check_in", "cancelled", "checked-in"),
    (["book"], "complete", "booked", "fulfilled"),
    (["book"], "start", "booked", "in-progress"),
    (["book", "check_in", "start", "complete"], "book", "fulfilled", "booked"),
    (["book", "no_show"], "check_in", "noshow", "checked-in"),
    (["book", "cancel"], "reschedule", "cancelled", "booked"),
    (["book", "cancel"], "confirm", "cancelled", "booked"),
    (["book", "check_in"], "check_in", "checked-in", "checked-in"),
    (["book", "check_in"], "cancel", "checked-in", "cancelled"),
    (["book", "check_in"], "no_show", "checked-in", "noshow"),
    (["book", "check_in", "start"], "start", "in-progress", "in-progress"),
    (["book", "check_in", "start"], "book", "in-progress", "booked"),
    (["book", "check_in", "start", "complete"], "complete", "fulfilled", "fulfilled"),
    (["book", "no_show"], "cancel", "noshow", "cancelled"),
]


@pytest.mark.parametrize(("before", "action", "current", "requested"), ILLEGAL,
                         ids=[f"{c}->{a}" for _, a, c, _ in ILLEGAL])
def test_illegal_transitions_name_both_states(registry, before, action, current, requested):
    docs = [doc(a, i) for i, a in enumerate([*before, action])]
    results = run(registry, docs)
    assert all(isinstance(r, Mapped) for r in results[:-1])
    last = results[-1]
    assert isinstance(last, Failed)
    (problem,) = last.problems
    assert problem.location == f"task[{len(before)}].action"
    assert f"'{current}'" in problem.message and f"'{requested}'" in problem.message


def test_step_raises_transition_error_with_both_states(registry):
    lifecycle = registry.mapper("appointment").lifecycle
    task = parse(registry, doc("check_in"))
    with pytest.raises(TransitionError) as info:
        lifecycle.step(task, "cancelled")
    assert (info.value.current, info.value.requested) == ("cancelled", "checked-in")
    assert lifecycle.key(task) == "appt-1001"


def test_a_refused_step_does_not_move_the_state(registry):
    results = run(registry, [doc("book", 0), doc("complete", 1), doc("check_in", 2),
                             doc("complete", 3)])
    assert [type(r).__name__ for r in results] == ["Mapped", "Failed", "Mapped", "Mapped"]


#: which actions each stated status allows (the lifecycle of mapping reference §4.1:
#: nothing leaves fulfilled, cancelled, noshow or entered-in-error).
ALLOWED_FROM = {
    "book": {"proposed", "pending", "waitlist", "booked"},
    "confirm": {"proposed", "pending", "booked"},
    "reschedule": {"proposed", "pending", "booked"},
    "cancel": {"proposed", "pending", "booked", "waitlist"},
    "no_show": {"pending", "booked"},
    "check_in": {"booked", "arrived"},
    "start": {"arrived", "checked-in"},
    "complete": {"arrived", "checked-in"},
}


@pytest.mark.parametrize("action", ACTIONS)
def test_every_stated_status_and_action(registry, action):
    """All 10 × 8 pairs, with the history stated in current_status (no earlier task)."""
    for status in APPOINTMENT_STATUSES:
        (result,) = run(registry, [doc(action, current_status=status)])
        if status in ALLOWED_FROM[action]:
            assert isinstance(result, Mapped), (status, result)
        else:
            assert isinstance(result, Failed), (status, action)
            assert result.problems[0].location == "task[0].action"
            assert f"'{status}'" in result.problems[0].message
    for terminal in ("fulfilled", "cancelled", "noshow", "entered-in-error"):
        assert terminal not in ALLOWED_FROM[action]


@pytest.mark.parametrize("action", [a for a in ACTIONS if a != "book"])
def test_without_known_state_only_book_goes(registry, action):
    (result,) = run(registry, [doc(action)])
    assert isinstance(result, Failed)
    assert result.problems[0].location == "task[0].current_status"
    assert "is required" in result.problems[0].message
    (book,) = run(registry, [doc("book")])
    assert isinstance(book, Mapped)


def test_stated_status_must_agree_with_the_run(registry):
    results = run(registry, [doc("book", 0), doc("cancel", 1),
                             doc("book", 2, current_status="booked")])
    last = results[-1]
    assert isinstance(last, Failed)
    assert last.problems[0].location == "task[2].current_status"
    assert "'booked'" in last.problems[0].message and "'cancelled'" in last.problems[0].message
    # after start the appointment still shows checked-in: stating that agrees
    ok = run(registry, [doc("book", 0), doc("check_in", 1), doc("start", 2),
                        doc("complete", 3, current_status="checked-in")])
    assert all(isinstance(r, Mapped) for r in ok)


def test_each_appointment_has_its_own_state(registry):
    other = {"appointment_id": "appt-2002"}
    results = run(registry, [doc("book", 0), doc("cancel", 1), doc("book", 2, **other),
                             doc("check_in", 3, **other), doc("check_in", 4)])
    assert [type(r).__name__ for r in results] == ["Mapped"] * 4 + ["Failed"]


# --------------------------------------------------------------------------- Appointment

def test_booking_maps_every_field(registry):
    task = parse(registry, doc("book", slot="slot-77"))
    bundle = mapped_bundle(registry, task)
    appt = the([_E(e) for e in bundle["entry"]], "Appointment")
    assert appt["identifier"] == [{"system": APPT_SYSTEM, "value": "appt-1001"}]
    assert "profile" not in appt.get("meta", {})  # US Core has no Appointment profile
    assert appt["start"] == "2026-03-04T09:00:00-05:00"
    assert appt["end"] == "2026-03-04T09:20:00-05:00"
    assert appt["serviceType"] == [{"coding": [{"system": SNOMED, "code": "394814009",
                                                "display": "General practice"}]}]
    assert appt["appointmentType"]["coding"] == [{
        "system": V2_0276, "code": "FOLLOWUP",
        "display": "A follow up visit from a previous appointment"}]
    assert appt["reasonCode"] == [{"text": "Cough for three days"}]
    assert appt["slot"] == [{"reference": "Slot/slot-77"}]
    assert "cancelationReason" not in appt
    parts = appt["participant"]
    assert len(parts) == 3 and all(p["status"] == "accepted" for p in parts)
    by_url = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
    actors = [by_url.get(p["actor"]["reference"], p["actor"]["reference"]) for p in parts]
    assert actors == [f"Patient?identifier={MRN_SYSTEM}|1032702", "Practitioner", "Location"]
    assert parts[1]["type"][0]["coding"][0]["code"] == "ATND"


class _E:
    """A Bundle entry seen as an Entry (resource + type), for `the`/`of_type`."""

    def __init__(self, item: dict) -> None:
        self.resource = item["resource"]
        self.resource_type = item["resource"]["resourceType"]


def test_minutes_give_the_end_and_the_duration(registry):
    task = parse(registry, doc("book", end=None, minutes=45))
    appt = the(registry.mapper("appointment").to_fhir(task, CTX), "Appointment")
    assert appt["end"] == "2026-03-04T09:45:00-05:00"
    assert appt["minutesDuration"] == 45


def test_cancel_by_the_patient(registry):
    task = parse(registry, doc("cancel", current_status="booked", cancel_reason="pat-lt"))
    entries = registry.mapper("appointment").to_fhir(task, CTX)
    assert_valid_bundle(entries, registry)
    appt = the(entries, "Appointment")
    assert appt["status"] == "cancelled"
    assert appt["cancelationReason"] == {"coding": [{
        "system": CANCEL_CS, "code": "pat-lt", "display": "Patient: Lack of Transportation"}]}
    assert [p["status"] for p in appt["participant"]] == ["declined", "accepted", "accepted"]
    assert the(entries, "Encounter") is None


def test_cancel_by_the_provider_declines_the_practitioner(registry):
    task = parse(registry, doc("cancel", cancel_reason="prov"))
    appt = the(registry.mapper("appointment").to_fhir(task, CTX), "Appointment")
    assert appt["cancelationReason"]["coding"][0]["display"] == "Provider"
    assert [p["status"] for p in appt["participant"]] == ["accepted", "declined", "accepted"]


def test_cancel_may_have_no_time(registry):
    """app-3: a cancelled appointment may lack start and end."""
    task = parse(registry, doc("cancel", start=None, end=None))
    entries = registry.mapper("appointment").to_fhir(task, CTX)
    assert_valid_bundle(entries, registry)
    appt = the(entries, "Appointment")
    assert "start" not in appt and "end" not in appt


def test_no_show_has_no_cancelation_reason(registry):
    """Pitfall C4: app-4 tests 'no-show', so a noshow must not carry a reason."""
    task = parse(registry, doc("no_show"))
    appt = the(registry.mapper("appointment").to_fhir(task, CTX), "Appointment")
    assert appt["status"] == "noshow"
    assert "cancelationReason" not in appt


# --------------------------------------------------------------------------- Encounter

def test_check_in_opens_an_ambulatory_encounter(registry):
    task = parse(registry, doc("check_in", current_status="booked"))
    bundle = mapped_bundle(registry, task)
    entries = {e["resource"]["resourceType"]: e for e in bundle["entry"]}
    appt, enc = entries["Appointment"], entries["Encounter"]
    assert appt["resource"]["status"] == "checked-in"
    e = enc["resource"]
    assert e["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter"]
    assert e["identifier"] == [{"system": ENC_SYSTEM, "value": "appt-1001"}]
    assert e["status"] == "arrived"
    assert (e["class"]["system"], e["class"]["code"]) == (ACT_CODE, "AMB")
    assert "coding" not in e["class"]  # a Coding, not a CodeableConcept
    assert e["type"][0]["coding"][0]["system"] == SNOMED
    assert e["period"] == {"start": CHECK_IN}
    assert e["appointment"] == [{"reference": appt["fullUrl"]}]
    assert e["subject"] == {"reference": f"Patient?identifier={MRN_SYSTEM}|1032702"}
    assert entries["Organization"]["resource"]["name"] == "Maple Street Family Clinic"
    assert e["serviceProvider"]["reference"] == entries["Organization"]["fullUrl"]
    assert e["location"][0]["location"]["reference"] == entries["Location"]["fullUrl"]
    assert e["participant"][0]["individual"]["reference"] == entries["Practitioner"]["fullUrl"]
    assert e["reasonCode"] == [{"text": "Cough for three days"}]


def test_other_tasks_find_the_encounter_by_the_common_convention(registry):
    """mappers.common.encounter_ref(appointment id) must point at this Encounter."""
    entries = registry.mapper("appointment").to_fhir(parse(registry, doc("check_in")), CTX)
    enc = the(entries, "Encounter")
    target = encounter_ref("appt-1001", CTX)["reference"]
    assert ResourceSet.of([enc]).resolve(target) is enc


def test_completion_finishes_the_encounter_with_its_history(registry):
    task = parse(registry, doc("complete", current_status="checked-in"))
    entries = registry.mapper("appointment").to_fhir(task, CTX)
    assert_valid_bundle(entries, registry)
    assert the(entries, "Appointment")["status"] == "fulfilled"
    enc = the(entries, "Encounter")
    assert enc["status"] == "finished"
    assert enc["period"] == {"start": CHECK_IN, "end": DONE}
    assert enc["statusHistory"] == [
        {"status": "arrived", "period": {"start": CHECK_IN, "end": STARTED}},
        {"status": "in-progress", "period": {"start": STARTED, "end": DONE}},
    ]


def test_encounter_type_can_be_given(registry):
    et = {"system": "cpt", "code": "99213", "text": "Office Visit"}
    task = parse(registry, doc("check_in", encounter_type=et))
    enc = the(registry.mapper("appointment").to_fhir(task, CTX), "Encounter")
    assert enc["type"] == [{"coding": [{"system": CPT, "code": "99213"}],
                            "text": "Office Visit"}]


def test_check_in_bundle_is_deterministic_and_conditional(registry):
    docs = [doc("book", 0), doc("check_in", 1)]
    first = [r.entries for r in run(registry, docs)][-1]
    second = [r.entries for r in run(registry, docs)][-1]
    b1, b2 = transaction(first), transaction(second)
    assert json.dumps(b1, sort_keys=True) == json.dumps(b2, sort_keys=True)
    requests = {e["resource"]["resourceType"]: e["request"] for e in b1["entry"]}
    assert requests["Appointment"] == {
        "method": "PUT", "url": f"Appointment?identifier={APPT_SYSTEM}|appt-1001"}
    assert requests["Encounter"] == {
        "method": "PUT", "url": f"Encounter?identifier={ENC_SYSTEM}|appt-1001"}
    for rtype in ("Practitioner", "Location", "Organization"):
        assert requests[rtype]["method"] == "POST" and "ifNoneExist" in requests[rtype]


def test_a_day_of_one_appointment_is_one_appointment_and_one_encounter(registry):
    results = run(registry, [doc(a, i) for i, a in
                             enumerate(["book", "check_in", "start", "complete"])])
    bundle = assert_valid_bundle([e for r in results for e in r.entries], registry)
    types = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert types.count("Appointment") == 1 and types.count("Encounter") == 1
    final = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    assert final["Appointment"]["status"] == "fulfilled"
    assert final["Encounter"]["status"] == "finished"


# --------------------------------------------------------------------------- corpus

def _codes(corpus, name: str) -> set[str]:
    cs = load_json(corpus / f"fhir-r4-core/codesystems/CodeSystem-{name}.json")
    return {c["code"] for c in cs["concept"]}


def test_every_status_written_is_in_the_r4_code_systems(registry, corpus):
    appt_codes = _codes(corpus, "appointmentstatus")
    enc_codes = _codes(corpus, "encounter-status")
    part_codes = _codes(corpus, "participationstatus")
    assert set(APPOINTMENT_STATUSES) == appt_codes
    seen_appt, seen_enc, seen_part = set(), set(), set()
    for action in ACTIONS:
        extra = {"cancel_reason": "pat"} if action == "cancel" else {}
        task = parse(registry, doc(action, **extra))
        for entry in registry.mapper("appointment").to_fhir(task, CTX):
            r = entry.resource
            if r["resourceType"] == "Appointment":
                seen_appt.add(r["status"])
                seen_part.update(p["status"] for p in r["participant"])
            elif r["resourceType"] == "Encounter":
                seen_enc.add(r["status"])
                seen_enc.update(h["status"] for h in r.get("statusHistory", []))
    assert seen_appt == {"booked", "cancelled", "noshow", "checked-in", "fulfilled"}
    assert seen_appt <= appt_codes
    assert seen_enc == {"arrived", "in-progress", "finished"} and seen_enc <= enc_codes
    assert seen_part == {"accepted", "declined"} and seen_part <= part_codes


def test_matches_the_r4_appointment_example(registry, corpus):
    ex = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-example.json")
    raw = doc("book", start=ex["start"], end=ex["end"], appointment_type="FOLLOWUP",
              service_type={"code": "52", "display": "General Discussion"}, reason=None)
    task = parse(registry, raw)
    assert [w.location for w in task.warnings()] == ["service_type.system"]
    appt = the(registry.mapper("appointment").to_fhir(task, CTX), "Appointment")
    for key in ("status", "appointmentType", "serviceType", "start", "end"):
        assert appt[key] == ex[key], key
    assert [p["status"] for p in appt["participant"]] == \
        [p["status"] for p in ex["participant"]]
    ours = appt["participant"][1]["type"][0]["coding"][0]
    theirs = ex["participant"][1]["type"][0]["coding"][0]
    assert (ours["system"], ours["code"]) == (theirs["system"], theirs["code"])
    walkin = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-2docs.json")
    task = parse(registry, doc("book", appointment_type="WALKIN"))
    appt = the(registry.mapper("appointment").to_fhir(task, CTX), "Appointment")
    assert appt["appointmentType"] == walkin["appointmentType"]


def test_matches_the_r4_appointment_request_example(registry, corpus):
    ex = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-examplereq.json")
    task = parse(registry, doc("book", end=None, minutes=15, slot="example",
                               reason={"system": "snomed", "code": "413095006",
                                       "text": "Clinical Review"}))
    appt = the(registry.mapper("appointment").to_fhir(task, CTX), "Appointment")
    for key in ("slot", "minutesDuration", "reasonCode"):
        assert appt[key] == ex[key], key


def test_encounter_matches_the_us_core_ambulatory_example(registry, corpus):
    ex = load_json(corpus / "us-core/7.0.0/examples/Encounter-example-1.json")
    task = parse(registry, doc("complete", checked_in_at=ex["period"]["start"],
                               started_at=None, at=ex["period"]["end"],
                               encounter_type={"system": "cpt", "code": "99211",
                                               "text": "Office Visit"}))
    enc = the(registry.mapper("appointment").to_fhir(task, CTX), "Encounter")
    for key in ("status", "class", "type", "period"):
        assert enc[key] == ex[key], key
    for path in sorted((corpus / "us-core/7.0.0/examples").glob("Encounter-*.json")):
        example = load_json(path)
        assert example["type"], path.name
        assert example["status"] in _codes(corpus, "encounter-status")
        assert example["class"]["system"] == ACT_CODE


@pytest.mark.parametrize("version", ["6.1.0", "7.0.0"])
def test_encounters_meet_the_us_core_snapshots(registry, corpus, version):
    """The independent snapshot reader (tests/uscore.py) agrees, in both versions."""
    for action in ("check_in", "start", "complete"):
        enc = the(registry.mapper("appointment").to_fhir(parse(registry, doc(action)), CTX),
                  "Encounter")
        assert uscore.check(enc, corpus, version) == []
    broken = copy.deepcopy(enc)
    del broken["type"]
    assert any("Encounter.type" in p for p in uscore.check(broken, corpus, version))


# --------------------------------------------------------------------------- bad input

BAD = [
    ({"start": "2026-03-04T09:00:00"}, "start", "UTC offset"),
    ({"at": "2026-03-04T08:50:00"}, "at", "UTC offset"),
    ({"end": "2026-03-04T08:59:00-05:00"}, "end", "after 'start'"),
    ({"end": "2026-03-04T09:00:00-05:00"}, "end", "after 'start'"),
    ({"colour": "blue"}, "colour", "unknown field"),
    ({"action": "arrive"}, "action", ""),
    ({"start": None, "end": None}, "start", "app-3"),
    ({"end": None}, "end", "app-2"),
    ({"minutes": 30}, "minutes", "not both"),
    ({"minutes": 0, "end": None}, "minutes", ""),
    ({"cancel_reason": "pat"}, "cancel_reason", "only for 'cancel'"),
    ({"at": None}, "at", "required for 'check_in'"),
    ({"checked_in_at": CHECK_IN}, "checked_in_at", "use 'at'"),
    ({"at": "2026-03-04T08:00:00-05:00", "action": "start", "checked_in_at": CHECK_IN},
     "at", "not be before 'checked_in_at'"),
    ({"action": "start", "checked_in_at": None, "at": STARTED}, "checked_in_at",
     "required for 'start'"),
    ({"action": "complete", "checked_in_at": CHECK_IN, "started_at": "2026-03-04T08:00:00Z",
      "at": DONE}, "started_at", "not be before 'checked_in_at'"),
    ({"action": "book", "at": None, "encounter_type": "Office Visit"}, "encounter_type",
     "only for check_in"),
    ({"appointment_type": "ROUTINE-ISH"}, "appointment_type", ""),
    ({"slot": "slot/1"}, "slot", ""),
    ({"start": "2026-03-04T09:00:00+05:30:30"}, "start", ""),
    ({"appointment_id": "appt 1"}, "appointment_id", ""),
    ({"current_status": "in-progress"}, "current_status", ""),
    ({"practitioner": {"npi": "1234567890", "family": "Careful"}}, "practitioner.npi", "NPI"),
]


@pytest.mark.parametrize(("change", "where", "reason"), BAD, ids=[b[1] + str(i)
                                                                 for i, b in enumerate(BAD)])
def test_bad_input_names_the_field(registry, change, where, reason):
    raw = doc("check_in")
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InputError) as info:
        Pipeline(registry, CTX).parse(0, raw)
    locations = {p.location: p.message for p in info.value.problems}
    assert f"task[0].{where}" in locations, locations
    assert reason in locations[f"task[0].{where}"]


def test_no_show_with_a_reason_cites_app_4(registry):
    with pytest.raises(InputError) as info:
        Pipeline(registry, CTX).parse(0, doc("no_show", cancel_reason="pat"))
    (problem,) = info.value.problems
    assert problem.location == "task[0].cancel_reason" and "app-4" in problem.message


def test_warnings_for_implausible_times(registry):
    task = parse(registry, doc("check_in", at="2026-03-02T09:00:00-05:00"))
    assert [w.location for w in task.warnings()] == ["at"]
    task = parse(registry, doc("cancel", cancel_reason=None))
    assert [w.location for w in task.warnings()] == ["cancel_reason"]
    task = parse(registry, doc("book", end="2026-03-04T15:00:00-05:00"))
    assert [w.location for w in task.warnings()] == ["end"]
    assert parse(registry, doc("book")).warnings() == []


def test_coded_text_reads_a_string_and_aliases():
    assert AppointmentTask.model_validate(doc("book", reason="Rash")).reason == \
        CodedText(text="Rash")
    assert CodedText.model_validate({"system": "SNOMED", "code": "1"}).system == SNOMED
    with pytest.raises(ValueError, match="'code' or a 'text'"):
        CodedText.model_validate({"system": "snomed"})


# --------------------------------------------------------------------------- reverse

def _back(registry, bundle: dict) -> list:
    return registry.mapper("appointment").from_fhir(ResourceSet.from_bundle(bundle))


@pytest.mark.parametrize("action", ACTIONS)
def test_round_trip_of_every_action(registry, action):
    raw = doc(action, slot="s-1", appointment_type="CHECKUP",
              cancel_reason="pat-fb" if action == "cancel" else None)
    if action in ("check_in", "start", "complete"):
        raw["encounter_type"] = {"system": "cpt", "code": "99212", "text": "Office Visit"}
    task = parse(registry, raw)
    (back,) = _back(registry, mapped_bundle(registry, task))
    want = {"reschedule": "book", "confirm": "book"}.get(action, action)
    assert back.action == want  # booked reads back as book (mapping reference §4.1)
    assert back == task.model_copy(update={"action": want})


def test_round_trip_of_a_new_patient_and_minutes(registry):
    patient = {"mrn": "M-77", "system": MRN_SYSTEM, "family": "Rivera", "given": ["Ana"],
               "gender": "female", "birth_date": "2019-05-04"}
    task = parse(registry, doc("check_in", patient=patient, end=None, minutes=30,
                               practitioner=None, location=None, reason=None))
    (back,) = _back(registry, mapped_bundle(registry, task))
    assert back == task
    assert back.patient.family == "Rivera" and back.minutes == 30 and back.end is None


def test_reverse_reads_an_in_progress_encounter_as_start(registry):
    task = parse(registry, doc("start"))
    (back,) = _back(registry, mapped_bundle(registry, task))
    assert back.action == "start"
    assert back.at == datetime(2026, 3, 4, 9, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert back.checked_in_at == datetime(2026, 3, 4, 8, 52,
                                          tzinfo=timezone(timedelta(hours=-5)))


def test_reverse_of_the_r4_example_from_a_server(registry, corpus):
    """An Appointment read from a server (Type/id references, no identifier)."""
    appt = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-example.json")
    patient = load_json(corpus / "us-core/7.0.0/examples/Patient-example.json")  # Patient/example
    (task,) = registry.mapper("appointment").from_fhir(ResourceSet.of([appt, patient]))
    assert task.action == "book"
    assert task.appointment_id == "example" and task.id == "example.book"
    assert task.start == datetime(2013, 12, 10, 9, tzinfo=UTC)
    assert task.end == datetime(2013, 12, 10, 11, tzinfo=UTC)
    assert task.appointment_type == "FOLLOWUP"
    assert task.service_type == CodedText(code="52", display="General Discussion")
    assert task.patient.mrn == patient["identifier"][0]["value"]
    assert task.patient.family == "Shaw"
    assert task.practitioner is None and task.location is None  # not in the set


def test_reverse_of_a_fulfilled_appointment_with_the_us_core_encounter(registry, corpus):
    appt = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-example.json")
    appt["status"] = "fulfilled"
    enc = load_json(corpus / "us-core/7.0.0/examples/Encounter-example-1.json")
    enc["appointment"] = [{"reference": "Appointment/example"}]
    patient = load_json(corpus / "us-core/7.0.0/examples/Patient-example.json")
    (task,) = registry.mapper("appointment").from_fhir(ResourceSet.of([appt, enc, patient]))
    assert task.action == "complete"
    assert task.checked_in_at == datetime(2015, 11, 1, 17, 0, 14,
                                          tzinfo=timezone(timedelta(hours=-5)))
    assert task.at == datetime(2015, 11, 1, 18, 0, 14, tzinfo=timezone(timedelta(hours=-5)))
    assert task.encounter_type == CodedText(system=CPT, code="99211", text="Office Visit")
    # and the fulfilled appointment without its Encounter cannot become a task
    with pytest.raises(ValueError, match="no Encounter"):
        registry.mapper("appointment").from_fhir(ResourceSet.of([appt, patient]))


def test_reverse_keeps_the_end_when_the_duration_disagrees(registry, corpus):
    """minutesDuration "can be less than the duration between start and end" (R4)."""
    appt = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-example.json")
    patient = load_json(corpus / "us-core/7.0.0/examples/Patient-example.json")
    appt["minutesDuration"] = 30  # start 09:00Z, end 11:00Z
    (task,) = registry.mapper("appointment").from_fhir(ResourceSet.of([appt, patient]))
    assert task.end == datetime(2013, 12, 10, 11, tzinfo=UTC) and task.minutes is None
    appt["minutesDuration"] = 120
    (task,) = registry.mapper("appointment").from_fhir(ResourceSet.of([appt, patient]))
    assert task.end is None and task.minutes == 120


def test_reverse_skips_statuses_without_an_action_and_needs_a_patient(registry, corpus):
    req = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-examplereq.json")
    assert req["status"] == "proposed"
    assert registry.mapper("appointment").from_fhir(ResourceSet.of([req])) == []
    booked = load_json(corpus / "fhir-r4-examples/Appointment/Appointment-example.json")
    with pytest.raises(ValueError):  # Patient/example is neither in the set nor by identifier
        registry.mapper("appointment").from_fhir(ResourceSet.of([booked]))


# --------------------------------------------------------------------------- property

OFFSETS = st.integers(-12 * 4, 14 * 4).map(lambda q: timezone(timedelta(minutes=15 * q)))


@st.composite
def tasks(draw) -> dict:
    tz = draw(OFFSETS)
    naive = draw(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)))
    start = naive.replace(tzinfo=tz)
    action = draw(st.sampled_from(ACTIONS))
    raw = doc(action, 0, start=start, end=None, appointment_type=None)
    if draw(st.booleans()):
        raw["minutes"] = draw(st.integers(1, 1440))
    else:
        raw["end"] = (start + timedelta(seconds=draw(st.integers(1, 2 * 86400)))
                      ).astimezone(draw(OFFSETS))
    if action == "cancel":
        raw["cancel_reason"] = draw(st.sampled_from(["pat", "prov", "oth-weath", None]))
        if draw(st.booleans()):
            raw.pop("start"), raw.pop("minutes", None), raw.pop("end", None)
    gap = st.integers(0, 4 * 3600).map(lambda s: timedelta(seconds=s))
    checked_in = (start + timedelta(minutes=draw(st.integers(-90, 30)))).astimezone(
        draw(OFFSETS))
    started = checked_in + draw(gap)
    if action == "check_in":
        raw["at"] = checked_in
    elif action == "start":
        raw.update(checked_in_at=checked_in, at=started)
    elif action == "complete":
        raw.update(checked_in_at=checked_in, at=started + draw(gap),
                   started_at=started if draw(st.booleans()) else None)
    return {k: v for k, v in raw.items() if v is not None}


@settings(max_examples=50, deadline=None)
@given(raw=tasks())
def test_round_trip_property(registry, raw):
    task = parse(registry, raw)
    (back,) = _back(registry, mapped_bundle(registry, task))
    want = "book" if task.action in ("confirm", "reschedule") else task.action
    assert back == task.model_copy(update={"action": want})
    for name in ("start", "end", "at", "checked_in_at", "started_at"):
        ours, theirs = getattr(task, name), getattr(back, name)
        assert (ours is None) == (theirs is None), name
        if ours is not None:
            assert ours.utcoffset() == theirs.utcoffset(), name
