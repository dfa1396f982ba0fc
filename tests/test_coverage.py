"""The coverage task kind: mapping, corpus comparisons, idempotency, round trip, bad input."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CLINIC, assert_valid_bundle, load_json
from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet
from mafhir.tasks.coverage import CoverageTask

MRN_SYSTEM = CLINIC.mrn_namespace
THO = "http://terminology.hl7.org/CodeSystem/"
X12_1365 = "https://codesystem.x12.org/005010/1365"


def card(**over: Any) -> dict[str, Any]:
    """A raw task as the clinic writes it."""
    raw: dict[str, Any] = {
        "task": "coverage",
        "id": "cov-1001",
        "patient": {"mrn": "MRN-77", "system": MRN_SYSTEM},
        "payer": {"id": "60054", "name": "Aetna"},
        "member_id": "W123456789",
        "group": {"id": "G-1234", "name": "Acme Employees"},
        "plan": {"id": "GOLD-PPO", "name": "Gold PPO"},
        "subscriber": {"relationship": "self"},
        "period": {"start": "2026-01-01", "end": "2026-12-31"},
        "order": "primary",
        "payer_type": "5",
    }
    raw.update(over)
    return raw


ELIG = {
    "checked_at": "2026-03-04T09:15:00-05:00",
    "active": True,
    "copay": 25,
    "coinsurance_percent": 20,
    "deductible": {"amount": 1500, "remaining": 400},
}


def mapped(registry, ctx, raw: dict[str, Any]) -> tuple[CoverageTask, dict[str, Any]]:
    pipe = Pipeline(registry, ctx)
    task = pipe.parse(0, raw)
    result = pipe.map_task(0, task)
    bundle = assert_valid_bundle(result.entries, registry)
    return task, bundle  # type: ignore[return-value]


def of_type(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    found = of_type(bundle, rtype)
    assert len(found) == 1, f"{len(found)} {rtype}"
    return found[0]


def entry_of(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def sys_code(concept: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c.get("system"), c["code"]) for c in concept.get("coding", [])}


def parse_error(registry, ctx, raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        Pipeline(registry, ctx).parse(0, raw)
    return [(p.location, p.message) for p in info.value.problems]


# ------------------------------------------------------------------ corpus: US Core example
@pytest.mark.corpus
def test_matches_us_core_coverage_example(registry, ctx, corpus):
    """The same card as US Core's Coverage-coverage-example gives the same significant values."""
    ex = load_json(corpus / "us-core/7.0.0/examples/Coverage-coverage-example.json")
    mb = ex["identifier"][0]
    group = next(c for c in ex["class"] if c["type"]["coding"][0]["code"] == "group")
    plan = next(c for c in ex["class"] if c["type"]["coding"][0]["code"] == "plan")
    raw = card(
        member_id=mb["value"],
        subscriber={"relationship": "self", "member_id": ex["subscriberId"]},
        group={"id": group["value"], "name": group["name"]},
        plan={"id": plan["value"], "name": plan["name"]},
        period={"start": ex["period"]["start"]},
        payer={"id": "55555", "name": ex["payor"][0]["display"]},
        payer_type=ex["type"]["coding"][0]["code"],
    )
    raw.pop("order")
    _, bundle = mapped(registry, ctx, raw)
    cov = one(bundle, "Coverage")

    assert cov["meta"]["profile"] == [p.split("|")[0] for p in ex["meta"]["profile"]]
    assert cov["status"] == ex["status"]
    ours_mb = [i for i in cov["identifier"] if "type" in i]
    assert len(ours_mb) == 1
    assert sys_code(ours_mb[0]["type"]) == sys_code(mb["type"])
    assert ours_mb[0]["value"] == mb["value"]
    assert cov["subscriberId"] == ex["subscriberId"]
    # SOPT: the example's first coding is the SOPT one
    assert ex["type"]["coding"][0]["system"] == "https://nahdo.org/sopt"
    assert sys_code(cov["type"]) == {("https://nahdo.org/sopt", ex["type"]["coding"][0]["code"])}
    assert sys_code(cov["relationship"]) == {
        (c["system"], c["code"]) for c in ex["relationship"]["coding"]
    }
    assert cov["period"] == ex["period"]
    assert len(cov["payor"]) == len(ex["payor"]) == 1
    assert cov["payor"][0]["display"] == ex["payor"][0]["display"]
    strip = [{"type": sys_code(c["type"]), "value": c["value"], "name": c["name"]}
             for c in ex["class"]]
    assert [{"type": sys_code(c["type"]), "value": c["value"], "name": c["name"]}
            for c in cov["class"]] == strip
    # the payer is a US Core Organization like the example's acme-payer
    payer = load_json(corpus / "us-core/7.0.0/examples/Organization-acme-payer.json")
    org = next(o for o in of_type(bundle, "Organization") if o["name"] == payer["name"])
    assert org["active"] is payer["active"] is True
    assert sys_code(org["type"][0]) == sys_code(payer["type"][0])
    assert org["meta"]["profile"] == [p.split("|")[0] for p in payer["meta"]["profile"]]


@pytest.mark.corpus
def test_matches_r4_coverage_example_copay_and_order(registry, ctx, corpus):
    """R4 Coverage-7546D: secondary coverage, group/plan, a $20 GP-visit copay."""
    ex = load_json(corpus / "fhir-r4-examples/Coverage/Coverage-7546D.json")
    classes = {c["type"]["coding"][0]["code"]: c for c in ex["class"]}
    copay = ex["costToBeneficiary"][0]
    raw = card(
        order="secondary",
        group={"id": classes["group"]["value"], "name": classes["group"]["name"]},
        plan={"id": classes["plan"]["value"], "name": classes["plan"]["name"]},
        period=ex["period"],
        copays={"primary_care": copay["valueMoney"]["value"]},
    )
    _, bundle = mapped(registry, ctx, raw)
    cov = one(bundle, "Coverage")
    assert cov["order"] == ex["order"] == 2
    assert cov["period"] == ex["period"]
    [cost] = cov["costToBeneficiary"]
    assert sys_code(cost["type"]) == sys_code(copay["type"])
    assert cost["valueMoney"] == copay["valueMoney"]  # 20 == 20.0, USD
    for kind in ("group", "plan"):
        ours = next(c for c in cov["class"] if c["type"]["coding"][0]["code"] == kind)
        assert sys_code(ours["type"]) == sys_code(classes[kind]["type"])
        assert (ours["value"], ours["name"]) == (classes[kind]["value"], classes[kind]["name"])


@pytest.mark.corpus
def test_eligibility_matches_r4_request_and_response_examples(registry, ctx, corpus):
    req_ex = load_json(corpus / "fhir-r4-examples/CoverageEligibilityRequest/"
                                "CoverageEligibilityRequest-52346.json")
    rsp_ex = load_json(corpus / "fhir-r4-examples/CoverageEligibilityResponse/"
                                "CoverageEligibilityResponse-E2502.json")
    _, bundle = mapped(registry, ctx, card(eligibility={
        **ELIG, "service_date": req_ex["servicedDate"]}))
    req = one(bundle, "CoverageEligibilityRequest")
    rsp = one(bundle, "CoverageEligibilityResponse")
    cov_url = entry_of(bundle, "Coverage")["fullUrl"]

    assert req["status"] == req_ex["status"]
    assert req["purpose"] == req_ex["purpose"] == ["validation", "benefits"]
    assert req["servicedDate"] == req_ex["servicedDate"]
    assert req["insurance"] == [{"focal": True, "coverage": {"reference": cov_url}}]
    assert sys_code(req["item"][0]["category"]) == {(X12_1365, "30")}
    assert set(req) <= set(req_ex)  # nothing the R4 example does not have

    assert rsp["outcome"] == rsp_ex["outcome"] == "complete"
    assert rsp["purpose"] == rsp_ex["purpose"]
    assert rsp["request"]["reference"] == entry_of(bundle, "CoverageEligibilityRequest")["fullUrl"]
    [ins] = rsp["insurance"]
    assert ins["inforce"] is rsp_ex["insurance"][0]["inforce"] is True
    [item] = ins["item"]
    ex_item = rsp_ex["insurance"][0]["item"][0]  # category 30, in network, individual, annual
    for key in ("network", "unit", "term"):
        assert sys_code(item[key]) == sys_code(ex_item[key]), key
    # copay-percent is written as the example writes 20 %: allowedUnsignedInt 20
    def pct_of(benefits):
        return next(b for b in benefits if b["type"]["coding"][0]["code"] == "copay-percent")

    ex_pct, pct = pct_of(ex_item["benefit"]), pct_of(item["benefit"])
    assert pct["allowedUnsignedInt"] == ex_pct["allowedUnsignedInt"] == 20
    # deductible written like the example's benefit with allowed and used USD Money
    ex_used = ex_item["benefit"][0]
    ded = next(b for b in item["benefit"] if b["type"]["coding"][0]["code"] == "deductible")
    assert set(ded) == set(ex_used)
    assert {k: set(ded[k]) for k in ("allowedMoney", "usedMoney")} == \
        {k: set(ex_used[k]) for k in ("allowedMoney", "usedMoney")}
    assert ded["usedMoney"]["currency"] == ex_used["usedMoney"]["currency"] == "USD"


@pytest.mark.corpus
def test_failed_check_matches_r4_error_example(registry, ctx, corpus):
    ex = load_json(corpus / "fhir-r4-examples/CoverageEligibilityResponse/"
                            "CoverageEligibilityResponse-E2503.json")
    _, bundle = mapped(registry, ctx, card(eligibility={
        "checked_at": "2026-03-04T14:15:00Z",
        "error": {"code": "75", "text": "Subscriber not found"}}))
    rsp = one(bundle, "CoverageEligibilityResponse")
    assert rsp["outcome"] == ex["outcome"] == "error"
    assert [sorted(e) for e in rsp["error"]] == [sorted(e) for e in ex["error"]] == [["code"]]
    assert sys_code(rsp["error"][0]["code"]) == {("https://codesystem.x12.org/005010/901", "75")}
    assert rsp["error"][0]["code"]["text"] == "Subscriber not found"
    assert "inforce" not in rsp["insurance"][0] and "item" not in rsp["insurance"][0]
    assert rsp["created"] == "2026-03-04T14:15:00Z"


@pytest.mark.corpus
def test_values_from_a_real_271(registry, ctx, corpus):
    """Copy the answer of a public 271 into a task; the FHIR says what the 271 said."""
    text = (corpus / "x12/271/imsweb-x12-parser/x271.txt").read_text()
    segs = [s.strip().split("*") for s in text.split("~") if s.strip()]
    payer = next(s for s in segs if s[:2] == ["NM1", "PR"])
    member = next(s for s in segs if s[:2] == ["NM1", "IL"])
    begin = next(s for s in segs if s[:2] == ["DTP", "346"])
    eb = next(s for s in segs if s[0] == "EB")
    assert member[8] == "MI" and payer[8] == "PI" and eb[1] == "1"  # active coverage
    start = date(int(begin[3][:4]), int(begin[3][4:6]), int(begin[3][6:]))
    _, bundle = mapped(registry, ctx, card(
        payer={"id": payer[9], "name": payer[3]}, member_id=member[9], period={"start": str(start)},
        group=None, plan=None,
        eligibility={"checked_at": "2026-03-04T09:15:00-05:00", "service_type": eb[3],
                     "active": eb[1] in "12345"}))
    cov = one(bundle, "Coverage")
    rsp = one(bundle, "CoverageEligibilityResponse")
    org = next(o for o in of_type(bundle, "Organization") if o["name"] == "ABC COMPANY")
    assert org["identifier"][0]["value"] == "842610001"
    assert cov["subscriberId"] == "123456789"
    assert cov["period"] == {"start": "2006-01-01"}
    assert rsp["insurance"][0]["inforce"] is True
    assert sys_code(rsp["insurance"][0]["item"][0]["category"]) == {(X12_1365, "30")}
    assert "benefit" not in rsp["insurance"][0]["item"][0]


# ------------------------------------------------------------------ hand-checked mapping
def test_deductible_copay_coinsurance_numbers(registry, ctx):
    _, bundle = mapped(registry, ctx, card(eligibility=ELIG))
    item = one(bundle, "CoverageEligibilityResponse")["insurance"][0]["item"][0]
    benefits = {b["type"]["coding"][0]["code"]: b for b in item["benefit"]}
    assert {b["type"]["coding"][0]["system"] for b in item["benefit"]} == {THO + "benefit-type"}
    assert benefits["deductible"]["allowedMoney"] == {"value": 1500, "currency": "USD"}
    assert benefits["deductible"]["usedMoney"] == {"value": 1100, "currency": "USD"}  # 1500-400
    assert benefits["copay"]["allowedMoney"] == {"value": 25, "currency": "USD"}
    assert benefits["copay-percent"] == {
        "type": benefits["copay-percent"]["type"], "allowedUnsignedInt": 20}
    assert sys_code(item["category"]) == {(X12_1365, "30")}
    assert sys_code(item["term"]) == {(THO + "benefit-term", "annual")}
    assert "productOrService" not in item  # ces-1


def test_cents_are_exact(registry, ctx):
    _, bundle = mapped(registry, ctx, card(
        copays={"specialist": 47.5, "urgent_care": "75.05"},
        eligibility={**ELIG, "copay": "19.99",
                     "deductible": {"amount": "1234.56", "remaining": "0.56"}}))
    benefits = {b["type"]["coding"][0]["code"]: b for b in
                one(bundle, "CoverageEligibilityResponse")["insurance"][0]["item"][0]["benefit"]}
    assert benefits["copay"]["allowedMoney"]["value"] == Decimal("19.99")
    # 1234.56 - 0.56, in cents: the precision of its operands
    assert str(benefits["deductible"]["usedMoney"]["value"]) == "1234.00"
    costs = {c["type"]["coding"][0]["code"]: c["valueMoney"]["value"]
             for c in one(bundle, "Coverage")["costToBeneficiary"]}
    assert costs == {"spvisit": Decimal("47.5"), "urgentcare": Decimal("75.05")}


def test_deductible_without_remaining_has_no_used(registry, ctx):
    _, bundle = mapped(registry, ctx, card(eligibility={
        **ELIG, "deductible": {"amount": 500}, "network": "out", "unit": "family"}))
    item = one(bundle, "CoverageEligibilityResponse")["insurance"][0]["item"][0]
    ded = next(b for b in item["benefit"] if b["type"]["coding"][0]["code"] == "deductible")
    assert "usedMoney" not in ded and ded["allowedMoney"]["value"] == 500
    assert sys_code(item["network"]) == {(THO + "benefit-network", "out")}
    assert sys_code(item["unit"]) == {(THO + "benefit-unit", "family")}


def test_inactive_coverage_keeps_record_status_active(registry, ctx):
    """Eligibility inactive (EB01 6) is inforce=false; Coverage.status is the record status."""
    _, bundle = mapped(registry, ctx, card(eligibility={
        "checked_at": "2026-03-04T09:15:00-05:00", "active": False}))
    assert one(bundle, "CoverageEligibilityResponse")["insurance"][0]["inforce"] is False
    assert one(bundle, "Coverage")["status"] == "active"
    _, bundle = mapped(registry, ctx, card(status="cancelled"))
    assert one(bundle, "Coverage")["status"] == "cancelled"


def test_self_subscriber_is_the_patient(registry, ctx):
    _, bundle = mapped(registry, ctx, card())
    cov = one(bundle, "Coverage")
    assert cov["subscriber"] == cov["beneficiary"]
    assert cov["subscriber"]["reference"] == f"Patient?identifier={MRN_SYSTEM}|MRN-77"
    assert cov["subscriberId"] == "W123456789"
    assert of_type(bundle, "RelatedPerson") == []
    assert sys_code(cov["relationship"]) == {(THO + "subscriber-relationship", "self")}
    assert sys_code(cov["type"]) == {("https://nahdo.org/sopt", "5")}
    assert cov["order"] == 1


def test_dependent_subscriber_is_a_related_person(registry, ctx):
    _, bundle = mapped(registry, ctx, card(subscriber={
        "relationship": "child", "family": "Rivera", "given": ["Ana"],
        "birth_date": "1984-05-06", "gender": "female", "member_id": "W123456700"}))
    cov = one(bundle, "Coverage")
    person_entry = entry_of(bundle, "RelatedPerson")
    person = person_entry["resource"]
    assert cov["subscriber"] == {"reference": person_entry["fullUrl"]}
    assert person_entry["request"]["method"] == "PUT"
    assert person["patient"] == cov["beneficiary"]
    assert person["active"] is True
    assert person["name"] == [{"family": "Rivera", "given": ["Ana"]}]
    assert person["birthDate"] == "1984-05-06"
    # the patient is the subscriber's child, so the subscriber is the patient's parent
    assert sys_code(person["relationship"][0]) == {(THO + "v3-RoleCode", "PRN")}
    assert sys_code(cov["relationship"]) == {(THO + "subscriber-relationship", "child")}
    # the subscriber's own id in subscriberId, the patient's in the MB identifier
    assert cov["subscriberId"] == "W123456700"
    mb = [i for i in cov["identifier"] if "type" in i]
    assert [i["value"] for i in mb] == ["W123456789"]


def test_provider_is_the_clinic_or_the_clinician(registry, ctx):
    _, bundle = mapped(registry, ctx, card(eligibility=ELIG))
    req_entry = entry_of(bundle, "CoverageEligibilityRequest")
    clinic = next(e for e in bundle["entry"] if e["resource"].get("name") == CLINIC.name)
    assert req_entry["resource"]["provider"]["reference"] == clinic["fullUrl"]
    payer = next(e for e in bundle["entry"] if e["resource"].get("name") == "Aetna")
    assert req_entry["resource"]["insurer"]["reference"] == payer["fullUrl"]
    assert one(bundle, "CoverageEligibilityResponse")["insurer"]["reference"] == payer["fullUrl"]
    _, bundle = mapped(registry, ctx, card(eligibility={
        **ELIG, "provider": {"npi": "1234567893", "family": "Osei"}}))
    doc = entry_of(bundle, "Practitioner")
    assert one(bundle, "CoverageEligibilityRequest")["provider"]["reference"] == doc["fullUrl"]


def test_created_keeps_the_offset(registry, ctx):
    _, bundle = mapped(registry, ctx, card(eligibility=ELIG))
    assert one(bundle, "CoverageEligibilityRequest")["created"] == "2026-03-04T09:15:00-05:00"
    assert one(bundle, "CoverageEligibilityResponse")["created"] == "2026-03-04T09:15:00-05:00"


# ------------------------------------------------------------------ identity / idempotency
def requests(registry, ctx, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pipe = Pipeline(registry, ctx)
    entries = pipe.map_task(0, pipe.parse(0, raw)).entries
    return {e.resource_type: {"method": e.method, "url": e.url, "fullUrl": e.full_url,
                              "ifNoneExist": e.if_none_exist} for e in entries}


def test_same_card_again_updates_one_coverage(registry, ctx):
    first = requests(registry, ctx, card())
    again = requests(registry, ctx, card(id="cov-2002", group={"id": "G-9"},
                                         period={"start": "2027-01-01"}))
    assert first["Coverage"]["method"] == "PUT"
    assert first["Coverage"]["url"].startswith(f"Coverage?identifier={CLINIC.system}/coverage|")
    assert first["Coverage"]["url"] == again["Coverage"]["url"]
    assert first["Coverage"]["fullUrl"] == again["Coverage"]["fullUrl"]
    # no patient data in the request URL
    assert "W123456789" not in first["Coverage"]["url"]
    assert "MRN-77" not in first["Coverage"]["url"]
    # both in one Bundle: one Coverage, the later card wins
    pipe = Pipeline(registry, ctx)
    entries = [e for i, raw in enumerate((card(), card(id="cov-2002", group={"id": "G-9"})))
               for e in pipe.map_task(i, pipe.parse(i, raw)).entries]
    bundle = transaction(entries)
    [cov] = of_type(bundle, "Coverage")
    assert cov["class"][0]["value"] == "G-9"
    assert len(of_type(bundle, "Organization")) == 1


@pytest.mark.parametrize("change", [
    {"member_id": "W999"},
    {"payer": {"id": "87726", "name": "UnitedHealthcare"}},
    {"patient": {"mrn": "MRN-78", "system": MRN_SYSTEM}},
    {"patient": {"mrn": "MRN-77", "system": "urn:oid:1.2.3.4"}},
])
def test_another_card_is_another_coverage(registry, ctx, change):
    assert requests(registry, ctx, card(**change))["Coverage"]["url"] != \
        requests(registry, ctx, card())["Coverage"]["url"]


def test_eligibility_is_created_once_per_task(registry, ctx):
    reqs = requests(registry, ctx, card(eligibility=ELIG))
    for rtype, kind in (("CoverageEligibilityRequest", "coverage-eligibility-request"),
                        ("CoverageEligibilityResponse", "coverage-eligibility-response")):
        assert reqs[rtype]["method"] == "POST"
        assert reqs[rtype]["ifNoneExist"] == f"identifier={CLINIC.system}/{kind}|cov-1001"
    assert reqs["Organization"]["method"] == "POST"  # payer: create only if absent


def test_mapping_is_deterministic(registry, ctx):
    _, a = mapped(registry, ctx, card(eligibility=ELIG))
    _, b = mapped(registry, ctx, card(eligibility=ELIG))
    assert a == b


# ------------------------------------------------------------------ round trip
def round_trip(registry, ctx, raw: dict[str, Any]) -> tuple[CoverageTask, list[Any]]:
    task, bundle = mapped(registry, ctx, raw)
    back = registry.mapper("coverage").from_fhir(ResourceSet.from_bundle(bundle))
    return task, back


@pytest.mark.parametrize("extra", [
    {},
    {"eligibility": ELIG},
    {"eligibility": {**ELIG, "service_date": "2026-03-05", "service_type": "98",
                     "network": "out", "unit": "family", "deductible": {"amount": 300},
                     "provider": {"npi": "1234567893", "family": "Osei", "given": ["Kofi"]}}},
    {"eligibility": {"checked_at": "2026-03-04T09:15:00+02:00",
                     "error": {"code": "72", "text": "Invalid member id"}}},
    {"subscriber": {"relationship": "spouse", "given": ["Sam"], "member_id": "W1"},
     "copays": {"primary_care": 20, "emergency": "150.25", "telehealth": 0},
     "status": "draft", "order": "tertiary", "payer_type": None, "group": None,
     "plan": {"id": "P1"}, "period": None},
])
def test_round_trip_keeps_every_value(registry, ctx, extra):
    task, back = round_trip(registry, ctx, card(**extra))
    assert back == [task]


def test_round_trip_with_new_patient(registry, ctx):
    task, back = round_trip(registry, ctx, card(patient={
        "mrn": "MRN-90", "system": MRN_SYSTEM, "family": "Ng", "given": ["Lee"],
        "gender": "female", "birth_date": "2001-02-03"}, eligibility=ELIG))
    assert back == [task]


def test_reverse_skips_coverages_not_made_from_tasks(registry, corpus):
    ex = load_json(corpus / "us-core/7.0.0/examples/Coverage-coverage-example.json")
    assert registry.mapper("coverage").from_fhir(ResourceSet.of([ex])) == []


money = st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False,
                    allow_infinity=False)
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2060, 12, 31))


@st.composite
def tasks(draw) -> dict[str, Any]:
    start = draw(days)
    end = draw(st.none() | st.dates(min_value=start, max_value=date(2061, 12, 31)))
    relationship = draw(st.sampled_from(
        ["self", "spouse", "child", "parent", "common", "other", "injured"]))
    sub: dict[str, Any] = {"relationship": relationship}
    if relationship != "self":
        sub.update(family="Doe", birth_date=str(draw(days)))
    amount = draw(money)
    remaining = draw(st.none() | st.decimals(min_value=0, max_value=amount, places=2))
    offset = draw(st.integers(min_value=-12 * 60, max_value=14 * 60))
    checked = datetime(2026, 3, 4, 9, 15, 7, tzinfo=timezone(timedelta(minutes=offset)))
    elig = {
        "checked_at": checked.isoformat(),
        "active": draw(st.booleans()),
        "copay": str(draw(money)),
        "coinsurance_percent": draw(st.integers(min_value=0, max_value=100)),
        "deductible": {"amount": str(amount),
                       **({"remaining": str(remaining)} if remaining is not None else {})},
        "network": draw(st.sampled_from(["in", "out"])),
        "unit": draw(st.sampled_from(["individual", "family"])),
    }
    return card(
        period={"start": str(start), **({"end": str(end)} if end else {})},
        subscriber=sub, order=draw(st.sampled_from(["primary", "secondary", "tertiary"])),
        payer_type=draw(st.sampled_from(["1", "2", "5", "81", "3712"])),
        copays={"specialist": str(draw(money))},
        eligibility=elig if draw(st.booleans()) else None,
    )


@settings(max_examples=50, deadline=None)
@given(raw=tasks())
def test_round_trip_property(registry, ctx, raw):
    task, back = round_trip(registry, ctx, raw)
    assert back == [task]
    if task.eligibility and task.eligibility.deductible and \
            task.eligibility.deductible.remaining is not None:
        ded = task.eligibility.deductible
        _, bundle = mapped(registry, ctx, raw)
        item = one(bundle, "CoverageEligibilityResponse")["insurance"][0]["item"][0]
        used = next(b for b in item["benefit"]
                    if b["type"]["coding"][0]["code"] == "deductible")["usedMoney"]["value"]
        assert Decimal(str(used)) + ded.remaining == ded.amount


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("elig", "where", "reason"), [
    ({"coinsurance_percent": 120}, "eligibility.coinsurance_percent", "0 to 100"),
    ({"coinsurance_percent": 0.2}, "eligibility.coinsurance_percent", "fraction"),
    ({"coinsurance_percent": -5}, "eligibility.coinsurance_percent", "greater than or equal"),
    ({"deductible": {"amount": 400, "remaining": 1500}}, "eligibility.deductible.remaining",
     "more than the deductible"),
    ({"deductible": {"remaining": 10}}, "eligibility.deductible.amount", "required"),
    ({"checked_at": "2026-03-04T09:15:00"}, "eligibility.checked_at", "UTC offset"),
    ({"copay": 12.345}, "eligibility.copay", "decimal places"),
    ({"copay": -1}, "eligibility.copay", "greater than or equal"),
    ({"active": None}, "eligibility.active", "required"),
    ({"error": {"code": "75"}}, "eligibility.active", "failed check"),
    ({"error": {"code": "75"}, "active": None}, "eligibility", "no copay"),
    ({"service_type": "health"}, "eligibility.service_type", "pattern"),
    ({"surprise": 1}, "eligibility.surprise", "unknown field"),
])
def test_bad_eligibility(registry, ctx, elig, where, reason):
    raw_elig = {**ELIG, **elig}
    raw_elig = {k: v for k, v in raw_elig.items() if v is not None}
    problems = parse_error(registry, ctx, card(eligibility=raw_elig))
    assert any(loc == f"task[0].{where}" and reason in msg for loc, msg in problems), problems


@pytest.mark.parametrize(("over", "where", "reason"), [
    ({"period": {"start": "2026-06-01", "end": "2026-01-01"}}, "period.end", "before the start"),
    ({"subscriber": {"relationship": "cousin", "family": "Doe"}}, "subscriber.relationship",
     "'spouse'"),
    ({"subscriber": {"relationship": "spouse"}}, "subscriber.family", "needs a name"),
    ({"subscriber": {"relationship": "self", "family": "Doe"}}, "subscriber.family",
     "is the patient"),
    ({"subscriber": {"relationship": "self", "birth_date": "1980-01-01"}}, "subscriber",
     "birth_date"),
    ({"member_id": "W 123"}, "member_id", "pattern"),
    ({"payer": {"id": "600/54", "name": "Aetna"}}, "payer.id", "pattern"),
    ({"payer_type": "PPO"}, "payer_type", "pattern"),
    ({"order": "first"}, "order", "'primary'"),
    ({"status": "expired"}, "status", "'active'"),
    ({"copays": {"gp": 20}}, "copays.gp", "unknown field"),
    ({"copays": {"specialist": "abc"}}, "copays.specialist", "decimal"),
    ({"insurer": "Aetna"}, "insurer", "unknown field"),
])
def test_bad_card(registry, ctx, over, where, reason):
    problems = parse_error(registry, ctx, card(**over))
    assert any(loc == f"task[0].{where}" and reason in msg for loc, msg in problems), problems


def test_missing_required_fields(registry, ctx):
    raw = card()
    for key in ("payer", "member_id", "subscriber", "patient"):
        broken = copy.deepcopy(raw)
        del broken[key]
        problems = parse_error(registry, ctx, broken)
        assert (f"task[0].{key}", "Field required") in problems


def test_errors_do_not_echo_patient_data(registry, ctx):
    problems = parse_error(registry, ctx, card(
        member_id="SECRET 42", subscriber={"relationship": "self", "family": "Secretname"}))
    text = " ".join(m for _, m in problems)
    assert "SECRET" not in text and "Secretname" not in text


def test_warnings(registry, ctx):
    pipe = Pipeline(registry, ctx)
    result = pipe.map_task(0, pipe.parse(0, card(
        status="cancelled",
        eligibility={**ELIG, "coinsurance_percent": 1, "service_date": "2027-02-01"})))
    where = {w.location for w in result.warnings}
    assert where == {"task[0].eligibility.coinsurance_percent", "task[0].status",
                     "task[0].eligibility.service_date"}
    clean = pipe.map_task(1, pipe.parse(1, card(eligibility=ELIG)))
    assert clean.warnings == ()


def test_money_keeps_the_digits_it_was_given(registry, ctx):
    """Copays and benefits are written digit for digit as the clinic's NDJSON gave them:
    25.50 stays 25.50 (not 25.5), 10 stays 10, 0.10 stays 0.10, and a difference is exact
    decimal arithmetic (0.30 - 0.10 = 0.20, never 0.19999999999999998)."""
    from mafhir import io

    raw = io.loads(b'{"copays": {"primary_care": 25.50, "specialist": 10, '
                   b'"urgent_care": 0.10, "telehealth": "7.00"}, '
                   b'"eligibility": {"checked_at": "2026-03-04T09:15:00-05:00", '
                   b'"active": true, "copay": 25.50, '
                   b'"deductible": {"amount": 0.30, "remaining": 0.10}}}')
    _, bundle = mapped(registry, ctx, card(**raw))
    written = io.dumps(bundle)
    costs = {c["type"]["coding"][0]["code"]: c["valueMoney"]
             for c in one(bundle, "Coverage")["costToBeneficiary"]}
    assert {k: io.dumps(v) for k, v in costs.items()} == {
        "gpvisit": b'{"value":25.50,"currency":"USD"}',
        "spvisit": b'{"value":10,"currency":"USD"}',
        "urgentcare": b'{"value":0.10,"currency":"USD"}',
        "televisit": b'{"value":7.00,"currency":"USD"}'}
    item = one(bundle, "CoverageEligibilityResponse")["insurance"][0]["item"][0]
    benefits = {b["type"]["coding"][0]["code"]: b for b in item["benefit"]}
    assert io.dumps(benefits["copay"]["allowedMoney"]) == b'{"value":25.50,"currency":"USD"}'
    assert io.dumps(benefits["deductible"]["allowedMoney"]) == \
        b'{"value":0.30,"currency":"USD"}'
    assert io.dumps(benefits["deductible"]["usedMoney"]) == b'{"value":0.20,"currency":"USD"}'
    assert b"25.5," not in written and b"0.1," not in written
