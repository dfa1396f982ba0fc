"""US Core Patient's us-core-6 is the profile engine's alone: the hand-written copy was
retired, and the engine names the error at the same name on the cases the copy caught."""

from __future__ import annotations

from typing import Any

from mafhir.validation.validator import check_definitions, check_resource

US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient", "meta": {"profile": [US_CORE_PATIENT]},
    "identifier": [{"system": "https://clinic.example.org/id/mrn", "value": "M-1"}],
    "gender": "female",
    "name": [{"family": "Doe", "given": ["Jane"]}, {"given": ["J"]}],
}


def engine_errors(resource: dict[str, Any]) -> dict[str, str]:
    return {i.expression: i.diagnostics for i in check_definitions(resource)
            if i.severity in ("error", "fatal")}


def test_named_patients_and_a_data_absent_name_pass():
    assert engine_errors(PATIENT) == {}
    newborn = {**PATIENT, "name": [{"extension": [{"url": DAR, "valueCode": "unknown"}]}]}
    assert engine_errors(newborn) == {}


def test_a_name_with_no_part_and_no_reason_is_us_core_6_at_that_name(registry):
    bad = {**PATIENT, "name": [PATIENT["name"][0], {"use": "official", "text": "no parts"}]}
    found = engine_errors(bad)
    assert list(found) == ["Patient.name[1]"]
    assert found["Patient.name[1]"].startswith("us-core-6")
    # once, by the engine: no hand-written rule says it again
    assert [i.expression for i in check_resource(bad, registry.profiles)
            if i.severity == "error"] == ["Patient.name[1]"]


def test_a_name_with_parts_and_a_data_absent_reason_is_us_core_6_too():
    both = {**PATIENT, "name": [{"family": "Doe",
                                 "extension": [{"url": DAR, "valueCode": "unknown"}]}]}
    assert list(engine_errors(both)) == ["Patient.name[0]"]
