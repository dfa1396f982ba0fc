"""A "no known allergies" record no longer stands once an allergy is recorded later for the
same patient (issue: it stayed active beside the new allergy). Both intakes go through the
real mapper into the local store; what the store holds is then read back. Expected
statuses are the ones src/mafhir/allergies.py documents (NKA inactive, still confirmed)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import CLINIC, CTX
from mafhir.bundle import transaction
from mafhir.connectors.local import LocalStore
from mafhir.pipeline import Pipeline

SNOMED = "http://snomed.info/sct"
PATIENT = {"mrn": "MRN-NKA", "system": CLINIC.mrn_namespace, "family": "Test",
           "gender": "female"}
PENICILLIN = {"id": "alg-pcn", "substance": {"system": "rxnorm", "code": "7980",
                                             "display": "Penicillin G"},
              "category": "medication"}
PEANUT = {"id": "alg-peanut", "substance": {"text": "peanuts"}, "category": "food"}


def intake(task_id: str, recorded: str, **parts: Any) -> dict[str, Any]:
    return {"task": "intake", "id": task_id, "patient": PATIENT, "recorded": recorded,
            **parts}


@pytest.fixture()
def store(tmp_path, registry):
    pipeline = Pipeline(registry, CTX)
    local = LocalStore(tmp_path / "store.db")

    def send(raw: dict[str, Any]) -> None:
        local.send(transaction(pipeline.map_task(0, pipeline.parse(0, raw)).entries))

    local.send_task = send  # type: ignore[attr-defined]
    yield local
    local.close()


def by_code(store: LocalStore, code: str) -> dict[str, Any]:
    (found,) = [a for a in store.search("AllergyIntolerance")
                if code in [c["code"] for c in a["code"].get("coding", [])]]
    return found


def status(res: dict[str, Any], key: str) -> str:
    return res[key]["coding"][0]["code"]


def test_a_later_allergy_makes_no_known_allergies_inactive(store):
    store.send_task(intake("intake-1", "2026-11-02T09:00:00-05:00", no_known_allergies=True))
    assert status(by_code(store, "716186003"), "clinicalStatus") == "active"
    store.send_task(intake("intake-2", "2026-11-27T09:00:00-05:00", allergies=[PENICILLIN]))
    nka = by_code(store, "716186003")
    assert status(nka, "clinicalStatus") == "inactive"
    assert status(nka, "verificationStatus") == "confirmed"  # it was true when said
    assert status(by_code(store, "7980"), "clinicalStatus") == "active"
    history = store.history("AllergyIntolerance", nka["id"])
    assert [status(h, "clinicalStatus") for h in history] == ["active", "inactive"]
    pcn = by_code(store, "7980")
    assert nka["note"][-1]["text"].endswith(f"(AllergyIntolerance/{pcn['id']}).")


def test_no_known_drug_allergies_stays_after_a_food_allergy_and_closes_after_a_drug_one(
        store):
    store.send_task(intake("intake-1", "2026-11-02T09:00:00-05:00",
                           no_known_drug_allergies=True))
    store.send_task(intake("intake-2", "2026-11-20T09:00:00-05:00", allergies=[PEANUT]))
    assert status(by_code(store, "409137002"), "clinicalStatus") == "active"
    store.send_task(intake("intake-3", "2026-11-27T09:00:00-05:00", allergies=[PENICILLIN]))
    assert status(by_code(store, "409137002"), "clinicalStatus") == "inactive"


def test_an_older_or_entered_in_error_allergy_leaves_a_newer_statement_active(store):
    store.send_task(intake("intake-2", "2026-11-27T09:00:00-05:00", no_known_allergies=True))
    store.send_task(intake("intake-1", "2026-11-02T09:00:00-05:00",  # delivered late
                           allergies=[PENICILLIN]))
    assert status(by_code(store, "716186003"), "clinicalStatus") == "active"
    store.send_task(intake("intake-3", "2026-11-28T09:00:00-05:00",
                           allergies=[{**PEANUT, "status": "entered-in-error"}]))
    assert status(by_code(store, "716186003"), "clinicalStatus") == "active"


def test_another_patients_allergy_leaves_the_statement_alone(store):
    store.send_task(intake("intake-1", "2026-11-02T09:00:00-05:00", no_known_allergies=True))
    other = {**PATIENT, "mrn": "MRN-OTHER"}
    store.send_task({**intake("intake-2", "2026-11-27T09:00:00-05:00",
                              allergies=[PENICILLIN]), "patient": other})
    assert status(by_code(store, "716186003"), "clinicalStatus") == "active"
