"""The vitals task: input rules, FHIR mapping, and agreement with the US Core examples.

Expectations come from outside the code under test: the US Core 7.0.0 example
Observations and StructureDefinitions in the corpus, the FHIR R4 examples, the value sets
of FHIR R4 core, hand-computed numbers, and mapping-reference §2.
"""

from __future__ import annotations

import copy
import json
import tarfile
from typing import Any

import pytest

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle, load_json
from mafhir.errors import InputError
from mafhir.identity import identifier_query
from mafhir.pipeline import Mapped, Pipeline
from mafhir.tasks.vitals import round_half_up

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
DAR = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"

EFFECTIVE = "2026-03-04T09:15:00-05:00"

# Written out by hand from mapping-reference §2.1 (not imported from the mapper).
PROFILE_CODE = {
    "us-core-blood-pressure": "85354-9",
    "us-core-heart-rate": "8867-4",
    "us-core-respiratory-rate": "9279-1",
    "us-core-body-temperature": "8310-5",
    "us-core-pulse-oximetry": "59408-5",
    "us-core-body-height": "8302-2",
    "us-core-body-weight": "29463-7",
    "us-core-bmi": "39156-5",
    "us-core-head-circumference": "9843-4",
}


def raw_task(**measurements: Any) -> dict[str, Any]:
    return {"task": "vitals", "id": "v-1001", "patient": {"mrn": "MRN-1"},
            "effective": EFFECTIVE, **measurements}


@pytest.fixture
def pipeline(registry) -> Pipeline:
    return Pipeline(registry, CTX)


def run(pipeline: Pipeline, raw: dict[str, Any]) -> Mapped:
    return pipeline.map_task(0, pipeline.parse(0, raw))


def refused(pipeline: Pipeline, raw: dict[str, Any]) -> InputError:
    with pytest.raises(InputError) as info:
        run(pipeline, raw)
    return info.value


def observations(mapped: Mapped) -> dict[str, dict[str, Any]]:
    """Mapped Observations keyed by the US Core profile id each claims."""
    out = {}
    for entry in mapped.entries:
        if entry.resource["resourceType"] == "Observation":
            (url,) = entry.resource["meta"]["profile"]
            out[url.removeprefix(US_CORE)] = entry.resource
    return out


def loinc_codes(concept: dict[str, Any]) -> set[str]:
    return {c["code"] for c in concept.get("coding", []) if c.get("system") == LOINC}


def problem_at(error: InputError, location: str) -> str:
    """The message of the problem at ``location`` (fails listing all when there is none)."""
    for p in error.problems:
        if p.location == location:
            return p.message
    raise AssertionError(f"no problem at {location}: {[str(p) for p in error.problems]}")


# --- the same measurements as the US Core 7.0.0 examples -----------------------------------

EXAMPLES = [
    ("blood-pressure", {"blood_pressure": {"systolic": 109, "diastolic": 44}},
     "us-core-blood-pressure"),
    ("bp-data-absent", {"blood_pressure": {"systolic": 109, "not_obtained": "unknown"}},
     "us-core-blood-pressure"),
    ("heart-rate", {"heart_rate": {"value": 44}}, "us-core-heart-rate"),
    ("respiratory-rate", {"respiratory_rate": {"value": 26}}, "us-core-respiratory-rate"),
    ("temperature", {"temperature": {"value": 36.55556, "unit": "Cel"}},
     "us-core-body-temperature"),
    ("satO2-fiO2", {"spo2": {"value": 95, "o2_flow": 6}}, "us-core-pulse-oximetry"),
    ("height", {"height": {"value": 111.506, "unit": "cm"}}, "us-core-body-height"),
    ("weight", {"weight": {"value": 20.09414, "unit": "kg"}}, "us-core-body-weight"),
    # The BMI example is Amy Shaw's 16.2 from the height and weight examples above.
    ("bmi", {"height": {"value": 111.506, "unit": "cm"},
             "weight": {"value": 20.09414, "unit": "kg"}}, "us-core-bmi"),
    ("head-circumference", {"head_circumference": {"value": 51.2, "unit": "cm"}},
     "us-core-head-circumference"),
]


def _components(obs: dict[str, Any]) -> list[tuple[frozenset[str], Any, Any]]:
    out = []
    for comp in obs.get("component", []):
        q = comp.get("valueQuantity") or {}
        dar = [c["code"] for c in comp.get("dataAbsentReason", {}).get("coding", [])]
        out.append((frozenset(loinc_codes(comp["code"])),
                    (q.get("value"), q.get("system"), q.get("code")), tuple(dar)))
    return sorted(out, key=lambda t: sorted(t[0]))


@pytest.mark.parametrize(("name", "measurements", "profile"), EXAMPLES,
                         ids=[e[0] for e in EXAMPLES])
def test_matches_us_core_example(pipeline, registry, corpus, name, measurements, profile):
    example = load_json(corpus / f"us-core/7.0.0/examples/Observation-{name}.json")
    mapped = run(pipeline, raw_task(**measurements))
    assert_valid_bundle(mapped.entries, registry)
    obs = observations(mapped)[profile]

    assert [p.split("|")[0] for p in example["meta"]["profile"]] == obs["meta"]["profile"]
    assert obs["status"] == example["status"] == "final"
    assert loinc_codes(obs["code"]) == loinc_codes(example["code"])
    ours = [(c["system"], c["code"], c.get("display")) for c in obs["category"][0]["coding"]]
    theirs = [(c["system"], c["code"], c.get("display"))
              for c in example["category"][0]["coding"]]
    assert ours == theirs
    if "valueQuantity" in example:
        q, e = obs["valueQuantity"], example["valueQuantity"]
        assert q["value"] == pytest.approx(e["value"])
        assert (q["system"], q["code"]) == (e["system"], e["code"])
        assert q["unit"]  # a human unit is 1..1 in every US Core vital profile
    else:
        assert not any(k.startswith("value") for k in obs)
    assert _components(obs) == _components(example)


def test_blood_pressure_qualifiers_match_the_r4_examples(pipeline, corpus):
    """Cuff site and position are coded as the FHIR R4 examples code them."""
    bp_example = load_json(corpus / "fhir-r4-examples/Observation/Observation-blood-pressure.json")
    sitting = load_json(corpus / "fhir-r4-examples/Observation/Observation-map-sitting.json")
    mapped = run(pipeline, raw_task(blood_pressure={
        "systolic": 107, "diastolic": 60, "position": "sitting", "cuff_site": "right-arm"}))
    obs = observations(mapped)["us-core-blood-pressure"]
    site = {(c["system"], c["code"]) for c in obs["bodySite"]["coding"]}
    assert site == {(c["system"], c["code"]) for c in bp_example["bodySite"]["coding"]}
    (position,) = obs["extension"]
    (expected,) = [x for x in sitting["extension"] if x["url"].endswith("bodyPosition")]
    assert position["url"] == expected["url"]
    assert ({(c["system"], c["code"]) for c in position["valueCodeableConcept"]["coding"]}
            == {(c["system"], c["code"]) for c in expected["valueCodeableConcept"]["coding"]})
    assert not any(k.startswith("value") for k in obs)
    assert [loinc_codes(c["code"]) for c in obs["component"]] == [{"8480-6"}, {"8462-4"}]


# --- what the StructureDefinitions fix (7.0.0 files and the 6.1.0 package) -----------------


def _sd_7(corpus, pid: str) -> dict[str, Any]:
    return load_json(corpus / f"us-core/7.0.0/StructureDefinition/StructureDefinition-{pid}.json")


def _sd_6(corpus, pid: str) -> dict[str, Any]:
    with tarfile.open(corpus / "us-core/packages/hl7.fhir.us.core-6.1.0.tgz") as tar:
        return json.load(tar.extractfile(f"package/StructureDefinition-{pid}.json"))


def _fixed_loinc(sd: dict[str, Any]) -> set[str]:
    out = set()
    for e in sd["snapshot"]["element"]:
        if e["id"] == "Observation.code" and "patternCodeableConcept" in e:
            out |= loinc_codes(e["patternCodeableConcept"])
        if e["id"].startswith("Observation.code.coding:") and "patternCoding" in e:
            out.add(e["patternCoding"]["code"])
    return out


def _allowed_units(corpus, sd: dict[str, Any]) -> set[str] | None:
    for e in sd["snapshot"]["element"]:
        if e["id"] == "Observation.value[x]:valueQuantity.code":
            if "fixedCode" in e:
                return {e["fixedCode"]}
            vs_url = e["binding"]["valueSet"].split("|")[0]
            name = vs_url.rsplit("/", 1)[1]
            vs = load_json(corpus / f"fhir-r4-core/valuesets/ValueSet-{name}.json")
            return {c["code"] for inc in vs["compose"]["include"] for c in inc["concept"]}
    return None


@pytest.mark.parametrize("profile", sorted(PROFILE_CODE))
def test_profile_codes_and_units_agree_with_us_core(pipeline, corpus, profile):
    """Each Observation carries its profile's fixed LOINC and a unit the profile allows."""
    mapped = run(pipeline, raw_task(
        blood_pressure={"systolic": 120, "diastolic": 80}, heart_rate={"value": 72},
        respiratory_rate={"value": 16}, temperature={"value": 98.6, "unit": "[degF]"},
        spo2={"value": 97}, height={"value": 65, "unit": "[in_i]"},
        weight={"value": 150, "unit": "[lb_av]"},
        head_circumference={"value": 40, "unit": "cm"}))
    obs = observations(mapped)[profile]
    sd7, sd6 = _sd_7(corpus, profile), _sd_6(corpus, profile)
    assert _fixed_loinc(sd7) == _fixed_loinc(sd6)
    assert _fixed_loinc(sd7) <= loinc_codes(obs["code"])
    assert PROFILE_CODE[profile] in _fixed_loinc(sd7)
    units = _allowed_units(corpus, sd7)
    if profile == "us-core-blood-pressure":
        assert units is None or "valueQuantity" not in obs
        for comp in obs["component"]:
            assert comp["valueQuantity"]["code"] == "mm[Hg]"
    else:
        assert obs["valueQuantity"]["code"] in units
        assert obs["valueQuantity"]["system"] == UCUM
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(obs, corpus, version) == []


def test_every_measurement_at_once_meets_both_us_core_versions(pipeline, registry, corpus):
    raw = raw_task(
        patient={"mrn": "MRN-1", "family": "Rivera", "given": ["Ana"], "gender": "female"},
        visit="appt-77", performer={"npi": "1234567893", "family": "Okafor"},
        blood_pressure={"systolic": 118, "not_obtained": "equipment", "position": "supine",
                        "cuff_site": "left-thigh"},
        heart_rate={"value": 72}, respiratory_rate={"not_obtained": "unable"},
        temperature={"value": 37.1, "unit": "Cel", "site": "tympanic"},
        spo2={"value": 97, "o2_flow": 0}, height={"value": 65, "unit": "[in_i]"},
        weight={"lb": 150, "oz": 0}, head_circumference={"value": 55, "unit": "cm"},
        pain={"score": 3})
    mapped = run(pipeline, raw)
    bundle = assert_valid_bundle(mapped.entries, registry)
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds.count("Patient") == 1 and kinds.count("Practitioner") == 1
    assert kinds.count("Observation") == 10  # nine measurements and the computed BMI
    for entry in bundle["entry"]:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(entry["resource"], corpus, version) == []


# --- elements every Observation carries ----------------------------------------------------


def test_shared_elements_identifiers_and_references(pipeline, registry):
    raw = raw_task(visit="appt-77", performer={"npi": "1234567893", "family": "Okafor"},
                   heart_rate={"value": 72}, spo2={"value": 97})
    mapped = run(pipeline, raw)
    bundle = assert_valid_bundle(mapped.entries, registry)
    practitioner = next(e for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Practitioner")
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert len(obs) == 2
    system = "https://maple-clinic.example.org/fhir/id/observation"
    assert sorted(o["identifier"][0]["value"] for o in obs) == [
        "v-1001/heart-rate", "v-1001/pulse-oximetry"]
    for o in obs:
        assert o["identifier"][0]["system"] == system
        assert o["effectiveDateTime"] == "2026-03-04T09:15:00-05:00"
        assert o["subject"] == {
            "reference": f"Patient?{identifier_query(CLINIC.system + '/mrn', 'MRN-1')}"}
        assert o["encounter"]["reference"] == (
            f"Encounter?{identifier_query(CLINIC.system + '/encounter', 'appt-77')}")
        assert o["performer"] == [{"reference": practitioner["fullUrl"]}]
        assert o["category"][0]["coding"][0] == {
            "system": OBS_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}
    by_url = {e["fullUrl"]: e for e in bundle["entry"]}
    assert len(by_url) == len(bundle["entry"])


def test_pulse_oximetry_has_both_codings_and_flow_in_l_per_min(pipeline):
    obs = observations(run(pipeline, raw_task(spo2={"value": 94, "o2_flow": 2})))
    ox = obs["us-core-pulse-oximetry"]
    assert {"2708-6", "59408-5"} <= loinc_codes(ox["code"])
    (flow,) = ox["component"]
    assert loinc_codes(flow["code"]) == {"3151-8"}
    assert flow["valueQuantity"] == {"value": 2, "unit": "L/min", "system": UCUM,
                                     "code": "L/min"}


def test_room_air_is_a_zero_flow_component(pipeline):
    ox = observations(run(pipeline, raw_task(spo2={"value": 98, "o2_flow": 0})))
    assert ox["us-core-pulse-oximetry"]["component"][0]["valueQuantity"]["value"] == 0


def test_pain_is_a_screening_assessment_with_an_integer(pipeline, registry, corpus):
    mapped = run(pipeline, raw_task(pain={"score": 7}))
    assert_valid_bundle(mapped.entries, registry)
    (obs,) = [e.resource for e in mapped.entries if e.resource["resourceType"] == "Observation"]
    assert obs["meta"]["profile"] == [US_CORE + "us-core-observation-screening-assessment"]
    assert loinc_codes(obs["code"]) == {"72514-3"}
    assert obs["category"][0]["coding"][0]["code"] == "survey"
    assert obs["valueInteger"] == 7
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(obs, corpus, version) == []


def test_temperature_site_is_a_snomed_body_site(pipeline):
    obs = observations(run(pipeline, raw_task(
        temperature={"value": 37.0, "unit": "Cel", "site": "rectal"})))
    site = obs["us-core-body-temperature"]["bodySite"]
    assert site["coding"][0]["system"] == SNOMED
    assert site["coding"][0]["code"] == "34402009"  # Rectum structure


# --- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "given", "ucum", "profile"), [
    ("temperature", "F", "[degF]", "us-core-body-temperature"),
    ("temperature", "degF", "[degF]", "us-core-body-temperature"),
    ("temperature", "C", "Cel", "us-core-body-temperature"),
    ("height", "in", "[in_i]", "us-core-body-height"),
    ("height", "cm", "cm", "us-core-body-height"),
    ("weight", "lb", "[lb_av]", "us-core-body-weight"),
    ("weight", "g", "g", "us-core-body-weight"),
    ("head_circumference", "in", "[in_i]", "us-core-head-circumference"),
])
def test_friendly_units_become_ucum(pipeline, field, given, ucum, profile):
    value = {"temperature": {"F": 99.1, "degF": 99.1, "C": 37.3},
             "height": {"in": 64, "cm": 160}, "weight": {"lb": 130, "g": 3400},
             "head_circumference": {"in": 17}}[field][given]
    obs = observations(run(pipeline, raw_task(**{field: {"value": value, "unit": given}})))
    assert obs[profile]["valueQuantity"]["code"] == ucum
    assert obs[profile]["valueQuantity"]["value"] == value


@pytest.mark.parametrize(("field", "unit"), [
    ("temperature", "K"), ("height", "ft"), ("weight", "stone"), ("weight", "[lb_us]")])
def test_units_outside_the_bound_value_sets_are_refused(pipeline, field, unit):
    error = refused(pipeline, raw_task(**{field: {"value": 50, "unit": unit}}))
    problem_at(error, f"task[0].{field}.unit")


def test_infant_weight_in_pounds_and_ounces_keeps_its_value(pipeline):
    obs = observations(run(pipeline, raw_task(weight={"lb": 7, "oz": 8})))
    q = obs["us-core-body-weight"]["valueQuantity"]
    assert (q["value"], q["code"], q["system"]) == (7.5, "[lb_av]", UCUM)
    # 7 lb 8 oz = 3.401942775 kg (1 lb = 0.45359237 kg, 16 oz to the pound)
    assert q["value"] * 0.45359237 == pytest.approx(3.401942775)


# --- BMI -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "weight", "bmi"), [
    ({"value": 175, "unit": "cm"}, {"value": 70, "unit": "kg"}, 22.9),  # 70 / 1.75² = 22.857
    ({"value": 65, "unit": "in"}, {"value": 150, "unit": "lb"}, 25.0),  # 68.039 / 1.651² = 24.96
    ({"value": 180, "unit": "cm"}, {"value": 81000, "unit": "g"}, 25.0),  # 81 / 3.24 = 25.0
    ({"value": 20, "unit": "in"}, {"lb": 7, "oz": 8}, 13.2),  # 3.4019 / 0.508² = 13.18
])
def test_bmi_is_computed_from_height_and_weight(pipeline, registry, height, weight, bmi):
    mapped = run(pipeline, raw_task(height=height, weight=weight))
    assert_valid_bundle(mapped.entries, registry)
    q = observations(mapped)["us-core-bmi"]["valueQuantity"]
    assert q == {"value": bmi, "unit": "kg/m2", "system": UCUM, "code": "kg/m2"}


def test_bmi_rounds_half_up_as_people_do():
    assert round_half_up(24.95) == 25.0  # float 24.95 is 24.9499…; charting says 25.0
    assert round_half_up(22.849) == 22.8


def test_given_bmi_that_agrees_is_accepted_and_recomputed(pipeline):
    mapped = run(pipeline, raw_task(height={"value": 175, "unit": "cm"},
                                    weight={"value": 70, "unit": "kg"}, bmi={"value": 23.3}))
    assert observations(mapped)["us-core-bmi"]["valueQuantity"]["value"] == 22.9


def test_bmi_that_disagrees_is_an_error(pipeline):
    error = refused(pipeline, raw_task(height={"value": 175, "unit": "cm"},
                                       weight={"value": 70, "unit": "kg"}, bmi={"value": 23.5}))
    assert "does not match" in problem_at(error, "task[0].bmi")


@pytest.mark.parametrize("extra", [
    {}, {"height": {"value": 175, "unit": "cm"}},
    {"height": {"value": 175, "unit": "cm"}, "weight": {"not_obtained": "patient-refused"}}])
def test_bmi_without_height_and_weight_is_an_error(pipeline, extra):
    error = refused(pipeline, raw_task(heart_rate={"value": 70}, bmi={"value": 22.9}, **extra))
    assert "height and weight" in problem_at(error, "task[0].bmi")


def test_no_bmi_without_both_height_and_weight(pipeline):
    obs = observations(run(pipeline, raw_task(height={"value": 175, "unit": "cm"},
                                              weight={"not_obtained": "unable"})))
    assert "us-core-bmi" not in obs


def test_computed_bmi_outside_the_hard_limits_is_an_error(pipeline):
    # 250 kg at 100 cm is BMI 250 (each value alone is within its own limits)
    error = refused(pipeline, raw_task(height={"value": 100, "unit": "cm"},
                                       weight={"value": 250, "unit": "kg"}))
    assert "8–100" in problem_at(error, "task[0].bmi")


# --- not obtained --------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "profile"), [
    ("heart_rate", "us-core-heart-rate"), ("respiratory_rate", "us-core-respiratory-rate"),
    ("temperature", "us-core-body-temperature"), ("spo2", "us-core-pulse-oximetry"),
    ("height", "us-core-body-height"), ("weight", "us-core-body-weight"),
    ("head_circumference", "us-core-head-circumference"),
    ("pain", "observation-screening-assessment"),
])
def test_refusal_is_asked_declined_without_a_value(pipeline, registry, field, profile):
    mapped = run(pipeline, raw_task(**{field: {"not_obtained": "patient-refused"}}))
    assert_valid_bundle(mapped.entries, registry)
    (obs,) = [e.resource for e in mapped.entries if e.resource["resourceType"] == "Observation"]
    assert obs["meta"]["profile"][0].endswith(profile)
    assert not any(k.startswith("value") for k in obs)
    assert obs["dataAbsentReason"]["coding"] == [
        {"system": DAR, "code": "asked-declined", "display": "Asked But Declined"}]
    assert obs["status"] == "final"


@pytest.mark.parametrize(("reason", "code"), [
    ("patient-refused", "asked-declined"), ("unable", "not-performed"),
    ("equipment", "error"), ("unknown", "unknown")])
def test_reasons_are_data_absent_reason_codes(pipeline, corpus, reason, code):
    def flat(concepts):  # the code system is a hierarchy (asked-declined < asked-unknown)
        for c in concepts:
            yield c["code"]
            yield from flat(c.get("concept", []))

    codes = set(flat(load_json(
        corpus / "fhir-r4-core/codesystems/CodeSystem-data-absent-reason.json")["concept"]))
    obs = observations(run(pipeline, raw_task(heart_rate={"not_obtained": reason})))
    got = obs["us-core-heart-rate"]["dataAbsentReason"]["coding"][0]["code"]
    assert got == code and got in codes


def test_blood_pressure_with_one_side_missing_keeps_both_components(pipeline, registry):
    mapped = run(pipeline, raw_task(blood_pressure={"diastolic": 70, "not_obtained": "equipment"}))
    assert_valid_bundle(mapped.entries, registry)
    obs = observations(mapped)["us-core-blood-pressure"]
    systolic, diastolic = obs["component"]
    assert loinc_codes(systolic["code"]) == {"8480-6"}
    assert "valueQuantity" not in systolic
    assert systolic["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert diastolic["valueQuantity"]["value"] == 70
    assert "dataAbsentReason" not in obs


def test_blood_pressure_refused_entirely_has_both_components_absent(pipeline, registry):
    mapped = run(pipeline, raw_task(blood_pressure={"not_obtained": "patient-refused"}))
    assert_valid_bundle(mapped.entries, registry)
    obs = observations(mapped)["us-core-blood-pressure"]
    assert [c["dataAbsentReason"]["coding"][0]["code"] for c in obs["component"]] == [
        "asked-declined", "asked-declined"]


# --- plausibility (mapping-reference §2.7) -------------------------------------------------


def test_temperature_104_f_passes_with_a_warning(pipeline):
    mapped = run(pipeline, raw_task(temperature={"value": 104, "unit": "[degF]"}))
    assert observations(mapped)["us-core-body-temperature"]["valueQuantity"]["value"] == 104
    assert [w.location for w in mapped.warnings] == ["task[0].temperature.value"]


def test_temperature_120_f_is_an_error_naming_temperature(pipeline):
    error = refused(pipeline, raw_task(temperature={"value": 120, "unit": "[degF]"}))
    assert "physiological limits" in problem_at(error, "task[0].temperature.value")


def test_fahrenheit_value_entered_as_celsius_is_caught(pipeline):
    error = refused(pipeline, raw_task(temperature={"value": 98.6, "unit": "Cel"}))
    assert "unit" in problem_at(error, "task[0].temperature.value")


def test_normal_vitals_have_no_warnings(pipeline):
    mapped = run(pipeline, raw_task(
        blood_pressure={"systolic": 120, "diastolic": 80}, heart_rate={"value": 72},
        respiratory_rate={"value": 16}, temperature={"value": 98.6, "unit": "[degF]"},
        spo2={"value": 97}, height={"value": 170, "unit": "cm"},
        weight={"value": 70, "unit": "kg"}))
    assert mapped.warnings == ()


@pytest.mark.parametrize(("measurements", "location"), [
    ({"heart_rate": {"value": 160}}, "task[0].heart_rate.value"),
    ({"heart_rate": {"value": 38}}, "task[0].heart_rate.value"),
    ({"respiratory_rate": {"value": 34}}, "task[0].respiratory_rate.value"),
    ({"spo2": {"value": 85}}, "task[0].spo2.value"),
    ({"blood_pressure": {"systolic": 210, "diastolic": 100}}, "task[0].blood_pressure.systolic"),
    ({"blood_pressure": {"systolic": 150, "diastolic": 125}}, "task[0].blood_pressure.diastolic"),
    ({"temperature": {"value": 34.5, "unit": "Cel"}}, "task[0].temperature.value"),
    # 10 kg at 100 cm is BMI 10.0: possible, below the soft 12
    ({"height": {"value": 100, "unit": "cm"}, "weight": {"value": 10, "unit": "kg"}},
     "task[0].bmi"),
])
def test_implausible_values_pass_with_a_warning(pipeline, measurements, location):
    mapped = run(pipeline, raw_task(**measurements))
    assert [w.location for w in mapped.warnings] == [location]
    assert "implausible" in mapped.warnings[0].message


@pytest.mark.parametrize(("measurements", "location"), [
    ({"blood_pressure": {"systolic": 301, "diastolic": 80}}, "task[0].blood_pressure.systolic"),
    ({"blood_pressure": {"systolic": 120, "diastolic": 19}}, "task[0].blood_pressure.diastolic"),
    ({"heart_rate": {"value": 19}}, "task[0].heart_rate.value"),
    ({"heart_rate": {"value": 301}}, "task[0].heart_rate.value"),
    ({"respiratory_rate": {"value": 3}}, "task[0].respiratory_rate.value"),
    ({"respiratory_rate": {"value": 81}}, "task[0].respiratory_rate.value"),
    ({"temperature": {"value": 29.9, "unit": "Cel"}}, "task[0].temperature.value"),
    ({"temperature": {"value": 85.9, "unit": "[degF]"}}, "task[0].temperature.value"),
    ({"spo2": {"value": 101}}, "task[0].spo2.value"),
    ({"spo2": {"value": 49}}, "task[0].spo2.value"),
    ({"spo2": {"value": 95, "o2_flow": -1}}, "task[0].spo2.o2_flow"),
    ({"height": {"value": 251, "unit": "cm"}}, "task[0].height.value"),
    ({"height": {"value": 99, "unit": "[in_i]"}}, "task[0].height.value"),  # 251.46 cm
    ({"weight": {"value": 501, "unit": "kg"}}, "task[0].weight.value"),
    ({"weight": {"value": 0.6, "unit": "[lb_av]"}}, "task[0].weight.value"),  # 0.27 kg
    ({"weight": {"value": 250, "unit": "g"}}, "task[0].weight.value"),
    ({"head_circumference": {"value": 71, "unit": "cm"}}, "task[0].head_circumference.value"),
    ({"pain": {"score": 11}}, "task[0].pain.score"),
    ({"pain": {"score": 2.5}}, "task[0].pain.score"),
])
def test_values_outside_hard_limits_are_errors(pipeline, measurements, location):
    error = refused(pipeline, raw_task(**measurements))
    problem_at(error, location)
    assert all("MRN-1" not in p.message for p in error.problems)


@pytest.mark.parametrize("measurements", [
    {"blood_pressure": {"systolic": 300, "diastolic": 200}},
    {"blood_pressure": {"systolic": 41, "diastolic": 20}},
    {"heart_rate": {"value": 20}}, {"heart_rate": {"value": 300}},
    {"temperature": {"value": 113, "unit": "[degF]"}},
    {"temperature": {"value": 30, "unit": "Cel"}},
    {"spo2": {"value": 100}}, {"spo2": {"value": 50}},
    {"weight": {"value": 300, "unit": "g"}}, {"head_circumference": {"value": 20, "unit": "cm"}},
    {"pain": {"score": 0}}, {"pain": {"score": 10}},
])
def test_hard_limits_are_inclusive(pipeline, measurements):
    assert run(pipeline, raw_task(**measurements)).entries


# --- malformed input -----------------------------------------------------------------------


def test_diastolic_not_below_systolic_is_an_error(pipeline):
    error = refused(pipeline, raw_task(blood_pressure={"systolic": 80, "diastolic": 80}))
    assert "diastolic must be lower than systolic" in problem_at(error, "task[0].blood_pressure")


def test_missing_blood_pressure_side_needs_a_reason(pipeline):
    error = refused(pipeline, raw_task(blood_pressure={"systolic": 120}))
    assert "diastolic" in problem_at(error, "task[0].blood_pressure")


def test_naive_effective_time_is_an_error(pipeline):
    raw = raw_task(heart_rate={"value": 72})
    raw["effective"] = "2026-03-04T09:15:00"
    assert "UTC offset" in problem_at(refused(pipeline, raw), "task[0].effective")


@pytest.mark.parametrize(("patch", "location"), [
    ({"pulse": 72, "heart_rate": {"value": 72}}, "task[0].pulse"),
    ({"heart_rate": {"value": 72, "rhythm": "regular"}}, "task[0].heart_rate.rhythm"),
    ({"blood_pressure": {"systolic": 120, "diastolic": 80, "arm": "left"}},
     "task[0].blood_pressure.arm"),
])
def test_unknown_fields_are_errors(pipeline, patch, location):
    assert problem_at(refused(pipeline, raw_task(**patch)), location) == "unknown field"


def test_at_least_one_measurement_is_required(pipeline):
    assert "at least one measurement" in problem_at(refused(pipeline, raw_task()), "task[0]")


@pytest.mark.parametrize(("measurement", "location", "words"), [
    ({"heart_rate": {}}, "task[0].heart_rate", "not_obtained"),
    ({"heart_rate": {"value": 72, "not_obtained": "unable"}}, "task[0].heart_rate", "not both"),
    ({"heart_rate": {"not_obtained": "forgot"}}, "task[0].heart_rate.not_obtained", ""),
    ({"heart_rate": {"value": True}}, "task[0].heart_rate.value", "number"),
    ({"heart_rate": {"value": "72"}}, "task[0].heart_rate.value", "number"),
    ({"temperature": {"value": 98.6}}, "task[0].temperature", "unit"),
    ({"weight": {"lb": 7}}, "task[0].weight", "oz"),
    ({"weight": {"lb": 7, "oz": 16}}, "task[0].weight.oz", ""),
    ({"weight": {"value": 3, "unit": "kg", "lb": 7, "oz": 1}}, "task[0].weight", "not both"),
    ({"weight": {"not_obtained": "unable", "unit": "kg"}}, "task[0].weight", "unit"),
    ({"blood_pressure": {"systolic": 120, "diastolic": 80, "position": "kneeling"}},
     "task[0].blood_pressure.position", ""),
    ({"temperature": {"value": 37, "unit": "Cel", "site": "armpit"}},
     "task[0].temperature.site", ""),
])
def test_malformed_measurements_name_the_field(pipeline, measurement, location, words):
    assert words in problem_at(refused(pipeline, raw_task(**measurement)), location)


def test_bad_visit_and_performer_are_named(pipeline):
    raw = raw_task(heart_rate={"value": 72}, visit="bad visit id",
                   performer={"npi": "1234567890", "family": "Okafor"})
    error = refused(pipeline, raw)
    problem_at(error, "task[0].visit")
    assert "NPI" in problem_at(error, "task[0].performer.npi")


def test_each_broken_example_copy_is_caught_by_the_independent_checker(corpus):
    """Sanity for the uscore helper on a vital this module relies on (pulse oximetry)."""
    example = load_json(corpus / "us-core/7.0.0/examples/Observation-satO2-fiO2.json")
    broken = copy.deepcopy(example)
    broken["code"]["coding"] = [c for c in broken["code"]["coding"] if c["code"] != "2708-6"]
    assert uscore.check(example, corpus, "7.0.0") == []
    assert any("O2Sat" in p for p in uscore.check(broken, corpus, "7.0.0"))


def test_head_circumference_after_age_three_warns(pipeline):
    patient = {"mrn": "MRN-1", "family": "Rivera", "gender": "male"}
    toddler = run(pipeline, raw_task(patient={**patient, "birth_date": "2023-03-05"},
                                     head_circumference={"value": 48, "unit": "cm"}))
    assert toddler.warnings == ()  # one day short of 3 years on 2026-03-04
    older = run(pipeline, raw_task(patient={**patient, "birth_date": "2023-03-04"},
                                   head_circumference={"value": 48, "unit": "cm"}))
    assert [w.location for w in older.warnings] == ["task[0].head_circumference"]


def test_every_site_and_position_the_task_accepts_has_a_snomed_code():
    from mafhir.mappers.vitals import POSITION_CODES, SITE_CODES
    from mafhir.tasks.vitals import BLOOD_PRESSURE_POSITIONS, BP_CUFF_SITES, TEMPERATURE_SITES

    assert set(BLOOD_PRESSURE_POSITIONS) == set(POSITION_CODES)
    assert set(BP_CUFF_SITES) | set(TEMPERATURE_SITES) == set(SITE_CODES)
    assert all(code.isdigit() for code, _ in [*SITE_CODES.values(), *POSITION_CODES.values()])
