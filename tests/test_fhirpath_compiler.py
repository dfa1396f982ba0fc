"""The compiled FHIRPath closures answer exactly as fhirpathpy does, on every invariant the
shipped tables hold, at every element the profile engine evaluates one.

Two independent implementations compared: ``evaluate`` as it runs (the closures of
``mafhir.profiles.fhirpath_compiler``) against ``evaluate`` with the closures switched off
(fhirpathpy 2.2.4 with the module's gap-fillers). The calls compared are the engine's own,
recorded while it validates real data: the US Core 6.1.0 and 7.0.0 packages' examples, the
R4 examples and Synthea bundles of ../shared/corpus, and the mutants of
tests/test_profile_mutations.py (each example broken one rule at a time). Nothing may fall back
to fhirpathpy on the way.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mafhir.profiles import Validator, fhirpath, installed_packages
from mafhir.profiles.fhirpath import evaluate, is_native
from mafhir.profiles.fhirpath_compiler import FALLBACKS, compile_fhirpath
from profile_validators import validator as shared_validator
from test_profile_mutations import mutants

JSON = dict[str, Any]


def _shipped_expressions() -> list[str]:
    """Every invariant expression of the compiled tables (R4, US Core 6.1.0/7.0.0, and any
    package ``mafhir ig add`` installed), read from the tables themselves."""
    found: set[str] = set()
    for package in installed_packages():
        for structure in package["structures"].values():
            for element in structure.get("elements", []):
                for constraint in element.get("constraints", []):
                    if constraint[3]:
                        found.add(constraint[3])
    return sorted(found)


SHIPPED = _shipped_expressions()
COMPILED = [e for e in SHIPPED if not is_native(e)]


def test_every_invariant_of_the_shipped_tables_compiles():
    names = {p["name"] + "@" + p["version"] for p in installed_packages()}
    assert {"hl7.fhir.r4.core@4.0.1", "hl7.fhir.us.core@6.1.0",
            "hl7.fhir.us.core@7.0.0"} <= names
    assert len(SHIPPED) >= 80
    assert len(COMPILED) >= 70  # the rest run as native Python (ele-1, ext-1, dom-*, txt-*)
    missing = [e for e in COMPILED if compile_fhirpath(e) is None]
    assert missing == []


def _fhirpathpy(expression: str, focus: Any, resource: Any, path: str | None = None) -> Any:
    """``evaluate`` with the closures switched off: fhirpathpy answers."""
    with mock.patch.object(fhirpath, "_fast", lambda expression: None):
        return evaluate(expression, focus, resource, path=path)


# --- the engine's own calls, on real data -------------------------------------------------------

def _examples(corpus: Path, release: str) -> Iterator[JSON]:
    if release == "7.0.0":
        for path in sorted((corpus / "us-core" / "7.0.0" / "examples").glob("*.json")):
            yield json.loads(path.read_text(encoding="utf-8"))
    elif release == "6.1.0":
        tgz = corpus / "us-core" / "packages" / "hl7.fhir.us.core-6.1.0.tgz"
        with tarfile.open(tgz) as tar:
            for member in sorted(tar.getmembers(), key=lambda m: m.name):
                if member.name.startswith("package/example/") and member.name.endswith(".json"):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    yield json.load(handle)
    elif release == "r4":
        for path in sorted((corpus / "fhir-r4-examples").glob("*/*.json")):
            yield json.loads(path.read_text(encoding="utf-8"))
    else:  # synthea
        for path in sorted((corpus / "synthea").glob("*.json")):
            yield json.loads(path.read_text(encoding="utf-8"))


#: source -> (the package preferred, the fewest engine calls expected to reach the closures)
SOURCES: dict[str, tuple[str | None, int]] = {
    "us-core-7.0.0": ("us-core@7.0.0", 700),
    "us-core-6.1.0": ("us-core@6.1.0", 700),
    "r4-examples": (None, 1000),
    "synthea": (None, 4000),
    "mutants-7.0.0": ("us-core@7.0.0", 1500),
    "mutants-6.1.0": ("us-core@6.1.0", 1500),
    "mutants-r4": (None, 300),
}


def _resources(corpus: Path, source: str) -> Iterator[JSON]:
    kind, _, release = source.partition("-")
    if kind == "mutants":
        for mutant in mutants(corpus, release):
            yield mutant.resource
    elif kind == "us":
        yield from _examples(corpus, source.rsplit("-", 1)[1])
    else:
        yield from _examples(corpus, "r4" if kind == "r4" else "synthea")


def _engine_calls(validator: Validator, resources: Iterator[JSON]) -> list[tuple[str, Any, Any]]:
    """(expression, value, resource) of every invariant the engine evaluates, native aside."""
    calls: list[tuple[str, Any, Any]] = []
    real = validator._evaluate
    assert real is not None

    def record(expression: str, value: Any, resource: Any) -> bool | None:
        if not is_native(expression):
            calls.append((expression, value, resource))
        return real(expression, value, resource)

    validator._evaluate = record
    try:
        for resource in resources:
            validator.validate(resource)
    finally:
        validator._evaluate = real
    return calls


@pytest.mark.parametrize("source", list(SOURCES))
def test_the_closures_answer_as_fhirpathpy_where_the_engine_asks(corpus, source):
    prefer, fewest = SOURCES[source]
    calls = _engine_calls(shared_validator(prefer), _resources(corpus, source))
    fell_back = sum(FALLBACKS.values())
    compared: Counter[str] = Counter()
    verdicts: Counter[bool | None] = Counter()
    differ = []
    for expression, value, resource in calls:
        assert compile_fhirpath(expression) is not None, expression
        fast = evaluate(expression, value, resource)
        slow = _fhirpathpy(expression, value, resource)
        compared[expression] += 1
        verdicts[fast] += 1
        if fast is not slow:
            differ.append((expression, fast, slow, json.dumps(value, default=str)[:200]))
    assert differ == []
    assert sum(FALLBACKS.values()) == fell_back, FALLBACKS  # none went to fhirpathpy
    assert sum(compared.values()) >= fewest
    assert len(compared) >= 10
    if source.startswith("mutants"):
        assert verdicts[False] >= 10  # the broken invariants are seen broken, by both


# --- random JSON --------------------------------------------------------------------------------

_NAMES = sorted({name for e in COMPILED for name in
                 re.findall(r"(?<![%'$\w])([a-z]\w*)", e)
                 if name not in ("and", "or", "xor", "implies", "is", "as", "in", "contains",
                                 "mod", "true", "false")})
_KEYS = st.sampled_from([*_NAMES, "valueQuantity", "valueString", "valueCodeableConcept",
                         "valueBoolean", "effectiveDateTime", "performedPeriod", "_status",
                         "resourceType"])
_LEAVES = (st.none() | st.booleans() | st.integers(-3, 12) | st.floats(-2, 2, allow_nan=False)
           | st.sampled_from(["final", "home", "ombCategory", "UNK", "2024-03", "2024-03-01",
                              "2024-03-01T09:30:00Z", "http://unitsofmeasure.org",
                              "http://snomed.info/sct", "http://hl7.org/fhir/sid/cvx",
                              "Patient", "Practitioner/1", "#p", "document", "searchset",
                              "1234567893", "12345", "entered-in-error", "Observation"]))
_JSON = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=16)
_RESOURCE_TYPES = st.sampled_from(["Observation", "Bundle", "Patient", "Appointment",
                                   "QuestionnaireResponse", "Provenance", "Condition"])


@settings(max_examples=400, deadline=None)
@given(expression=st.sampled_from(COMPILED), focus=_JSON,
       rtype=st.none() | _RESOURCE_TYPES,
       path=st.sampled_from([None, "Observation.component", "Quantity", "dateTime",
                             "Extension", "HumanName", "Period"]))
def test_the_closures_answer_as_fhirpathpy_on_random_json(expression, focus, rtype, path):
    if rtype is not None and isinstance(focus, dict):
        focus = {**focus, "resourceType": rtype}
    resource = focus if isinstance(focus, dict) and "resourceType" in focus \
        else {"resourceType": "Observation", "status": "final", "component": [focus]}
    assert evaluate(expression, focus, resource, path=path) is \
        _fhirpathpy(expression, focus, resource, path)


# --- what leaves the subset ---------------------------------------------------------------------

def test_an_expression_outside_the_subset_goes_to_fhirpathpy_and_is_counted():
    o = {"resourceType": "Observation", "status": "final", "issued": "2021-01-01T00:00:00Z"}
    expression = "issued > @2020-01-01T00:00:00Z"  # a date literal: not modelled
    before = FALLBACKS[expression]
    assert compile_fhirpath(expression) is None
    assert FALLBACKS[expression] == before + 1
    assert evaluate(expression, o, o) is _fhirpathpy(expression, o, o)


def test_a_value_outside_the_subset_goes_to_fhirpathpy_at_run_time():
    """A Quantity compared for equality: fhirpathpy converts it (UCUM); the closures leave it."""
    expression = "valueQuantity = %resource.valueQuantity"
    o = {"resourceType": "Observation", "valueQuantity": {"value": 1, "unit": "kg",
                                                          "system": "http://unitsofmeasure.org",
                                                          "code": "kg"}}
    assert compile_fhirpath(expression) is not None
    before = FALLBACKS[expression]
    assert evaluate(expression, o, o) is _fhirpathpy(expression, o, o)
    assert FALLBACKS[expression] == before + 1


@pytest.mark.parametrize(("expression", "focus"), [
    ("practitioner or organization", {"practitioner": {"reference": "Practitioner/1"}}),
    ("code.coding.code in 'a'|'b'", {"code": {"coding": [{"code": "a"}, {"code": "b"}]}}),
    ("$this is dateTime implies true", "2024-03-01"),  # no type for a bare string: None
    ("name.given.first() > 3", {"name": [{"given": ["Amy"]}]}),
    ("(name.family + 1) > 0", {"name": [{"family": "x"}, {"family": "y"}]}),
])
def test_where_fhirpathpy_fails_the_closures_answer_none_without_asking_it(expression, focus):
    o = {"resourceType": "Patient"}
    assert _fhirpathpy(expression, focus, o) is None
    before = FALLBACKS[expression]
    assert evaluate(expression, focus, o) is None
    assert FALLBACKS[expression] == before


def test_a_bare_this_is_left_to_fhirpathpy():
    """fhirpathpy has no ``$this`` before an operator or a function sets one (an error)."""
    assert compile_fhirpath("$this.exists()") is None
    assert evaluate("$this.exists()", "x", {}) is _fhirpathpy("$this.exists()", "x", {})


@pytest.mark.parametrize(("expression", "focus", "expected"), [
    # fhirpathpy's quirks, kept: dates compared as strings, `|` forgets types, where by truth
    ("start <= end", {"start": "2020-01-02", "end": "2020-01-10"}, True),
    ("start <= end", {"start": "2020-01-02T10:00:00+05:00", "end": "2020-01-02T09:00:00Z"},
     False),
    ("(a | b).count() = 1", {"a": {"x": 1}, "b": {"x": 1}}, True),
    ("a.where(b).count() = 3", {"a": [{"b": "yes"}, {"b": {"c": 1}}, {"b": ""}]}, True),
    ("(value.substring(0,1).toInteger() * 2) mod 10 = 8", {"value": "4"}, True),
    ("children().exists()", {"a": 1}, None),  # not compiled: fhirpathpy answers (fails)
])
def test_quirks_of_fhirpathpy_are_kept(expression, focus, expected):
    o = {"resourceType": "Basic"}
    assert _fhirpathpy(expression, focus, o) is expected
    assert evaluate(expression, focus, o) is expected
