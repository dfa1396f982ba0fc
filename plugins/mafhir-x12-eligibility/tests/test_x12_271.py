"""271 → what the MA needs and FHIR: every EB accounted for, money exact, AAA named."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from fhir.resources.R4B import get_fhir_model_class
from helpers_x12 import clinic_ctx

import uscore
from mafhir.errors import InputError
from mafhir.io import dumps, loads
from mafhir_x12_eligibility.fhir import bundle_from_271
from mafhir_x12_eligibility.read271 import read_271_text

CORPUS_271 = "x12/271/imsweb-x12-parser/x271.txt"

# A 271 written by hand for these tests, with | as element separator and > as component
# separator (the ISA says so); every value below is read off this text by eye.
ISA = ("ISA|00|          |00|          |ZZ|ACMECH         |ZZ|CLINIC01       |260304|0916|^|"
       "00501|000000042|0|P|>~")
HAND_271 = ISA + """
GS|HB|ACMECH|CLINIC01|20260304|0916|42|X|005010X279A1~
ST|271|0042|005010X279A1~
BHT|0022|11||20260304|0916~
HL|1||20|1~
NM1|PR|2|AETNA|||||PI|60054~
HL|2|1|21|1~
NM1|1P|2|MAPLE STREET FAMILY CLINIC|||||XX|1234567893~
HL|3|2|22|0~
TRN|2|MAFHIR000000042|9CLINIC010~
NM1|IL|1|RIVERA|ANA||||MI|W123456789~
REF|6P|G-1234~
REF|18|GOLD-PPO~
DMG|D8|20190504|F~
DTP|346|D8|20260101~
DTP|347|D8|20261231~
EB|1|IND|30^98|PR|GOLD PPO~
MSG|PRIOR AUTHORIZATION REQUIRED FOR IMAGING~
EB|B|IND|98|||27|25.50|||||Y~
EB|B|IND|98|||27|60|||||N~
EB|A|IND|30|||||0.2||||Y~
EB|A|IND|30|||||0.125||||N~
EB|C|IND|30|||23|1500.00|||||Y~
EB|C|IND|30|||29|150.00|||||Y~
EB|C|FAM|30|||23|3000|||||Y~
EB|G|IND|30|||23|5000.00|||||Y~
EB|G|IND|30|||29|4200.00|||||Y~
EB|I||AL~
EB|L~
LS|2120~
NM1|P3|1|JONES|MARCUS||||XX|1234567893~
LE|2120~
EB|R||30~
SE|32|0042~
GE|1|42~
IEA|1|000000042~
"""


def eb_count(text: str) -> int:
    """EB segments counted independently: split on the ISA's own terminator/separator."""
    element, terminator = text[3], text[105]
    return sum(1 for seg in text.split(terminator)
               if seg.strip().split(element)[0] == "EB")


def test_hand_271_values(tmp_path):
    result = read_271_text(HAND_271)[0]
    assert result.inforce is True and result.plan_name == "GOLD PPO"
    assert (result.member_id, result.family, result.given) == ("W123456789", "RIVERA", "ANA")
    assert str(result.birth_date) == "2019-05-04" and result.gender == "female"
    assert (result.group, result.plan) == ("G-1234", "GOLD-PPO")
    assert (str(result.period_start), str(result.period_end)) == ("2026-01-01", "2026-12-31")
    assert result.trace == "MAFHIR000000042"
    # the summary: individual, in network; the office-visit copay, not the out-of-network
    assert result.office_copay == Decimal("25.50")
    assert result.coinsurance == Decimal("0.2")
    assert result.deductible == Decimal("1500.00")
    assert result.deductible_remaining == Decimal("150.00")
    assert result.out_of_pocket_remaining == Decimal("4200.00")
    assert result.messages == ["PRIOR AUTHORIZATION REQUIRED FOR IMAGING"]
    assert result.rejects == [] and result.warnings == []


def test_every_eb_is_accounted_for():
    result = read_271_text(HAND_271)[0]
    assert len(result.accounting) == eb_count(HAND_271) == 13
    mapped = [r for _, r in result.accounting if r.startswith("mapped")]
    unmapped = [r for _, r in result.accounting if r.startswith("not mapped")]
    assert len(mapped) == 11 and len(unmapped) == 2
    assert any("EB01 L" in r and "primary care provider" in r for r in unmapped)
    assert any("EB01 R" in r and "review" in r for r in unmapped)


def _items(result):
    def key(item):
        cat = item.get("category", {}).get("coding", [{}])[0].get("code")
        net = item.get("network", {}).get("coding", [{}])[0].get("code")
        unit = item.get("unit", {}).get("coding", [{}])[0].get("code")
        term = item.get("term", {}).get("coding", [{}])[0].get("code")
        return cat, net, unit, term
    return {key(i): i for i in result.items}


def test_items_hold_exact_money_and_the_deductible_left():
    items = _items(read_271_text(HAND_271)[0])
    office = items[("98", "in", "individual", None)]  # EB06 27 (visit): no benefit-term
    assert office["benefit"][0]["allowedMoney"] == {"value": Decimal("25.50"),
                                                    "currency": "USD"}
    assert items[("98", "out", "individual", None)]["benefit"][0]["allowedMoney"]["value"] == 60
    percent = items[("30", "in", "individual", None)]["benefit"]
    assert [(b["type"]["coding"][0]["code"], b["allowedUnsignedInt"]) for b in percent] == \
        [("copay-percent", 20)]  # 0.2 = 20 %
    plan = items[("30", "in", "individual", "annual")]  # EB06 23 calendar year
    by_type = {b["type"]["coding"][0]["code"]: b for b in plan["benefit"]}
    # 1500.00 a calendar year, 150.00 left: used = 1350.00 (by hand)
    assert by_type["deductible"]["allowedMoney"]["value"] == Decimal("1500.00")
    assert by_type["deductible"]["usedMoney"]["value"] == Decimal("1350.00")
    assert by_type["benefit"]["usedMoney"]["value"] == Decimal("800.00")  # 5000 - 4200
    assert plan["term"]["coding"][0]["code"] == "annual"
    # 0.125 is 12.5 %: not a whole percent, kept exactly as text rather than rounded
    assert items[("30", "out", "individual", None)]["benefit"][0]["allowedString"] == "12.5%"
    assert items[("30", "in", "family", "annual")]["benefit"][0]["allowedMoney"]["value"] == 3000
    assert items[("AL", None, None, None)]["excluded"] is True
    text = dumps({"items": read_271_text(HAND_271)[0].items}).decode()
    assert '"value":25.50' in text and '"value":1350.00' in text  # digit for digit


def test_a_non_number_amount_is_refused_naming_the_segment():
    broken = HAND_271.replace("EB|B|IND|98|||27|25.50", "EB|B|IND|98|||27|25,50")
    with pytest.raises(InputError) as err:
        read_271_text(broken)
    assert re.fullmatch(r"SEG\[\d+\] EB-07", err.value.problems[0].location)


@pytest.mark.parametrize(("code", "transient"), [("42", True), ("80", True), ("72", False),
                                                  ("75", False)])
def test_aaa_rejections(code, transient):
    text = HAND_271.replace("NM1|IL|1|RIVERA|ANA||||MI|W123456789~",
                            f"NM1|IL|1|RIVERA|ANA||||MI|W123456789~\nAAA|N||{code}|C~")
    result = read_271_text(text)[0]
    assert [(r.loop, r.code) for r in result.rejects] == [("2100C", code)]
    assert result.transient is transient
    meaning = {"42": "Unable to Respond at Current Time", "80": "No Response received",
               "72": "Invalid/Missing Subscriber/Insured ID",
               "75": "Subscriber/Insured Not Found"}[code]
    assert meaning in str(result.rejects[0])


def test_corrections_are_named_and_identity_goes_to_review():
    result = read_271_text(HAND_271)[0]
    fixes = result.corrections(member_id="W12345678", family="Rivera", given="Ana",
                               group="G-9999")
    assert [(c.field, c.identity) for c in fixes] == [("member_id", True), ("group", False)]
    assert "W123456789" not in str(fixes[0])  # the message names the field, not the value


def test_corpus_271_converts_with_every_eb_accounted(corpus):
    text = (corpus / CORPUS_271).read_text()
    result = read_271_text(text)[0]
    assert len(result.accounting) == eb_count(text) == 1
    assert result.accounting[0][1].startswith("mapped: EB01 1 (Active Coverage)")
    # by hand from the file: NM1*IL …MI*123456789, DMG*D8*19630519*M, DTP*346*D8*20060101,
    # EB*1**30**GOLD 123 PLAN; the NM1*P3 inside LS/LE is not the patient
    assert (result.member_id, result.family, result.given) == ("123456789", "SMITH", "JOHN")
    assert str(result.birth_date) == "1963-05-19" and result.gender == "male"
    assert result.inforce is True and result.plan_name == "GOLD 123 PLAN"
    assert str(result.period_start) == "2006-01-01"
    assert result.payer_id == "842610001" and result.trace == "93175-012547"


@pytest.mark.parametrize("source", ["corpus", "hand"])
def test_271_bundle_is_valid_r4_and_us_core(corpus, registry_checked, source):
    text = (corpus / CORPUS_271).read_text() if source == "corpus" else HAND_271
    bundle = bundle_from_271(text, clinic_ctx())
    bundle = loads(dumps(bundle))  # as it is written and read back
    registry_checked(bundle)
    types = {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]}
    for resource in types.values():  # R4B models: the same elements as R4 for these types
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    assert types["CoverageEligibilityResponse"]["outcome"] == "complete"
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(types["Coverage"], corpus, version) == []
    if source == "hand":
        insurance = types["CoverageEligibilityResponse"]["insurance"][0]
        assert insurance["inforce"] is True
        assert insurance["benefitPeriod"] == {"start": "2026-01-01", "end": "2026-12-31"}
        assert len(insurance["item"]) == len(read_271_text(HAND_271)[0].items)
        coverage = types["Coverage"]
        assert coverage["subscriberId"] == "W123456789"
        assert {c["value"] for c in coverage["class"]} == {"G-1234", "GOLD-PPO"}


def test_rejected_271_bundle_has_the_error_and_is_valid(corpus, registry_checked):
    text = HAND_271.replace("REF|6P|G-1234~", "AAA|N||75|C~")
    bundle = loads(dumps(bundle_from_271(text, clinic_ctx())))
    registry_checked(bundle)
    response = next(e["resource"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "CoverageEligibilityResponse")
    assert response["outcome"] == "error" and "insurance" not in response
    coding = response["error"][0]["code"]["coding"][0]
    assert (coding["code"], coding["display"]) == ("75", "Subscriber/Insured Not Found")


def test_a_benefit_level_aaa_is_partial_not_a_refusal(registry_checked):
    """AAA in 2110C: that one question (here the vision EB) went unanswered; the rest stands."""
    text = HAND_271.replace("EB|I||AL~", "EB|I||AL~\nAAA|Y||57|C~")
    result = read_271_text(text)[0]
    assert result.rejects == [] and [r.code for r in result.benefit_rejects] == ["57"]
    bundle = loads(dumps(bundle_from_271(text, clinic_ctx())))
    registry_checked(bundle)
    response = next(e["resource"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "CoverageEligibilityResponse")
    assert response["outcome"] == "partial" and response["insurance"][0]["inforce"] is True
    assert response["error"][0]["code"]["coding"][0]["code"] == "57"


def test_a_date_that_is_not_ccyymmdd_is_refused():
    with pytest.raises(InputError) as err:
        read_271_text(HAND_271.replace("DTP|346|D8|20260101", "DTP|346|D8|260101"))
    assert err.value.problems[0].message == "is not a date (CCYYMMDD)"
