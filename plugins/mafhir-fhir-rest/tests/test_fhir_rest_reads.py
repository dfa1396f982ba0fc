"""Reads an MA needs, against the real server: allergies, patients by MRN and demographics."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir_fhir_rest import reads
from mafhir_fhir_rest.client import FhirClient

from .helpers_fhir_rest import patient

CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def allergy(pid: str, system: str, value: str, code: tuple[str, str, str],
            status: str = "active") -> dict[str, Any]:
    return {"resourceType": "AllergyIntolerance",
            "identifier": [{"system": system, "value": value}],
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
            "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
            "code": {"coding": [{"system": code[0], "code": code[1], "display": code[2]}]},
            "patient": {"reference": pid}}


@pytest.fixture
def allergic(client: FhirClient, system: str) -> dict[str, Any]:
    """A patient with two active allergies and a resolved one; another patient with one."""
    _, pid = client.create(patient(system, "A-1"))
    _, other = client.create(patient(system, "A-2", family="Underhill"))
    made = {
        "penicillin": allergy(pid, system, "al-1", (RXNORM, "7980", "Penicillin G")),
        "peanut": allergy(pid, system, "al-2", (SNOMED, "762952008", "Peanut")),
        "latex": allergy(pid, system, "al-3", (SNOMED, "111088007", "Latex"), "resolved"),
        "other": allergy(other, system, "al-4", (SNOMED, "227493005", "Cashew nut")),
    }
    for resource in made.values():
        client.create(resource)
    return {"pid": pid, "mrn": f"{system}|A-1"}


def test_allergies_are_the_patients_active_ones(client: FhirClient, allergic: dict):
    found = list(reads.allergies(client, allergic["pid"]))
    assert sorted(a["identifier"][0]["value"] for a in found) == ["al-1", "al-2"]
    assert {a["code"]["coding"][0]["code"] for a in found} == {"7980", "762952008"}
    assert all(a["patient"]["reference"] == allergic["pid"] for a in found)


def test_pull_allergies_by_mrn(fhir_base_url: str, allergic: dict):
    result = CliRunner().invoke(build_cli(), ["pull", "--from", fhir_base_url, "allergies",
                                              "--patient", allergic["mrn"]])
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout_bytes.splitlines() if x.strip()]
    assert sorted(a["code"]["coding"][0]["display"] for a in lines) == ["Peanut",
                                                                       "Penicillin G"]


def test_patient_by_mrn_must_be_unique(fhir_base_url: str, client: FhirClient, system: str):
    client.create(patient(system, "dup"))
    client.create(patient(system, "dup"))
    result = CliRunner().invoke(build_cli(), ["pull", "--from", fhir_base_url, "allergies",
                                              "--patient", f"{system}|dup"])
    assert result.exit_code == 2 and "matches 2 patients, not one" in result.stderr
    result = CliRunner().invoke(build_cli(), ["pull", "--from", fhir_base_url, "allergies",
                                              "--patient", f"{system}|nobody"])
    assert result.exit_code == 2 and "matches 0 patients" in result.stderr


def test_find_patient_by_demographics(client: FhirClient, system: str):
    family = f"Zed{uuid.uuid4().hex[:8]}"
    client.create(patient(system, "d-1", family=family))
    other = {**patient(system, "d-2", family=family), "birthDate": "1990-01-01"}
    client.create(other)
    found = reads.find_patient(client, family=family, birthdate=date(1984, 7, 19))
    assert [p["identifier"][0]["value"] for p in found] == ["d-1"]
