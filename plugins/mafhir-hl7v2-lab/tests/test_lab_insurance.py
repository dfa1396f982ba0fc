"""IN1 on inbound orders → US Core Coverage (+ payer Organization), linked from
``ServiceRequest.insurance`` — field by field against values read off the messages by hand."""

from __future__ import annotations

import os
from pathlib import Path

import hl7
import pytest
from helpers_hl7v2_lab import (
    clinic,
    lab_order,
    registry_fixture,  # noqa: F401 - the fixture
    v2ctx,
)
from test_lab_tasks import mapped

from mafhir.hl7v2 import V2Context, from_fhir, parse, to_fhir
from mafhir.resourceset import ResourceSet
from mafhir.testing.plugin import skip_or_fail
from mafhir.validation import check_bundle

CORPUS = Path(os.environ.get("MAFHIR_CORPUS",
                             Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
SYSTEM = "https://maple-clinic.example.org/fhir/id"
US_CORE_COVERAGE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-coverage"
SUB_REL = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"

ORM = (
    "MSH|^~\\&|EHR|OTHERCLINIC|LAB|QUESTLAB|20261127091000-0500||ORM^O01^ORM_O01|ORM-7|P|2.5.1\r"
    f"PID|1||MS-77^^^MAFHIR&{SYSTEM}/mrn&URI^MR||Bell^Tommy||20150302|M\r"
    "IN1|1|PPO-1^Aetna Choice POS II|60054|Aetna||||GRP-77|Acme Corp Staff|||20260101|20261231"
    "||HMO^Health Maintenance Organization^HL70086|Bell^Marcus|PAR^Parent^HL70063"
    "|||||||||||||||||||W123456789|||||||||||||SUB-555\r"
    "ORC|NW|P-300^EHR|||||||20261127091000-0500\r"
    "OBR|1|P-300^EHR||4548-4^Hemoglobin A1c^LN\r"
    "ORC|NW|P-301^EHR|||||||20261127091000-0500\r"
    "OBR|2|P-301^EHR||3016-3^TSH^LN\r"
)


def convert(registry, text: str, ctx: V2Context) -> dict:
    bundle = to_fhir(registry, parse(text.encode()), ctx)
    errors = [i for i in check_bundle(bundle, registry.profiles)
              if i.severity in ("error", "fatal")]
    assert not errors, errors
    return bundle


def of(bundle: dict, rtype: str) -> list[tuple[str, dict]]:
    return [(e["fullUrl"], e["resource"]) for e in bundle["entry"]
            if e["resource"]["resourceType"] == rtype]


def test_in1_becomes_a_us_core_coverage_field_by_field(registry):
    c = clinic(SYSTEM)
    bundle = convert(registry, ORM, v2ctx(c))
    ((cov_url, cov),) = of(bundle, "Coverage")
    ((org_url, org),) = of(bundle, "Organization")
    assert cov["meta"]["profile"] == [US_CORE_COVERAGE]
    assert cov["status"] == "active"
    member = cov["identifier"][1]  # IN1-36
    assert (member["system"], member["value"]) == (f"{SYSTEM}/payer/60054/member-id",
                                                   "W123456789")
    assert member["type"]["coding"][0]["code"] == "MB"
    assert cov["subscriberId"] == "SUB-555"  # IN1-49
    # IN1-17 PAR: the insured is the patient's parent, so the patient is the child
    assert cov["relationship"]["coding"][0] == {"system": SUB_REL, "code": "child",
                                                "display": "Child"}
    assert cov["relationship"]["coding"][1]["code"] == "PAR"
    assert "subscriber" not in cov  # not the patient; no RelatedPerson from IN1-16 (yet)
    ((patient_url, patient),) = of(bundle, "Patient")  # PID, matched on the clinic MRN
    assert (patient["identifier"][0]["system"], patient["identifier"][0]["value"]) == (
        f"{SYSTEM}/mrn", "MS-77")
    assert cov["beneficiary"] == {"reference": patient_url}
    assert cov["period"] == {"start": "2026-01-01", "end": "2026-12-31"}  # IN1-12/13
    assert cov["type"]["coding"][0]["code"] == "HMO"  # IN1-15
    assert cov["class"] == [
        {"type": {"coding": [{"system": CLASS, "code": "group", "display": "Group"}]},
         "value": "GRP-77", "name": "Acme Corp Staff"},  # IN1-8/9
        {"type": {"coding": [{"system": CLASS, "code": "plan", "display": "Plan"}]},
         "value": "PPO-1", "name": "Aetna Choice POS II"},  # IN1-2
    ]
    assert cov["payor"] == [{"reference": org_url}]
    assert org["identifier"] == [{"system": f"{SYSTEM}/payer", "value": "60054"}]  # IN1-3
    assert org["name"] == "Aetna"  # IN1-4
    assert org["type"][0]["coding"][0]["code"] == "pay"
    # every order of the message is billed to it
    orders = [sr for _, sr in of(bundle, "ServiceRequest")]
    assert len(orders) == 2 and all(sr["insurance"] == [{"reference": cov_url}] for sr in orders)
    # conditional creates: a card already on the server is not overwritten by an order
    requests = {e["fullUrl"]: e["request"] for e in bundle["entry"]}
    assert requests[cov_url]["method"] == "POST" and "ifNoneExist" in requests[cov_url]


def test_the_clinics_own_order_finds_the_clinics_coverage(registry):
    coverage = {"task": "coverage", "id": "cov-1", "patient": {"mrn": "MS-10022"},
                "payer": {"id": "60054", "name": "Aetna"}, "member_id": "W123456789",
                "group": {"id": "GRP-77"},
                "subscriber": {"relationship": "child", "family": "Bell", "given": ["Marcus"]}}
    bundle, c = mapped(registry, lab_order(), coverage)
    ctx = v2ctx(c)
    text = from_fhir(registry, "OML^O21", ResourceSet.from_bundle(bundle), ctx)
    assert hl7.parse(text).extract_field("IN1", 1, 17, 1, 1) == "PAR"  # insured = parent
    back = convert(registry, text, ctx)
    ((_, original),) = of(bundle, "Coverage")
    ((_, read),) = of(back, "Coverage")
    assert read["identifier"][0] == original["identifier"][0]  # the same card key
    assert read["identifier"][1]["value"] == original["identifier"][1]["value"]
    assert read["identifier"][1]["system"] == original["identifier"][1]["system"]
    assert read["relationship"]["coding"][0]["code"] == "child"
    ((_, payer),) = of(back, "Organization")
    assert payer["identifier"] == of(bundle, "Organization")[0][1]["identifier"]


def test_an_in1_without_an_insurer_is_an_error(registry):
    bad = ORM.replace("|60054|Aetna|", "|||")
    from mafhir.errors import InputError

    with pytest.raises(InputError) as err:
        to_fhir(registry, parse(bad.encode()), v2ctx(clinic(SYSTEM)))
    assert [p.location for p in err.value.problems] == ["IN1[1]-3"]


@pytest.mark.corpus
def test_corpus_in1_of_the_ig_example(registry):
    path = CORPUS / "hl7v2/oml/hl7-v2-to-fhir-ig/OML_O21.hl7"
    if not path.exists():
        skip_or_fail(f"public corpus not found at {CORPUS} (set MAFHIR_CORPUS)")
    # the file declares ASCII but carries UTF-8 (U+FFFD), which the listener refuses
    # (MSH-18): declared as what it is, its content is what this test reads
    text = path.read_text(encoding="utf-8").replace("|ASCII", "|UNICODE UTF-8", 1)
    bundle = convert(registry, text, v2ctx(authorities=("SndFac",)))
    # hand-read: IN1|1|200101^Medicare A and B|2001|Medicare|…|||123450-1||…|20150101|
    # 20151231||Medicare| Everywoman^…|SEL^Self^HL70063|197006010912|… — the sender's
    # fields are shifted by one from IN1-11 on, so IN1-15/17 hold a name and a birth time
    ((cov_url, cov),) = of(bundle, "Coverage")
    ((org_url, org),) = of(bundle, "Organization")
    assert org["identifier"][0]["value"] == "2001" and org["name"] == "Medicare"
    assert [(k["type"]["coding"][0]["code"], k["value"], k.get("name")) for k in cov["class"]] \
        == [("group", "123450-1", None), ("plan", "200101", "Medicare A and B")]
    assert cov["period"] == {"start": "2015-12-31"}  # IN1-12 as written
    assert "type" not in cov and "relationship" not in cov  # not codes: not guessed at
    assert "meta" not in cov  # no member id or relationship: not claimed as US Core
    assert cov["payor"] == [{"reference": org_url}]
    assert all(sr["insurance"] == [{"reference": cov_url}]
               for _, sr in of(bundle, "ServiceRequest"))
