"""The poc_test task: point-of-care results as US Core Laboratory Observations.

Expected codes are written out here from mapping-reference §8 and §7.3 (not imported from
the catalog); numbers (an A1c in mmol/mol, flags against ranges) are computed by hand in
the comments; every resource is checked against both US Core releases by tests/uscore.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle
from mafhir.bundle import transaction
from mafhir.codes.poc import a1c_mmol_per_mol
from mafhir.errors import InputError
from mafhir.mappers.poc_test import from_fhir
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
LAB_OBS = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"
LAB_DR = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab"
WHEN = "2026-03-04T09:15:00-05:00"
MRN = {"mrn": "MRN-7", "system": CLINIC.mrn_namespace}
KIT = {"name": "Accu-Chek Guide", "manufacturer": "Roche", "lot": "LOT-4471",
       "expiration_date": "2026-09-30"}


def poc(test: str, **over: Any) -> dict[str, Any]:
    return {"task": "poc_test", "id": f"poc-{test}", "patient": MRN, "test": test,
            "effective": WHEN, "kit": KIT, **over}


@pytest.fixture(scope="module")
def pipeline(registry) -> Pipeline:
    return Pipeline(registry, CTX)


def entries(pipeline: Pipeline, raw: dict[str, Any]) -> list[Any]:
    return list(pipeline.map_task(0, pipeline.parse(0, raw)).entries)


def problems(pipeline: Pipeline, raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        pipeline.map_task(0, pipeline.parse(0, raw))
    return [(p.location, p.message) for p in info.value.problems]


def observations(found: list[Any]) -> list[dict[str, Any]]:
    return [e.resource for e in found if e.resource["resourceType"] == "Observation"]


def only(found: list[Any]) -> dict[str, Any]:
    (obs,) = observations(found)
    return obs


def loinc(resource: dict[str, Any]) -> str:
    (code,) = [c["code"] for c in resource["code"]["coding"] if c["system"] == LOINC]
    return code


def flag(obs: dict[str, Any]) -> str | None:
    codes = [c["code"] for i in obs.get("interpretation", []) for c in i["coding"]
             if c["system"] == INTERP]
    return codes[0] if codes else None


# --- urine dipstick -------------------------------------------------------------------------

# mapping-reference §8: the ten pads, with the [Presence] code for a pad read as a word and
# the [Mass/volume] code for one read as a number.
DIPSTICK_WORDS = {"specific_gravity": 1.020, "ph": 6.0, "protein": "trace",
                  "glucose": "negative", "ketones": "negative", "bilirubin": "negative",
                  "blood": "small", "nitrite": "positive", "leukocytes": "2+",
                  "urobilinogen": 0.2}
TEN_PADS = {"5811-5", "5803-2", "20454-5", "25428-4", "2514-8", "5770-3", "5794-3", "5802-4",
            "5799-2", "20405-7"}


def test_a_dipstick_is_a_panel_of_its_ten_pads_and_a_lab_report(pipeline, registry, corpus):
    found = entries(pipeline, poc("urine_dipstick", dipstick=DIPSTICK_WORDS))
    bundle = assert_valid_bundle(found, registry)
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (panel,) = [o for o in observations(found) if loinc(o) == "24357-6"]
    assert not [k for k in panel if k.startswith("value")]  # a panel has members, no value
    members = [by_url[m["reference"]] for m in panel["hasMember"]]
    assert {loinc(m) for m in members} == TEN_PADS and len(members) == 10
    (report,) = [e.resource for e in found if e.resource["resourceType"] == "DiagnosticReport"]
    assert report["meta"]["profile"] == [LAB_DR] and loinc(report) == "24357-6"
    assert {loinc(by_url[r["reference"]]) for r in report["result"]} == TEN_PADS
    assert report["category"][0]["coding"][0]["code"] == "LAB"
    for obs in observations(found):
        assert obs["meta"]["profile"] == [LAB_OBS]
        assert obs["category"][0]["coding"][0]["code"] == "laboratory"
    for e in found:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(e.resource, corpus, version) == []


def test_dipstick_words_are_snomed_ordinals_and_numbers_ucum(pipeline):
    found = entries(pipeline, poc("urine_dipstick", dipstick=DIPSTICK_WORDS))
    by_code = {loinc(o): o for o in observations(found)}
    nitrite = by_code["5802-4"]["valueCodeableConcept"]["coding"][0]
    assert (nitrite["system"], nitrite["code"]) == (SNOMED, "10828004")  # Positive
    assert by_code["25428-4"]["valueCodeableConcept"]["coding"][0]["code"] == "260385009"
    assert by_code["20454-5"]["valueCodeableConcept"]["coding"][0]["code"] == "260405006"
    assert by_code["5799-2"]["valueCodeableConcept"]["coding"][0]["code"] == "260348001"
    assert flag(by_code["25428-4"]) == "N" and flag(by_code["5802-4"]) == "A"
    ph = by_code["5803-2"]["valueQuantity"]
    assert (ph["value"], ph["system"], ph["code"]) == (6.0, UCUM, "[pH]")


def test_pads_read_as_numbers_use_their_mass_per_volume_codes(pipeline):
    pads = {"protein": 30, "glucose": 100, "ketones": 15, "bilirubin": 1}
    found = entries(pipeline, poc("urine_dipstick", dipstick=pads))
    members = {loinc(o): o for o in observations(found) if loinc(o) != "24357-6"}
    assert set(members) == {"5804-0", "5792-7", "5797-6", "20505-4"}
    assert members["5804-0"]["valueQuantity"]["code"] == "mg/dL"


@pytest.mark.parametrize("pads, location", [
    ({"ph": "trace"}, "task[0].dipstick.ph"),
    ({"nitrite": "2+"}, "task[0].dipstick.nitrite"),
    ({"blood": 3}, "task[0].dipstick.blood"),
    ({"specific_gravity": 1.2}, "task[0].dipstick.specific_gravity"),
    ({}, "task[0].dipstick"),
])
def test_impossible_pad_readings_are_refused_naming_the_pad(pipeline, pads, location):
    found = problems(pipeline, poc("urine_dipstick", dipstick=pads))
    assert [loc for loc, _ in found] == [location], found


# --- quantitative tests ----------------------------------------------------------------------


def test_a1c_in_mmol_per_mol_converts_by_the_ifcc_equation():
    # IFCC = (NGSP − 2.15) × 10.929: 6.5 % → 47.54 → 48; 5.6 % → 37.70 → 38; 4.0 % → 20.22
    assert a1c_mmol_per_mol(6.5) == 48
    assert a1c_mmol_per_mol(5.6) == 38
    assert a1c_mmol_per_mol(4.0) == 20


def test_an_a1c_in_mmol_per_mol_keeps_its_unit_and_is_flagged_on_its_range(pipeline, corpus):
    found = entries(pipeline, poc("a1c", value=48, unit="mmol/mol"))
    obs = only(found)
    assert loinc(obs) == "59261-8"
    q = obs["valueQuantity"]
    assert (q["value"], q["system"], q["code"]) == (48, UCUM, "mmol/mol")
    # the % range 4.0–5.6 in mmol/mol (by hand above): 20–38; 48 is high
    rr = obs["referenceRange"][0]
    assert (rr["low"]["value"], rr["high"]["value"]) == (20, 38)
    assert flag(obs) == "H"
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(obs, corpus, version) == []


@pytest.mark.parametrize("value, expected", [(5.6, "N"), (5.7, "H"), (3.9, "L")])
def test_an_a1c_in_percent_is_4548_4_flagged_against_4_0_to_5_6(pipeline, value, expected):
    obs = only(entries(pipeline, poc("a1c", value=value)))
    assert loinc(obs) == "4548-4" and obs["valueQuantity"]["code"] == "%"
    assert flag(obs) == expected


@pytest.mark.parametrize("fasting, unit, code, expected", [
    (True, "mg/dL", "1556-0", "H"),      # fasting 70–99: 104 is high
    (False, "mg/dL", "41653-7", "N"),    # random 70–139: 104 is normal
    (None, "mg/dl", "41653-7", "N"),
])
def test_fasting_and_random_glucose_have_their_own_loinc(pipeline, fasting, unit, code,
                                                          expected):
    raw = poc("glucose", value=104, unit=unit)
    if fasting is not None:
        raw["fasting"] = fasting
    obs = only(entries(pipeline, raw))
    assert loinc(obs) == code and flag(obs) == expected
    assert obs["valueQuantity"]["code"] == "mg/dL"


def test_a_glucose_in_mmol_per_litre_is_14743_9(pipeline):
    obs = only(entries(pipeline, poc("glucose", value=5.8, unit="mmol/L")))
    assert loinc(obs) == "14743-9" and obs["valueQuantity"]["code"] == "mmol/L"


def test_a_glucose_of_4000_is_refused_naming_the_value_and_nothing_is_written(pipeline):
    found = problems(pipeline, poc("glucose", value=4000))
    assert [loc for loc, _ in found] == ["task[0].value"]
    assert "10–1000 mg/dL" in found[0][1]


def test_a_meter_reading_hi_is_a_comparator_on_its_limit(pipeline):
    raw = poc("glucose", value=600, comparator=">")
    mapped = pipeline.map_task(0, pipeline.parse(0, raw))
    obs = only(list(mapped.entries))
    assert obs["valueQuantity"]["comparator"] == ">" and obs["valueQuantity"]["value"] == 600
    assert flag(obs) == "H"
    assert any(w.location == "task[0].value" and "critical" in w.message
               for w in mapped.warnings)


@pytest.mark.parametrize("gender, value, expected", [("female", 11.0, "L"),
                                                     ("male", 13.0, "L"),
                                                     ("female", 13.0, "N")])
def test_hemoglobin_is_flagged_on_the_range_of_the_patient_s_sex(pipeline, gender, value,
                                                                expected):
    patient = {**MRN, "family": "Okoye", "gender": gender}
    obs = only(entries(pipeline, poc("hemoglobin", value=value, patient=patient)))
    assert loinc(obs) == "718-7" and obs["valueQuantity"]["code"] == "g/dL"
    assert flag(obs) == expected


def test_inr_and_lead_use_their_whole_blood_codes(pipeline):
    inr = only(entries(pipeline, poc("inr", value=2.4)))
    assert loinc(inr) == "34714-6" and inr["valueQuantity"]["code"] == "{INR}"
    assert flag(inr) == "H"  # 0.8–1.2
    lead = only(entries(pipeline, poc("lead", value=3.3, comparator="<")))
    assert loinc(lead) == "10368-9" and lead["valueQuantity"]["code"] == "ug/dL"
    assert flag(lead) == "N"  # under the meter's floor, so under 3.5


def test_a_kit_insert_range_overrides_the_catalog(pipeline):
    obs = only(entries(pipeline, poc("inr", value=2.4, reference_range={"low": 2.0,
                                                                        "high": 3.0})))
    assert flag(obs) == "N"
    assert obs["referenceRange"][0]["low"]["value"] == 2.0


# --- qualitative tests -------------------------------------------------------------------------


@pytest.mark.parametrize("test, code", [("strep", "78012-2"), ("covid", "97097-0"),
                                        ("urine_hcg", "2106-3")])
def test_qualitative_results_are_snomed_positive_or_negative(pipeline, corpus, test, code):
    positive = only(entries(pipeline, poc(test, result="positive")))
    negative = only(entries(pipeline, poc(test, result="negative")))
    (c,) = [c for c in positive["code"]["coding"]]
    assert (c["system"], c["code"]) == (LOINC, code)  # 2106-3 is LOINC here, not CDC race
    assert positive["valueCodeableConcept"]["coding"][0]["code"] == "10828004"
    assert negative["valueCodeableConcept"]["coding"][0]["code"] == "260385009"
    assert (flag(positive), flag(negative)) == ("POS", "NEG")
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(positive, corpus, version) == []


def test_an_invalid_run_is_recorded_without_a_value(pipeline):
    mapped = pipeline.map_task(0, pipeline.parse(0, poc("strep", result="invalid")))
    obs = only(list(mapped.entries))
    assert not [k for k in obs if k.startswith("value")]
    assert obs["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert any("control failed" in w.message for w in mapped.warnings)


def test_influenza_a_and_b_are_two_results_under_one_report(pipeline, registry, corpus):
    found = entries(pipeline, poc("influenza", influenza_a="positive", influenza_b="negative"))
    assert_valid_bundle(found, registry)
    assert sorted(loinc(o) for o in observations(found)) == ["80382-5", "80383-3"]
    (report,) = [e.resource for e in found if e.resource["resourceType"] == "DiagnosticReport"]
    assert loinc(report) == "80381-7" and len(report["result"]) == 2
    for e in found:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(e.resource, corpus, version) == []


# --- kit, lot, refusals ---------------------------------------------------------------------


def test_the_kit_is_a_device_with_its_lot(pipeline):
    found = entries(pipeline, poc("glucose", value=104))
    (device,) = [e for e in found if e.resource["resourceType"] == "Device"]
    assert device.resource["lotNumber"] == "LOT-4471"
    assert device.resource["expirationDate"] == "2026-09-30"
    assert device.resource["deviceName"] == [{"name": "Accu-Chek Guide",
                                              "type": "user-friendly-name"}]
    assert only(found)["device"] == {"reference": device.full_url}


def test_an_expired_kit_is_refused(pipeline):
    found = problems(pipeline, poc("glucose", value=104, kit={**KIT, "expiration_date":
                                                              "2026-03-03"}))
    assert [loc for loc, _ in found] == ["task[0].kit.expiration_date"]


@pytest.mark.parametrize("over, location", [
    ({"test": "glucose", "value": 104, "result": "positive"}, "task[0].result"),
    ({"test": "strep"}, "task[0].result"),
    ({"test": "glucose"}, "task[0].value"),
    ({"test": "glucose", "value": 104, "unit": "g/L"}, "task[0].unit"),
    ({"test": "a1c", "value": 48, "fasting": True}, "task[0].fasting"),
    ({"test": "influenza"}, "task[0].influenza_a"),
    ({"test": "strep", "result": "maybe"}, "task[0].result"),
])
def test_results_in_the_wrong_field_are_refused_naming_it(pipeline, over, location):
    raw = {"task": "poc_test", "id": "p", "patient": MRN, "effective": WHEN, **over}
    found = problems(pipeline, raw)
    assert location in [loc for loc, _ in found], found


def test_identifiers_are_deterministic_and_writes_conditional(pipeline):
    one = entries(pipeline, poc("urine_dipstick", dipstick=DIPSTICK_WORDS))
    two = entries(pipeline, copy.deepcopy(poc("urine_dipstick", dipstick=DIPSTICK_WORDS)))
    assert [e.full_url for e in one] == [e.full_url for e in two]
    assert all(e.method == "POST" and e.if_none_exist for e in one)


# --- round trip ---------------------------------------------------------------------------------

ROUND_TRIPS = [
    poc("urine_dipstick", dipstick=DIPSTICK_WORDS, performer={"npi": "1234567893",
                                                              "family": "Rivera"}),
    poc("glucose", value=104, fasting=True, visit="appt-9"),
    poc("glucose", value=600, comparator=">", note="meter read HI"),
    poc("a1c", value=48, unit="mmol/mol"),
    poc("inr", value=2.4, reference_range={"low": 2.0, "high": 3.0}),
    poc("lead", value=3.3, comparator="<", kit=None),
    poc("hemoglobin", value=12.5, performer={"npi": "1234567893"}),
    poc("strep", result="invalid"),
    poc("covid", result="negative"),
    poc("urine_hcg", result="positive"),
    poc("influenza", influenza_a="positive", influenza_b="negative"),
]


@pytest.mark.parametrize("raw", ROUND_TRIPS, ids=lambda r: r["id"] + "-" + r["test"])
def test_task_to_fhir_to_task_is_equal(pipeline, raw):
    raw = {k: v for k, v in raw.items() if v is not None}
    task = pipeline.parse(0, raw)
    found = entries(pipeline, raw)
    (back,) = from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back == task


def test_every_round_trip_resource_meets_both_us_core_releases(pipeline, corpus):
    for raw in ROUND_TRIPS:
        for e in entries(pipeline, {k: v for k, v in raw.items() if v is not None}):
            for version in ("6.1.0", "7.0.0"):
                assert uscore.check(e.resource, corpus, version) == [], (raw["id"], e)


def test_other_kinds_do_not_read_poc_results_back(pipeline, registry):
    found = entries(pipeline, poc("hemoglobin", value=12.5))
    resources = ResourceSet.from_bundle(transaction(found))
    for kind, mapper in registry.mappers.items():
        if kind != "poc_test":
            assert list(mapper.from_fhir(resources)) == [], kind
