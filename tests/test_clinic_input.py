"""Task input that fits what clinics record (issue 17): each case was refused, or mapped
wrongly, before. Expectations are written by hand from the issue, mapping-reference §2,
§3, §5.1, §6.1 and the US Core StructureDefinitions (tests/uscore.py, both releases).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle
from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.mappers import appointment as appointment_mapper
from mafhir.mappers import coverage as coverage_mapper
from mafhir.mappers import immunization as immunization_mapper
from mafhir.mappers import vitals as vitals_mapper
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet

NPI = "http://hl7.org/fhir/sid/us-npi"
DAR_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
LOINC = "http://loinc.org"
MRN_SYSTEM = CLINIC.mrn_namespace


@pytest.fixture(scope="module")
def pipeline(registry) -> Pipeline:
    return Pipeline(registry, CTX)


def entries(pipeline: Pipeline, raw: dict[str, Any]) -> list[Any]:
    return list(pipeline.map_task(0, pipeline.parse(0, raw)).entries)


def problems(pipeline: Pipeline, raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        pipeline.map_task(0, pipeline.parse(0, raw))
    return [(p.location, p.message) for p in info.value.problems]


def of_type(found: list[Any], rtype: str) -> list[dict[str, Any]]:
    return [e.resource for e in found if e.resource["resourceType"] == rtype]


def no_us_core_errors(found: list[Any], corpus) -> None:
    for e in found:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(e.resource, corpus, version) == [], e.resource["resourceType"]


def vitals(**over: Any) -> dict[str, Any]:
    return {"task": "vitals", "id": "v-1", "effective": "2026-03-04T09:15:00-05:00",
            "patient": {"mrn": "NB-1", "system": MRN_SYSTEM}, **over}


def flu_shot(**over: Any) -> dict[str, Any]:
    task = {"task": "immunization", "id": "imm-1",
            "patient": {"mrn": "MRN-42", "system": MRN_SYSTEM},
            "vaccine": {"cvx": "140"}, "occurred": "2025-10-01T09:15:00-04:00",
            "lot_number": "UT8531AA", "site": "LD", "route": "IM"}
    task.update(over)
    return {k: v for k, v in task.items() if v is not None}


# --- a newborn known by MRN, birth date and sex --------------------------------------------


def test_a_newborn_not_yet_named_is_written_with_a_data_absent_name(pipeline, registry,
                                                                     corpus):
    newborn = {"mrn": "NB-1", "system": MRN_SYSTEM, "birth_date": "2026-03-02",
               "gender": "female"}
    found = entries(pipeline, vitals(patient=newborn, weight={"value": 3.4, "unit": "kg"}))
    assert_valid_bundle(found, registry)
    (patient,) = of_type(found, "Patient")
    # us-core-6: no family/given, and the name says why (US Core missing-data rule)
    assert patient["name"] == [{"extension": [{"url": DAR_EXT, "valueCode": "unknown"}]}]
    assert patient["birthDate"] == "2026-03-02" and patient["gender"] == "female"
    no_us_core_errors(found, corpus)
    (back,) = vitals_mapper.from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back.patient.family is None and back.patient.given == []
    assert str(back.patient.birth_date) == "2026-03-02"


def test_a_new_patient_with_neither_name_nor_birth_date_is_still_refused(pipeline):
    found = problems(pipeline, vitals(patient={"mrn": "X-1", "gender": "male"},
                                      heart_rate={"value": 80}))
    assert found[0][0] == "task[0].patient"
    assert "name" in found[0][1] and "birth_date" in found[0][1]


# --- infants: recumbent length, no BMI under two -------------------------------------------

TWO_MONTHS = {"mrn": "NB-2", "system": MRN_SYSTEM, "family": "Rivera", "given": ["Mia"],
              "gender": "female", "birth_date": "2026-01-04"}  # 2 months on 2026-03-04


def test_a_two_month_old_with_weight_and_recumbent_length_gets_no_bmi(pipeline, registry,
                                                                      corpus):
    found = entries(pipeline, vitals(patient=TWO_MONTHS, weight={"value": 5.1, "unit": "kg"},
                                     length={"value": 57.5, "unit": "cm"}))
    assert_valid_bundle(found, registry)
    observations = of_type(found, "Observation")
    codes = [{c["code"] for c in o["code"]["coding"] if c["system"] == LOINC}
             for o in observations]
    assert not any("39156-5" in c for c in codes)  # no BMI
    assert {"8302-2", "8306-3"} in codes  # body height profile + Body height --lying
    assert len(observations) == 2
    no_us_core_errors(found, corpus)


def test_standing_height_of_an_infant_makes_no_bmi_either(pipeline):
    found = entries(pipeline, vitals(patient=TWO_MONTHS, weight={"value": 5.1, "unit": "kg"},
                                     height={"value": 57.5, "unit": "cm"}))
    assert len(of_type(found, "Observation")) == 2


def test_a_bmi_given_for_an_infant_is_refused_in_the_clinic_s_words(pipeline):
    found = problems(pipeline, vitals(patient=TWO_MONTHS, weight={"value": 5.1, "unit": "kg"},
                                      length={"value": 57.5, "unit": "cm"},
                                      bmi={"value": 15.4}))
    assert found[0][0] == "task[0].bmi"
    assert "under 2 years" in found[0][1] and "weight-for-length" in found[0][1]


def test_from_two_years_on_the_bmi_is_computed(pipeline):
    two = {**TWO_MONTHS, "birth_date": "2024-03-04"}  # exactly 24 months
    found = entries(pipeline, vitals(patient=two, weight={"value": 12.0, "unit": "kg"},
                                     height={"value": 86.0, "unit": "cm"}))
    bmi = [o for o in of_type(found, "Observation")
           if o["code"]["coding"][0]["code"] == "39156-5"]
    # 12.0 / 0.86² = 16.225… → 16.2, by hand
    assert [o["valueQuantity"]["value"] for o in bmi] == [16.2]


def test_pediatric_percentiles_are_the_us_core_pediatric_profiles(pipeline, registry, corpus):
    found = entries(pipeline, vitals(
        patient=TWO_MONTHS, weight={"value": 5.1, "unit": "kg"},
        length={"value": 57.5, "unit": "cm"}, head_circumference={"value": 38.9, "unit": "cm"},
        weight_for_length_percentile={"value": 54, "chart": "WHO Girls, 0-2 years Chart"},
        head_circumference_percentile={"value": 47}))
    assert_valid_bundle(found, registry)
    by_profile = {o["meta"]["profile"][0].rsplit("/", 1)[1]: o
                  for o in of_type(found, "Observation")}
    wfl = by_profile["pediatric-weight-for-height"]
    assert wfl["code"]["coding"][0]["code"] == "77606-2"
    assert wfl["valueQuantity"]["code"] == "%" and wfl["valueQuantity"]["value"] == 54
    assert wfl["note"] == [{"text": "WHO Girls, 0-2 years Chart"}]
    ofc = by_profile["head-occipital-frontal-circumference-percentile"]
    assert ofc["code"]["coding"][0]["code"] == "8289-1"
    no_us_core_errors(found, corpus)
    (back,) = vitals_mapper.from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back.weight_for_length_percentile is not None
    assert back.weight_for_length_percentile.chart == "WHO Girls, 0-2 years Chart"
    assert back.length is not None and back.length.value == 57.5 and back.height is None


def test_height_and_length_together_are_refused(pipeline):
    found = problems(pipeline, vitals(height={"value": 57, "unit": "cm"},
                                      length={"value": 57, "unit": "cm"}))
    assert found[0][0] == "task[0].length"


def test_a_bmi_on_a_rounding_boundary_rounds_half_up(pipeline):
    # By hand: 97.8 kg / (2.00 m)² = 24.45 exactly → charted 24.5 (half up). The binary
    # float of 97.8 / 4 is 24.4499999…, which round() would chart as 24.4.
    adult = {"mrn": "A-1", "system": MRN_SYSTEM}
    found = entries(pipeline, vitals(patient=adult, weight={"value": 97.8, "unit": "kg"},
                                     height={"value": 200, "unit": "cm"}))
    (bmi,) = [o for o in of_type(found, "Observation")
              if o["code"]["coding"][0]["code"] == "39156-5"]
    assert bmi["valueQuantity"]["value"] == 24.5


# --- practitioners by NPI alone ------------------------------------------------------------


def test_vaccinator_and_orderer_by_npi_alone_are_identifier_references(pipeline, registry,
                                                                       corpus):
    raw = flu_shot(administered_by={"npi": "1234567893"}, ordered_by={"npi": "1245319599"})
    found = entries(pipeline, raw)
    assert_valid_bundle(found, registry)
    assert of_type(found, "Practitioner") == []  # no invented name
    (imm,) = of_type(found, "Immunization")
    actors = [p["actor"] for p in imm["performer"]]
    assert {"type": "Practitioner", "identifier": {"system": NPI, "value": "1234567893"}} \
        in actors
    assert {"type": "Practitioner", "identifier": {"system": NPI, "value": "1245319599"}} \
        in actors
    no_us_core_errors(found, corpus)
    (back,) = immunization_mapper.from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back.administered_by is not None and back.administered_by.npi == "1234567893"
    assert back.ordered_by is not None and back.ordered_by.npi == "1245319599"
    assert back.administered_by.family is None


def test_an_appointment_practitioner_by_npi_alone_round_trips(pipeline, registry):
    raw = {"task": "appointment", "id": "a-1-book", "appointment_id": "a-1", "action": "book",
           "patient": {"mrn": "MRN-42", "system": MRN_SYSTEM},
           "start": "2026-11-27T10:30:00-05:00", "end": "2026-11-27T10:50:00-05:00",
           "practitioner": {"npi": "1245319599"}}
    found = entries(pipeline, raw)
    assert_valid_bundle(found, registry)
    assert of_type(found, "Practitioner") == []
    (back,) = appointment_mapper.from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back.practitioner is not None and back.practitioner.npi == "1245319599"


def test_a_given_name_without_family_is_refused(pipeline):
    found = problems(pipeline, flu_shot(administered_by={"npi": "1234567893",
                                                         "given": ["Ana"]}))
    assert found[0][0] == "task[0].administered_by"
    assert "family" in found[0][1]


# --- VIS by document type and edition date --------------------------------------------------

FLU_VIS = "Influenza (Flu) Vaccine (Inactivated or Recombinant) VIS"  # CDC cvxvis table


@pytest.mark.parametrize("vis, education", [
    ({"document_type": FLU_VIS, "published": "2023-08-06", "presented": "2025-10-01"},
     {"documentType": FLU_VIS, "publicationDate": "2023-08-06",
      "presentationDate": "2025-10-01"}),
    ({"document": "253088698300010311250131", "published": "2025-01-31"},
     {"documentType": "253088698300010311250131", "publicationDate": "2025-01-31"}),
    ({"reference": "https://www.cdc.gov/vaccines/hcp/current-vis/flu.html",
      "presented": "2025-10-01"},
     {"reference": "https://www.cdc.gov/vaccines/hcp/current-vis/flu.html",
      "presentationDate": "2025-10-01"}),
], ids=["document-type", "barcode", "url"])
def test_a_vis_is_taken_in_each_way_clinics_record_it(pipeline, registry, corpus, vis,
                                                      education):
    found = entries(pipeline, flu_shot(vis=[vis]))
    assert_valid_bundle(found, registry)
    (imm,) = of_type(found, "Immunization")
    assert imm["education"] == [education]
    no_us_core_errors(found, corpus)
    (back,) = immunization_mapper.from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back.vis[0].model_dump(mode="json", exclude_none=True) == vis


def test_a_vis_document_type_needs_its_edition_date(pipeline):
    found = problems(pipeline, flu_shot(vis=[{"document_type": FLU_VIS}]))
    assert found[0][0] == "task[0].vis[0]" and "edition date" in found[0][1]


# --- coverage plan known by name --------------------------------------------------------------


def coverage(**over: Any) -> dict[str, Any]:
    return {"task": "coverage", "id": "cov-1", "patient": {"mrn": "MRN-42",
                                                           "system": MRN_SYSTEM},
            "payer": {"id": "60054", "name": "Aetna"}, "member_id": "W123456789",
            "subscriber": {"relationship": "self"}, **over}


def test_a_plan_known_only_by_its_name_is_accepted(pipeline, registry, corpus):
    found = entries(pipeline, coverage(plan={"name": "Gold PPO 1500"}))
    assert_valid_bundle(found, registry)
    (cov,) = of_type(found, "Coverage")
    (plan,) = [c for c in cov["class"] if c["type"]["coding"][0]["code"] == "plan"]
    assert plan["name"] == "Gold PPO 1500" and "value" not in plan
    assert plan["_value"] == {"extension": [{"url": DAR_EXT, "valueCode": "unknown"}]}
    no_us_core_errors(found, corpus)
    (back,) = coverage_mapper.from_fhir(ResourceSet.from_bundle(transaction(found)))
    assert back.plan is not None and back.plan.name == "Gold PPO 1500" and back.plan.id is None


def test_a_plan_with_neither_number_nor_name_is_refused(pipeline):
    found = problems(pipeline, coverage(plan={}))
    assert found[0][0] == "task[0].plan"


# --- CVX codes the CDC table does not hold ---------------------------------------------------


@pytest.mark.parametrize("code", ["9999", "1000", "12345"])
def test_an_unknown_long_cvx_code_is_not_in_the_cdc_table(pipeline, code):
    found = problems(pipeline, flu_shot(vaccine={"cvx": code}))
    assert found == [("task[0].vaccine.cvx", "is not a code in the CDC CVX table")]


@pytest.mark.parametrize("code", ["14O", "flu", "-1"])
def test_what_is_not_a_cvx_code_at_all_is_said_in_words(pipeline, code):
    ((location, message),) = problems(pipeline, flu_shot(vaccine={"cvx": code}))
    assert location == "task[0].vaccine.cvx"
    assert "pattern" not in message and "CVX" in message


@pytest.mark.parametrize("code, status", [("57", "Never Active"), ("77", "Non-US")])
def test_never_active_and_non_us_codes_are_refused_for_a_dose_given_here(pipeline, code,
                                                                         status):
    ((location, message),) = problems(pipeline, flu_shot(vaccine={"cvx": code}))
    assert location == "task[0].vaccine.cvx" and status in message


def test_a_non_us_vaccine_given_abroad_is_kept_as_history(pipeline):
    raw = flu_shot(vaccine={"cvx": "77"}, status="historical", occurred=None,
                   occurred_date="2019-06-01", report_origin="record", lot_number=None,
                   site=None, route=None)
    (imm,) = of_type(entries(pipeline, raw), "Immunization")
    assert imm["vaccineCode"]["coding"][0]["code"] == "77" and imm["primarySource"] is False


def test_a_small_patient_of_unknown_age_gets_a_bmi_with_a_warning(pipeline):
    raw = vitals(weight={"value": 5.1, "unit": "kg"}, height={"value": 57.5, "unit": "cm"})
    mapped = pipeline.map_task(0, pipeline.parse(0, raw))
    assert len(of_type(list(mapped.entries), "Observation")) == 3  # age unknown: BMI made
    (warning,) = [w for w in mapped.warnings if w.location == "task[0].bmi"]
    assert "birth_date" in warning.message and "length" in warning.message


def _models_accept(resource: dict[str, Any]) -> bool:
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError:
        return False
    return True


def test_the_fast_path_takes_a_name_only_plan_exactly_as_the_models_do(pipeline):
    from mafhir.validation.fastpath import accepts

    (cov,) = of_type(entries(pipeline, coverage(plan={"name": "Gold PPO 1500"})), "Coverage")
    assert accepts(cov) and _models_accept(cov)
    broken = copy.deepcopy(cov)  # an extension sibling without an extension: refused
    for cls in broken["class"]:
        if "_value" in cls:
            cls["_value"] = {"id": "x"}
    assert not _models_accept(broken) and not accepts(broken)
    for cls in broken["class"]:
        cls.pop("_value", None)
    assert not _models_accept(broken) and not accepts(broken)
