"""Invariants as the compiled walk runs them (``checks.error_invariants``): warnings left to
the full road, a key test where an invariant cannot fail, the evaluator called directly.

What must hold: the key test (``fhirpath.guard``, read from the expression's tree) says
"cannot fail" only where the evaluator indeed does not answer False — held against the
evaluator itself on generated objects; a resource whose key test does not pass still gets
its error on the cheap road; warnings are still reported where all issues are asked for.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from mafhir.profiles import checks, fastwalk, fhirpath
from mafhir.profiles.fhirpath_compiler import vacuity
from mafhir.profiles.run import Run
from mafhir.profiles.tree import Elem
from mafhir.validation.validator import _engine

JSON = dict[str, Any]

#: invariants of R4 and US Core (and a few written to reach the rules of ``vacuity``)
EXPRESSIONS = [
    "contained.contained.empty()",
    "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()",
    "contained.meta.security.empty()",
    fhirpath._DOM_3,
    "dataAbsentReason.empty() or value.empty()",
    "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
    ".exists()).empty()",
    "(component.empty() and hasMember.empty()) implies "
    "(dataAbsentReason.exists() or value.exists())",
    "value.exists() or dataAbsentReason.exists()",
    "(identifier.count() + name.count()) > 0",
    "low.exists() or high.exists() or text.exists()",
    "(start.exists() and end.exists()) or (status in ('proposed' | 'cancelled' | 'waitlist'))",
    "start.exists() = end.exists()",
    "name.exists() or telecom.exists() or address.exists() or organization.exists()",
    "extension.exists() != value.exists()",
    "value.exists() xor dataAbsentReason.exists()",
    "name.count() >= 1",
    "0 < identifier.count()",
    "name.count() > 1",
    "status.exists() implies value.first().exists()",
    "component.where(value.exists()).empty() or value.empty().not()",
    "ofType(Quantity).system.empty() or ofType(Quantity).system = 'http://unitsofmeasure.org'",
    "identifier.all(system.exists())",
    "start.exists() = end.exists()",
    "value.exists() != status.exists()",
    "hasValue() or (children().count() > id.count())",
    "Appointment.status.exists() implies (Appointment.start.exists() or "
    "Appointment.status in ('proposed' | 'cancelled'))",
    "Observation.value.empty() or Observation.dataAbsentReason.empty()",
    "Patient.name.exists() or Patient.identifier.count() > 0",
]


def test_the_conditions_read_from_the_tree_are_the_ones_the_invariants_state():
    def read(expression: str) -> set[frozenset[tuple[str, bool]]]:
        return set(vacuity(expression))

    absent, present = (lambda n: (n, False)), (lambda n: (n, True))
    assert read("contained.contained.empty()") == {frozenset({absent("contained")})}
    assert read(fhirpath._DOM_3) == {frozenset({absent("contained")})}
    assert read("dataAbsentReason.empty() or value.empty()") == {
        frozenset({absent("dataAbsentReason")}), frozenset({absent("value")})}
    # obs-6-like: the antecedent is false when component or hasMember is there, the
    # consequent true when value or dataAbsentReason is: absence of both proves nothing
    assert read("(component.empty() and hasMember.empty()) implies "
                "(dataAbsentReason.exists() or value.exists())") == {
        frozenset({present(n)}) for n in ("component", "hasMember", "dataAbsentReason",
                                          "value")}
    assert read("(identifier.count() + name.count()) > 0") == {
        frozenset({present("identifier")}), frozenset({present("name")})}
    assert read("x.exists() and y.empty()") == {frozenset({present("x"), absent("y")})}
    assert read("name.count() > 1") == set()  # one name is not enough: nothing known
    assert read("start.exists() = end.exists()") == {
        frozenset({present("start"), present("end")}),
        frozenset({absent("start"), absent("end")})}
    # ext-1 runs as native code: only absence is taken from its tree, and it has none
    assert fhirpath.guard("extension.exists() != value.exists()") is None
    # a type name first: the member of a resource of that type
    assert read("Patient.name.exists()") == {frozenset({present("Patient.name")})}
    assert read("Appointment.cancelationReason.exists() implies "
                "(Appointment.status = 'cancelled')") == {
        frozenset({absent("Appointment.cancelationReason")}),
        # no status: the consequent is empty, and so is the whole
        frozenset({present("Appointment.cancelationReason"), absent("Appointment.status")})}
    assert read("Patient.exists()") == set()
    assert read("true") == {frozenset()}
    assert read("value.exists() xor dataAbsentReason.exists()") == {
        frozenset({present("value"), absent("dataAbsentReason")}),
        frozenset({absent("value"), present("dataAbsentReason")})}


VALUES: list[Any] = [None, [], [None], "x", {"text": "y"}, [{"text": "y"}], {}, [{}], [[]],
                     "#c", [{"reference": "#c"}],
                     [{"resourceType": "Patient", "id": "p1"}],
                     [{"resourceType": "Patient", "id": "p1", "meta": {"versionId": "1"}}],
                     [{"resourceType": "Patient", "id": "p1", "contained": [{"id": "c"}]}],
                     [{"system": "http://unitsofmeasure.org"}], {"value": 3}]
KEYS = ["contained", "dataAbsentReason", "value", "valueQuantity", "valueString", "component",
        "hasMember", "identifier", "name", "start", "end", "status", "low", "high", "text",
        "telecom", "extension", "code"]


def foci(seed: int, count: int) -> list[Any]:
    """Objects (resources or not) with a few of the keys the invariants name, each holding
    an absent-like, an empty or a real value; and some primitives."""
    rng = random.Random(seed)
    out: list[Any] = ["x", 3, True]
    for _ in range(count):
        focus: JSON = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randint(0, 5))}
        if rng.random() < 0.5:
            focus["resourceType"] = rng.choice(["Observation", "Patient", "Appointment"])
        out.append(focus)
    return out


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_the_key_test_says_cannot_fail_only_where_the_evaluator_does_not_say_false(
        expression):
    test = fhirpath.guard(expression)
    decided = 0
    for focus in foci(hash(expression) % 1000, 400):
        resource = focus if isinstance(focus, dict) and "resourceType" in focus else {
            "resourceType": "Observation", "code": {"coding": [{"code": "a"}]}}
        verdict = fhirpath.evaluate(expression, focus, resource)
        # the prepared call answers as evaluate does
        assert fhirpath.checker(expression)(focus, resource) == verdict
        if test is not None and test(focus):
            decided += 1
            assert verdict is not False, (expression, focus)
    if test is not None:  # where a key test is known, some objects meet it
        assert decided > 0


ATOMS = ["{k}.exists()", "{k}.empty()", "{k}.exists() = {j}.empty()", "{k}.count() > 0",
         "{k}.count() >= 1", "true", "false", "{k} = 'x'", "{k}.exists().not()",
         "{k}.where(text.exists()).empty()", "({k}.count() + {j}.count()) > 0",
         "{k}.first().exists()"]


def random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(ATOMS).format(k=rng.choice(KEYS[:8]), j=rng.choice(KEYS[:8]))
    op = rng.choice(["and", "or", "xor", "implies"])
    return (f"({random_expression(rng, depth - 1)}) {op} "
            f"({random_expression(rng, depth - 1)})")


def test_on_random_expressions_the_key_test_never_hides_a_false():
    rng = random.Random(14)
    decided = 0
    objects = foci(7, 120)
    for _ in range(120):
        expression = random_expression(rng, 3)
        test = fhirpath.guard(expression)
        if test is None:
            continue
        for focus in objects:
            if test(focus):
                decided += 1
                resource = focus if isinstance(focus, dict) and "resourceType" in focus \
                    else {"resourceType": "Observation"}
                assert fhirpath.evaluate(expression, focus, resource) is not False, (
                    expression, focus)
    assert decided > 1000


def test_a_failing_invariant_still_makes_its_error_where_the_key_test_does_not_pass():
    elem = Elem({"id": "Observation", "constraints": [
        ["obs-6", "error", "dataAbsentReason SHALL only be present if value[x] is not",
         "dataAbsentReason.empty() or value.empty()"],
        ["dom-6", "warning", "narrative", "text.`div`.exists()"]]})
    fails = checks.error_invariants(elem)
    assert fails is not None
    run = Run(_engine().defs, evaluate=fhirpath.evaluate)
    both = {"resourceType": "Observation", "valueQuantity": {"value": 1},
            "dataAbsentReason": {"text": "x"}}
    run.resource = both
    assert fails(both, run) is True
    for fine in ({"resourceType": "Observation", "valueQuantity": {"value": 1}},
                 {"resourceType": "Observation", "dataAbsentReason": {"text": "x"}}):
        run.resource = fine
        assert fails(fine, run) is False
    # a warning alone makes no error: nothing to evaluate on the cheap road
    only_warning = Elem({"id": "Patient", "constraints": [
        ["dom-6", "warning", "narrative", "text.`div`.exists()"]]})
    assert checks.error_invariants(only_warning) is None


def observation(**extra: Any) -> JSON:
    return {"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"}, **extra}


def rules(issues: list[Any], severity: str) -> set[str]:
    return {i.rule for i in issues if i.severity == severity}


def walk_clean(resource: JSON) -> bool:
    engine = _engine()
    return fastwalk.clean(resource, Run(engine.defs, evaluate=engine._evaluate))


def test_an_observation_with_a_value_and_a_data_absent_reason_is_refused_on_both_roads():
    bad = observation(valueQuantity={"value": 70, "unit": "/min"},
                      dataAbsentReason={"coding": [{
                          "system": "http://terminology.hl7.org/CodeSystem/"
                                    "data-absent-reason", "code": "unknown"}]})
    assert not walk_clean(bad)
    assert "obs-6" in rules(_engine().validate(bad, errors_only=True), "error")
    assert "obs-6" in rules(_engine().validate(bad), "error")
    good = observation(valueQuantity={"value": 70, "unit": "/min"})
    assert walk_clean(good)
    assert _engine().validate(good, errors_only=True) == []


@pytest.mark.parametrize(("meta", "rule"), [({"versionId": "2"}, "dom-4"),
                                             ({"lastUpdated": "2024-01-01T00:00:00Z"},
                                              "dom-4"),
                                             ({"security": [{"code": "R"}]}, "dom-5")])
def test_a_contained_resource_with_meta_it_may_not_carry_is_refused(meta, rule):
    resource = observation(
        contained=[{"resourceType": "Practitioner", "id": "pr1", "meta": meta}],
        performer=[{"reference": "#pr1"}], valueQuantity={"value": 70, "unit": "/min"})
    assert not walk_clean(resource)
    assert rule in rules(_engine().validate(resource, errors_only=True), "error")
    fine = observation(contained=[{"resourceType": "Practitioner", "id": "pr1"}],
                       performer=[{"reference": "#pr1"}],
                       valueQuantity={"value": 70, "unit": "/min"})
    assert walk_clean(fine)


def test_a_nested_contained_resource_and_an_unreferenced_one_are_refused():
    nested = observation(contained=[{"resourceType": "Practitioner", "id": "pr1",
                                     "contained": [{"resourceType": "Organization",
                                                    "id": "o2"}]}],
                         performer=[{"reference": "#pr1"}])
    assert "dom-2" in rules(_engine().validate(nested, errors_only=True), "error")
    unreferenced = observation(contained=[{"resourceType": "Practitioner", "id": "pr1"}])
    assert not walk_clean(unreferenced)
    assert "dom-3" in rules(_engine().validate(unreferenced, errors_only=True), "error")


def test_warnings_are_left_out_of_the_cheap_road_only():
    resource = observation(valueQuantity={"value": 70, "unit": "/min"})  # no narrative
    assert "dom-6" in rules(_engine().validate(resource), "warning")
    assert walk_clean(resource)
    assert _engine().validate(resource, errors_only=True) == []


def test_an_evaluator_of_a_runs_own_is_asked_for_every_error_invariant():
    elem = Elem({"id": "Observation", "constraints": [
        ["obs-6", "error", "", "dataAbsentReason.empty() or value.empty()"],
        ["dom-6", "warning", "", "text.`div`.exists()"]]})
    fails = checks.error_invariants(elem)
    assert fails is not None
    asked: list[str] = []

    def says_no(expression: str, focus: Any, resource: Any) -> bool:
        asked.append(expression)
        return False

    # no key test on this road: the run's evaluator decides, as ``invariants`` asks it
    run = Run(_engine().defs, evaluate=says_no)
    assert fails({"resourceType": "Observation"}, run) is True
    assert asked[0] == "dataAbsentReason.empty() or value.empty()"
    assert fails({}, Run(_engine().defs, evaluate=None)) is False


def test_every_pair_of_expression_and_focus_agrees_when_guards_are_shared():
    # dom-2, dom-4, dom-5 share one key test: the one object, and one answer for all
    tests = {fhirpath.guard(e) for e in EXPRESSIONS[:3]}
    assert len(tests) == 1
    for a, b in itertools.combinations(EXPRESSIONS[:3], 2):
        assert fhirpath.guard(a) is fhirpath.guard(b)
