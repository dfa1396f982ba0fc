"""Every VXU mafhir writes reads back to the same facts: the core's US Core Immunization of
a task → VXU^V04 (vxu_out) → FHIR again (vxu_in), compared element by element with the
Immunization it started from (given, refused and historical doses)."""

from __future__ import annotations

import pytest
from helpers_iis import V2CTX, flu_shot, refusal, resources_of
from helpers_iis_in import corpus_dir, uscore_problems
from mafhir_iis.vxu_in import vxu_to_fhir
from mafhir_iis.vxu_out import VxuSettings, vxu_v04

from mafhir.hl7v2 import parse
from mafhir.hl7v2.context import V2Context

SETTINGS = VxuSettings(facility_id="MAPLE-0042", receiving_application="WIR",
                       receiving_facility="WIR")


def _codes(concept: dict | None, system: str) -> set[str]:
    return {c["code"] for c in (concept or {}).get("coding", []) if c.get("system") == system}


def _facts(imm: dict) -> dict:
    """The facts a VXU carries, as comparable values (codes by system, dates as days)."""
    cvx, ndc = "http://hl7.org/fhir/sid/cvx", "http://hl7.org/fhir/sid/ndc"
    contained = {c["id"]: c for c in imm.get("contained", [])}
    maker = contained.get(imm.get("manufacturer", {}).get("reference", "#")[1:], {})
    return {
        "status": imm["status"],
        "cvx": _codes(imm["vaccineCode"], cvx), "ndc": _codes(imm["vaccineCode"], ndc),
        "day": imm.get("occurrenceDateTime", "")[:10],
        "primarySource": imm.get("primarySource"),
        "reason": _codes(imm.get("statusReason"),
                         "http://terminology.hl7.org/CodeSystem/v3-ActReason"),
        "lot": imm.get("lotNumber"), "expires": imm.get("expirationDate"),
        "mvx": [i["value"] for i in maker.get("identifier", [])],
        "dose": (float(imm["doseQuantity"]["value"]), imm["doseQuantity"].get("code"))
        if "doseQuantity" in imm else None,
        "route": _codes(imm.get("route"),
                        "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"),
        "site": _codes(imm.get("site"), "http://terminology.hl7.org/CodeSystem/v3-ActSite"),
        "eligibility": sorted(c["coding"][0]["code"] for c in imm.get("programEligibility", [])),
        "funding": _codes(imm.get("fundingSource"), "urn:oid:2.16.840.1.114222.4.5.274"),
        "vis": sorted((e.get("documentType"), e.get("presentationDate"))
                      for e in imm.get("education", [])),
    }


@pytest.mark.parametrize("task", [
    flu_shot(),
    refusal(),
    flu_shot("imm-hist", status="historical", occurred=None, occurred_date="2019-10-01",
             report_origin="record", administered_by=None, vis=None, funding_source=None,
             eligibility=None),
], ids=["given", "refused", "historical"])
def test_a_vxu_mafhir_writes_reads_back_to_the_same_facts(task):
    resources = resources_of(task)
    [before] = resources.of_type("Immunization")
    text = vxu_v04(resources, V2CTX, SETTINGS)
    ctx = V2Context(map=V2CTX.map, namespaces={"MAFHIR": V2CTX.map.clinic.mrn_namespace})
    bundle = vxu_to_fhir(parse(text), ctx).bundle
    [after] = [e["resource"] for e in bundle["entry"]
               if e["resource"]["resourceType"] == "Immunization"]
    assert _facts(after) == _facts(before)
    assert uscore_problems(after, corpus_dir()) == []
