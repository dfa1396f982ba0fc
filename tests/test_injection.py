"""The injection task kind: an in-office medication that is not a vaccine.

Expected values are written by hand (a B12 dose of 1000 mcg is UCUM ``ug``; the SNOMED
route codes of mapping-reference §9) or read from the R4 MedicationAdministration examples
in the public corpus — never copied from mafhir's own output.
"""

from __future__ import annotations

from typing import Any

import pytest

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle, load_json
from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.pipeline import Failed, Mapped, Pipeline
from mafhir.resourceset import ResourceSet

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MRN_SYSTEM = CLINIC.mrn_namespace
MA = {"npi": "1467560003", "family": "Patel", "given": ["Priya"]}
DOCTOR = {"npi": "1245319599", "family": "Okafor", "given": ["Grace"]}


def b12(**over: Any) -> dict[str, Any]:
    """Vitamin B12 1000 mcg IM, as an MA charts it (mapping-reference §9 codes)."""
    task: dict[str, Any] = {
        "task": "injection", "id": "inj-2026-001",
        "patient": {"mrn": "MRN-7", "system": MRN_SYSTEM},
        "medication": {"rxnorm": "309594", "ndc": "0143-9621-25",
                       "name": "cyanocobalamin 1000 mcg/mL"},
        "occurred": "2026-11-27T09:30:00-05:00",
        "dose": {"value": 1000, "unit": "mcg"}, "route": "IM", "site": "LD",
        "lot_number": "B12-4471", "expiration_date": "2027-03-31",
        "administered_by": MA, "ordered_by": DOCTOR, "visit": "appt-202",
    }
    task.update(over)
    return {k: v for k, v in task.items() if v is not None}


@pytest.fixture()
def pipeline(registry):
    return Pipeline(registry, CTX)


def resources_of(pipeline, raw) -> dict[str, dict[str, Any]]:
    entries = pipeline.map_task(0, pipeline.parse(0, raw)).entries
    return {e.resource_type: e.resource for e in entries if e.resource_type != "Practitioner"}


def problems(pipeline, raw) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        pipeline.map_task(0, pipeline.parse(0, raw))
    return [(p.location, p.message) for p in info.value.problems]


def test_b12_dose_in_ucum_by_hand(pipeline):
    admin = resources_of(pipeline, b12())["MedicationAdministration"]
    # 1000 mcg: UCUM has no "mcg"; micrograms are "ug"
    assert admin["dosage"]["dose"] == {"value": 1000, "unit": "mcg", "system": UCUM,
                                       "code": "ug"}
    assert admin["dosage"]["route"]["coding"][0] == {
        "system": SNOMED, "code": "78421000", "display": "Intramuscular route"}
    assert admin["status"] == "completed"
    assert admin["effectiveDateTime"] == "2026-11-27T09:30:00-05:00"


@pytest.mark.parametrize(("unit", "code"), [("ml", "mL"), ("mL", "mL"), ("cc", "mL"),
                                            ("mg", "mg"), ("units", "[IU]")])
def test_dose_units_as_written_become_ucum(pipeline, unit, code):
    admin = resources_of(pipeline, b12(dose={"value": 1, "unit": unit}))
    assert admin["MedicationAdministration"]["dosage"]["dose"]["code"] == code


def test_lot_and_expiry_ride_on_a_contained_medication_like_the_r4_example(corpus, pipeline):
    example = load_json(corpus / "fhir-r4-examples/MedicationAdministration/"
                                 "MedicationAdministration-medadmin0301.json")
    admin = resources_of(pipeline, b12())["MedicationAdministration"]
    (med,) = admin["contained"]
    assert med["resourceType"] == example["contained"][0]["resourceType"] == "Medication"
    assert admin["medicationReference"]["reference"] == f"#{med['id']}"
    assert example["medicationReference"]["reference"].startswith("#")
    assert med["batch"] == {"lotNumber": "B12-4471", "expirationDate": "2027-03-31"}
    assert [c["system"] for c in med["code"]["coding"]] == [RXNORM,
                                                            "http://hl7.org/fhir/sid/ndc"]


def test_without_lot_the_medication_is_a_codeable_concept(pipeline):
    admin = resources_of(pipeline, b12(lot_number=None, expiration_date=None,
                                       medication={"rxnorm": "1665005"}))
    admin = admin["MedicationAdministration"]
    assert "contained" not in admin
    assert admin["medicationCodeableConcept"]["coding"] == [{"system": RXNORM,
                                                              "code": "1665005"}]


def test_the_order_and_the_performer(pipeline):
    entries = pipeline.map_task(0, pipeline.parse(0, b12(order_id="ord-77"))).entries
    by_type = {e.resource_type: e for e in entries}
    order, admin = by_type["MedicationRequest"], by_type["MedicationAdministration"].resource
    assert (order.resource["intent"], order.resource["status"]) == ("order", "completed")
    assert order.if_none_exist == f"identifier={CLINIC.task_system('medication-order')}|ord-77"
    assert admin["request"] == {"reference": order.full_url}
    by_url = {e.full_url: e.resource for e in entries}
    requester = by_url[order.resource["requester"]["reference"]]
    assert requester["identifier"][0]["value"] == DOCTOR["npi"]
    performer = by_url[admin["performer"][0]["actor"]["reference"]]
    assert performer["identifier"][0]["value"] == MA["npi"]


def test_not_given_has_a_reason_and_no_product(pipeline):
    admin = resources_of(pipeline, b12(
        status="not-given", reason_not_given="PATOBJ", dose=None, route=None, site=None,
        lot_number=None, expiration_date=None, administered_by=None))["MedicationAdministration"]
    assert admin["status"] == "not-done"
    assert admin["statusReason"][0]["coding"][0]["code"] == "PATOBJ"
    assert "dosage" not in admin and "performer" not in admin


@pytest.mark.parametrize("version", ("6.1.0", "7.0.0"))
def test_what_is_written_meets_us_core(corpus, pipeline, registry, version):
    raw = b12(patient={"mrn": "MRN-7", "system": MRN_SYSTEM, "family": "Reyes",
                       "given": ["Lena"], "gender": "female"})
    bundle = assert_valid_bundle(pipeline.map_task(0, pipeline.parse(0, raw)).entries,
                                 registry)
    for entry in bundle["entry"]:
        assert uscore.check(entry["resource"], corpus, version) == []
    admin = next(e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "MedicationAdministration")
    assert "meta" not in admin  # no US Core profile exists for it (mapping-reference §9)


@pytest.mark.parametrize(("raw", "location", "reason"), [
    (b12(dose={"value": -1, "unit": "mL"}), "task[0].dose.value", "greater than 0"),
    (b12(dose={"value": 1, "unit": "mg/dL"}), "task[0].dose.unit", "not a dose unit"),
    (b12(expiration_date="2026-11-26"), "task[0].expiration_date", "expired"),
    (b12(medication={"name": "B12"}), "task[0].medication", "'rxnorm' or 'ndc'"),
    (b12(dose=None), "task[0].dose", "required"),
    (b12(administered_by=None), "task[0].administered_by", "required"),
    (b12(ordered_by=None), "task[0].ordered_by", "required"),
    (b12(ordered_by={"npi": "1234567890", "family": "X"}), "task[0].ordered_by.npi", "NPI"),
    (b12(route="PO"), "task[0].route", "'IM'"),
    (b12(site="BN"), "task[0].site", "'LD'"),
    (b12(reason_not_given="PATOBJ"), "task[0].reason_not_given", "not-done"),
    (b12(status="not-given"), "task[0].reason_not_given", "required"),
    (b12(status="not-given", reason_not_given="OSTOCK"), "task[0].lot_number",
     "nothing was given"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_names_the_field(pipeline, raw, location, reason):
    found = problems(pipeline, raw)
    assert any(loc == location and reason in msg for loc, msg in found), found


def test_a_refused_injection_writes_nothing_and_the_next_one_maps(pipeline):
    results = list(pipeline.run(enumerate([b12(expiration_date="2026-01-31"),
                                           b12(id="inj-2026-002")])))
    assert isinstance(results[0], Failed) and isinstance(results[1], Mapped)
    assert [p.location for p in results[0].problems] == ["task[0].expiration_date"]


def test_expiry_on_the_day_given_is_still_good(pipeline):
    admin = resources_of(pipeline, b12(expiration_date="2026-11-27"))
    assert admin["MedicationAdministration"]["contained"][0]["batch"]["expirationDate"] \
        == "2026-11-27"


def round_trip(registry, task):
    bundle = transaction(registry.mapper("injection").to_fhir(task, CTX))
    return registry.mapper("injection").from_fhir(ResourceSet.from_bundle(bundle))


@pytest.mark.parametrize("raw", [
    b12(),
    b12(order_id="ord-77", note="patient tolerated well", route="SQ", site="RA"),
    b12(lot_number=None, expiration_date=None, medication={"ndc": "0009-0746-30"},
        dose={"value": 150, "unit": "mg"}, visit=None),
    b12(status="not-given", reason_not_given="OSTOCK", dose=None, route=None, site=None,
        lot_number=None, expiration_date=None, administered_by=None),
], ids=["b12", "order-id", "ndc-only", "not-given"])
def test_round_trip_keeps_every_value(pipeline, registry, raw):
    task = pipeline.parse(0, raw)
    assert round_trip(registry, task) == [task]
