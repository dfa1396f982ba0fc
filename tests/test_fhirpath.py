"""``mafhir.profiles.fhirpath.evaluate``: invariants hold, fail, or are undecidable (None).

fhirpathpy's gaps are pinned here one by one (what it lacks, what this module adds, what stays
None), and the native versions of the R4 invariants present on every element are compared
with fhirpathpy itself on the inputs fhirpathpy can decide — two independent implementations
agreeing, not the code against its own output.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from hypothesis import given, settings
from hypothesis import strategies as st

from mafhir.profiles import fhirpath
from mafhir.profiles.fhirpath import evaluate, is_native

JSON = dict[str, Any]

ELE_1 = "hasValue() or (children().count() > id.count())"
EXT_1 = "extension.exists() != value.exists()"
DOM_2 = "contained.contained.empty()"
DOM_3 = ("contained.where((('#'+id in (%resource.descendants().reference | "
         "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
         "%resource.descendants().as(url))) or descendants().where(reference = '#').exists() or "
         "descendants().where(as(canonical) = '#').exists() or "
         "descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()")
DOM_4 = "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()"
DOM_5 = "contained.meta.security.empty()"
DOM_6 = "text.`div`.exists()"
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def obs(**extra: Any) -> JSON:
    return {"resourceType": "Observation", "id": "o1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, **extra}


# --- results and the three answers -------------------------------------------------------------

def test_a_leading_type_name_selects_the_resource():
    o = obs()
    assert evaluate("Observation.status = 'final'", o, o) is True
    assert evaluate("Patient.exists()", o, o) is False
    assert evaluate("(Observation | code).count() = 2", o, o) is True


def test_true_false_and_empty_results():
    o = obs(valueQuantity={"value": 70, "unit": "kg"})
    assert evaluate("status = 'final'", o, o) is True
    assert evaluate("status = 'amended'", o, o) is False
    # empty is FHIRPath's "unknown": nothing to check, so the invariant holds
    assert evaluate("issued > @2020-01-01", o, o) is True
    # one non-boolean item counts as true; several items cannot be a boolean
    assert evaluate("status", o, o) is True
    assert evaluate("code.coding.code | status", o, o) is None


@pytest.mark.parametrize("expression", [
    "status = ",                      # syntax error
    "status.noSuchFunction()",        # unknown function
    "conformsTo('http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient')",
    "code.memberOf('http://hl7.org/fhir/ValueSet/observation-codes')",
    "code.coding.subsumes(code.coding)",
    "effective.lowBoundary() < @2020",
    "value.comparable(1 'g')",
    "(1 'a') + @2020",                # an engine error while evaluating
])
def test_what_cannot_be_evaluated_is_none_never_a_violation(expression):
    o = obs(effectiveDateTime="2020-01-02", valueQuantity={"value": 1, "unit": "kg"})
    assert evaluate(expression, o, o) is None


def test_every_unsupported_function_answers_none():
    o = obs()
    for name in fhirpath.UNSUPPORTED:
        assert evaluate(f"{name}()", o, o) is None, name
        assert evaluate(f"code.{name}('x')", o, o) is None, name


def test_expressions_are_compiled_once():
    o = obs()
    expression = "status = 'final' and code.exists() and id.length() = 2"
    assert evaluate(expression, o, o) is True
    before = fhirpath._fast.cache_info()
    slow = fhirpath._compiled.cache_info()
    for _ in range(5):
        assert evaluate(expression, o, o) is True
    after = fhirpath._fast.cache_info()
    assert after.misses == before.misses
    assert after.hits == before.hits + 5
    assert fhirpath._compiled.cache_info() == slow  # the closures answered, not fhirpathpy


def test_the_input_is_not_changed():
    o = obs(contained=[{"resourceType": "Patient", "id": "p"}],
            subject={"reference": "#p"}, _status={"extension": [{"url": "u", "valueCode": "x"}]})
    before = copy.deepcopy(o)
    for expression in (ELE_1, EXT_1, DOM_3, "subject.resolve().id = 'p'",
                       "descendants().count() > 3"):
        evaluate(expression, o, o)
    assert o == before


# --- environment variables --------------------------------------------------------------------

def test_resource_root_resource_ucum_and_context():
    bundle = {"resourceType": "Bundle", "id": "b1", "type": "collection"}
    o = obs(component=[{"code": {"text": "x"}, "valueString": "y"}])
    component = o["component"][0]
    path = "Observation.component"
    assert evaluate("%resource.id = 'o1'", component, o, path=path) is True
    assert evaluate("%rootResource.id = 'o1'", component, o, path=path) is True
    assert evaluate("%rootResource.id = 'b1'", component, o, path=path, root=bundle) is True
    assert evaluate("%ucum = 'http://unitsofmeasure.org'", component, o, path=path) is True
    assert evaluate("%context.valueString = 'y'", component, o, path=path) is True
    assert evaluate("%context.value = 'y'", component, o, path=path) is True


# --- fhirpathpy's gaps, and what is added -------------------------------------------------------

def test_has_value_is_added():
    o = obs(_status={"extension": [{"url": "http://example.org/x", "valueCode": "y"}]})
    assert evaluate("status.hasValue()", o, o) is True
    del o["status"]
    assert evaluate("status.hasValue()", o, o) is False  # an extension alone is not a value
    assert evaluate("code.hasValue()", o, o) is False    # a complex element never has a value
    assert evaluate("hasValue()", "final", o, path="code") is True


def test_primitive_extensions_do_not_count_as_values():
    """fhirpathpy returns ``_gender`` as an item of its own beside ``gender``: without the
    module's workaround ``gender = 'male'`` would be false and ``count()`` would be 2."""
    patient = {"resourceType": "Patient", "gender": "male",
               "_gender": {"extension": [{"url": "http://example.org/x", "valueCode": "y"}]},
               "name": [{"given": ["Amy", "V."],
                         "_given": [None, {"extension": [{"url": "u", "valueCode": "y"}]}]}]}
    assert evaluate("gender = 'male'", patient, patient) is True
    assert evaluate("gender.count() = 1", patient, patient) is True
    assert evaluate("name.given.count() = 2", patient, patient) is True
    assert evaluate("name.given.first() = 'Amy'", patient["name"][0], patient,
                    path="Patient.name") is True
    assert evaluate("%resource.gender = 'male'", patient["name"][0], patient,
                    path="Patient.name") is True


def test_per_1_with_has_value_and_mixed_precision():
    per_1 = "start.hasValue().not() or end.hasValue().not() or (start <= end)"
    assert evaluate(per_1, {"start": "2020-01-01", "end": "2020-01-02"}, {}, path="Period") is True
    assert evaluate(per_1, {"start": "2020-01-03", "end": "2020-01-02"}, {}, path="Period") is False
    assert evaluate(per_1, {"start": "2020-01-03"}, {}, path="Period") is True
    # different precisions whose order FHIRPath cannot tell: empty, so it holds (not a violation)
    assert evaluate(per_1, {"start": "2020-01", "end": "2020-01-15"}, {}, path="Period") is True
    # ... and whose order it can tell
    assert evaluate(per_1, {"start": "2020-02", "end": "2020-01-15"}, {}, path="Period") is False


def test_choice_types_need_the_focus_type():
    o = obs(component=[{"code": {"text": "x"}, "valueQuantity": {"value": 1}}])
    component = o["component"][0]
    rule = "value.exists() or dataAbsentReason.exists()"
    assert evaluate(rule, component, o, path="Observation.component") is True
    assert evaluate(rule, {"code": {"text": "x"}}, o, path="Observation.component") is False
    # without the element's path: choice elements one level down are still found and typed
    assert evaluate(rule, component, o) is True
    assert evaluate(rule, {"code": {"text": "x"}}, o) is False
    assert evaluate("value is Quantity", component, o) is True
    assert evaluate("value.ofType(Quantity).value = 1", component, o) is True
    assert evaluate("value.is(CodeableConcept)", component, o) is False
    identifier = {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
    assert evaluate("value.matches('^[0-9]{10}$')", identifier, o) is True  # a plain `value`
    assert evaluate("value.matches('^[0-9]{9}$')", identifier, o) is False
    # ... but not deeper: there a choice element may look absent, so False is "cannot tell"
    target = {"measure": {"text": "weight"}, "detailQuantity": {"value": 60}}
    assert evaluate("detail.exists()", target, o) is True
    # below an extension the walk is typed again (Extension.value is a known choice)
    race = {"url": "u", "extension": [{"url": "ombCategory", "valueCoding": {"code": "UNK"}},
                                      {"url": "ombCategory", "valueCoding": {"code": "2106-3"}}]}
    assert evaluate("extension.value.where(code = 'UNK').exists() implies extension.count() = 1",
                    race, o) is False
    assert evaluate("target.detail.exists()", {"target": [target]}, o) is None
    assert evaluate("value is Quantity", component, o, path="Observation.component") is True
    assert evaluate("value.is(CodeableConcept)", component, o,
                    path="Observation.component") is False
    # a choice element's own value: its concrete type
    dt = "$this is dateTime implies $this.toString().length() >= 10"
    assert evaluate(dt, "2020-01-02T10:00:00Z", o, path="dateTime") is True
    assert evaluate(dt, "2020-01", o, path="dateTime") is False
    assert evaluate(dt, {"start": "2020"}, o, path="Period") is True


def test_an_object_of_unknown_type_is_typed_by_its_keys_for_type_tests():
    """A caller without the element's type (the validator walking JSON): for an expression
    that tests types, the object gets the one R4 data type all its keys fit."""
    o = obs()
    us_core_3 = ("ofType(Quantity).system.empty() or "
                 "ofType(Quantity).system = 'http://unitsofmeasure.org'")
    ucum = {"value": 70, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    other = {**ucum, "system": "http://example.org/units"}
    assert evaluate(us_core_3, ucum, o) is True
    assert evaluate(us_core_3, other, o) is False
    assert evaluate("$this is CodeableConcept", {"coding": [{"code": "x"}]}, o) is True
    assert evaluate("$this is Quantity", {"coding": [{"code": "x"}]}, o) is False
    assert evaluate("$this is Period", {"start": "2020", "end": "2021"}, o) is True
    # Quantity, not one of its many specialisations, for a plain quantity's keys
    assert evaluate("$this is Quantity", {"value": 3, "unit": "d"}, o) is True
    # keys that fit several types, or none: no type, and a failed type test is "cannot tell"
    assert evaluate("$this is CodeableConcept", {"text": "x"}, o) is None
    assert evaluate("$this is Quantity", {"code": {"text": "x"}, "valueString": "y"}, o) is None
    # a primitive choice value: typed by the key that holds this very object
    vs_1 = "$this is dateTime implies $this.toString().length() >= 10"
    month = obs(effectiveDateTime="2024-03".upper())  # a str object of its own
    assert evaluate(vs_1, month["effectiveDateTime"], month) is False
    day = obs(effectiveDateTime="2024-03-01".upper())
    assert evaluate(vs_1, day["effectiveDateTime"], day) is True
    # ... but not an equal string held elsewhere, nor a plain (non-choice) element
    assert evaluate(vs_1, "2024-03".upper(), month) is None
    assert evaluate("$this is string", month["status"], month) is None
    # below an untyped object a child is untyped too, but a resolved resource is typed
    assert evaluate("detail is Quantity", {"detail": {"value": 1}}, o) is None
    agent = {"who": {"reference": "Practitioner/1"}}
    assert evaluate("who.resolve() is Practitioner", agent, o) is True
    assert evaluate("who.resolve() is Device", agent, o) is False


def test_resolve_in_contained_bundle_and_by_reference_type():
    practitioner = {"resourceType": "Practitioner", "id": "pr1"}
    device = {"resourceType": "Device", "id": "d1"}
    rule = ("who.exists((resolve() is Practitioner) or (resolve() is Device)) "
            "implies onBehalfOf.exists()")
    prov: JSON = {"resourceType": "Provenance", "contained": [device],
                  "agent": [{"who": {"reference": "#d1"}}]}
    agent = "Provenance.agent"
    assert evaluate(rule, prov["agent"][0], prov, path=agent) is False
    prov["agent"][0]["onBehalfOf"] = {"reference": "Organization/o"}
    assert evaluate(rule, prov["agent"][0], prov, path=agent) is True
    # in a Bundle, by fullUrl and by type/id
    by_url = {"who": {"reference": "urn:uuid:1b6f6cf6-5f8e-4bbc-9a1b-1f7a3c6e0f1a"}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1b6f6cf6-5f8e-4bbc-9a1b-1f7a3c6e0f1a", "resource": practitioner}]}
    assert evaluate(rule, by_url, prov, path=agent, root=bundle) is False
    by_id = {"who": {"reference": "Practitioner/pr1"}}
    assert evaluate("who.resolve().id = 'pr1'", by_id, prov, path=agent, root=bundle) is True
    # not found anywhere: the reference's own type still answers "is Practitioner"
    assert evaluate(rule, {"who": {"reference": "Practitioner/elsewhere"}}, prov,
                    path=agent) is False
    assert evaluate(rule, {"who": {"reference": "Organization/o1"}}, prov, path=agent) is True
    assert evaluate(rule, {"who": {"display": "someone"}}, prov, path=agent) is True
    assert evaluate("who.resolve().exists()", {"who": {"reference": "#nothere"}}, prov,
                    path=agent) is False


@pytest.mark.parametrize(("div", "txt_1", "txt_2"), [
    (f'<div {XHTML}><p>Blood pressure <b>120/80</b></p></div>', True, True),
    (f'<div {XHTML}><table><tr><td>x</td></tr></table></div>', True, True),
    (f'<div {XHTML}><img src="#a"/></div>', True, True),
    (f'<div {XHTML}>   </div>', True, False),                       # txt-2: no content
    (f'<div {XHTML}><p> </p><br/></div>', True, False),
    (f'<div {XHTML}><script>alert(1)</script>text</div>', False, True),  # txt-1: script
    (f'<div {XHTML}><p onclick="x()">text</p></div>', False, True),      # event attribute
    (f'<div {XHTML}><a href="javascript:x()">text</a></div>', False, True),
    (f'<div {XHTML}><form>text</form></div>', False, True),
    ('<div><p>text</p></div>', False, True),                        # not XHTML's namespace
    (f'<p {XHTML}>text</p>', False, True),                          # not a div
    (f'<div {XHTML}><p>text</div>', False, False),                  # not well formed
])
def test_html_checks_txt_1_and_txt_2(div, txt_1, txt_2):
    assert evaluate("htmlChecks()", div, {}, key="txt-1") is txt_1
    assert evaluate("htmlChecks()", div, {}, key="txt-2") is txt_2
    assert evaluate("htmlChecks()", div, {}) is (txt_1 and txt_2)  # no key: both rules
    narrative = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    # `div` is FHIRPath's operator: the element needs backticks
    assert evaluate("text.`div`.htmlChecks()", narrative, narrative) is (txt_1 and txt_2)


def test_quantity_comparison_gap_of_fhirpathpy():
    """fhirpathpy 2.2.4 compares quantities without UCUM conversion: 1 kg = 1000 g is false
    (FHIRPath says true). No US Core or R4 invariant on a resource compares quantities of
    different units, so nothing depends on it; if this starts failing, fhirpathpy fixed it."""
    o = obs()
    assert evaluate("(1 'kg') = (1000 'g')", o, o) is False
    assert evaluate("(1 'kg') = (1 'kg')", o, o) is True


# --- the native invariants agree with fhirpathpy where fhirpathpy can decide ---------------------

@functools.cache
def _plain_fhirpathpy(expression: str) -> Any:
    return fhirpathpy.compile(expression, model=models["r4"])


def _fhirpathpy(expression: str, focus: Any, path: str | None = None) -> list[Any]:
    """fhirpathpy itself, as its users call it (compiled, its own R4 model, nothing added)."""
    node = ResourceNode.create_node(focus, path)
    return _plain_fhirpathpy(expression)(node, {"resource": focus})


CONTAINED_VARIANTS: list[list[JSON]] = [
    [],
    [{"resourceType": "Patient", "id": "p"}],
    [{"resourceType": "Patient", "id": "p", "contained": [{"resourceType": "Patient", "id": "q"}]}],
    [{"resourceType": "Patient", "id": "p", "meta": {"versionId": "1"}}],
    [{"resourceType": "Patient", "id": "p", "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}],
    [{"resourceType": "Patient", "id": "p", "meta": {"security": [{"code": "R"}]}}],
    [{"resourceType": "Patient", "id": "p", "meta": {"profile": ["http://x"]}},
     {"resourceType": "Organization", "id": "o"}],
]
TEXTS: list[JSON | None] = [None, {"status": "generated", "div": f"<div {XHTML}>x</div>"},
                            {"status": "empty"}]


@pytest.mark.parametrize(("contained", "text"), list(itertools.product(CONTAINED_VARIANTS, TEXTS)))
@pytest.mark.parametrize("expression", [DOM_2, DOM_4, DOM_5, DOM_6])
def test_native_dom_rules_agree_with_fhirpathpy(expression, contained, text):
    resource: JSON = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    if contained:
        resource["contained"] = contained
    if text:
        resource["text"] = text
    assert is_native(expression)
    expected = _fhirpathpy(expression, resource)
    assert expected in ([True], [False])
    assert evaluate(expression, resource, resource) is expected[0]


@pytest.mark.parametrize("extension", [
    {"url": "u", "valueString": "x"},
    {"url": "u", "extension": [{"url": "a", "valueCode": "b"}]},
    {"url": "u", "valueString": "x", "extension": [{"url": "a", "valueCode": "b"}]},
    {"url": "u"},
    {"url": "u", "valueCodeableConcept": {"text": "x"}},
    {"url": "u", "valueBoolean": False},
    {"url": "u", "valueInteger": 0},
])
def test_native_ext_1_agrees_with_fhirpathpy(extension):
    expected = _fhirpathpy(EXT_1, extension, "Extension")
    assert evaluate(EXT_1, extension, {}, path="Extension") is expected[0]


@pytest.mark.parametrize(("element", "path", "holds"), [
    ({"family": "Chalmers"}, "Patient.name", True),
    ({"id": "n1"}, "Patient.name", False),
    ({}, "Patient.name", False),
    ({"id": "n1", "extension": [{"url": "u", "valueString": "x"}]}, "Patient.name", True),
    ({"coding": [{"code": "x"}]}, "Observation.code", True),
    ({"extension": []}, "Patient.name", False),
])
def test_native_ele_1_on_complex_elements_agrees_with_fhirpathpy(element, path, holds):
    # fhirpathpy has no hasValue(): its half of the rule that applies to complex elements
    expected = _fhirpathpy("children().count() > id.count()", element, path)
    assert expected == [holds]
    assert evaluate(ELE_1, element, {}, path=path) is holds


def test_native_ele_1_on_primitives():
    assert evaluate(ELE_1, "final", {}) is True
    assert evaluate(ELE_1, False, {}) is True       # false is a value
    assert evaluate(ELE_1, 0, {}) is True
    # a primitive without a value: its _name object must carry an extension
    assert evaluate(ELE_1, None, {}, shadow={"extension": [{"url": "u", "valueCode": "x"}]}) \
        is True
    assert evaluate(ELE_1, None, {}, shadow={"id": "a"}) is False
    assert evaluate(ELE_1, None, {}) is False


@pytest.mark.parametrize(("resource", "holds"), [
    ({"resourceType": "Observation"}, True),
    ({"resourceType": "Observation", "contained": [{"resourceType": "Patient", "id": "p"}],
      "subject": {"reference": "#p"}}, True),
    ({"resourceType": "Observation", "contained": [{"resourceType": "Patient", "id": "p"}],
      "subject": {"reference": "#q"}}, False),
    ({"resourceType": "Observation", "contained": [{"resourceType": "Patient", "id": "p"}]},
     False),
    # the contained resource refers to its container
    ({"resourceType": "Observation", "contained": [
        {"resourceType": "Provenance", "id": "v", "target": [{"reference": "#"}]}]}, True),
    # referenced from another contained resource
    ({"resourceType": "Observation", "contained": [
        {"resourceType": "Patient", "id": "p"},
        {"resourceType": "Provenance", "id": "v", "target": [{"reference": "#"}],
         "agent": [{"who": {"reference": "#p"}}]}]}, True),
    # by canonical (Questionnaire contained in a QuestionnaireResponse)
    ({"resourceType": "QuestionnaireResponse", "questionnaire": "#q", "status": "completed",
      "contained": [{"resourceType": "Questionnaire", "id": "q", "status": "active"}]}, True),
    # two contained, one unreferenced
    ({"resourceType": "Observation", "subject": {"reference": "#p"}, "contained": [
        {"resourceType": "Patient", "id": "p"}, {"resourceType": "Device", "id": "d"}]}, False),
])
def test_native_dom_3(resource, holds):
    """dom-3 as its human text says (fhirpathpy cannot run it: ``as()`` over a collection)."""
    assert evaluate(DOM_3, resource, resource) is holds
    if "contained" in resource:
        with pytest.raises(Exception, match="singleton"):
            fhirpathpy.evaluate(resource, DOM_3, {"resource": resource}, model=models["r4"])


def test_trace_prints_no_patient_data(capsys):
    patient = {"resourceType": "Patient", "name": [{"family": "Chalmers"}]}
    assert evaluate("name.family.trace('family').exists()", patient, patient) is True
    assert "Chalmers" not in capsys.readouterr().out


def test_native_rules_answer_none_or_a_bool_on_odd_input():
    for expression in (ELE_1, EXT_1, DOM_2, DOM_3, DOM_4, DOM_5, DOM_6, "htmlChecks()"):
        for focus in (None, [], "x", 3, {"contained": "not a list"}, {"contained": [1, "x"]}):
            assert evaluate(expression, focus, {}) in (True, False, None)


# --- native against fhirpathpy on every resource of the corpus ----------------------------------

def _corpus_resources(corpus) -> list[JSON]:
    out = []
    for pattern in ("us-core/7.0.0/examples/*.json", "fhir-r4-examples/*/*.json"):
        for path in sorted(corpus.glob(pattern)):
            resource = json.loads(path.read_text(encoding="utf-8"))
            out.append(resource)
            if resource.get("resourceType") == "Bundle":
                out.extend(e["resource"] for e in resource.get("entry", [])
                           if isinstance(e.get("resource"), dict))
    return out


def _nodes(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(JSON key, object) of every object below ``node``, contained resources aside."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "contained":
                continue
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, dict):
                    yield k, item
                    yield from _nodes(item, k)


def test_native_rules_agree_with_fhirpathpy_on_the_corpus(corpus):
    """dom-2/4/5/6 on every resource, ext-1 on every extension, ele-1's complex half on every
    object of every resource of the corpus: the native code and fhirpathpy agree."""
    resources = _corpus_resources(corpus)
    assert len(resources) > 550
    checked = Counter()
    for resource in resources:
        for expression in (DOM_2, DOM_4, DOM_5, DOM_6):
            assert evaluate(expression, resource, resource) is \
                _fhirpathpy(expression, resource)[0], (expression, resource.get("id"))
            checked[expression] += 1
        for key, node in _nodes(resource):
            if key in ("extension", "modifierExtension"):
                assert evaluate(EXT_1, node, resource, path="Extension") is \
                    _fhirpathpy(EXT_1, node, "Extension")[0], node
                checked["ext-1"] += 1
            if "resourceType" not in node:
                expected = _fhirpathpy("children().count() > id.count()", node, "Element")
                assert evaluate(ELE_1, node, resource) is expected[0], node
                checked["ele-1"] += 1
    assert checked["ext-1"] > 300
    assert checked["ele-1"] > 10000


# --- never raises, whatever the JSON --------------------------------------------------------

#: invariants of R4 and US Core 7.0.0 that use every kind of FHIRPath they hold: type tests,
#: %resource, resolve(), repeat/select/aggregates, string functions, arithmetic
EXPRESSIONS = [
    ELE_1, EXT_1, DOM_2, DOM_3, DOM_4, DOM_5, DOM_6, "htmlChecks()",
    "$this is dateTime implies $this.toString().length() >= 10",
    "ofType(Quantity).system.empty() or ofType(Quantity).system = 'http://unitsofmeasure.org'",
    "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists())"
    ".empty()",
    "onBehalfOf.exists() implies (member.resolve().iif(empty(), true, "
    "ofType(Practitioner).exists()))",
    "(QuestionnaireResponse|repeat(answer|item)).select(item.where(answer.value.exists())"
    ".linkId.isDistinct()).allTrue()",
    "extension.where(url = 'ombCategory').value.where(code in 'ASKU'|'UNK').exists() implies "
    "extension.where(url = 'ombCategory').count() = 1",
    "code.coding.where(code in '72166-2'|'11367-0').exists() implies value.is(CodeableConcept)",
    "clinicalStatus.exists() or verificationStatus.coding.where(system='http://terminology.hl7"
    ".org/CodeSystem/condition-ver-status' and code = 'entered-in-error').exists() or "
    "category.select($this='problem-list-item').empty()",
    "(identifier.count() + name.count()) > 0",
    "value.matches('^[0-9]{10}$')",
    "((select(value.substring(0,1).toInteger()).select(iif($this<5, $this*2, (($this*2)-9))))"
    "+(value.substring(1,1).toInteger()) + 24) mod 10 = 0",
    "whenHandedOver.empty() or whenPrepared.empty() or whenHandedOver >= whenPrepared",
    "who.exists((resolve() is Practitioner) or (resolve() is Device)) implies "
    "onBehalfOf.exists()",
]
_KEYS = st.sampled_from(["value", "valueQuantity", "valueString", "_status", "status", "code",
                         "coding", "system", "extension", "url", "id", "contained",
                         "resourceType", "component", "reference", "text", "div", "item",
                         "answer", "linkId", "effectiveDateTime", "telecom"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["Patient", "#p", "Practitioner/1", "2024-03"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(expression=st.sampled_from(EXPRESSIONS), focus=_JSON, resource=_JSON,
       path=st.sampled_from([None, "Observation.component", "Quantity", "dateTime"]))
def test_evaluate_never_raises(expression, focus, resource, path):
    resource = resource if isinstance(resource, dict) else {"resourceType": "Observation"}
    assert evaluate(expression, focus, resource, path=path) in (True, False, None)


#: invariants the fast path takes (no type tests, no %resource), from R4 and US Core 7.0.0
FAST = [
    "dataAbsentReason.empty() or value.empty()",
    "(component.empty() and hasMember.empty()) implies "
    "(dataAbsentReason.exists() or value.exists())",
    "value.exists() or dataAbsentReason.exists()",
    "where(use = 'home').empty()",
    "status='completed' implies whenHandedOver.exists()",
    "(status='partial' or status='preliminary' or status='final' or status='amended' or "
    "status='corrected' or status='appended' ) implies effective.exists()",
    "verificationStatus.coding.where(system = 'http://terminology.hl7.org/CodeSystem/"
    "allergyintolerance-verification' and code = 'entered-in-error').exists() or "
    "clinicalStatus.exists()",
    "(answer.exists() and item.exists()).not()",
    "extension.where(url = 'ombCategory').value.where(code in 'ASKU'|'UNK').exists() implies "
    "extension.where(url = 'ombCategory').count() = 1",
    "(family.exists() or given.exists()) xor extension.where(url='http://hl7.org/fhir/"
    "StructureDefinition/data-absent-reason').exists()",
    "code.coding.first().code = 'x' or status != 'final'",
    "(detail.exists() and measure.exists()) or detail.exists().not()",
]


_FAST_KEYS = st.sampled_from([
    "dataAbsentReason", "value", "valueQuantity", "valueString", "valueBoolean", "component",
    "hasMember", "use", "status", "whenHandedOver", "effectiveDateTime", "verificationStatus",
    "clinicalStatus", "coding", "system", "code", "answer", "item", "extension", "url",
    "valueCoding", "family", "given", "measure", "detail", "detailQuantity", "_status"])
_FAST_LEAVES = (st.none() | st.booleans() | st.integers(0, 3)
                | st.sampled_from(["final", "home", "completed", "ombCategory", "ASKU", "x",
                                   "entered-in-error", "http://terminology.hl7.org/CodeSystem/"
                                   "allergyintolerance-verification", "2024-03"]))
_FAST_JSON = st.recursive(
    _FAST_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_FAST_KEYS, inner, max_size=4),
    max_leaves=14)


@settings(max_examples=300, deadline=None)
@given(expression=st.sampled_from(FAST),
       focus=st.dictionaries(_FAST_KEYS, _FAST_JSON, max_size=6),
       path=st.sampled_from([None, "Observation", "Observation.component", "HumanName",
                             "Extension", "AllergyIntolerance"]))
def test_the_fast_path_answers_as_fhirpathpy_on_random_json(expression, focus, path):
    from unittest import mock

    from mafhir.profiles import fhirpath

    assert fhirpath._fast(expression) is not None
    fast = evaluate(expression, focus, {}, path=path)
    with mock.patch.object(fhirpath, "_fast", lambda expression: None):
        slow = evaluate(expression, focus, {}, path=path)
    assert fast is slow
