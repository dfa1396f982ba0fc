"""The immunization task kind: CVX/MVX tables, mapping, profile rules, bad input, round trip.

Expected values come from mapping-reference §3 (hand-copied below), the US Core 7.0.0
imm-1 example and the FHIR R4 Immunization examples in the public corpus — never from
mafhir's own output.
"""

from __future__ import annotations

import copy
import json
import tarfile
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CLINIC, CTX, assert_valid_bundle, load_json
from mafhir.bundle import transaction
from mafhir.codes import cvx, cvx_table, mvx
from mafhir.errors import InputError
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet
from mafhir.validation import check_resource

CVX = "http://hl7.org/fhir/sid/cvx"
MVX = "http://hl7.org/fhir/sid/mvx"
UCUM = "http://unitsofmeasure.org"
ACT_SITE = "http://terminology.hl7.org/CodeSystem/v3-ActSite"
ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
V2_0443 = "http://terminology.hl7.org/CodeSystem/v2-0443"
PHINVS = "urn:oid:2.16.840.1.114222.4.5.274"
PROFILE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-immunization"
MRN_SYSTEM = CLINIC.mrn_namespace
NURSE = {"npi": "1234567893", "family": "Rivera", "given": ["Ana"]}
DOCTOR = {"npi": "1245319599", "family": "Okafor"}


def flu_shot(**over: Any) -> dict[str, Any]:
    """A trivalent flu shot given today (values as an MA would enter them)."""
    task = {
        "task": "immunization", "id": "imm-2025-001",
        "patient": {"mrn": "MRN-42", "system": MRN_SYSTEM},
        "vaccine": {"cvx": "140", "ndc": "49281-0425-50"},
        "occurred": "2025-10-01T09:15:00-04:00",
        "manufacturer": "PMC", "lot_number": "UT8531AA", "expiration_date": "2026-06-30",
        "dose_ml": 0.5, "site": "LD", "route": "IM",
        "administered_by": NURSE, "ordered_by": DOCTOR,
        "vis": [{"document": "253088698300010311250131", "published": "2025-01-31",
                 "presented": "2025-10-01"}],
        "funding_source": "VXC51", "eligibility": "V03",
    }
    task.update(over)
    return {k: v for k, v in task.items() if v is not None}


def refusal(**over: Any) -> dict[str, Any]:
    task = {
        "task": "immunization", "id": "imm-2025-002",
        "patient": {"mrn": "MRN-42", "system": MRN_SYSTEM}, "status": "not-given",
        "vaccine": {"cvx": "140"}, "occurred": "2025-10-01T09:20:00-04:00",
        "reason_not_given": "PATOBJ", "ordered_by": DOCTOR,
    }
    task.update(over)
    return {k: v for k, v in task.items() if v is not None}


@pytest.fixture()
def pipeline(registry):
    return Pipeline(registry, CTX)


def immunization(entries) -> dict[str, Any]:
    found = [e.resource for e in entries if e.resource_type == "Immunization"]
    assert len(found) == 1
    return found[0]


def mapped(pipeline, raw) -> dict[str, Any]:
    result = pipeline.map_task(0, pipeline.parse(0, raw))
    return immunization(result.entries)


def problems(pipeline, raw) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        pipeline.map_task(0, pipeline.parse(0, raw))
    return [(p.location, p.message) for p in info.value.problems]


# ---------------------------------------------------------------- CVX / MVX tables

# mapping-reference §3.2 (CDC table, 2025-12-09): code → (short description, status)
CVX_EXPECTED = {
    "03": ("MMR", "Active"),
    "08": ("Hep B, adolescent or pediatric", "Active"),
    "140": ("Influenza, split virus, trivalent, PF", "Active"),
    "141": ("Influenza, split virus, trivalent, preservative", "Active"),
    "150": ("Influenza, split virus, quadrivalent, PF", "Active"),
    "197": ("Influenza, high-dose, quadrivalent, PF", "Active"),
    "111": ("Influenza, live, trivalent, intranasal, PF", "Active"),
    "115": ("Tdap", "Active"),
    "113": ("Td (adult), 5 Lf tetanus toxoid, preservative free, adsorbed", "Active"),
    "146": ("DTaP,IPV,Hib,HepB", "Active"),
    "203": ("meningococcal conjugate quadrivalent, MenACWY-TT (MCV4)", "Active"),
    "216": ("Pneumococcal conjugate PCV20, polysaccharide CRM197 conjugate, adjuvant, PF",
            "Active"),
    "309": ("COVID-19, mRNA, LNP-S, PF, tris-sucrose, 30 mcg/0.3 mL", "Active"),
    "208": ("COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose", "Inactive"),
    "187": ("zoster recombinant", "Active"),
    "121": ("zoster live", "Inactive"),
    "306": ("RSV, mAb, nirsevimab-alip, 0.5 mL, neonate to 24 months", "Active"),
}
# §3.2: "unspecified formulation" codes and 998/999 are Inactive
CVX_INACTIVE = ("88", "107", "45", "213", "998", "999")


@pytest.mark.parametrize("code", sorted(CVX_EXPECTED))
def test_cvx_table_matches_mapping_reference(code):
    short, status = CVX_EXPECTED[code]
    row = cvx(code)
    assert row is not None
    assert (row.short_description, row.status) == (short, status)


@pytest.mark.parametrize("code", CVX_INACTIVE)
def test_unspecified_and_no_vaccine_codes_are_inactive(code):
    assert cvx(code).status == "Inactive"


def test_cvx_codes_are_strings_with_leading_zeros():
    assert cvx("03").short_description == "MMR"
    assert cvx("3") is None and cvx("8") is None
    assert all(isinstance(code, str) for code in cvx_table())


def test_mvx_table_matches_mapping_reference():
    # §3.3: PMC Sanofi Pasteur Active, NOV Novartis Inactive, SEQ Seqirus Active, MOD Moderna
    assert (mvx("PMC").name.casefold(), mvx("PMC").status) == ("sanofi pasteur", "Active")
    assert (mvx("NOV").name, mvx("NOV").status) == ("Novartis Pharmaceutical Corporation",
                                                    "Inactive")
    assert mvx("SEQ").status == "Active" and mvx("MOD").name == "Moderna US, Inc."
    assert mvx("pmc") == mvx("PMC") and mvx("ZZZ") is None


@pytest.mark.corpus
def test_every_corpus_cvx_and_mvx_code_is_shipped(corpus):
    sets = corpus / "code-sets" / "aira-immunization-codebase"
    for name, lookup in (("Vaccination CVX Code.xml", cvx),
                         ("Vaccination Manufacturer Code.xml", mvx)):
        codes = [c.findtext("value").strip() for c in ET.parse(sets / name).getroot().iter("code")]
        assert len(codes) > 80
        missing = [c for c in codes if lookup(c) is None]
        assert not missing, f"{name}: {missing}"


def test_csv_headers_name_their_source():
    from importlib import resources

    data = resources.files("mafhir.codes").joinpath("data")
    for name in ("cvx.csv", "mvx.csv"):
        head = data.joinpath(name).read_text(encoding="utf-8").splitlines()[:4]
        assert any("immregistries/codebase@641f2ea42152" in line for line in head), name
        assert all(line.startswith("#") for line in head[:3])


# ---------------------------------------------------------------- mapping vs. corpus examples


@pytest.mark.corpus
def test_matches_us_core_imm_1_example(corpus, pipeline):
    """US Core imm-1: CVX 197 high-dose flu, 2020-11-19T12:46:57-08:00, historical record."""
    example = load_json(corpus / "us-core/7.0.0/examples/Immunization-imm-1.json")
    ours = mapped(pipeline, {
        "task": "immunization", "id": "imm-1", "patient": {"mrn": "example"},
        "status": "historical", "report_origin": "record",
        "vaccine": {"cvx": "197", "ndc": "49281012165"},
        "occurred": "2020-11-19T12:46:57-08:00", "visit": "example-1",
        "location": {"id": "hospital", "name": "Holy Family Hospital"},
    })
    for key in ("status", "occurrenceDateTime", "primarySource"):
        assert ours[key] == example[key], key
    theirs = {(c["system"], c["code"]) for c in example["vaccineCode"]["coding"]}
    assert {(c["system"], c["code"]) for c in ours["vaccineCode"]["coding"]} == theirs
    assert ours["location"]["display"] == example["location"]["display"]
    assert ours["meta"]["profile"][0] == example["meta"]["profile"][0].split("|")[0]


@pytest.mark.corpus
def test_matches_r4_not_given_example(corpus, pipeline):
    """R4 'notGiven': DTP (CVX 01, Inactive) not given for medical precaution."""
    example = load_json(corpus / "fhir-r4-examples/Immunization/Immunization-notGiven.json")
    ours = mapped(pipeline, refusal(vaccine={"cvx": "01"}, reason_not_given="MEDPREC",
                                    occurred="2013-01-10T10:00:00+11:00", ordered_by=None))
    assert ours["status"] == example["status"] == "not-done"
    assert ours["statusReason"]["coding"][0]["system"] == example["statusReason"]["coding"][0][
        "system"] == ACT_REASON
    assert ours["statusReason"]["coding"][0]["code"] == "MEDPREC"
    assert ours["vaccineCode"]["coding"][0]["code"] == "01"
    assert ours["vaccineCode"]["coding"][0]["display"] == example["vaccineCode"]["coding"][0][
        "display"]
    assert ours["primarySource"] is example["primarySource"] is True
    assert ours["occurrenceDateTime"][:10] == example["occurrenceDateTime"]
    for absent in ("lotNumber", "site", "route", "doseQuantity", "manufacturer"):
        assert absent not in ours and absent not in example


@pytest.mark.corpus
def test_matches_r4_protocol_example(corpus, pipeline):
    """R4 'protocol': Twinrix (CVX 104), lot PT123F exp 2018-12-15, LA, IM, OP + AP."""
    example = load_json(corpus / "fhir-r4-examples/Immunization/Immunization-protocol.json")
    ours = mapped(pipeline, flu_shot(
        vaccine={"cvx": "104"}, occurred="2018-06-18T10:00:00+10:00", manufacturer="SKB",
        lot_number="PT123F", expiration_date="2018-12-15", site="LA", route="IM",
        vis=[], funding_source=None, eligibility=None,
    ))
    assert ours["vaccineCode"]["coding"][0] == {**example["vaccineCode"]["coding"][0],
                                                "display": "Hep A-Hep B"}
    for key in ("status", "lotNumber", "expirationDate", "primarySource"):
        assert ours[key] == example[key], key
    assert ours["occurrenceDateTime"][:10] == example["occurrenceDateTime"]
    for key in ("site", "route"):
        assert ours[key]["coding"][0] == example[key]["coding"][0], key
    functions = [p["function"]["coding"][0] for p in ours["performer"]]
    assert {(f["system"], f["code"]) for f in functions} == {
        (p["function"]["coding"][0]["system"], p["function"]["coding"][0]["code"])
        for p in example["performer"]}
    assert "Organization" in [c["resourceType"] for c in ours["contained"]]
    assert set(example["manufacturer"]) == {"reference"} and "reference" in ours["manufacturer"]


@pytest.mark.corpus
def test_matches_r4_subpotent_example_dose_and_education(corpus, pipeline):
    """R4 'subpotent': 0.5 mL in the left thigh, VIS 253088698300010311120702."""
    example = load_json(corpus / "fhir-r4-examples/Immunization/Immunization-subpotent.json")
    edu = example["education"][0]
    ours = mapped(pipeline, flu_shot(
        vaccine={"cvx": "08"}, occurred="2015-01-15T10:00:00+11:00", lot_number="AAJN11K",
        expiration_date="2015-02-28", site="LT", dose_ml=0.5, manufacturer="MSD",
        vis=[{"document": edu["documentType"], "published": edu["publicationDate"],
              "presented": edu["presentationDate"]}],
    ))
    assert ours["doseQuantity"]["value"] == example["doseQuantity"]["value"] == 0.5
    assert ours["doseQuantity"]["system"] == example["doseQuantity"]["system"] == UCUM
    assert ours["doseQuantity"]["code"].lower() == example["doseQuantity"]["code"]
    assert ours["site"]["coding"][0] == example["site"]["coding"][0]
    assert ours["education"] == example["education"]
    assert (ours["lotNumber"], ours["expirationDate"]) == (example["lotNumber"],
                                                          example["expirationDate"])


@pytest.mark.corpus
def test_historical_string_date_like_r4_historical_example(corpus, pipeline):
    example = load_json(corpus / "fhir-r4-examples/Immunization/Immunization-historical.json")
    ours = mapped(pipeline, {
        "task": "immunization", "id": "hist-1", "patient": {"mrn": "MRN-42"},
        "status": "historical", "vaccine": {"cvx": "88"},  # Inactive: fine for history
        "occurred_text": example["occurrenceString"], "report_origin": "record",
    })
    assert ours["occurrenceString"] == "January 2012"
    assert ours["primarySource"] is example["primarySource"] is False
    assert ours["reportOrigin"]["coding"][0] == {**example["reportOrigin"]["coding"][0],
                                                 "display": example["reportOrigin"]["text"]}
    assert "statusReason" not in ours


@pytest.mark.corpus
def test_r4_examples_pass_base_rules_and_imm_1_is_checked(corpus, registry):
    for path in sorted((corpus / "fhir-r4-examples/Immunization").glob("*.json")):
        issues = check_resource(load_json(path), registry.profiles)
        assert not [i for i in issues if i.severity == "error"], (path.name, issues)
    broken = load_json(corpus / "fhir-r4-examples/Immunization/Immunization-example.json")
    del broken["education"][0]["documentType"]
    issues = check_resource(broken, registry.profiles)
    assert [(i.severity, i.expression) for i in issues if "imm-1" in i.diagnostics] == [
        ("error", "Immunization.education[0]")]


@pytest.mark.corpus
def test_us_core_example_passes_profile_rules(corpus, registry):
    example = load_json(corpus / "us-core/7.0.0/examples/Immunization-imm-1.json")
    issues = check_resource(example, registry.profiles)
    assert not [i for i in issues if i.severity in ("error", "fatal")], issues


@pytest.mark.corpus
def test_profile_mandatory_elements_match_both_us_core_versions(corpus):
    sd7 = load_json(corpus / "us-core/7.0.0/StructureDefinition/"
                             "StructureDefinition-us-core-immunization.json")
    with tarfile.open(corpus / "us-core/packages/hl7.fhir.us.core-6.1.0.tgz") as tar:
        sd6 = json.load(tar.extractfile("package/StructureDefinition-us-core-immunization.json"))
    for sd in (sd6, sd7):
        mandatory = {e["path"] for e in sd["snapshot"]["element"]
                     if e.get("min", 0) > 0 and e["path"].count(".") == 1}
        assert mandatory == {"Immunization.status", "Immunization.vaccineCode",
                             "Immunization.patient", "Immunization.occurrence[x]"}
        status = next(e for e in sd["snapshot"]["element"] if e["path"] == "Immunization.status")
        assert status["binding"]["strength"] == "required"


# ---------------------------------------------------------------- our output


def test_given_dose_maps_every_element(pipeline, registry):
    result = pipeline.map_task(0, pipeline.parse(0, flu_shot(visit="appt-7",
                                                             location={"id": "r1",
                                                                       "name": "Room 1"})))
    bundle = assert_valid_bundle(result.entries, registry)
    imm = immunization(result.entries)
    assert imm["meta"]["profile"] == [PROFILE]
    assert imm["identifier"] == [{"system": CLINIC.task_system("immunization"),
                                  "value": "imm-2025-001"}]
    assert imm["status"] == "completed" and imm["primarySource"] is True
    assert "statusReason" not in imm
    assert imm["vaccineCode"]["coding"][0] == {
        "system": CVX, "code": "140", "display": "Influenza, split virus, trivalent, PF"}
    assert imm["occurrenceDateTime"] == "2025-10-01T09:15:00-04:00"
    assert imm["doseQuantity"] == {"value": 0.5, "unit": "mL", "system": UCUM, "code": "mL"}
    assert imm["site"]["coding"][0] == {"system": ACT_SITE, "code": "LD",
                                        "display": "left deltoid"}
    assert imm["route"]["coding"][0]["code"] == "IM"
    assert imm["lotNumber"] == "UT8531AA" and imm["expirationDate"] == "2026-06-30"
    org = imm["contained"][0]
    assert imm["manufacturer"]["reference"] == "#" + org["id"]
    assert org["identifier"] == [{"system": MVX, "value": "PMC"}]
    assert [(p["function"]["coding"][0]["system"], p["function"]["coding"][0]["code"])
            for p in imm["performer"]] == [(V2_0443, "AP"), (V2_0443, "OP")]
    assert imm["education"][0]["documentType"] == "253088698300010311250131"
    assert imm["fundingSource"]["coding"][0] == {"system": PHINVS, "code": "VXC51",
                                                 "display": "Public VFC"}
    assert imm["programEligibility"][0]["coding"][0]["code"] == "V03"
    assert imm["encounter"]["reference"].endswith("/encounter|appt-7")
    # performers, location: resolvable in the Bundle
    urls = {e["fullUrl"] for e in bundle["entry"]}
    linked = next(e["resource"] for e in bundle["entry"]
                  if e["resource"]["resourceType"] == "Immunization")
    assert linked["location"]["reference"] in urls
    assert all(p["actor"]["reference"] in urls for p in linked["performer"])


def test_refusal_maps_to_not_done_with_reason(pipeline, registry):
    result = pipeline.map_task(0, pipeline.parse(0, refusal(
        vis=[{"document": "253088698300010311250131", "presented": "2025-10-01"}])))
    assert_valid_bundle(result.entries, registry)
    imm = immunization(result.entries)
    assert imm["status"] == "not-done" and imm["primarySource"] is True
    assert imm["statusReason"]["coding"][0] == {"system": ACT_REASON, "code": "PATOBJ",
                                                "display": "patient objection"}
    for absent in ("lotNumber", "doseQuantity", "site", "route", "manufacturer"):
        assert absent not in imm


def test_nasal_route_uses_nasinhl(pipeline):
    imm = mapped(pipeline, flu_shot(vaccine={"cvx": "111"}, route="NASINHL", site="BN",
                                    manufacturer="MED"))
    assert imm["route"]["coding"][0] == {"system": ROUTE, "code": "NASINHL",
                                         "display": "Inhalation, nasal"}


def test_historical_dose_with_inactive_code_and_date(pipeline, registry):
    result = pipeline.map_task(0, pipeline.parse(0, {
        "task": "immunization", "id": "h-2", "patient": {"mrn": "MRN-42"},
        "status": "historical", "vaccine": {"cvx": "121"}, "occurred_date": "2016-05-02",
        "report_origin": "recall"}))
    assert_valid_bundle(result.entries, registry)
    imm = immunization(result.entries)
    assert imm["occurrenceDateTime"] == "2016-05-02" and imm["primarySource"] is False
    assert imm["reportOrigin"]["coding"][0]["code"] == "recall"


def test_warnings_for_missing_lot_and_inactive_manufacturer(pipeline):
    result = pipeline.map_task(0, pipeline.parse(0, flu_shot(lot_number=None, manufacturer="NOV",
                                                             dose_ml=2.0)))
    where = {p.location for p in result.warnings}
    assert where == {"task[0].lot_number", "task[0].manufacturer", "task[0].dose_ml"}


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(("raw", "location", "reason"), [
    (flu_shot(vaccine={"cvx": "777"}), "task[0].vaccine.cvx", "not a code in the CDC CVX"),
    (flu_shot(vaccine={"cvx": "208"}), "task[0].vaccine.cvx", "Inactive"),
    (flu_shot(vaccine={"cvx": "88"}), "task[0].vaccine.cvx", "historical records"),
    (flu_shot(expiration_date="2025-09-30"), "task[0].expiration_date", "expired"),
    (flu_shot(occurred="2025-10-01T09:15:00"), "task[0].occurred", "UTC offset"),
    (flu_shot(occurred=None), "task[0].occurred", "is required"),
    (flu_shot(manufacturer="XYZ"), "task[0].manufacturer", "not a code in the CDC MVX"),
    (flu_shot(colour="blue"), "task[0].colour", "unknown field"),
    (flu_shot(route="NASINHLC"), "task[0].route", "NASINHL"),
    (flu_shot(site="LEFT ARM"), "task[0].site", "LD"),
    (flu_shot(dose_ml=0), "task[0].dose_ml", "greater than 0"),
    (flu_shot(reason_not_given="PATOBJ"), "task[0].reason_not_given", "not-done"),
    (flu_shot(occurred_text="last fall"), "task[0].occurred_text", "historical"),
    (flu_shot(vis=[{"published": "2025-01-31"}]), "task[0].vis[0]", "imm-1"),
    (flu_shot(vis=[{"document": "2530886983"}]), "task[0].vis[0].document", "pattern"),
    (flu_shot(funding_source="VFC"), "task[0].funding_source", "VXC51"),
    (flu_shot(eligibility="V00"), "task[0].eligibility", "V01"),
    (flu_shot(administered_by={"npi": "1234567890", "family": "X"}),
     "task[0].administered_by.npi", "NPI"),
    (refusal(reason_not_given=None), "task[0].reason_not_given", "required"),
    (refusal(lot_number="UT1"), "task[0].lot_number", "no product was given"),
    (refusal(dose_ml=0.5), "task[0].dose_ml", "no product was given"),
    (refusal(reason_not_given="BECAUSE"), "task[0].reason_not_given", "PATOBJ"),
    ({"task": "immunization", "id": "h", "patient": {"mrn": "1"}, "status": "historical",
      "vaccine": {"cvx": "03"}}, "task[0].occurred", "exactly one"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_names_the_field(pipeline, raw, location, reason):
    found = problems(pipeline, raw)
    assert any(loc == location and reason in msg for loc, msg in found), found


def test_error_messages_do_not_echo_patient_data(pipeline):
    raw = flu_shot(vaccine={"cvx": "777"})
    raw["patient"] = {"mrn": "SECRET-MRN", "family": "Zyx", "gender": "female",
                      "birth_date": "2001-02-03", "bogus": 1}
    text = " ".join(f"{loc} {msg}" for loc, msg in problems(pipeline, raw))
    assert "SECRET" not in text and "Zyx" not in text and "2001" not in text


# ---------------------------------------------------------------- profile rules catch breakage


def good_resource(pipeline) -> dict[str, Any]:
    return copy.deepcopy(mapped(pipeline, flu_shot()))


def errors_of(resource, registry) -> list[tuple[str, str]]:
    """Findings of the full check plus the immunization rules run directly.

    The rules are also run directly because a structural failure (e.g. no occurrence[x],
    which the R4 model itself requires) stops ``check_resource`` before the profile rules.
    """
    issues = list(check_resource(resource, registry.profiles))
    for url in (PROFILE, "http://hl7.org/fhir/StructureDefinition/Immunization"):
        issues.extend(registry.profiles[url].check(resource))
    return [(i.severity, i.expression) for i in issues if i.severity in ("error", "warning")]


def test_retired_rules_are_named_by_the_engine_alone(pipeline, registry):
    """imm-1 and the status binding were hand-written too: the engine names each at the
    same place by itself, and the rules no longer say it a second time."""
    from mafhir.validation.validator import check_definitions

    def engine(resource):
        return [(i.severity, i.expression) for i in check_definitions(resource)
                if i.severity in ("error", "fatal")]

    def rules(resource):
        return [(i.severity, i.expression)
                for url in (PROFILE, "http://hl7.org/fhir/StructureDefinition/Immunization")
                for i in registry.profiles[url].check(resource)]

    resource = good_resource(pipeline)
    assert engine(resource) == []
    resource["education"][0].pop("documentType")
    assert engine(resource) == [("error", "Immunization.education[0]")]
    assert ("error", "Immunization.education[0]") not in rules(resource)
    resource = good_resource(pipeline)
    resource["status"] = "stopped"
    assert engine(resource) == [("error", "Immunization.status")]
    assert ("error", "Immunization.status") not in rules(resource)


@pytest.mark.parametrize(("breakage", "expected"), [
    (lambda r: r.pop("vaccineCode"), ("error", "Immunization.vaccineCode")),
    # NDC alone is conformant to US Core (extensible binding): mafhir only warns
    (lambda r: r["vaccineCode"]["coding"].pop(0), ("warning", "Immunization.vaccineCode")),
    (lambda r: r["vaccineCode"]["coding"][0].update(code="777"),
     ("warning", "Immunization.vaccineCode.coding[0].code")),
    (lambda r: r["vaccineCode"]["coding"][0].update(code="208"),
     ("warning", "Immunization.vaccineCode.coding[0].code")),
    (lambda r: r.pop("occurrenceDateTime"), ("error", "Immunization.occurrence[x]")),
    (lambda r: r.pop("primarySource"), ("warning", "Immunization.primarySource")),
    (lambda r: r.update(statusReason={"coding": [{"system": ACT_REASON, "code": "PATOBJ"}]}),
     ("warning", "Immunization.statusReason")),
    (lambda r: r.update(status="stopped"), ("error", "Immunization.status")),
    (lambda r: r["doseQuantity"].pop("system"), ("error", "Immunization.doseQuantity.system")),
    (lambda r: r["doseQuantity"].update(system="http://example.org/units"),
     ("warning", "Immunization.doseQuantity.system")),
    (lambda r: r["education"][0].pop("documentType"), ("error", "Immunization.education[0]")),
    (lambda r: r.update(contained=[]), ("error", "Immunization.manufacturer.reference")),
])
def test_profile_rules_catch_broken_resources(pipeline, registry, breakage, expected):
    resource = good_resource(pipeline)
    assert not [e for e in errors_of(resource, registry) if e[0] == "error"]
    breakage(resource)
    if not resource.get("contained", True):
        resource.pop("contained")
    assert expected in errors_of(resource, registry)


def test_manufacturer_as_codeable_concept_is_refused(pipeline, registry):
    resource = good_resource(pipeline)
    resource.pop("contained")
    resource["manufacturer"] = {"coding": [{"system": MVX, "code": "PMC"}]}
    assert any(sev == "error" and where.startswith("Immunization.manufacturer")
               for sev, where in errors_of(resource, registry))


# ---------------------------------------------------------------- round trip


def round_trip(registry, task):
    entries = registry.mapper("immunization").to_fhir(task, CTX)
    bundle = transaction(entries)
    return registry.mapper("immunization").from_fhir(ResourceSet.from_bundle(bundle))


@pytest.mark.parametrize("raw", [
    flu_shot(visit="appt-7", location={"id": "r1", "name": "Room 1"}, note="no reaction"),
    refusal(),
    refusal(reason_not_given="OSTOCK", vaccine={"cvx": "187"}),
    {"task": "immunization", "id": "h-1", "patient": {"mrn": "9", "system": MRN_SYSTEM},
     "status": "historical", "vaccine": {"cvx": "88"}, "occurred_text": "fall 2019",
     "report_origin": "recall"},
    {"task": "immunization", "id": "h-2", "patient": {"mrn": "9", "system": MRN_SYSTEM},
     "status": "historical", "vaccine": {"cvx": "03"}, "occurred_date": "2001-04-05"},
], ids=["given", "refused", "out-of-stock", "historical-text", "historical-date"])
def test_round_trip_keeps_every_value(pipeline, registry, raw):
    task = pipeline.parse(0, raw)
    assert round_trip(registry, task) == [task]


@settings(max_examples=50, deadline=None)
@given(
    dose=st.sampled_from([0.1, 0.2, 0.25, 0.3, 0.5, 0.65, 0.7, 1.0]),
    site=st.sampled_from(["LD", "RD", "LA", "RA", "LT", "RT", "LVL", "RVL", "LG", "RG", "BN"]),
    route=st.sampled_from(["IM", "SQ", "IDINJ", "PO", "NASINHL", "IVINJ", "TRNSDERM"]),
    cvx_code=st.sampled_from(["03", "08", "140", "150", "115", "187", "309", "216"]),
    when=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2035, 12, 31),
                      timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                                 timezone(timedelta(hours=5, minutes=30))])),
    shelf=st.integers(min_value=0, max_value=800),
    micro=st.sampled_from([0, 123000]),
)
def test_round_trip_property(registry, dose, site, route, cvx_code, when, shelf, micro):
    when = when.replace(microsecond=micro)
    expiry = when.date() + timedelta(days=shelf)
    task = Pipeline(registry, CTX).parse(0, flu_shot(
        dose_ml=dose, site=site, route=route, vaccine={"cvx": cvx_code},
        occurred=when.isoformat(), expiration_date=expiry.isoformat()))
    imm = immunization(registry.mapper("immunization").to_fhir(task, CTX))
    assert imm["doseQuantity"]["value"] == dose and imm["site"]["coding"][0]["code"] == site
    back = round_trip(registry, task)
    assert back == [task]
    assert back[0].occurred == when and back[0].expiration_date == expiry


def test_from_fhir_skips_foreign_immunizations(registry):
    foreign = {"resourceType": "Immunization", "status": "completed",
               "vaccineCode": {"coding": [{"system": CVX, "code": "03"}]},
               "patient": {"reference": "Patient/x"}, "occurrenceDateTime": "2020-01-01"}
    assert registry.mapper("immunization").from_fhir(ResourceSet.of([foreign])) == []


def test_expiry_on_the_administration_day_is_still_good(pipeline):
    imm = mapped(pipeline, flu_shot(expiration_date=date(2025, 10, 1).isoformat()))
    assert imm["expirationDate"] == "2025-10-01"


# --- a dose given now needs a CVX code the CDC lists as Active ----------------------------


def _cdc_cvx_by_status(corpus) -> dict[str, list[str]]:
    """CDC's own cvx.xml (corpus code-sets/cdc), read independently of codes/data/cvx.csv."""
    root = ET.parse(corpus / "code-sets/cdc/cvx.xml").getroot()
    by_status: dict[str, list[str]] = {}
    for info in root.iter("CVXInfo"):
        code = (info.findtext("CVXCode") or "").strip()
        by_status.setdefault((info.findtext("Status") or "").strip(), []).append(code)
    return by_status


@pytest.mark.corpus
@pytest.mark.parametrize("status", ["Never Active", "Non-US", "Inactive"])
def test_a_given_dose_of_a_code_cdc_lists_as_not_active_is_refused(corpus, pipeline, status):
    codes = _cdc_cvx_by_status(corpus)[status]
    assert codes, status
    for code in codes:
        found = problems(pipeline, flu_shot(vaccine={"cvx": code}, manufacturer=None,
                                            ndc=None))
        assert [loc for loc, _ in found] == ["task[0].vaccine.cvx"], (code, found)
        assert status in found[0][1], (code, found)


@pytest.mark.corpus
def test_a_given_dose_of_an_active_cdc_code_is_not_refused_for_its_status(corpus, pipeline):
    for code in _cdc_cvx_by_status(corpus)["Active"][:40]:
        raw = flu_shot(vaccine={"cvx": code}, manufacturer=None)
        try:
            pipeline.map_task(0, pipeline.parse(0, raw))
        except InputError as exc:  # other rules may object (e.g. an oral vaccine's route)
            assert not [p for p in exc.problems if p.location.endswith("vaccine.cvx")], code
