"""Slicing rules, bindings and extensions, each on a small profile written here from the
words of the spec (ElementDefinition.slicing, ValueSet binding strengths)."""

from __future__ import annotations

from typing import Any

import pytest

from mafhir.profiles import Validator, installed_packages
from mafhir.profiles.compiler import compile_package
from mafhir.profiles.packages import Package

LOINC = "http://loinc.org"
URL = "http://example.org/sd/"


def _coding_slice(base: str, name: str, code: str, lo: int, hi: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{base}:{name}", "path": base, "sliceName": name, "min": lo, "max": hi,
         "type": [{"code": "Coding"}]},
        {"id": f"{base}:{name}.system", "path": f"{base}.system", "min": 1, "max": "1",
         "type": [{"code": "uri"}], "fixedUri": LOINC},
        {"id": f"{base}:{name}.code", "path": f"{base}.code", "min": 1, "max": "1",
         "type": [{"code": "code"}], "fixedCode": code},
    ]


def _profile(name: str, rules: str, ordered: bool) -> dict[str, Any]:
    """An Observation whose code.coding is sliced by code: slice a (LOINC 1-1, 1..1)
    before slice b (LOINC 2-2, 0..1)."""
    coding = "Observation.code.coding"
    return {
        "resourceType": "StructureDefinition", "url": URL + name, "version": "1",
        "name": name, "kind": "resource", "type": "Observation", "derivation": "constraint",
        "snapshot": {"element": [
            {"id": "Observation", "path": "Observation", "min": 0, "max": "*"},
            {"id": "Observation.meta", "path": "Observation.meta", "min": 0, "max": "1",
             "type": [{"code": "Meta"}]},
            {"id": "Observation.status", "path": "Observation.status", "min": 1, "max": "1",
             "type": [{"code": "code"}],
             "binding": {"strength": "required",
                         "valueSet": "http://example.org/vs/status"}},
            {"id": "Observation.code", "path": "Observation.code", "min": 1, "max": "1",
             "type": [{"code": "CodeableConcept"}],
             "binding": {"strength": "extensible",
                         "valueSet": "http://example.org/vs/codes"}},
            {"id": coding, "path": coding, "min": 0, "max": "*", "type": [{"code": "Coding"}],
             "slicing": {"discriminator": [{"type": "value", "path": "code"}],
                         "ordered": ordered, "rules": rules}},
            *_coding_slice(coding, "a", "1-1", 1, "1"),
            *_coding_slice(coding, "b", "2-2", 0, "1"),
            {"id": "Observation.extension", "path": "Observation.extension", "min": 0,
             "max": "*", "type": [{"code": "Extension"}],
             "slicing": {"discriminator": [{"type": "value", "path": "url"}],
                         "rules": "open"}},
            {"id": "Observation.extension:flag", "path": "Observation.extension",
             "sliceName": "flag", "min": 0, "max": "1",
             "type": [{"code": "Extension", "profile": [URL + "flag"]}]},
        ]}}


FLAG = {
    "resourceType": "StructureDefinition", "url": URL + "flag", "version": "1", "name": "Flag",
    "kind": "complex-type", "type": "Extension", "derivation": "constraint",
    "snapshot": {"element": [
        {"id": "Extension", "path": "Extension", "min": 0, "max": "*"},
        {"id": "Extension.url", "path": "Extension.url", "min": 1, "max": "1",
         "type": [{"code": "uri"}], "fixedUri": URL + "flag"},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "max": "1",
         "type": [{"code": "boolean"}]},
    ]}}


@pytest.fixture(scope="module")
def validator() -> Validator:
    package = Package("example.slicing", "1")
    for resource in [_profile("closed", "closed", False), _profile("ordered", "open", True),
                     _profile("atend", "openAtEnd", False), FLAG,
                     {"resourceType": "ValueSet", "url": "http://example.org/vs/status",
                      "compose": {"include": [{"system": "http://example.org/cs/status",
                                               "concept": [{"code": "final"}]}]}},
                     {"resourceType": "ValueSet", "url": "http://example.org/vs/codes",
                      "compose": {"include": [{"system": LOINC,
                                               "concept": [{"code": "1-1"}]}]}}]:
        package.add(resource)
    return Validator([compile_package(package), *installed_packages()])


def obs(profile: str, *codes: str, **more: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "meta": {"profile": [URL + profile]},
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": c} for c in codes]}, **more}


def errors(validator: Validator, resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [(i.expression, i.rule) for i in validator.validate(resource)
            if i.severity == "error"]


def test_conformant(validator):
    for profile in ("closed", "ordered", "atend"):
        assert errors(validator, obs(profile, "1-1", "2-2")) == []


def test_required_slice_missing(validator):
    """Slice a is 1..1: a coding list without 1-1 misses it."""
    assert errors(validator, obs("ordered", "2-2")) == [("Observation.code.coding", "slicing")]


def test_slice_max(validator):
    """Slice a is ..1: two codings 1-1 are one too many."""
    assert ("Observation.code.coding", "slicing") in errors(validator, obs("ordered", "1-1", "1-1"))


def test_closed_slicing_refuses_a_value_matching_no_slice(validator):
    assert errors(validator, obs("closed", "1-1", "9-9")) == [
        ("Observation.code.coding[1]", "slicing")]
    assert errors(validator, obs("ordered", "1-1", "9-9")) == []  # open: allowed


def test_ordered_slicing_needs_the_slices_order(validator):
    assert errors(validator, obs("ordered", "2-2", "1-1")) == [
        ("Observation.code.coding", "slicing")]
    assert errors(validator, obs("closed", "2-2", "1-1")) == []  # unordered


def test_open_at_end_puts_other_values_last(validator):
    assert errors(validator, obs("atend", "1-1", "9-9")) == []
    assert errors(validator, obs("atend", "9-9", "1-1")) == [
        ("Observation.code.coding", "slicing")]


def test_required_binding_is_an_error(validator):
    """Required: the code must be from the value set (here: final only)."""
    resource = obs("ordered", "1-1")
    resource["status"] = "preliminary"
    assert errors(validator, resource) == [("Observation.status", "binding")]


def test_extensible_binding_warns_when_no_coding_is_from_the_value_set(validator):
    """Extensible: a coding from the value set beside others is fine; codings none of
    which is from it is a warning; text alone is fine."""
    resource = obs("atend", "1-1", "5-5")
    assert [i.rule for i in validator.validate(resource) if i.severity == "warning"] == []
    text_only = obs("atend", "1-1")
    text_only["code"] = {"text": "something"}  # (then slice a is missing: an error)
    assert [i for i in validator.validate(text_only) if i.severity == "warning"] == []
    only_other = obs("atend", "1-1")
    only_other["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}
    warned = [i for i in validator.validate(only_other) if i.severity == "warning"]
    assert [(i.expression, i.rule) for i in warned] == [("Observation.code", "binding")]


def test_extension_checked_against_its_definition(validator):
    """The flag extension's value[x] is a boolean, 1..1."""
    good = obs("ordered", "1-1", extension=[{"url": URL + "flag", "valueBoolean": True}])
    assert errors(validator, good) == []
    wrong = obs("ordered", "1-1", extension=[{"url": URL + "flag", "valueString": "yes"}])
    assert ("Observation.extension[0].valueString", "type") in errors(validator, wrong)
    empty = obs("ordered", "1-1", extension=[{"url": URL + "flag"}])
    assert ("Observation.extension[0].value", "cardinality") in errors(validator, empty)
