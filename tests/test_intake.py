"""The intake task kind: allergies, reported meds, problems, social history, screenings.

Expected values are computed by hand in the tests (a PHQ-9 total and its band from nine
answers, the GAD-7 total) or copied from mapping-reference §6 and the public corpus (the
R4 ``AllergyIntolerance-nka`` example, the US Core PHQ-9 Questionnaire and examples) —
never from mafhir's own output.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle, load_json
from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.pipeline import Failed, Mapped, Pipeline
from mafhir.resourceset import ResourceSet

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MRN_SYSTEM = CLINIC.mrn_namespace
VERSIONS = ("6.1.0", "7.0.0")
MA = {"npi": "1467560003", "family": "Patel", "given": ["Priya"]}


def intake(**over: Any) -> dict[str, Any]:
    """An adult's rooming history as an MA would enter it."""
    task: dict[str, Any] = {
        "task": "intake", "id": "intake-2026-001",
        "patient": {"mrn": "MRN-7", "system": MRN_SYSTEM},
        "recorded": "2026-11-27T09:04:00-05:00", "visit": "appt-202", "recorder": MA,
        "allergies": [
            {"id": "alg-1", "substance": {"system": "rxnorm", "code": "7980",
                                          "display": "Penicillin G"},
             "category": "medication", "type": "allergy", "criticality": "high",
             "reactions": [{"manifestation": {"system": "snomed", "code": "271807003",
                                              "display": "Eruption of skin"},
                            "severity": "moderate"}]},
            # an allergy to a drug class (mapping-reference §6.2: the US Core example)
            {"id": "alg-2", "substance": {"system": "snomed", "code": "763875007",
                                          "display": "Product containing sulfonamide "
                                                     "(product)"},
             "category": "medication", "verification": "unconfirmed",
             "reactions": [{"manifestation": {"text": "hives"}}]},
        ],
        "medications": [
            {"id": "med-1", "medication": {"system": "rxnorm", "code": "197361",
                                           "display": "amlodipine 5 MG Oral Tablet"},
             "dosage": "1 tablet daily"},
            # reported by name only, bought over the counter
            {"id": "med-2", "medication": {"text": "fish oil"}, "self_prescribed": True},
        ],
        "problems": [
            {"id": "prb-1", "code": {"system": "snomed", "code": "44054006",
                                     "display": "Diabetes mellitus type 2"},
             "onset": "2019-03-01"},
            {"id": "prb-2", "code": {"text": "Worried about losing housing"},
             "category": "health-concern"},
        ],
        "smoking": "former", "pregnancy_status": "not-pregnant", "pregnancy_intent": "unknown",
        "screenings": [
            {"instrument": "phq-9", "answers": [2, 1, 3, 0, 2, 1, 1, 3, 0]},
            {"instrument": "gad-7", "answers": [3, 2, 2, 1, 0, 1, 3]},
            {"instrument": "phq-2", "answers": [1, 2]},
            {"instrument": "hunger-vital-sign", "answers": ["sometimes true", "never true"]},
        ],
    }
    task.update(over)
    return {k: v for k, v in task.items() if v is not None}


@pytest.fixture()
def pipeline(registry):
    return Pipeline(registry, CTX)


def mapped(pipeline, raw) -> list[dict[str, Any]]:
    return [e.resource for e in pipeline.map_task(0, pipeline.parse(0, raw)).entries]


def observation(resources, loinc: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["resourceType"] == "Observation"
                and any(c["code"] == loinc for c in r["code"]["coding"])]
    return found


def answer_code(obs) -> str:
    return obs["valueCodeableConcept"]["coding"][0]["code"]


def problems(pipeline, raw) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        pipeline.map_task(0, pipeline.parse(0, raw))
    return [(p.location, p.message) for p in info.value.problems]


# ---------------------------------------------------------------- screenings, by hand


def test_phq9_total_and_severity_band_by_hand(pipeline):
    resources = mapped(pipeline, intake())
    # 2+1+3+0+2+1+1+3+0 = 13; PHQ-9 bands (Kroenke 2001): 10-14 is moderate depression
    total = observation(resources, "44261-6")
    assert total["valueInteger"] == 13
    assert total["interpretation"] == [{"text": "Moderate depression"}]
    panel = observation(resources, "44249-1")
    assert "valueInteger" not in panel and len(panel["hasMember"]) == 10  # 9 items + total
    # item 4 (44254-1, "Feeling tired") was answered 0: LOINC answer LA6568-5 "Not at all"
    assert answer_code(observation(resources, "44254-1")) == "LA6568-5"
    # item 3 (44259-0) was answered 3: LA6571-9 "Nearly every day"
    assert answer_code(observation(resources, "44259-0")) == "LA6571-9"


def test_gad7_and_phq2_totals_by_hand(pipeline):
    resources = mapped(pipeline, intake())
    # GAD-7: 3+2+2+1+0+1+3 = 12 → moderate anxiety (10-14, Spitzer 2006)
    gad = observation(resources, "70274-6")
    assert (gad["valueInteger"], gad["interpretation"][0]["text"]) == (12, "Moderate anxiety")
    # PHQ-2: 1+2 = 3 → a positive screen (cut-off 3)
    phq2 = observation(resources, "55758-7")
    assert phq2["valueInteger"] == 3 and "Positive" in phq2["interpretation"][0]["text"]
    assert len(observation(resources, "55757-9")["hasMember"]) == 3


@pytest.mark.parametrize(("answers", "risk"), [
    (["sometimes true", "never true"], "LA19952-3"),  # either often/sometimes → at risk
    (["never true", "often true"], "LA19952-3"),
    (["never true", "never true"], "LA19983-8"),      # no risk
    (["don't know", "often true"], "LA19952-3"),
    (["don't know", "never true"], None),              # unknown, never "no risk"
])
def test_hunger_vital_sign_risk(corpus, pipeline, answers, risk):
    resources = mapped(pipeline, intake(screenings=[
        {"instrument": "hunger-vital-sign", "answers": answers}]))
    found = observation(resources, "88124-3")
    if risk is None:
        assert "valueCodeableConcept" not in found
        assert found["dataAbsentReason"]["coding"][0]["code"] == "asked-unknown"
        assert [uscore.check(found, corpus, v) for v in VERSIONS] == [[], []]
        return
    assert answer_code(found) == risk
    panel = observation(resources, "88121-9")
    cats = [c["coding"][0]["code"] for c in panel["category"]]
    assert cats == ["survey", "sdoh"]  # as in the US Core HVS examples


def test_clinic_total_that_matches_is_taken(pipeline):
    resources = mapped(pipeline, intake(screenings=[
        {"instrument": "phq-9", "answers": [0, 0, 1, 1, 0, 0, 0, 0, 0], "total": 2}]))
    total = observation(resources, "44261-6")
    assert total["valueInteger"] == 2 and total["interpretation"][0]["text"].startswith("None")


def test_phq9_difficulty_like_the_us_core_example(corpus, pipeline, registry):
    theirs = load_json(corpus / "us-core/7.0.0/examples/Observation-PHQ9-item-example-69722-7.json")
    raw = intake(screenings=[{"instrument": "phq-9", "answers": [0] * 9,
                              "difficulty": "somewhat difficult"}])
    resources = mapped(pipeline, raw)
    assert answer_code(observation(resources, "69722-7")) == answer_code(theirs) == "LA6573-5"
    assert len(observation(resources, "44249-1")["hasMember"]) == 11  # 9 + difficulty + total
    assert observation(resources, "44261-6")["valueInteger"] == 0  # the difficulty is not scored
    task = pipeline.parse(0, raw)
    assert round_trip(registry, task) == [task]


def test_phq9_codes_match_the_us_core_questionnaire(corpus, pipeline):
    """Items in questionnaire order and answer codes scored by position, as the US Core
    PHQ-9 Questionnaire's ordinalValue says."""
    q = load_json(corpus / "us-core/7.0.0/examples/Questionnaire-phq-9-example.json")
    items = [i for i in q["item"] if i["code"][0]["code"] not in ("44261-6", "69722-7")]
    resources = mapped(pipeline, intake(screenings=[
        {"instrument": "phq-9", "answers": [0, 1, 2, 3, 0, 1, 2, 3, 0]}]))
    for item, score in zip(items, [0, 1, 2, 3, 0, 1, 2, 3, 0], strict=True):
        option = next(o for o in item["answerOption"] if any(
            e.get("valueDecimal") == score for e in o.get("extension", [])))
        obs = observation(resources, item["code"][0]["code"])
        assert answer_code(obs) == option["valueCoding"]["code"]


# ---------------------------------------------------------------- allergies, meds, problems


def test_no_known_allergies_is_the_snomed_negation(corpus, pipeline):
    resources = mapped(pipeline, intake(allergies=[], no_known_allergies=True,
                                        medications=None, problems=None, screenings=None))
    (nka,) = [r for r in resources if r["resourceType"] == "AllergyIntolerance"]
    # mapping-reference §6.2 and the R4 example AllergyIntolerance-nka
    example = load_json(corpus / "fhir-r4-examples/AllergyIntolerance/AllergyIntolerance-nka.json")
    assert nka["code"]["coding"][0]["system"] == SNOMED
    assert nka["code"]["coding"][0]["code"] == "716186003" == example["code"]["coding"][0]["code"]
    for key in ("clinicalStatus", "verificationStatus"):
        ours, theirs = nka[key]["coding"][0], example[key]["coding"][0]
        assert (ours["system"], ours["code"]) == (theirs["system"], theirs["code"])
    assert nka["verificationStatus"]["coding"][0]["code"] == "confirmed"


def test_no_known_drug_allergies(pipeline):
    resources = mapped(pipeline, intake(allergies=[], no_known_drug_allergies=True))
    codes = [r["code"]["coding"][0]["code"] for r in resources
             if r["resourceType"] == "AllergyIntolerance"]
    assert codes == ["409137002"]


def test_allergy_entries_are_conditional_updates_and_entered_in_error_has_no_status(pipeline):
    raw = intake()
    raw["allergies"][1] = {**raw["allergies"][1], "status": "entered-in-error"}
    entries = pipeline.map_task(0, pipeline.parse(0, raw)).entries
    allergies = [e for e in entries if e.resource_type == "AllergyIntolerance"]
    assert [e.method for e in allergies] == ["PUT", "PUT"]
    assert allergies[0].url == (
        f"AllergyIntolerance?identifier={CLINIC.task_system('allergy')}|alg-1")
    wrong = allergies[1].resource
    assert "clinicalStatus" not in wrong  # ait-2
    assert wrong["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    first = allergies[0].resource
    assert first["reaction"][0]["severity"] == "moderate"
    assert first["reaction"][0]["manifestation"][0]["coding"][0]["code"] == "271807003"
    assert (first["criticality"], first["category"]) == ("high", ["medication"])


def test_reported_medications_follow_us_core_self_reported_example(corpus, pipeline):
    example = load_json(corpus / "us-core/7.0.0/examples/MedicationRequest-self-tylenol.json")
    resources = mapped(pipeline, intake())
    meds = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    assert [m["intent"] for m in meds] == [example["intent"]] * 2 == ["plan", "plan"]
    assert all(m["reportedBoolean"] is example["reportedBoolean"] is True for m in meds)
    assert meds[0]["medicationCodeableConcept"]["coding"][0] == {
        "system": RXNORM, "code": "197361", "display": "amlodipine 5 MG Oral Tablet"}
    assert meds[1]["medicationCodeableConcept"] == {"text": "fish oil"}  # name only
    assert meds[1]["requester"] == meds[1]["subject"]  # over the counter: the patient


def test_problem_and_health_concern_categories(pipeline):
    resources = mapped(pipeline, intake())
    conditions = [r for r in resources if r["resourceType"] == "Condition"]
    assert [(c["category"][0]["coding"][0]["system"], c["category"][0]["coding"][0]["code"])
            for c in conditions] == [
        ("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item"),
        ("http://hl7.org/fhir/us/core/CodeSystem/condition-category", "health-concern")]


@pytest.mark.parametrize(("field", "answer", "example", "code"), [
    ("smoking", "some-day", "Observation-some-day-smoker.json", "428041000124106"),
    ("pregnancy_status", "pregnant", "Observation-pregnancy-status.json", "77386006"),
])
def test_social_history_matches_us_core_examples(corpus, pipeline, field, answer, example,
                                                 code):
    theirs = load_json(corpus / "us-core/7.0.0/examples" / example)
    resources = mapped(pipeline, intake(**{field: answer}))
    loinc = theirs["code"]["coding"][0]["code"]
    ours = observation(resources, loinc)
    assert ours["meta"]["profile"][0] == theirs["meta"]["profile"][0].split("|")[0]
    assert ours["category"][0]["coding"][0]["code"] == "social-history"
    assert answer_code(ours) == answer_code(theirs) == code


# ---------------------------------------------------------------- US Core, both releases


@pytest.mark.parametrize("version", VERSIONS)
def test_everything_written_meets_us_core(corpus, pipeline, registry, version):
    raw = intake(patient={"mrn": "MRN-7", "system": MRN_SYSTEM, "family": "Reyes",
                          "given": ["Lena"], "gender": "female", "birth_date": "1990-02-03"})
    entries = pipeline.map_task(0, pipeline.parse(0, raw)).entries
    bundle = assert_valid_bundle(entries, registry)
    claimed = set()
    for entry in bundle["entry"]:
        resource = entry["resource"]
        claimed.update(p.rsplit("/", 1)[1] for p in resource["meta"]["profile"])
        assert uscore.check(resource, corpus, version) == [], resource["resourceType"]
    assert {"us-core-allergyintolerance", "us-core-medicationrequest",
            "us-core-condition-problems-health-concerns", "us-core-smokingstatus",
            "us-core-observation-pregnancystatus", "us-core-observation-pregnancyintent",
            "us-core-observation-screening-assessment"} <= claimed


@pytest.mark.parametrize("version", VERSIONS)
def test_checker_tells_a_wrong_condition_category(corpus, pipeline, version):
    """The category slice is matched by its value set: another code must fail."""
    (condition, *_) = [r for r in mapped(pipeline, intake()) if r["resourceType"] == "Condition"]
    broken = copy.deepcopy(condition)
    broken["category"][0]["coding"][0]["code"] = "encounter-diagnosis"
    assert any("category:us-core" in p for p in uscore.check(broken, corpus, version))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("raw", "location", "reason"), [
    (intake(screenings=[{"instrument": "phq-9", "answers": [0, 1, 2, 4, 0, 0, 0, 0, 0]}]),
     "task[0].screenings[0].answers[3]", "scored 0 (not at all) to 3"),
    (intake(screenings=[{"instrument": "phq-9", "answers": [2, 1, 3, 0, 2, 1, 1, 3, 0],
                         "total": 14}]),
     "task[0].screenings[0].total", "is 14 but the 9 answers add up to 13"),
    (intake(screenings=[{"instrument": "gad-7", "answers": [1, 1, 1]}]),
     "task[0].screenings[0].answers", "GAD-7 has 7 items; 3 answers"),
    (intake(screenings=[{"instrument": "hunger-vital-sign", "answers": ["yes", "never true"]}]),
     "task[0].screenings[0].answers[0]", "often true"),
    (intake(screenings=[{"instrument": "hunger-vital-sign",
                         "answers": ["never true", "never true"], "total": 0}]),
     "task[0].screenings[0].total", "no total"),
    (intake(screenings=[{"instrument": "gad-7", "answers": [0] * 7,
                         "difficulty": "very difficult"}]),
     "task[0].screenings[0].difficulty", "PHQ-9 question only"),
    (intake(screenings=[{"instrument": "audit-c", "answers": [1]}]),
     "task[0].screenings[0].instrument", "phq-9"),
    (intake(allergies=[{"id": "a1", "category": "medication"}]),
     "task[0].allergies[0].substance", "is required"),
    (intake(no_known_allergies=True), "task[0].no_known_allergies", "contradicts"),
    (intake(allergies=[{"id": "a1", "substance": {"system": "icd-10-cm", "code": "Z88.0"}}]),
     "task[0].allergies[0].substance.system", "rxnorm, snomed or unii"),
    (intake(problems=[{"id": "p1", "code": {"text": "asthma"}, "abatement": "2020-01-01"}]),
     "task[0].problems[0].abatement", "con-4"),
    (intake(problems=[{"id": "p1", "code": {"text": "a"}}, {"id": "p1", "code": {"text": "b"}}]),
     "task[0].problems[1].id", "twice"),
    (intake(smoking="sometimes"), "task[0].smoking", "some-day"),
    (intake(recorded="2026-11-27T09:04:00"), "task[0].recorded", "UTC offset"),
    ({"task": "intake", "id": "i", "patient": {"mrn": "1"},
      "recorded": "2026-11-27T09:04:00-05:00"}, "task[0]", "records nothing"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_names_the_field(pipeline, raw, location, reason):
    found = problems(pipeline, raw)
    assert any(loc == location and reason in msg for loc, msg in found), found


def test_a_bad_intake_writes_nothing_and_the_next_one_maps(pipeline):
    """Nothing half-written: one bad screening refuses the whole intake, not just itself."""
    bad = intake(screenings=[{"instrument": "phq-9", "answers": [0, 0, 0, 4, 0, 0, 0, 0, 0]}])
    good = intake(id="intake-2026-002")
    results = list(pipeline.run(enumerate([bad, good])))
    assert isinstance(results[0], Failed) and isinstance(results[1], Mapped)
    assert not hasattr(results[0], "entries")
    assert results[0].problems[0].location == "task[0].screenings[0].answers[3]"


def test_refusals_do_not_echo_patient_data(pipeline):
    raw = intake(allergies=[{"id": "a1"}])
    raw["patient"] = {"mrn": "SECRET-MRN", "family": "Zyx", "gender": "female"}
    text = json.dumps(problems(pipeline, raw))
    assert "SECRET" not in text and "Zyx" not in text


def test_warnings_for_a_positive_item_nine(pipeline):
    raw = intake(screenings=[{"instrument": "phq-9", "answers": [0, 0, 0, 0, 0, 0, 0, 0, 1]}])
    result = pipeline.map_task(0, pipeline.parse(0, raw))
    assert [w.location for w in result.warnings] == ["task[0].screenings[0].answers[8]"]


# ---------------------------------------------------------------- round trip


def round_trip(registry, task):
    bundle = transaction(registry.mapper("intake").to_fhir(task, CTX))
    return registry.mapper("intake").from_fhir(ResourceSet.from_bundle(bundle))


@pytest.mark.parametrize("raw", [
    intake(),
    intake(allergies=[], no_known_allergies=True, smoking="never"),
    intake(allergies=[], no_known_drug_allergies=True, medications=None, problems=[
        {"id": "p9", "code": {"system": "icd-10-cm", "code": "I10", "display": "Hypertension"},
         "status": "resolved", "abatement": "2024-05-01", "verification": "provisional"}]),
    intake(allergies=[{"id": "x", "substance": {"text": "latex"}, "category": "environment",
                       "status": "entered-in-error", "onset": "2001-01-01", "note": "typo"}],
           recorder=None, visit=None),
], ids=["full", "nka", "nkda-icd10", "entered-in-error"])
def test_round_trip_keeps_every_value(pipeline, registry, raw):
    task = pipeline.parse(0, raw)
    assert round_trip(registry, task) == [task]


def test_a_total_given_comes_back_derived(pipeline, registry):
    """A total is checked on the way in and recomputed on the way out (derived data)."""
    task = pipeline.parse(0, intake(screenings=[
        {"instrument": "phq-9", "answers": [2, 1, 3, 0, 2, 1, 1, 3, 0], "total": 13}]))
    (back,) = round_trip(registry, task)
    assert back.screenings[0].total is None and back.screenings[0].computed_total == 13


def test_a_total_changed_on_the_server_is_refused_on_the_way_back(pipeline, registry):
    task = pipeline.parse(0, intake())
    bundle = transaction(registry.mapper("intake").to_fhir(task, CTX))
    for entry in bundle["entry"]:
        code = entry["resource"].get("code", {}).get("coding", [{}])[0].get("code")
        if code == "44261-6":
            entry["resource"]["valueInteger"] = 20
    with pytest.raises(InputError) as info:
        registry.mapper("intake").from_fhir(ResourceSet.from_bundle(bundle))
    assert any("screenings[0].total" in p.location and "add up to 13" in p.message
               for p in info.value.problems), info.value.problems


# ---------------------------------------------------------------- a real FHIR server


def test_a_later_intake_updates_the_allergy_on_a_real_server(fhir_base_url, pipeline):
    """Sent twice: one allergy, not two. A later intake marks it entered-in-error: the same
    resource changes (conditional update), it is not added beside the first."""
    import uuid

    import requests

    run = uuid.uuid4().hex[:10]  # the server outlives a test session: fresh ids each run
    allergy = {"id": f"alg-{run}", "substance": {"system": "rxnorm", "code": "7980",
                                                  "display": "Penicillin G"},
               "category": "medication"}
    patient = {"mrn": f"MRN-{run}", "system": MRN_SYSTEM, "family": "Test", "gender": "female"}
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

    def send(raw):
        bundle = transaction(pipeline.map_task(0, pipeline.parse(0, raw)).entries)
        r = requests.post(fhir_base_url, json=bundle, headers=headers, timeout=60)
        assert r.status_code == 200, r.text[:500]

    def stored():
        r = requests.get(f"{fhir_base_url}/AllergyIntolerance", headers=headers, timeout=30,
                         params={"identifier": f"{CLINIC.task_system('allergy')}|alg-{run}"})
        return [e["resource"] for e in r.json().get("entry", [])]

    first = intake(id=f"intake-{run}-1", patient=patient, allergies=[allergy], visit=None,
                   medications=None, problems=None, screenings=None, smoking=None,
                   pregnancy_status=None, pregnancy_intent=None)
    send(first)
    send(first)
    (one,) = stored()
    assert one["clinicalStatus"]["coding"][0]["code"] == "active"
    send({**first, "id": f"intake-{run}-2", "patient": {"mrn": patient["mrn"],
                                                        "system": MRN_SYSTEM},
          "allergies": [{**allergy, "status": "entered-in-error"}]})
    (again,) = stored()
    assert again["id"] == one["id"]
    assert "clinicalStatus" not in again
    assert again["verificationStatus"]["coding"][0]["code"] == "entered-in-error"


# PHQ-9 severity (Kroenke, Spitzer & Williams 2001), written out here, not read from mafhir
PHQ9_BANDS = ((0, 4, "None-minimal depression"), (5, 9, "Mild depression"),
              (10, 14, "Moderate depression"), (15, 19, "Moderately severe depression"),
              (20, 27, "Severe depression"))


@settings(max_examples=40, deadline=None)
@given(answers=st.lists(st.integers(min_value=0, max_value=3), min_size=9, max_size=9),
       off=st.sampled_from([-2, -1, 1, 3]))
def test_phq9_total_band_and_round_trip_for_any_answers(registry, answers, off):
    pipeline = Pipeline(registry, CTX)
    raw = intake(allergies=None, medications=None, problems=None, smoking=None,
                 pregnancy_status=None, pregnancy_intent=None,
                 screenings=[{"instrument": "phq-9", "answers": answers}])
    resources = mapped(pipeline, raw)
    total = observation(resources, "44261-6")
    expected = sum(answers)
    assert total["valueInteger"] == expected
    assert total["interpretation"][0]["text"] == next(
        label for low, high, label in PHQ9_BANDS if low <= expected <= high)
    task = pipeline.parse(0, raw)
    assert round_trip(registry, task) == [task]
    wrong = intake(screenings=[{"instrument": "phq-9", "answers": answers,
                                "total": expected + off}])
    assert ("task[0].screenings[0].total",
            f"is {expected + off} but the 9 answers add up to {expected}") in problems(
        pipeline, wrong)


# ---------------------------------------------------------------- fall-risk screening
@pytest.mark.parametrize(("falls", "code"), [(0, "NEG"), (1, "POS"), (3, "POS")])
def test_falls_in_the_past_year_screen_for_fall_risk(pipeline, falls, code):
    """LOINC 75856-5 "Number of falls in the past 12Mo" (loinc.org: Qn, reported, example
    unit /a); CDC STEADI: a fall in the past year screens positive."""
    obs = observation(mapped(pipeline, intake(falls_past_year=falls)), "75856-5")
    assert obs["valueQuantity"] == {"value": falls, "unit": "per year",
                                    "system": "http://unitsofmeasure.org", "code": "/a"}
    assert obs["interpretation"][0]["coding"][0]["code"] == code
    assert [c["coding"][0]["code"] for c in obs["category"]] == ["survey"]
    assert obs["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment"]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_falls_screen_meets_us_core(corpus, pipeline, version):
    obs = observation(mapped(pipeline, intake(falls_past_year=2)), "75856-5")
    assert uscore.check(obs, corpus, version) == []


def test_the_falls_screen_round_trips_and_refuses_a_negative_count(pipeline, registry):
    task = pipeline.parse(0, intake(falls_past_year=2))
    assert round_trip(registry, task) == [task]
    assert any(loc.endswith("falls_past_year") for loc, _ in
               problems(pipeline, intake(falls_past_year=-1)))
