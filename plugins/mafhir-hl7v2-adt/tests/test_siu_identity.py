"""One appointment identity between the schedule feed and the clinic's own tasks, on a
corpus SIU (microsoft/FHIR-Converter SIU-S12-01: SCH-1 placer 12345, SCH-2 filler 36996)
and the local store: the filler id is the clinic's appointment id, so

* a reminder's reply naming appointment ``36996`` cancels the Appointment the SIU booked,
  changing its status and cancelation reason and nothing else;
* an SIU for an appointment an ``appointment`` task booked under that id updates it
  instead of adding a second;
* a reply whose stated status no longer holds (the EHR cancelled it meanwhile) is refused
  with both states, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mafhir.bundle import transaction
from mafhir.connectors.local import LocalStore
from mafhir.context import Clinic, MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.pipeline import Mapped, Pipeline
from mafhir.plugins import get_registry, reset

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
SIU_DIR = CORPUS / "hl7v2" / "siu" / "microsoft-fhir-converter"
CLINIC = Clinic(name="Maple Street Family Clinic", system="urn:mafhir:test:identity")
# SIU-S12-01's PID-3: PATID1234 under authority test1 (&2.16.1), mapped to the clinic's MRNs
V2 = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("America/Chicago"),
               namespaces={"test1": CLINIC.mrn_namespace})
PATIENT = {"mrn": "PATID1234", "system": CLINIC.mrn_namespace}


@pytest.fixture(scope="module")
def registry():
    reset()
    return get_registry()


@pytest.fixture
def store(tmp_path):
    s = LocalStore(tmp_path / "store.db")
    yield s
    s.close()


def siu(name: str, registry) -> dict[str, Any]:
    return convert(registry, parse((SIU_DIR / name).read_bytes()), V2).bundle


def tasks(registry, *docs: dict[str, Any]) -> dict[str, Any]:
    results = list(Pipeline(registry, MapContext(clinic=CLINIC)).run(enumerate(docs)))
    assert all(isinstance(r, Mapped) for r in results), results
    return transaction(e for r in results for e in r.entries)


def reply(answer: str = "cancel_requested", status: str = "booked") -> dict[str, Any]:
    # the appointment's TQ1-7 start; sent and answered a day before it
    return {"task": "reminder", "id": "rem-36996", "patient": PATIENT,
            "purpose": "appointment_confirmation", "channel": "sms", "to": "555-201-7788",
            "scheduled": "2021-09-23T09:00:00+02:15", "sent": "2021-09-23T09:00:05+02:15",
            "reply": answer, "replied_at": "2021-09-23T09:12:00+02:15",
            "appointment": {"id": "36996", "start": "2021-09-24T09:30:00+02:15",
                            "status": status}}


def appointments(store: LocalStore) -> list[dict[str, Any]]:
    return list(store.search("Appointment"))


@pytest.mark.corpus
def test_a_reply_cancels_the_siu_appointment_and_changes_nothing_else(corpus, registry, store):
    store.send(siu("SIU-S12-01.hl7", registry))
    (booked,) = appointments(store)
    store.send(tasks(registry, reply()))
    (cancelled,) = appointments(store)
    assert cancelled["id"] == booked["id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["coding"][0]["code"] == "pat-crs"
    # what the SIU wrote stays: the patient, the colonoscope (AIG-3), room (AIL-3) and
    # gastroenterologist (AIP-3), the biopsy (AIS-3), the note (NTE-3)
    assert [p["actor"].get("type") for p in cancelled["participant"]] == \
        [None, "Device", "Location", "Practitioner"]
    assert cancelled["serviceType"][0]["coding"][0]["code"] == "76164006"
    assert "Appointment booked for emergency procedure" in cancelled["comment"]
    assert {k: v for k, v in cancelled.items() if k not in ("status", "cancelationReason",
                                                             "meta")} == \
        {k: v for k, v in booked.items() if k not in ("status", "meta")}
    # the reply itself is kept, about that Appointment
    answer = store.find("Communication", f"{CLINIC.system}/reminder-reply", "rem-36996")
    assert answer is not None and \
        answer["about"] == [{"reference": f"Appointment/{booked['id']}"}]


@pytest.mark.corpus
def test_an_siu_updates_the_appointment_the_ma_booked_under_its_id(corpus, registry, store):
    store.send(tasks(registry, {"task": "appointment", "id": "book-36996",
                                "appointment_id": "36996", "action": "book",
                                "patient": PATIENT, "start": "2021-09-24T09:30:00+02:15",
                                "minutes": 50}))
    (mine,) = appointments(store)
    store.send(siu("SIU-S12-01.hl7", registry))
    store.send(siu("SIU-S14-01.hl7", registry))  # a modification, same filler id
    (one,) = appointments(store)  # not two
    assert one["id"] == mine["id"]
    assert int(one["meta"]["versionId"]) == 3
    assert one["identifier"][0] == {"system": f"{CLINIC.system}/appointment", "value": "36996"}


@pytest.mark.corpus
def test_a_reply_after_the_ehr_cancelled_is_refused_with_both_states(corpus, registry,
                                                                     store):
    store.send(siu("SIU-S15-01.hl7", registry))  # converted alone: the EHR's cancel
    before = appointments(store)
    with pytest.raises(InputError) as caught:
        store.send(tasks(registry, reply("confirmed")))
    (problem,) = caught.value.problems
    assert problem.code == "conflict"
    assert '"cancelled"' in problem.message and '"booked"' in problem.message
    assert appointments(store) == before  # nothing written (one transaction)
    assert store.find("Communication", f"{CLINIC.system}/reminder-reply", "rem-36996") is None


def test_a_reply_for_an_appointment_nobody_booked_is_refused_not_found(registry, store):
    bundle = tasks(registry, reply())
    (at,) = [i for i, e in enumerate(bundle["entry"]) if e["request"]["method"] == "PATCH"]
    with pytest.raises(InputError) as caught:
        store.send(bundle)
    (problem,) = caught.value.problems
    assert (problem.code, problem.location) == ("not-found", f"Bundle.entry[{at}].request.url")
    assert "held for review" in problem.message
    assert appointments(store) == []
