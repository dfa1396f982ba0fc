"""Value set expansion at compile time, from the rules of ValueSet.compose (R4 §4.9.5)."""

from __future__ import annotations

from mafhir.profiles.compiler import compile_package, compile_valueset
from mafhir.profiles.packages import Package

CS = "http://example.org/cs/animals"


def _package() -> Package:
    """animal > mammal > (dog, cat); animal > bird; a complete CodeSystem."""
    package = Package("example.terms", "1")
    package.add({"resourceType": "CodeSystem", "url": CS, "content": "complete", "concept": [
        {"code": "animal", "concept": [
            {"code": "mammal", "concept": [{"code": "dog"}, {"code": "cat"}]},
            {"code": "bird"}]}]})
    return package


def _expand(compose: dict) -> dict:
    package = _package()
    package.add({"resourceType": "ValueSet", "url": "http://example.org/vs/x",
                 "compose": compose})
    return compile_package(package)["valuesets"]["http://example.org/vs/x"]


def test_is_a_includes_the_concept_and_its_descendants():
    found = _expand({"include": [{"system": CS, "filter": [
        {"property": "concept", "op": "is-a", "value": "mammal"}]}]})
    assert found == {"codes": {CS: ["cat", "dog", "mammal"]}, "open": []}


def test_descendant_of_leaves_the_concept_out():
    found = _expand({"include": [{"system": CS, "filter": [
        {"property": "concept", "op": "descendant-of", "value": "animal"}]}]})
    assert found == {"codes": {CS: ["bird", "cat", "dog", "mammal"]}, "open": []}


def test_a_whole_code_system_and_an_exclusion():
    found = _expand({"include": [{"system": CS}],
                     "exclude": [{"system": CS, "concept": [{"code": "bird"}]}]})
    assert found == {"codes": {CS: ["animal", "cat", "dog", "mammal"]}, "open": []}


def test_a_system_no_package_defines_is_open_not_empty():
    """SNOMED CT is not in any package here: its codes cannot be listed, so the value
    set says 'cannot check' for that system instead of rejecting every code."""
    found = _expand({"include": [{"system": "http://snomed.info/sct", "filter": [
        {"property": "concept", "op": "is-a", "value": "404684003"}]}]})
    assert found == {"codes": {}, "open": ["http://snomed.info/sct"]}


def test_an_expansion_in_the_package_is_used_as_it_is():
    vs = {"resourceType": "ValueSet", "url": "u", "expansion": {"contains": [
        {"system": CS, "code": "dog"},
        {"system": CS, "code": "pets", "abstract": True, "contains": [
            {"system": CS, "code": "cat"}]}]}}
    assert compile_valueset(vs, None, {}) == {  # type: ignore[arg-type]
        "codes": {CS: ["cat", "dog"]}, "open": []}
