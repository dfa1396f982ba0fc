"""The vital-sign profile rules: US Core examples pass, and each broken copy fails at the
FHIR path of what was broken.

Valid starting points are the US Core 7.0.0 examples from the corpus (not mafhir output),
so a rule that is too strict fails here as surely as one that is too lax.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from conftest import CTX, load_json
from mafhir.bundle import transaction
from mafhir.pipeline import Pipeline
from mafhir.validation import check_bundle
from mafhir.validation.validator import check_definitions, check_resource

JSON = dict[str, Any]


def errors(resource: JSON, registry) -> list[tuple[str, str]]:
    return [(i.expression, i.diagnostics) for i in check_resource(resource, registry.profiles)
            if i.severity in ("error", "fatal")]


def engine_errors(resource: JSON) -> list[str]:
    """Error paths the profile engine alone names (no hand-written rule)."""
    return [i.expression for i in check_definitions(resource)
            if i.severity in ("error", "fatal")]


def example(corpus, name: str) -> JSON:
    return load_json(corpus / f"us-core/7.0.0/examples/Observation-{name}.json")


def test_all_corpus_observations_pass(corpus, registry):
    """No false alarms on any Observation example of US Core 7.0.0 or FHIR R4."""
    paths = sorted([*(corpus / "us-core/7.0.0/examples").glob("Observation-*.json"),
                    *(corpus / "fhir-r4-examples/Observation").glob("*.json")])
    assert len(paths) > 100
    failing = {p.name: errors(load_json(p), registry) for p in paths}
    # one true error in the R4 examples: Observation.performer allows Practitioner,
    # PractitionerRole, Organization, CareTeam, Patient, RelatedPerson - not Encounter
    assert {p: [x for x, _ in e] for p, e in failing.items() if e} == {
        "Observation-clinical-gender.json": ["Observation.performer[0].reference"]}


def test_status_is_the_r4_value_set_by_the_engine_alone(corpus, registry):
    """The status rule is retired: the engine's required binding takes every code of the
    R4 CodeSystem (read from the corpus) and names anything else at Observation.status."""
    def flat(concepts):  # hierarchical: corrected is a child of amended
        for c in concepts:
            yield c["code"]
            yield from flat(c.get("concept", []))

    cs = load_json(corpus / "fhir-r4-core/codesystems/CodeSystem-observation-status.json")
    codes = set(flat(cs["concept"]))
    assert len(codes) == 8
    resource = example(corpus, "heart-rate")
    for code in sorted(codes):
        resource["status"] = code
        assert errors(resource, registry) == [], code
    for code in ("done", "Final", "in-progress"):
        resource["status"] = code
        assert engine_errors(resource) == ["Observation.status"], code
        assert [p for p, _ in errors(resource, registry)] == ["Observation.status"], code


def _drop(*path: str | int) -> Callable[[JSON], None]:
    def edit(r: JSON) -> None:
        node: Any = r
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    return edit


def _set(value: Any, *path: str | int) -> Callable[[JSON], None]:
    def edit(r: JSON) -> None:
        node: Any = r
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return edit


CASES = [
    # every vital-sign profile (heart rate as the representative)
    ("heart-rate", _drop("category"), "Observation.category"),
    ("heart-rate", _set("laboratory", "category", 0, "coding", 0, "code"), "Observation.category"),
    ("heart-rate", _set("8310-5", "code", "coding", 0, "code"), "Observation.code"),
    ("heart-rate", _set("done", "status"), "Observation.status"),
    ("heart-rate", _drop("status"), "Observation.status"),
    ("heart-rate", _drop("effectiveDateTime"), "Observation.effective[x]"),
    ("heart-rate", _set("1999-07", "effectiveDateTime"), "Observation.effectiveDateTime"),
    ("heart-rate", _drop("subject"), "Observation.subject"),
    ("heart-rate", _set("beats/min", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("heart-rate", _drop("valueQuantity", "unit"), "Observation.valueQuantity.unit"),
    ("heart-rate", _drop("valueQuantity", "system"), "Observation.valueQuantity.system"),
    ("heart-rate", _drop("valueQuantity", "value"), "Observation.valueQuantity.value"),
    ("heart-rate", _set("http://example.org/units", "valueQuantity", "system"),
     "Observation.valueQuantity.system"),
    # per-profile codes and units
    ("respiratory-rate", _set("/s", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("temperature", _set("F", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("temperature", _set("C", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("height", _set("in", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("weight", _set("lb", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("bmi", _set("kg/m^2", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("bmi", _set("39156-6", "code", "coding", 0, "code"), "Observation.code"),
    ("head-circumference", _set("mm", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    ("satO2-fiO2", _set("1", "valueQuantity", "code"), "Observation.valueQuantity.code"),
    # blood pressure (a value of its own: see the plausibility test below)
    ("blood-pressure", _drop("component", 1), "Observation.component"),
    ("blood-pressure", _set("mmHg", "component", 0, "valueQuantity", "code"),
     "Observation.component[0].valueQuantity.code"),
    ("blood-pressure", _drop("component", 1, "valueQuantity", "unit"),
     "Observation.component[1].valueQuantity.unit"),
    ("blood-pressure", _drop("component", 1, "valueQuantity"), "Observation.component[1]"),
    ("bp-data-absent", _drop("component", 1, "dataAbsentReason"), "Observation.component[1]"),
    # pulse oximetry: both codings, and the flow component in L/min
    ("satO2-fiO2", _set([{"system": "http://loinc.org", "code": "59408-5"}], "code", "coding"),
     "Observation.code.coding"),
    ("satO2-fiO2", _set([{"system": "http://loinc.org", "code": "2708-6"}], "code", "coding"),
     "Observation.code.coding"),
    ("satO2-fiO2", _set("L", "component", 0, "valueQuantity", "code"),
     "Observation.component[0].valueQuantity.code"),
    ("satO2-fiO2", _set("mL/min", "component", 0, "valueQuantity", "code"),
     "Observation.component[0].valueQuantity.code"),
]


@pytest.mark.parametrize(("name", "edit", "path"), CASES,
                         ids=[f"{c[0]}->{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_rule_catches_breakage_at_its_path(corpus, registry, name, edit, path):
    resource = example(corpus, name)
    assert errors(resource, registry) == []
    broken = copy.deepcopy(resource)
    edit(broken)
    found = errors(broken, registry)
    assert path in [p for p, _ in found], found


#: The cases whose hand-written rule was retired: the engine names each one by itself.
ENGINE_CASES = [c for c in CASES if c[2] != "Observation.effective[x]"]


@pytest.mark.parametrize(("name", "edit", "path"), ENGINE_CASES,
                         ids=[f"{c[0]}->{c[2]}-{i}" for i, c in enumerate(ENGINE_CASES)])
def test_the_engine_alone_names_each_retired_rule(corpus, name, edit, path):
    resource = example(corpus, name)
    assert engine_errors(resource) == []
    broken = copy.deepcopy(resource)
    edit(broken)
    assert path in engine_errors(broken)


def test_a_component_slice_given_twice_is_named_at_the_second(corpus, registry):
    """A hand-written rule kept: the second systolic component, at its own index."""
    bp = example(corpus, "blood-pressure")
    bp["component"].append(copy.deepcopy(bp["component"][0]))
    assert "Observation.component[2]" in [p for p, _ in errors(bp, registry)]


def test_value_of_another_type_is_a_plausibility_warning_not_an_error(corpus, registry):
    """US Core 7.0.0 heart rate: Observation.value[x] keeps every R4 type (its snapshot
    lists Quantity, CodeableConcept, string...), so a valueString is conformant; mafhir
    warns of it as its own plausibility rule."""
    broken = example(corpus, "heart-rate")
    broken["valueString"] = "44"
    del broken["valueQuantity"]
    assert errors(broken, registry) == []
    warned = [i for i in check_resource(broken, registry.profiles) if i.severity == "warning"]
    assert [i.expression for i in warned] == ["Observation.valueString"]
    assert warned[0].diagnostics.startswith("plausibility (mafhir): ")


def test_a_blood_pressure_value_of_its_own_is_only_a_plausibility_warning(corpus, registry):
    """R4's bp profile has value[x] 0..0, but US Core 7.0.0 blood pressure leaves it 0..1
    (its snapshot), so this is not an error against the US Core profile."""
    bp = example(corpus, "blood-pressure")
    bp["valueQuantity"] = {"value": 120, "unit": "mmHg", "system": "http://unitsofmeasure.org",
                           "code": "mm[Hg]"}
    assert errors(bp, registry) == []
    warned = [i for i in check_resource(bp, registry.profiles) if i.severity == "warning"]
    assert [i.expression for i in warned] == ["Observation.valueQuantity"]
    assert warned[0].diagnostics.startswith("plausibility (mafhir): ")


def test_versioned_and_unversioned_profile_claims_are_both_checked(corpus, registry):
    broken = example(corpus, "weight")
    broken["valueQuantity"]["code"] = "lb"
    assert "|7.0.0" in broken["meta"]["profile"][0]
    wrong_unit = "Observation.valueQuantity.code"
    assert wrong_unit in [p for p, _ in errors(broken, registry)]
    broken["meta"]["profile"] = [broken["meta"]["profile"][0].split("|")[0]]
    assert wrong_unit in [p for p, _ in errors(broken, registry)]


# --- the base Observation invariants apply without any profile claim ----------------------


def _bare(corpus, name: str) -> JSON:
    r = example(corpus, name)
    del r["meta"]
    return r


def test_obs_6_data_absent_reason_only_without_a_value(corpus, registry):
    r = _bare(corpus, "heart-rate")
    assert errors(r, registry) == []
    r["dataAbsentReason"] = {"coding": [{"system":
                             "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                         "code": "unknown"}]}
    # once, by the invariant of the StructureDefinition, on the Observation it sits on (a
    # hand-written copy of it, naming the element, reported it a second time)
    assert [p for p, d in errors(r, registry) if "obs-6" in d] == ["Observation"]


def test_obs_7_no_component_repeating_the_code_when_there_is_a_value(corpus, registry):
    r = _bare(corpus, "heart-rate")
    r["component"] = [{"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                       "valueQuantity": {"value": 44, "unit": "/min",
                                         "system": "http://unitsofmeasure.org", "code": "/min"}}]
    assert [p for p, d in errors(r, registry) if "obs-7" in d] == ["Observation.component[0].code"]
    del r["valueQuantity"]  # the panel form (no value) may repeat codes
    assert not [p for p, d in errors(r, registry) if "obs-7" in d]


def test_vs_2_applies_only_to_vital_signs(corpus, registry):
    r = _bare(corpus, "heart-rate")
    del r["valueQuantity"]
    assert [p for p, d in errors(r, registry) if "vs-2" in d] == ["Observation"]
    r["category"][0]["coding"][0]["code"] = "laboratory"
    assert errors(r, registry) == []
    r["category"][0]["coding"][0]["code"] = "vital-signs"
    r["dataAbsentReason"] = {"coding": [{"system":
                             "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                         "code": "not-performed"}]}
    assert errors(r, registry) == []


# --- pain: US Core screening assessment --------------------------------------------------


@pytest.fixture
def pain(registry) -> JSON:
    pipeline = Pipeline(registry, CTX)
    task = pipeline.parse(0, {"task": "vitals", "id": "p-1", "patient": {"mrn": "M"},
                              "effective": "2026-03-04T09:15:00-05:00", "pain": {"score": 4}})
    (entry,) = pipeline.map_task(0, task).entries
    return entry.resource


def test_screening_assessment_rules(registry, pain):
    assert errors(pain, registry) == []
    broken = copy.deepcopy(pain)
    broken["category"][0]["coding"][0]["code"] = "vital-signs"
    assert "Observation.category" in [p for p, _ in errors(broken, registry)]
    broken = copy.deepcopy(pain)
    del broken["valueInteger"]
    assert [p for p, d in errors(broken, registry) if "us-core-2" in d] == ["Observation"]
    broken = copy.deepcopy(pain)
    broken["effectiveDateTime"] = "2026-03"
    assert "Observation.effectiveDateTime" in [p for p, _ in errors(broken, registry)]
    broken = copy.deepcopy(pain)
    del broken["subject"]
    assert "Observation.subject" in [p for p, _ in errors(broken, registry)]


def test_screening_assessment_retired_rules_are_the_engines(pain):
    """Category, us-core-2, us-core-1 and subject: the engine alone names each."""
    assert engine_errors(pain) == []
    broken = copy.deepcopy(pain)
    broken["category"][0]["coding"][0]["code"] = "vital-signs"
    assert "Observation.category" in engine_errors(broken)
    broken = copy.deepcopy(pain)
    del broken["valueInteger"]
    assert [i.expression for i in check_definitions(broken)
            if i.severity == "error" and "us-core-2" in i.diagnostics] == ["Observation"]
    broken = copy.deepcopy(pain)
    broken["effectiveDateTime"] = "2026-03"
    assert "Observation.effectiveDateTime" in engine_errors(broken)
    broken = copy.deepcopy(pain)
    del broken["subject"]
    assert "Observation.subject" in engine_errors(broken)


def test_screening_assessment_examples_in_the_corpus_pass(corpus, registry):
    claims = 0
    for path in (corpus / "us-core/7.0.0/examples").glob("Observation-*.json"):
        r = load_json(path)
        if any("screening-assessment" in p for p in r.get("meta", {}).get("profile", [])):
            claims += 1
            assert errors(r, registry) == [], path
    assert claims > 10


def test_issues_inside_a_bundle_point_at_the_entry(corpus, registry):
    from mafhir.bundle import create

    good = example(corpus, "heart-rate")
    good["identifier"] = [{"system": "urn:x", "value": "a"}]
    bad = copy.deepcopy(good)
    bad["identifier"] = [{"system": "urn:x", "value": "b"}]
    bad["valueQuantity"]["code"] = "bpm"
    bundle = transaction([create(good), create(bad)])
    found = [i.expression for i in check_bundle(bundle, registry.profiles)
             if i.severity == "error"]
    assert found == ["Bundle.entry[1].resource.valueQuantity.code"]
