"""The profile engine's rules, each test written from the FHIR specification's text.

Expectations come from the spec (the R4 value sets, the US Core StructureDefinitions'
stated cardinalities and slices), not from the engine's output.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mafhir.profiles import Issue, Validator

US_VITALS_WEIGHT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-body-weight"
US_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
US_IMMUNIZATION = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-immunization"
BP = "http://hl7.org/fhir/StructureDefinition/bp"


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator.default()


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity in ("error", "fatal")]


def weight() -> dict[str, Any]:
    """A body weight as the US Core 7.0.0 page shows it (trimmed to what the profile asks)."""
    return {
        "resourceType": "Observation", "id": "w", "status": "final",
        "meta": {"profile": [US_VITALS_WEIGHT]},
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "2020-01-01",
        "valueQuantity": {"value": 185, "unit": "lbs", "system": "http://unitsofmeasure.org",
                          "code": "[lb_av]"},
    }


# -- required bindings on resources that claim nothing (the issue's first examples) --------

def test_patient_gender_outside_administrative_gender_is_an_error(validator):
    found = errors(validator.validate({"resourceType": "Patient", "gender": "xyz"}))
    assert [(i.expression, i.code, i.rule) for i in found] == [
        ("Patient.gender", "code-invalid", "binding")]
    assert "administrative-gender" in found[0].message


def test_immunization_status_given_is_an_error(validator):
    imm = {"resourceType": "Immunization", "status": "given", "vaccineCode": {"text": "flu"},
           "patient": {"reference": "Patient/1"}, "occurrenceDateTime": "2020-01-01"}
    assert [i.expression for i in errors(validator.validate(imm))] == ["Immunization.status"]
    imm["status"] = "completed"  # one of completed | entered-in-error | not-done
    assert errors(validator.validate(imm)) == []


def test_observation_status_done_is_an_error(validator):
    obs = {"resourceType": "Observation", "status": "done", "code": {"text": "x"}}
    assert [i.expression for i in errors(validator.validate(obs))] == ["Observation.status"]
    obs["status"] = "final"
    assert errors(validator.validate(obs)) == []


def test_data_type_binding_from_the_base_definition(validator):
    """HumanName.use is bound (required) to name-use: usual | official | temp | nickname |
    anonymous | old | maiden."""
    pat = {"resourceType": "Patient", "name": [{"use": "bogus", "family": "X"}]}
    assert [i.expression for i in errors(validator.validate(pat))] == ["Patient.name[0].use"]
    pat["name"][0]["use"] = "maiden"
    assert errors(validator.validate(pat)) == []


def test_unknown_element_is_named(validator):
    found = errors(validator.validate({"resourceType": "Patient", "colour": "blue"}))
    assert [(i.expression, i.code) for i in found] == [("Patient.colour", "structure")]


# -- cardinality --------------------------------------------------------------------------

def test_missing_required_element(validator):
    """Observation.code is 1..1 and Observation.status 1..1 in R4."""
    found = errors(validator.validate({"resourceType": "Observation", "status": "final"}))
    assert [(i.expression, i.code, i.rule) for i in found] == [
        ("Observation.code", "required", "cardinality")]


def test_too_many_values(validator):
    """Patient.gender is 0..1: a list of two is more than allowed."""
    found = errors(validator.validate({"resourceType": "Patient",
                                       "gender": ["male", "female"]}))
    assert any(i.rule == "cardinality" and i.expression.startswith("Patient.gender")
               for i in found)


def test_us_core_patient_needs_identifier_and_name(validator):
    """US Core Patient: identifier 1..*, name 1..*, gender 1..1 (6.1.0 and 7.0.0)."""
    pat = {"resourceType": "Patient", "meta": {"profile": [US_PATIENT]}}
    found = {i.expression for i in errors(validator.validate(pat))}
    assert {"Patient.identifier", "Patient.name", "Patient.gender"} <= found


def test_nested_cardinality_in_a_slice(validator):
    """US Core body weight: valueQuantity.system is 1..1 (in the value[x] type slice)."""
    obs = weight()
    del obs["valueQuantity"]["system"]
    found = errors(validator.validate(obs))
    assert any(i.expression == "Observation.valueQuantity.system" and i.code == "required"
               for i in found), found


# -- fixed / pattern ----------------------------------------------------------------------

def test_fixed_value(validator):
    """valueQuantity.system is fixed to http://unitsofmeasure.org in US Core vitals."""
    obs = weight()
    obs["valueQuantity"]["system"] = "http://example.org/units"
    found = errors(validator.validate(obs))
    assert any(i.expression == "Observation.valueQuantity.system" and i.rule == "fixed"
               for i in found), found


def test_pattern_value(validator):
    """Body weight's code has patternCodeableConcept LOINC 29463-7: another code fails,
    extra codings beside it pass (a pattern is a subset)."""
    obs = weight()
    obs["code"]["coding"][0]["code"] = "8302-2"
    found = errors(validator.validate(obs))
    assert any(i.expression == "Observation.code" and i.rule == "pattern" for i in found), found
    obs = weight()
    obs["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "27113001"})
    assert errors(validator.validate(obs)) == []


# -- slicing ------------------------------------------------------------------------------

def test_valid_weight_has_no_errors(validator):
    assert errors(validator.validate(weight())) == []


def test_required_slice_missing(validator):
    """Observation.category:VSCat is 1..1; a category without vital-signs misses it."""
    obs = weight()
    obs["category"][0]["coding"][0]["code"] = "laboratory"
    found = errors(validator.validate(obs))
    assert any(i.rule == "slicing" and "VSCat" in i.message for i in found), found


def test_blood_pressure_components_by_slice(validator):
    """FHIR R4 bp profile: component sliced by code; SystolicBP and DiastolicBP 1..1 each."""
    bp = {"resourceType": "Observation", "meta": {"profile": [BP]}, "status": "final",
          "category": [{"coding": [{
              "system": "http://terminology.hl7.org/CodeSystem/observation-category",
              "code": "vital-signs"}]}],
          "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
          "subject": {"reference": "Patient/1"}, "effectiveDateTime": "2020-01-01",
          "component": [
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
               "valueQuantity": {"value": 120, "unit": "mmHg",
                                 "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
               "valueQuantity": {"value": 80, "unit": "mmHg",
                                 "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}]}
    assert errors(Validator.default().validate(bp)) == []
    broken = copy.deepcopy(bp)
    del broken["component"][1]
    found = errors(validator.validate(broken))
    assert any(i.rule == "slicing" and "DiastolicBP" in i.message for i in found), found


# -- types ----------------------------------------------------------------------------------

def test_choice_type_not_allowed(validator):
    """Patient.deceased[x] is boolean | dateTime; deceasedString is not a type of it."""
    found = errors(validator.validate({"resourceType": "Patient", "deceasedString": "yes"}))
    assert any(i.expression == "Patient.deceasedString" for i in found), found


def test_primitive_of_the_wrong_json_kind(validator):
    found = errors(validator.validate({"resourceType": "Patient", "active": "yes"}))
    assert [(i.expression, i.rule) for i in found] == [("Patient.active", "type")]


# -- profiles chosen ------------------------------------------------------------------------

def test_claimed_profile_not_installed_is_a_warning(validator):
    pat = {"resourceType": "Patient", "meta": {"profile": ["http://example.org/nope"]}}
    found = validator.validate(pat)
    assert [i.severity for i in found if i.rule == "profile"] == ["warning"]
    assert "mafhir ig add" in found[0].message


def test_explicit_profile(validator):
    pat = {"resourceType": "Patient"}
    assert errors(validator.validate(pat)) == []
    assert errors(validator.validate(pat, profiles=[US_PATIENT]))


def test_bundle_entries_get_their_paths(validator):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "gender": "xyz"}}]}
    found = errors(validator.validate(bundle))
    assert [i.expression for i in found] == ["Bundle.entry[1].resource.gender"]


def test_reference_type_checked(validator):
    """Observation.subject refers to Patient | Group | Device | Location."""
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "Medication/1"}}
    found = errors(validator.validate(obs))
    assert [(i.expression, i.rule) for i in found] == [("Observation.subject.reference",
                                                        "reference")]


def _encounter_bundle(patient: dict[str, Any]) -> dict[str, Any]:
    """US Core Encounter.subject is Reference(US Core Patient Profile)."""
    enc = {"resourceType": "Encounter",
           "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                                "us-core-encounter"]},
           "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                     "code": "AMB"},
           "type": [{"text": "office visit"}], "subject": {"reference": "urn:uuid:p1"}}
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:e1", "resource": enc},
        {"fullUrl": "urn:uuid:p1", "resource": patient}]}


def test_reference_target_profile_checked_within_the_bundle(validator):
    good = {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}],
            "name": [{"family": "Doe"}], "gender": "female"}
    assert [i for i in validator.validate(_encounter_bundle(good))
            if i.rule == "reference"] == []
    bad = {"resourceType": "Patient", "gender": "female"}  # no identifier, no name
    found = [i for i in validator.validate(_encounter_bundle(bad)) if i.rule == "reference"]
    assert [(i.severity, i.expression) for i in found] == [
        ("error", "Bundle.entry[0].resource.subject.reference")]
    assert "us-core-patient" in found[0].message


def test_claimed_version_not_installed_is_a_warning_and_the_installed_one_is_used(validator):
    pat = {"resourceType": "Patient", "meta": {"profile": [US_PATIENT + "|3.1.1"]}}
    found = validator.validate(pat)
    assert [(i.severity, i.expression) for i in found if i.rule == "profile"] == [
        ("warning", "Patient.meta.profile[0]")]
    assert "3.1.1" in next(i.message for i in found if i.rule == "profile")
    assert "Patient.identifier" in [i.expression for i in errors(found)]  # still checked
    pat["meta"]["profile"] = [US_PATIENT + "|6.1.0"]
    found = validator.validate(pat)
    assert [i for i in found if i.rule == "profile"] == []
    assert all("|6.1.0" in i.message for i in errors(found))
