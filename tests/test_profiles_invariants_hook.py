"""The engine's contract with ``mafhir.profiles.fhirpath.evaluate(expression, focus_node,
resource) -> bool | None``, shown with a stand-in evaluator (a unit test of the engine's
side only; the FHIRPath engine has tests of its own)."""

from __future__ import annotations

from typing import Any

from mafhir.profiles import Validator

US_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
PATIENT = {"resourceType": "Patient", "meta": {"profile": [US_PATIENT]},
           "identifier": [{"system": "urn:x", "value": "1"}], "gender": "female",
           "name": [{"family": "Doe"}, {"text": "nameless"}]}


def with_evaluator(answers: dict[str, bool | None]) -> tuple[Validator, list[tuple]]:
    """A validator whose invariants are answered from ``answers`` (by the start of the
    expression); every call is recorded."""
    calls: list[tuple[str, Any, Any]] = []

    def evaluate(expression: str, focus: Any, resource: Any) -> bool | None:
        calls.append((expression, focus, resource))
        for start, answer in answers.items():
            if expression.startswith(start):
                return answer
        return True

    validator = Validator.default()
    validator._evaluate = evaluate
    return validator, calls


def test_a_false_invariant_is_an_issue_with_the_constraints_key_and_severity():
    validator, calls = with_evaluator({"(family.exists() or given.exists())": False})
    found = [i for i in validator.validate(PATIENT) if i.rule == "us-core-6"]
    # us-core-6 sits on Patient.name: evaluated once per name, each failing here
    assert [(i.severity, i.code, i.expression) for i in found] == [
        ("error", "invariant", "Patient.name[0]"), ("error", "invariant", "Patient.name[1]")]
    assert found[0].message.startswith("us-core-6: At least name.given and/or name.family")
    focus = [c[1] for c in calls if c[0].startswith("(family.exists()")]
    assert focus == PATIENT["name"]  # the focus is the element's JSON, in order
    assert all(c[2] is PATIENT for c in calls)  # the resource is the one being checked


def test_a_warning_constraint_gives_a_warning():
    validator, _ = with_evaluator({"text.`div`.exists()": False})  # dom-6 is a warning
    found = [i for i in validator.validate(PATIENT) if i.rule == "dom-6"]
    assert [(i.severity, i.expression) for i in found] == [("warning", "Patient")]


def test_cannot_evaluate_is_information_once_per_key():
    validator, _ = with_evaluator({"(family.exists() or given.exists())": None})
    found = [i for i in validator.validate(PATIENT) if i.rule == "us-core-6"]
    assert [(i.severity, i.code) for i in found] == [("information", "informational")]
    assert "not evaluated" in found[0].message


def test_ele_1_is_left_to_the_structure_check():
    validator, calls = with_evaluator({})
    validator.validate(PATIENT)
    assert calls and not any(c[0].startswith("hasValue() or (children()") for c in calls)
