"""The task kinds, mapped and read back; bad input refused by field; the refill lifecycle;
the profile rules. Expected values are written out by hand from mapping-reference §10."""

from __future__ import annotations

import pytest
from helpers_pharmacy import NPI, clinic, mapped, prescription, problems, refill_request

from mafhir.bundle import transaction
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.validation import check_bundle
from mafhir_pharmacy.profiles import check_medication_request, check_task
from mafhir_pharmacy.sig import parse_sig

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def resources(results):
    return [e.resource for r in results for e in r.entries]


def of(rs, rtype):
    return [r for r in rs if r["resourceType"] == rtype]


def test_prescription_is_a_us_core_medication_request():
    c = clinic()
    (result,) = mapped([prescription(sig={"text": "Take 2 capsules by mouth every 6 hours as "
                                                  "needed for pain for 5 days"},
                                      quantity={"value": 20, "unit": "{cap}"},
                                      medication={"rxnorm": "308191"}, refills=0)], c)
    rs = resources([result])
    (mr,) = of(rs, "MedicationRequest")
    (org,) = of(rs, "Organization")
    assert mr["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"]
    assert (mr["status"], mr["intent"]) == ("active", "order")
    assert mr["identifier"][0]["system"] == f"{c.system}/prescription"
    assert mr["identifier"][0]["value"] == "rx-5001"
    assert mr["category"][0]["coding"][0]["code"] == "community"
    assert mr["medicationCodeableConcept"]["coding"][0] == {
        "system": RXNORM, "code": "308191", "display": "amoxicillin 500 MG Oral Capsule"}
    dosage = mr["dosageInstruction"][0]
    assert dosage["timing"]["repeat"] == {
        "boundsDuration": {"value": 5, "unit": "days", "system": "http://unitsofmeasure.org",
                           "code": "d"}, "frequency": 1, "period": 6, "periodUnit": "h"}
    assert dosage["asNeededCodeableConcept"] == {"text": "pain"}
    assert dosage["route"]["coding"][0] == {"system": "http://snomed.info/sct",
                                            "code": "26643006", "display": "Oral route"}
    assert dosage["doseAndRate"][0]["doseQuantity"] == {
        "value": 2, "unit": "{cap}", "system": "http://unitsofmeasure.org", "code": "{cap}"}
    dispense = mr["dispenseRequest"]
    assert dispense["numberOfRepeatsAllowed"] == 0
    assert dispense["quantity"]["value"] == 20
    assert dispense["expectedSupplyDuration"]["value"] == 30
    assert mr["substitution"] == {"allowedBoolean": True}
    assert mr["reasonCode"][0]["coding"][0] == {"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                "code": "I10"}
    assert org["identifier"][0] == {
        "system": "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber",
        "value": "1234567"}
    bundle = transaction(result.entries)
    assert not [i for i in check_bundle(bundle, get_registry().profiles)
                if i.severity == "error"]
    # the MedicationRequest points at the pharmacy and prescriber of the same Bundle
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    mr_in = next(e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "MedicationRequest")
    assert by_url[mr_in["dispenseRequest"]["performer"]["reference"]]["name"] == \
        "Main Street Pharmacy"
    assert by_url[mr_in["requester"]["reference"]]["identifier"][0]["value"] == NPI


def test_prescription_reads_back_as_the_same_task():
    c = clinic()
    task = prescription(sig={"text": "1 tab po bid prn pain"}, substitution_allowed=False,
                        visit="appt-9", note="Patient prefers blister packs")
    task["patient"]["system"] = f"{c.system}/mrn"  # read back, the MRN names its system
    (result,) = mapped([task], c)
    bundle = transaction(result.entries)
    back = get_registry().mapper("prescription").from_fhir(ResourceSet.from_bundle(bundle))
    assert len(back) == 1
    assert back[0] == result.task


@pytest.mark.parametrize(("text", "expected"), [
    ("Take 1 tablet by mouth twice daily for 10 days",
     (1.0, "{tbl}", "oral", "BID", False, None, 10)),
    ("1 tab po bid prn pain", (1.0, "{tbl}", "oral", "BID", True, "pain", None)),
    ("Inhale 2 puffs every 4 hours as needed for wheezing",
     (2.0, "{puff}", "inhaled", "Q4H", True, "wheezing", None)),
    ("Apply to affected area twice daily", (None, None, "topical", "BID", False, None, None)),
    ("Take one tablet by mouth at bedtime", (1.0, "{tbl}", "oral", "QHS", False, None, None)),
])
def test_sigs_are_structured(text, expected):
    p = parse_sig(text)
    assert (p.dose_value, p.dose_unit, p.route, p.frequency, p.as_needed, p.as_needed_reason,
            p.duration_days) == expected
    assert p.missing == []


@pytest.mark.parametrize(("change", "where", "words"), [
    ({"medication": {"rxnorm": "999999"}}, "task[0].medication",
     "RxNorm 999999 is not in the known drug list"),
    ({"medication": {"rxnorm": "lisinopril"}}, "task[0].medication.rxnorm",
     "should match pattern"),
    ({"sig": {"text": "Use as directed"}}, "task[0].sig",
     "cannot be structured: no route or frequency"),
    ({"sig": {"text": "take one tablet daily"}}, "task[0].sig",
     "no route recognised"),
    ({"quantity": {"value": 30}}, "task[0].quantity", "a quantity needs a unit"),
    ({"quantity": 30}, "task[0].quantity", "a quantity needs a unit"),
    ({"quantity": {"value": 30, "unit": "boxes"}}, "task[0].quantity", "unit 'boxes' is not"),
    ({"medication": {"rxnorm": "308048"}, "dea": "AR1234563", "channel": "hl7v2",
      "refills": 0}, "task[0]", "schedule IV controlled substance cannot be sent by 'hl7v2'"),
    ({"controlled": "CII", "dea": "AR1234563", "channel": "fhir", "refills": 0}, "task[0]",
     "schedule II controlled substance cannot be sent by 'fhir'"),
    ({"controlled": "CII", "dea": "AR1234563", "refills": 2}, "task[0]",
     "schedule II prescription cannot have refills"),
    ({"controlled": "CIV"}, "task[0]", "needs the prescriber's 'dea' number"),
    ({"pharmacy": {"name": "Nameless"}}, "task[0].pharmacy", "needs its ncpdp_id or npi"),
    ({"diagnoses": ["hypertension"]}, "task[0].diagnoses[0]", "should match pattern"),
    ({"written": "2026-11-27T10:12:00"}, "task[0].written", "needs an explicit UTC offset"),
    ({"refill": 3}, "task[0].refill", "unknown field"),
])
def test_bad_prescriptions_are_refused_by_field(change, where, words):
    found = problems([prescription(**change)], clinic())
    assert any(p.startswith(f"{where}: ") and words in p for p in found), found


def test_a_controlled_substance_may_go_by_epcs():
    (result,) = mapped([prescription(medication={"rxnorm": "308048"}, dea="AR1234563",
                                     channel="ncpdp-script", refills=0)], clinic())
    (mr,) = of(resources([result]), "MedicationRequest")
    assert mr["meta"]["tag"] == [{"system": "urn:mafhir:dea-schedule", "code": "CIV",
                                  "display": "DEA schedule IV"}]


def test_refill_request_is_a_worklist_task():
    c = clinic()
    (result,) = mapped([refill_request(patient={"mrn": "MS-10022",
                                                "system": f"{c.system}/mrn"})], c)
    rs = resources([result])
    (task,) = of(rs, "Task")
    (comm,) = of(rs, "Communication")
    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["code"]["coding"][0]["code"] == "fulfill"
    assert task["focus"] == {
        "reference": f"MedicationRequest?identifier={c.system}/prescription|rx-5001"}
    assert task["for"] == {"reference": f"Patient?identifier={c.system}/mrn|MS-10022"}
    assert task["authoredOn"] == "2026-12-20T08:05:00-05:00"
    assert comm["topic"]["coding"][0]["code"] == "prescription-refill-request"
    assert comm["about"] == [task["focus"]]
    assert result.entries[-1].method == "PUT"  # the decision replaces it
    back = get_registry().mapper("refill_request").from_fhir(
        ResourceSet.from_bundle(transaction(result.entries)))
    assert back == [result.task]


def decision(**extra):
    task = {"task": "refill_decision", "id": "rx-5001-r1", "request": "rr-1",
            "request_status": "requested", "decided": "2026-12-20T11:30:00-05:00",
            "decision": "approved", "patient": {"mrn": "MS-10022"}, "prescription": "rx-5001",
            "prescriber": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
            "pharmacy": {"ncpdp_id": "1234567", "name": "Main Street Pharmacy"},
            "renewal": {"medication": {"rxnorm": "314076"},
                        "sig": {"text": "Take 1 tablet by mouth once daily"},
                        "quantity": {"value": 90, "unit": "{tbl}"}, "days_supply": 90,
                        "refills": 1, "pharmacy": {"ncpdp_id": "1234567",
                                                   "name": "Main Street Pharmacy"}}}
    task.update(extra)
    return task


def test_approved_refill_is_a_new_order_with_prior_prescription():
    c = clinic()
    (result,) = mapped([decision(patient={"mrn": "MS-10022", "system": f"{c.system}/mrn"})], c)
    rs = resources([result])
    (task,) = of(rs, "Task")
    (mr,) = of(rs, "MedicationRequest")
    assert task["status"] == "completed"
    assert mr["priorPrescription"] == {
        "reference": f"MedicationRequest?identifier={c.system}/prescription|rx-5001"}
    assert mr["identifier"][0]["value"] == "rx-5001-r1"
    assert mr["dispenseRequest"]["quantity"]["value"] == 90
    assert mr["authoredOn"] == "2026-12-20T11:30:00-05:00"
    bundle = transaction(result.entries)
    assert not [i for i in check_bundle(bundle, get_registry().profiles)
                if i.severity == "error"]
    mr_url = next(e["fullUrl"] for e in bundle["entry"]
                  if e["resource"]["resourceType"] == "MedicationRequest")
    task_in = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Task")
    assert task_in["output"][0]["valueReference"] == {"reference": mr_url}
    back = get_registry().mapper("refill_decision").from_fhir(ResourceSet.from_bundle(bundle))
    assert back == [result.task]


def test_denied_refill_rejects_the_task_with_its_reason():
    (result,) = mapped([decision(decision="denied", reason="needs-appointment", renewal=None,
                                 id="rr-1-d")], clinic())
    (task,) = of(resources([result]), "Task")
    assert task["status"] == "rejected"
    assert task["statusReason"]["text"] == "Patient needs an appointment before a renewal"
    assert not of(resources([result]), "MedicationRequest")


def test_answering_twice_or_an_unknown_request_is_an_error():
    c = clinic()
    found = problems([decision(request_status=None)], c)
    assert found == ["task[0].request: no refill request 'rr-1' is known: it was not received "
                     "in this run and request_status does not say it is open (decide through "
                     "the worklist: mafhir pharmacy decide)"]
    found = problems([decision(), decision(id="again", decision="denied", renewal=None,
                                           reason="other")], c)
    assert found == ["task[1].request: refill request 'rr-1' was already answered ('approved'); "
                     "a request is answered once"]


def test_a_request_and_its_decision_in_one_run_share_the_workflow_state():
    """The decision knows the request from earlier in the run: no request_status needed."""
    c = clinic()
    first = mapped([refill_request(), decision(request_status=None)], c)
    (task,) = of(resources(first[1:]), "Task")
    assert task["status"] == "completed"
    again = problems([refill_request(), decision(request_status=None),
                      decision(id="again", request_status=None, decision="denied",
                               renewal=None, reason="other")], c)
    assert again == ["task[2].request: refill request 'rr-1' was already answered "
                     "('approved'); a request is answered once"]


@pytest.mark.parametrize(("change", "needed"), [
    ({"decision": "denied", "renewal": None}, "a denied refill needs a 'reason'"),
    ({"renewal": None}, "an approved refill needs 'renewal'"),
    ({"decision": "denied", "reason": "too-soon"}, "a denied refill prescribes nothing"),
])
def test_inconsistent_decisions_are_refused(change, needed):
    found = problems([decision(**change)], clinic())
    assert any(needed in p for p in found), found


def test_profile_rules_catch_what_us_core_requires():
    mr = {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
          "medicationCodeableConcept": {"text": "something"},
          "subject": {"reference": "Patient/1"},
          "dispenseRequest": {"quantity": {"value": 30}, "numberOfRepeatsAllowed": -1},
          "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                              "medicationrequest-category", "code": "home"}]}]}
    found = {(i.expression, i.severity) for i in check_medication_request(mr)}
    assert ("MedicationRequest.requester", "error") in found  # us-core-21
    assert ("MedicationRequest.dispenseRequest.quantity.unit", "error") in found
    assert ("MedicationRequest.dispenseRequest.numberOfRepeatsAllowed", "error") in found
    assert ("MedicationRequest.category[0]", "error") in found
    assert ("MedicationRequest.medicationCodeableConcept", "warning") in found  # no RxNorm
    task = {"resourceType": "Task", "status": "rejected", "intent": "order",
            "identifier": [{"system": "urn:x/refill_request", "value": "r"}],
            "authoredOn": "2026-12-20T10:00:00-05:00",
            "lastModified": "2026-12-20T09:00:00-05:00"}
    found = {i.expression for i in check_task(task)}
    assert {"Task.lastModified", "Task.statusReason", "Task.focus.reference",
            "Task.for.reference", "Task.owner.reference"} <= found
