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
