"""Coverage profile rules: each catches a broken resource at the right FHIRPath; the codes
and constraints they encode agree with the corpus (R4 code systems, US Core 6.1.0/7.0.0)."""

from __future__ import annotations

import copy
import json
import tarfile
from collections.abc import Callable
from typing import Any

import pytest

from conftest import CTX, load_json
from mafhir.bundle import transaction
from mafhir.pipeline import Pipeline
from mafhir.validation import check_resource
from mafhir.validation.validator import check_definitions

US_CORE_COVERAGE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-coverage"
US_CORE_RP = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-relatedperson"
CORE = "http://hl7.org/fhir/StructureDefinition/"

RAW = {
    "task": "coverage", "id": "cov-7",
    "patient": {"mrn": "MRN-1"},
    "payer": {"id": "60054", "name": "Aetna"},
    "member_id": "W1",
    "group": {"id": "G1", "name": "Group one"},
    "plan": {"id": "P1", "name": "Plan one"},
    "subscriber": {"relationship": "spouse", "family": "Doe"},
    "copays": {"primary_care": 20},
    "eligibility": {"checked_at": "2026-03-04T09:15:00-05:00", "active": True, "copay": 20,
                    "coinsurance_percent": 10, "deductible": {"amount": 100, "remaining": 50}},
}


@pytest.fixture(scope="module")
def made(registry) -> dict[str, dict[str, Any]]:
    pipe = Pipeline(registry, CTX)
    entries = pipe.map_task(0, pipe.parse(0, RAW)).entries
    bundle = transaction(entries)
    return {e["resource"]["resourceType"]: e["resource"] for e in bundle["entry"]
            if e["resource"]["resourceType"] != "Organization"}


def issues(registry, url: str, resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i.severity, i.expression, i.diagnostics)
            for i in registry.profiles[url].check(resource)]


def errors_at(registry, url: str, resource: dict[str, Any]) -> set[str]:
    """Error paths of the hand-written rules registered under ``url``."""
    return {where for sev, where, _ in issues(registry, url, resource) if sev == "error"}


def _explicit(url: str) -> list[str]:
    return [] if url.startswith(CORE) else [url]


def mafhir_errors(registry, url: str, resource: dict[str, Any]) -> set[str]:
    """Error paths of the whole check (structure, then the rules and the engine)."""
    return {i.expression for i in check_resource(resource, registry.profiles,
                                                 explicit=_explicit(url))
            if i.severity in ("error", "fatal")}


def engine_errors(url: str, resource: dict[str, Any]) -> set[str]:
    """Error paths the profile engine alone names (no hand-written rule)."""
    return {i.expression for i in check_definitions(resource, explicit=_explicit(url))
            if i.severity in ("error", "fatal")}


def broken(resource: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    change(out)
    return out


def test_made_resources_pass_every_rule(registry, made):
    for rtype, url in (("Coverage", US_CORE_COVERAGE), ("RelatedPerson", US_CORE_RP),
                       ("CoverageEligibilityRequest", CORE + "CoverageEligibilityRequest"),
                       ("CoverageEligibilityResponse", CORE + "CoverageEligibilityResponse")):
        assert mafhir_errors(registry, url, made[rtype]) == set(), rtype
    assert issues(registry, US_CORE_COVERAGE, made["Coverage"]) == []
    assert issues(registry, CORE + "CoverageEligibilityResponse",
                  made["CoverageEligibilityResponse"]) == []


def _mb_gone(c: dict[str, Any]) -> None:
    c["identifier"] = [i for i in c["identifier"] if "type" not in i]
    del c["subscriberId"]


COVERAGE_BREAKS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("no status", lambda c: c.pop("status"), "Coverage.status"),
    ("status not fm-status", lambda c: c.update(status="expired"), "Coverage.status"),
    ("no beneficiary", lambda c: c.pop("beneficiary"), "Coverage.beneficiary"),
    ("no relationship", lambda c: c.pop("relationship"), "Coverage.relationship"),
    ("relationship not a code", lambda c: c["relationship"]["coding"][0].update(code="cousin"),
     "Coverage.relationship.coding[0].code"),
    ("no payor", lambda c: c.pop("payor"), "Coverage.payor"),
    ("two payors", lambda c: c["payor"].append({"reference": "Organization/2"}),
     "Coverage.payor[1]"),
    ("us-core-15", _mb_gone, "Coverage"),
    ("two member ids", lambda c: c["identifier"].append(copy.deepcopy(c["identifier"][1])),
     "Coverage.identifier[3]"),
    ("group from another system",
     lambda c: c["class"][0]["type"]["coding"][0].update(system="http://example.org/class"),
     "Coverage.class[0].type.coding[0].system"),
    ("coverage-class code unknown",
     lambda c: c["class"][0]["type"]["coding"][0].update(code="team"),
     "Coverage.class[0].type.coding[0].code"),
    ("second plan", lambda c: c["class"].append(copy.deepcopy(c["class"][1])),
     "Coverage.class[2]"),
    ("class without value", lambda c: c["class"][1].pop("value"), "Coverage.class[1].value"),
    ("copay type unknown",
     lambda c: c["costToBeneficiary"][0]["type"]["coding"][0].update(code="gp"),
     "Coverage.costToBeneficiary[0].type.coding[0].code"),
    ("order zero", lambda c: c.update(order=0), "Coverage.order"),
]


@pytest.mark.parametrize(("name", "change", "where"), COVERAGE_BREAKS,
                         ids=[b[0] for b in COVERAGE_BREAKS])
def test_coverage_rule_catches(registry, made, name, change, where):
    assert mafhir_errors(registry, US_CORE_COVERAGE, made["Coverage"]) == set()
    assert where in mafhir_errors(registry, US_CORE_COVERAGE, broken(made["Coverage"], change))


#: The Coverage rules retired: the engine names each from the definitions by itself.
RETIRED = {"no status", "status not fm-status", "no beneficiary", "no relationship", "no payor",
           "two payors", "us-core-15"}


@pytest.mark.parametrize(("name", "change", "where"),
                         [b for b in COVERAGE_BREAKS if b[0] in RETIRED], ids=sorted(RETIRED,
                         key=[b[0] for b in COVERAGE_BREAKS].index))
def test_the_engine_alone_names_each_retired_coverage_rule(registry, made, name, change, where):
    assert engine_errors(US_CORE_COVERAGE, made["Coverage"]) == set()
    bad = broken(made["Coverage"], change)
    assert where in engine_errors(US_CORE_COVERAGE, bad)
    assert where not in errors_at(registry, US_CORE_COVERAGE, bad)  # not said twice


def test_us_core_15_is_met_by_either_member_id(registry, made):
    only_subscriber_id = broken(made["Coverage"], lambda c: c.update(
        identifier=[i for i in c["identifier"] if "type" not in i]))
    assert errors_at(registry, US_CORE_COVERAGE, only_subscriber_id) == set()
    only_mb = broken(made["Coverage"], lambda c: c.pop("subscriberId"))
    assert errors_at(registry, US_CORE_COVERAGE, only_mb) == set()


def test_relationship_from_another_system_is_a_warning(registry, made):
    other = broken(made["Coverage"], lambda c: c.update(relationship={
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0063", "code": "SEL"}]}))
    found = issues(registry, US_CORE_COVERAGE, other)
    assert [(s, w) for s, w, _ in found] == [("warning", "Coverage.relationship")]


RP_BREAKS = [
    ("no active", lambda r: r.pop("active"), "RelatedPerson.active"),
    ("no patient", lambda r: r.pop("patient"), "RelatedPerson.patient"),
    ("us-core-14", lambda r: (r.pop("name"), r.pop("relationship")), "RelatedPerson"),
]


@pytest.mark.parametrize(("name", "change", "where"), RP_BREAKS, ids=[b[0] for b in RP_BREAKS])
def test_related_person_rule_catches(registry, made, name, change, where):
    """All of US Core RelatedPerson is the engine's: it alone names each."""
    assert engine_errors(US_CORE_RP, made["RelatedPerson"]) == set()
    bad = broken(made["RelatedPerson"], change)
    assert where in engine_errors(US_CORE_RP, bad)
    assert where in mafhir_errors(registry, US_CORE_RP, bad)


REQ = CORE + "CoverageEligibilityRequest"
REQ_BREAKS = [
    ("no purpose", lambda r: r.pop("purpose"), "CoverageEligibilityRequest.purpose"),
    ("empty purpose", lambda r: r.update(purpose=[]), "CoverageEligibilityRequest.purpose"),
    ("bad purpose", lambda r: r["purpose"].append("eligibility"),
     "CoverageEligibilityRequest.purpose[2]"),
    ("bad status", lambda r: r.update(status="done"), "CoverageEligibilityRequest.status"),
    ("no patient", lambda r: r.pop("patient"), "CoverageEligibilityRequest.patient"),
    ("no created", lambda r: r.pop("created"), "CoverageEligibilityRequest.created"),
    ("no insurer", lambda r: r.pop("insurer"), "CoverageEligibilityRequest.insurer"),
    ("no coverage", lambda r: r["insurance"][0].pop("coverage"),
     "CoverageEligibilityRequest.insurance[0].coverage"),
]


@pytest.mark.parametrize(("name", "change", "where"), REQ_BREAKS, ids=[b[0] for b in REQ_BREAKS])
def test_eligibility_request_rule_catches(registry, made, name, change, where):
    """The base R4 rules are the engine's: it alone names each."""
    assert engine_errors(REQ, made["CoverageEligibilityRequest"]) == set()
    bad = broken(made["CoverageEligibilityRequest"], change)
    assert where in engine_errors(REQ, bad)
    assert where in mafhir_errors(registry, REQ, bad)


RSP = CORE + "CoverageEligibilityResponse"
ITEM = "CoverageEligibilityResponse.insurance[0].item[0]"
RSP_BREAKS = [
    ("no outcome", lambda r: r.pop("outcome"), "CoverageEligibilityResponse.outcome"),
    ("bad outcome", lambda r: r.update(outcome="done"), "CoverageEligibilityResponse.outcome"),
    ("no request", lambda r: r.pop("request"), "CoverageEligibilityResponse.request"),
    ("no insurer", lambda r: r.pop("insurer"), "CoverageEligibilityResponse.insurer"),
    ("no patient", lambda r: r.pop("patient"), "CoverageEligibilityResponse.patient"),
    ("no created", lambda r: r.pop("created"), "CoverageEligibilityResponse.created"),
    ("no purpose", lambda r: r.pop("purpose"), "CoverageEligibilityResponse.purpose"),
    ("bad purpose", lambda r: r.update(purpose=["eligibility"]),
     "CoverageEligibilityResponse.purpose[0]"),
    ("ces-1 neither", lambda r: r["insurance"][0]["item"][0].pop("category"), ITEM),
    ("ces-1 both", lambda r: r["insurance"][0]["item"][0].update(
        productOrService={"text": "office visit"}), ITEM),
    ("benefit without type", lambda r: r["insurance"][0]["item"][0]["benefit"][0].pop("type"),
     f"{ITEM}.benefit[0].type"),
    ("error without code", lambda r: r.update(error=[{}]),
     "CoverageEligibilityResponse.error[0].code"),
]


@pytest.mark.parametrize(("name", "change", "where"), RSP_BREAKS, ids=[b[0] for b in RSP_BREAKS])
def test_eligibility_response_rule_catches(registry, made, name, change, where):
    """The base R4 rules are the engine's: it alone names each."""
    assert engine_errors(RSP, made["CoverageEligibilityResponse"]) == set()
    bad = broken(made["CoverageEligibilityResponse"], change)
    assert where in engine_errors(RSP, bad)
    assert where in mafhir_errors(registry, RSP, bad)
    assert errors_at(registry, RSP, bad) == set()  # not said twice


def test_an_error_outcome_without_its_error_is_a_warning(registry, made):
    bad = broken(made["CoverageEligibilityResponse"], lambda r: (r.update(outcome="error"),
                                                                 r.pop("error", None)))
    assert [(s, w) for s, w, _ in issues(registry, RSP, bad)] == [
        ("warning", "CoverageEligibilityResponse.error")]


def test_base_rules_apply_without_a_profile_claim(registry, made):
    """check_resource applies the base invariants (ces-1) to every response, at entry paths."""
    bad = broken(made["CoverageEligibilityResponse"], lambda r: r["insurance"][0]["item"][0]
                 .update(productOrService={"text": "office visit"}))
    assert "meta" not in bad
    found = [i for i in check_resource(bad, registry.profiles, "entry[5]")
             if i.severity == "error"]
    assert [(i.expression, "ces-1" in i.diagnostics) for i in found] == [
        ("entry[5].insurance[0].item[0]", True)]


def test_us_core_rules_apply_through_check_resource(registry, made):
    bad = broken(made["Coverage"], lambda c: c["payor"].append({"reference": "Organization/9"}))
    found = [i.expression for i in check_resource(bad, registry.profiles) if i.severity == "error"]
    assert found == ["Coverage.payor[1]"]


# ------------------------------------------------------------------ agreement with the corpus
def concept_codes(path) -> set[str]:
    def walk(concepts):
        for c in concepts:
            yield c["code"]
            yield from walk(c.get("concept", []))
    return set(walk(load_json(path)["concept"]))


@pytest.mark.corpus
def test_code_lists_match_the_r4_code_systems(corpus, made):
    cs = corpus / "fhir-r4-core/codesystems"
    fm = concept_codes(cs / "CodeSystem-fm-status.json")
    req_purpose = concept_codes(cs / "CodeSystem-eligibilityrequest-purpose.json")
    rsp_purpose = concept_codes(cs / "CodeSystem-eligibilityresponse-purpose.json")
    outcome = concept_codes(cs / "CodeSystem-remittance-outcome.json")
    assert len(fm) == 4 and len(outcome) == 4 and len(req_purpose) == 4
    # the engine takes each code of the R4 code systems and names any other (these rules
    # are its own, from the required bindings)
    req, rsp = made["CoverageEligibilityRequest"], made["CoverageEligibilityResponse"]
    for code in sorted(fm):
        assert engine_errors(REQ, {**req, "status": code}) == set(), code
    assert engine_errors(REQ, {**req, "status": "expired"}) == {
        "CoverageEligibilityRequest.status"}
    assert engine_errors(REQ, {**req, "purpose": sorted(req_purpose)}) == set()
    assert engine_errors(RSP, {**rsp, "purpose": sorted(rsp_purpose)}) == set()
    for code in sorted(outcome):
        assert engine_errors(RSP, {**rsp, "outcome": code}) == set(), code
    assert engine_errors(RSP, {**rsp, "outcome": "done"}) == {
        "CoverageEligibilityResponse.outcome"}
    # every code the mapper wrote exists there
    for rtype in ("Coverage", "CoverageEligibilityRequest", "CoverageEligibilityResponse"):
        assert made[rtype]["status"] in fm
    assert set(made["CoverageEligibilityRequest"]["purpose"]) <= req_purpose
    assert set(made["CoverageEligibilityResponse"]["purpose"]) <= rsp_purpose
    assert made["CoverageEligibilityResponse"]["outcome"] in outcome


@pytest.mark.corpus
def test_error_outcome_and_task_statuses_are_r4_codes(corpus, registry):
    from mafhir.tasks.coverage import CoverageTask

    cs = corpus / "fhir-r4-core/codesystems"
    assert "error" in concept_codes(cs / "CodeSystem-remittance-outcome.json")
    statuses = set(CoverageTask.model_fields["status"].annotation.__args__)
    assert statuses == concept_codes(cs / "CodeSystem-fm-status.json")


@pytest.mark.corpus
def test_bindings_are_the_ones_the_r4_definitions_name(corpus):
    """The value sets our codes come from are the ones R4 binds (names = our code systems)."""
    bound = {}
    for rtype in ("Coverage", "CoverageEligibilityResponse"):
        sd = load_json(corpus / f"fhir-r4-core/resources/StructureDefinition-{rtype}.json")
        for e in sd["snapshot"]["element"]:
            if "binding" in e and "valueSet" in e["binding"]:
                bound[e["path"]] = e["binding"]["valueSet"].split("|")[0].rsplit("/", 1)[-1]
    assert bound["Coverage.relationship"] == "subscriber-relationship"
    assert bound["Coverage.class.type"] == "coverage-class"
    assert bound["Coverage.costToBeneficiary.type"] == "coverage-copay-type"
    assert bound["CoverageEligibilityResponse.outcome"] == "remittance-outcome"
    for leaf in ("network", "unit", "term"):
        assert bound[f"CoverageEligibilityResponse.insurance.item.{leaf}"] == f"benefit-{leaf}"
    assert bound["CoverageEligibilityResponse.insurance.item.benefit.type"] == "benefit-type"
    ces1 = [c for e in sd["snapshot"]["element"] for c in e.get("constraint", [])
            if c["key"] == "ces-1"]
    assert ces1[0]["expression"] == "category.exists() xor productOrService.exists()"


@pytest.mark.corpus
def test_emitted_codes_are_seen_in_the_r4_examples(corpus, made):
    """Code systems absent from the corpus (coverage-class, coverage-copay-type, benefit-*)
    are checked against the official examples that use them."""
    ex = corpus / "fhir-r4-examples"
    seen: set[tuple[str | None, str]] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "code" in node and isinstance(node["code"], str):
                seen.add((node.get("system"), node["code"]))
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    for folder in ("Coverage", "CoverageEligibilityResponse"):
        for path in (ex / folder).glob("*.json"):
            collect(load_json(path))
    tho = "http://terminology.hl7.org/CodeSystem/"
    cov, rsp = made["Coverage"], made["CoverageEligibilityResponse"]
    item = rsp["insurance"][0]["item"][0]
    ours = {(c["system"], c["code"]) for cls in cov["class"] for c in cls["type"]["coding"]}
    ours |= {(c["system"], c["code"]) for cost in cov["costToBeneficiary"]
             for c in cost["type"]["coding"]}
    ours |= {(c["system"], c["code"]) for k in ("network", "unit", "term")
             for c in item[k]["coding"]}
    assert ours <= seen, ours - seen
    # benefit types: the examples write them without a system
    benefit_codes = {c["code"] for b in item["benefit"] for c in b["type"]["coding"]}
    assert {c["system"] for b in item["benefit"] for c in b["type"]["coding"]} == {
        tho + "benefit-type"}
    example_benefits = {code for system, code in seen if system is None}
    assert benefit_codes - {"copay", "deductible"} <= example_benefits  # copay-percent
    assert "self" in {code for _, code in seen}


@pytest.mark.corpus
def test_corpus_examples_pass_the_rules(registry, corpus):
    """No false alarms: the official examples meet the rules we apply to them."""
    us = load_json(corpus / "us-core/7.0.0/examples/Coverage-coverage-example.json")
    assert errors_at(registry, US_CORE_COVERAGE, us) == set()
    rp = load_json(corpus / "us-core/7.0.0/examples/RelatedPerson-shaw-niece.json")
    assert mafhir_errors(registry, US_CORE_RP, rp) == set()
    ex = corpus / "fhir-r4-examples"
    for rtype in ("CoverageEligibilityRequest", "CoverageEligibilityResponse"):
        for path in sorted((ex / rtype).glob("*.json")):
            assert mafhir_errors(registry, CORE + rtype, load_json(path)) == set(), path.name
    for path in sorted((ex / "Coverage").glob("*.json")):
        found = errors_at(registry, US_CORE_COVERAGE, load_json(path))
        # base examples do not claim US Core; the only gap is the member id (us-core-15)
        assert found <= {"Coverage"}, (path.name, found)


@pytest.mark.corpus
@pytest.mark.parametrize("version", ["6.1.0", "7.0.0"])
def test_rules_follow_the_us_core_structure_definition(corpus, made, version):
    with tarfile.open(corpus / f"us-core/packages/hl7.fhir.us.core-{version}.tgz") as tar:
        member = tar.extractfile("package/StructureDefinition-us-core-coverage.json")
        assert member is not None
        sd = json.load(member)
    diff = {e["id"]: e for e in sd["differential"]["element"]}
    [inv] = diff["Coverage"]["constraint"]
    assert inv["key"] == "us-core-15"
    assert "code='MB'" in inv["expression"] and "subscriberId.exists()" in inv["expression"]
    assert diff["Coverage.relationship"]["min"] == 1
    assert diff["Coverage.payor"]["max"] == "1"
    assert diff["Coverage.identifier:memberid"]["max"] == "1"
    cov = made["Coverage"]
    for kind in ("group", "plan"):
        assert diff[f"Coverage.class:{kind}"]["max"] == "1"
        pattern = diff[f"Coverage.class:{kind}.type"]["patternCodeableConcept"]["coding"][0]
        ours = [c for cls in cov["class"] for c in cls["type"]["coding"] if c["code"] == kind]
        assert [(c["system"], c["code"]) for c in ours] == [(pattern["system"], pattern["code"])]
    mb = diff["Coverage.identifier:memberid.type"]["patternCodeableConcept"]["coding"][0]
    ours_mb = [c for i in cov["identifier"] for c in i.get("type", {}).get("coding", [])]
    assert [(c["system"], c["code"]) for c in ours_mb] == [(mb["system"], mb["code"])]
    targets = diff["Coverage.payor"]["type"][0]["targetProfile"]
    assert "http://hl7.org/fhir/us/core/StructureDefinition/us-core-organization" in targets
    assert sd["url"] == US_CORE_COVERAGE == cov["meta"]["profile"][0]
    rp_targets = diff["Coverage.beneficiary"]["type"][0]["targetProfile"]
    assert rp_targets == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]


@pytest.mark.corpus
@pytest.mark.parametrize("version", ["6.1.0", "7.0.0"])
def test_related_person_rules_follow_us_core(corpus, made, version):
    with tarfile.open(corpus / f"us-core/packages/hl7.fhir.us.core-{version}.tgz") as tar:
        member = tar.extractfile("package/StructureDefinition-us-core-relatedperson.json")
        assert member is not None
        sd = json.load(member)
    diff = {e["id"]: e for e in sd["differential"]["element"]}
    assert diff["RelatedPerson.active"]["min"] == 1
    [inv] = diff["RelatedPerson"]["constraint"]
    assert inv["key"] == "us-core-14"
    assert inv["expression"] == "name.exists() or relationship.exists()"
    assert made["RelatedPerson"]["active"] is True
