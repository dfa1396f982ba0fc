"""What mafhir writes meets the US Core 6.1.0 and 7.0.0 snapshots, read independently."""

from __future__ import annotations

import copy

import pytest

import uscore
from conftest import CLINIC, CTX, load_json
from mafhir.mappers.common import (
    location_entry,
    organization_entry,
    patient_refs,
    practitioner_entry,
)
from mafhir.tasks.common import LocationRef, PatientRef, PractitionerRef

VERSIONS = ("6.1.0", "7.0.0")


def shared_resources() -> list[dict]:
    patient = PatientRef(mrn="M1", family="Rivera", given=["Ana"], gender="female",
                         birth_date="2019-05-04")
    entries = [
        *patient_refs(patient, CTX).entries,
        *practitioner_entry(PractitionerRef(npi="1234567893", family="Okafor")).entries,
        *location_entry(LocationRef(id="room-3", name="Exam Room 3"), CTX).entries,
        *organization_entry(CLINIC).entries,
    ]
    return [e.resource for e in entries]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_checker_accepts_us_core_examples_and_catches_breakage(corpus, version):
    """The independent checker must itself be right: examples pass, broken copies fail."""
    example = load_json(corpus / "us-core/7.0.0/examples/Observation-blood-pressure.json")
    assert uscore.check(example, corpus, version) == []
    broken = copy.deepcopy(example)
    broken["component"] = broken["component"][:1]
    assert any("component:diastolic" in p for p in uscore.check(broken, corpus, version))
    broken = copy.deepcopy(example)
    broken["category"][0]["coding"][0]["code"] = "laboratory"
    assert any("VSCat" in p for p in uscore.check(broken, corpus, version))
    patient = load_json(corpus / "us-core/7.0.0/examples/Patient-example.json")
    assert uscore.check(patient, corpus, version) == []
    del patient["gender"]
    assert any("Patient.gender" in p for p in uscore.check(patient, corpus, version))


@pytest.mark.parametrize("version", VERSIONS)
def test_shared_resources_meet_us_core(corpus, version):
    for resource in shared_resources():
        assert uscore.check(resource, corpus, version) == [], resource["resourceType"]


def demo_resources(registry) -> list[dict]:
    """Every resource the demo day makes, every task kind, claiming US Core."""
    from mafhir.bundle import transaction
    from mafhir.clinic import load_clinic
    from mafhir.context import MapContext
    from mafhir.demo import demo_day_dir
    from mafhir.io import iter_documents
    from mafhir.pipeline import Mapped, Pipeline

    day = demo_day_dir()
    pipeline = Pipeline(registry, MapContext(clinic=load_clinic(str(day / "clinic.json"))))
    out = []
    with open(day / "day.ndjson", "rb") as stream:
        for result in pipeline.run(iter_documents(stream)):
            if isinstance(result, Mapped):
                bundle = transaction(result.entries)
                out.extend(e["resource"] for e in bundle["entry"])
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_everything_the_demo_day_makes_meets_us_core(corpus, registry, version):
    resources = demo_resources(registry)
    claimed = {p.split("/")[-1] for r in resources for p in r.get("meta", {}).get("profile", [])}
    # every profile the issue names is exercised
    assert {"us-core-blood-pressure", "us-core-heart-rate", "us-core-respiratory-rate",
            "us-core-body-temperature", "us-core-pulse-oximetry", "us-core-body-height",
            "us-core-body-weight", "us-core-bmi", "us-core-head-circumference",
            "us-core-immunization", "us-core-encounter", "us-core-patient",
            "us-core-practitioner", "us-core-organization", "us-core-location",
            "us-core-coverage", "us-core-allergyintolerance", "us-core-medicationrequest",
            "us-core-condition-problems-health-concerns", "us-core-smokingstatus",
            "us-core-observation-pregnancystatus", "us-core-observation-pregnancyintent",
            "us-core-observation-screening-assessment", "us-core-observation-lab",
            "us-core-diagnosticreport-lab", "us-core-procedure", "us-core-diagnosticreport-note",
            "us-core-observation-clinical-result", "pediatric-weight-for-height",
            "head-occipital-frontal-circumference-percentile"} <= claimed
    assert {r["resourceType"] for r in resources} >= {"MedicationAdministration"}
    problems = {}
    for resource in resources:
        found = uscore.check(resource, corpus, version)
        if found:
            problems[resource["resourceType"]] = found
    assert problems == {}
