"""Task → FHIR → task for vitals: what the clinic said comes back from the Bundle."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CLINIC, CTX, assert_valid_bundle
from mafhir.bundle import create, transaction
from mafhir.errors import InputError
from mafhir.mappers.vitals import from_fhir
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet
from mafhir.tasks.vitals import VitalsTask

MRN_SYSTEM = "https://maple-clinic.example.org/fhir/id/mrn"
EFFECTIVE = "2026-03-04T09:15:00-05:00"


def raw_task(task_id: str = "v-1001", **measurements: Any) -> dict[str, Any]:
    return {"task": "vitals", "id": task_id,
            "patient": {"mrn": "MRN-1", "system": MRN_SYSTEM}, "effective": EFFECTIVE,
            **measurements}


@pytest.fixture(scope="module")
def pipeline(registry) -> Pipeline:
    return Pipeline(registry, CTX)


def to_bundle(pipeline: Pipeline, *raws: dict[str, Any]) -> dict[str, Any]:
    entries = []
    for i, raw in enumerate(raws):
        entries.extend(pipeline.map_task(i, pipeline.parse(i, raw)).entries)
    return transaction(entries)


def back(bundle: dict[str, Any]) -> list[VitalsTask]:
    return from_fhir(ResourceSet.from_bundle(bundle))


FULL = raw_task(
    patient={"mrn": "MRN-1", "system": MRN_SYSTEM, "family": "Rivera", "given": ["Ana"],
             "gender": "female", "birth_date": "1990-02-03"},
    visit="appt-77", performer={"npi": "1234567893", "family": "Okafor", "given": ["Ngozi"]},
    blood_pressure={"systolic": 132, "diastolic": 84, "position": "standing",
                    "cuff_site": "right-wrist"},
    heart_rate={"value": 88}, respiratory_rate={"value": 18},
    temperature={"value": 100.4, "unit": "[degF]", "site": "axillary"},
    spo2={"value": 93, "o2_flow": 2.5}, height={"value": 162.5, "unit": "cm"},
    weight={"value": 61.2, "unit": "kg"}, head_circumference={"value": 55.5, "unit": "cm"},
    pain={"score": 0})


def test_full_task_round_trips(pipeline):
    bundle = to_bundle(pipeline, FULL)
    (task,) = back(bundle)
    assert task == pipeline.parse(0, FULL)


def test_round_trip_reads_resources_from_a_server_too(pipeline):
    """Resources as a server returns them (ids, no fullUrls, conditional references)."""
    bundle = to_bundle(pipeline, raw_task(heart_rate={"value": 61},
                                          weight={"not_obtained": "patient-refused"}))
    resources = [e["resource"] for e in bundle["entry"]]
    (task,) = from_fhir(ResourceSet.of(resources))
    assert task.patient.mrn == "MRN-1" and task.patient.system == MRN_SYSTEM
    assert task.heart_rate is not None and task.heart_rate.value == 61
    assert task.weight is not None and task.weight.not_obtained == "patient-refused"


def test_not_obtained_and_one_sided_blood_pressure_round_trip(pipeline):
    raw = raw_task(blood_pressure={"systolic": 150, "not_obtained": "equipment"},
                   respiratory_rate={"not_obtained": "unable"},
                   temperature={"not_obtained": "unknown", "site": "oral"},
                   spo2={"not_obtained": "equipment", "o2_flow": 0},
                   pain={"not_obtained": "patient-refused"})
    (task,) = back(to_bundle(pipeline, raw))
    assert task == pipeline.parse(0, raw)


def test_infant_weight_in_lb_oz_keeps_its_clinical_value(pipeline):
    raw = raw_task(weight={"lb": 7, "oz": 8}, height={"value": 20, "unit": "[in_i]"})
    (task,) = back(to_bundle(pipeline, raw))
    assert task.weight is not None
    assert (task.weight.value, task.weight.unit) == (7.5, "[lb_av]")
    assert task.weight.kg == pytest.approx(3.401942775)  # 7.5 × 0.45359237
    assert task.computed_bmi == 13.2


def test_bmi_is_rechecked_then_dropped(pipeline):
    raw = raw_task(height={"value": 175, "unit": "cm"}, weight={"value": 70, "unit": "kg"},
                   bmi={"value": 22.9})
    bundle = to_bundle(pipeline, raw)
    (task,) = back(bundle)
    assert task.bmi is None and task.computed_bmi == 22.9
    tampered = copy.deepcopy(bundle)
    for entry in tampered["entry"]:
        if entry["resource"]["identifier"][0]["value"].endswith("/bmi"):
            entry["resource"]["valueQuantity"]["value"] = 30.0
    with pytest.raises(InputError) as info:
        back(tampered)
    assert [p.location for p in info.value.problems] == ["vitals 'v-1001'.bmi"]


def test_tasks_are_grouped_by_id_and_other_observations_are_ignored(pipeline):
    a = raw_task("v-1", heart_rate={"value": 70})
    b = raw_task("v-2", heart_rate={"value": 90}, spo2={"value": 96})
    bundle = to_bundle(pipeline, a, b)
    lab = {"resourceType": "Observation", "status": "final",
           "identifier": [{"system": CLINIC.task_system("observation"), "value": "v-3/glucose"}],
           "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
           "subject": {"reference": "Patient/1"}, "effectiveDateTime": EFFECTIVE,
           "valueQuantity": {"value": 99, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                             "code": "mg/dL"}}
    # right suffix, wrong code: not ours either
    fake = copy.deepcopy(lab)
    fake["identifier"][0]["value"] = "v-4/heart-rate"
    bundle["entry"] += [{"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000001",
                         "resource": lab},
                        {"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000002",
                         "resource": fake}]
    tasks = {t.id: t for t in back(bundle)}
    assert set(tasks) == {"v-1", "v-2"}
    assert tasks["v-1"] == pipeline.parse(0, a)
    assert tasks["v-2"] == pipeline.parse(1, b)


def test_visit_read_from_an_encounter_in_the_same_bundle(pipeline, registry):
    raw = raw_task(visit="appt-9", heart_rate={"value": 66})
    entries = list(pipeline.map_task(0, pipeline.parse(0, raw)).entries)
    encounter = {"resourceType": "Encounter", "status": "arrived",
                 "identifier": [{"system": CLINIC.task_system("encounter"), "value": "appt-9"}],
                 "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                           "code": "AMB"},
                 "subject": {"reference": f"Patient?identifier={MRN_SYSTEM}|MRN-1"}}
    bundle = transaction([create(encounter), *entries])
    obs = next(e["resource"] for e in bundle["entry"]
               if e["resource"]["resourceType"] == "Observation")
    assert obs["encounter"]["reference"].startswith("urn:uuid:")
    (task,) = back(bundle)
    assert task.visit == "appt-9"


# --- property: any in-range task in any unit comes back the same ---------------------------

REASONS = st.sampled_from(["patient-refused", "unable", "equipment", "unknown"])


def _num(lo: float, hi: float, places: int) -> st.SearchStrategy[float | int]:
    if places == 0:
        return st.integers(int(lo), int(hi))
    return st.floats(lo, hi, allow_nan=False).map(lambda v: round(v, places)).filter(
        lambda v: lo <= v <= hi)


def _or_absent(value: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    return st.one_of(value, REASONS.map(lambda r: {"not_obtained": r}))


@st.composite
def blood_pressures(draw) -> dict[str, Any]:
    systolic = draw(st.integers(41, 300))
    diastolic = draw(st.integers(20, min(200, systolic - 1)))
    out: dict[str, Any] = {"systolic": systolic, "diastolic": diastolic}
    side = draw(st.sampled_from(["both", "systolic", "diastolic", "neither"]))
    if side != "both":
        out = {k: v for k, v in out.items() if k == side}
        out["not_obtained"] = draw(REASONS)
    if draw(st.booleans()):
        out["position"] = draw(st.sampled_from(["sitting", "standing", "supine"]))
    if draw(st.booleans()):
        out["cuff_site"] = draw(st.sampled_from(["left-arm", "right-arm", "left-wrist",
                                                 "right-wrist", "left-thigh", "right-thigh"]))
    return out


@st.composite
def temperatures(draw) -> dict[str, Any]:
    unit = draw(st.sampled_from(["Cel", "[degF]"]))
    value = draw(_num(30, 45, 1) if unit == "Cel" else _num(86, 113, 1))
    out: dict[str, Any] = {"value": value, "unit": unit}
    if draw(st.booleans()):
        out["site"] = draw(st.sampled_from(["oral", "tympanic", "axillary", "rectal",
                                            "forehead"]))
    return out


@st.composite
def body_size(draw) -> dict[str, Any]:
    """Height and weight whose BMI stays within 10–60, in any allowed units."""
    out: dict[str, Any] = {}
    height_cm = draw(_num(45, 220, 1))
    bmi = draw(_num(10, 60, 1))
    weight_kg = bmi * (height_cm / 100) ** 2
    if draw(st.booleans()):
        out["height"] = {"value": round(height_cm / 2.54, 2), "unit": "[in_i]"}
    else:
        out["height"] = {"value": height_cm, "unit": "cm"}
    form = draw(st.sampled_from(["kg", "g", "[lb_av]", "lb+oz"]))
    if form == "kg":
        out["weight"] = {"value": round(weight_kg, 2), "unit": "kg"}
    elif form == "g":
        out["weight"] = {"value": round(weight_kg * 1000), "unit": "g"}
    elif form == "[lb_av]":
        out["weight"] = {"value": round(weight_kg / 0.45359237, 1), "unit": "[lb_av]"}
    else:
        pounds = weight_kg / 0.45359237
        out["weight"] = {"lb": int(pounds), "oz": draw(st.integers(0, 15))}
    for key in ("height", "weight"):
        if draw(st.integers(0, 5)) == 0:
            out[key] = {"not_obtained": draw(REASONS)}
    return out


@st.composite
def vitals_tasks(draw) -> dict[str, Any]:
    pool = {
        "blood_pressure": blood_pressures(),
        "heart_rate": _or_absent(_num(20, 300, 0).map(lambda v: {"value": v})),
        "respiratory_rate": _or_absent(_num(4, 80, 0).map(lambda v: {"value": v})),
        "temperature": _or_absent(temperatures()),
        "spo2": _or_absent(st.fixed_dictionaries(
            {"value": _num(50, 100, 0)}, optional={"o2_flow": _num(0, 15, 1)})),
        "head_circumference": _or_absent(st.one_of(
            _num(20, 70, 1).map(lambda v: {"value": v, "unit": "cm"}),
            _num(8, 27.5, 2).map(lambda v: {"value": v, "unit": "[in_i]"}))),
        "pain": _or_absent(st.integers(0, 10).map(lambda v: {"score": v})),
    }
    chosen = draw(st.sets(st.sampled_from(sorted(pool)), max_size=len(pool)))
    measurements = {k: draw(pool[k]) for k in sorted(chosen)}
    if draw(st.booleans()) or not measurements:
        measurements.update(draw(body_size()))
    if draw(st.booleans()):
        measurements["visit"] = "appt-" + str(draw(st.integers(1, 999)))
    return raw_task(f"v-{draw(st.integers(1, 10**6))}", **measurements)


@settings(max_examples=50, deadline=None)
@given(vitals_tasks())
def test_round_trip_property(pipeline, registry, raw):
    task = pipeline.parse(0, raw)
    mapped = pipeline.map_task(0, task)
    bundle = assert_valid_bundle(mapped.entries, registry)
    (again,) = back(bundle)
    # lb + oz reads back as decimal pounds: compare the clinical value, in kg
    if task.weight is not None and task.weight.lb is not None:
        assert again.weight is not None and again.weight.unit == "[lb_av]"
        assert again.weight.kg == pytest.approx(task.weight.kg, rel=1e-12)
        again = again.model_copy(update={"weight": task.weight})
    assert again == task
    assert again.computed_bmi == task.computed_bmi


def test_observations_without_a_time_are_reported_by_task(pipeline):
    bundle = to_bundle(pipeline, raw_task(heart_rate={"value": 61}))
    for entry in bundle["entry"]:
        entry["resource"]["effectivePeriod"] = {"start": EFFECTIVE}
        del entry["resource"]["effectiveDateTime"]
    with pytest.raises(InputError) as info:
        back(bundle)
    assert [p.location for p in info.value.problems] == ["vitals 'v-1001'"]
    assert "effectiveDateTime" in info.value.problems[0].message
