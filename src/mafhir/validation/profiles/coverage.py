"""US Core Coverage (6.1.0 = 7.0.0), US Core RelatedPerson, and the base R4 invariants of
CoverageEligibilityRequest / CoverageEligibilityResponse (applied to every such resource).

Codes are the R4 4.0.1 code systems: fm-status, eligibilityrequest-purpose,
eligibilityresponse-purpose, remittance-outcome (required bindings), subscriber-relationship,
coverage-class and coverage-copay-type (extensible: a code from another system is allowed,
a wrong code in *these* systems is not).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import codings, error, require, select, warning

__all__ = [
    "COVERAGE_CLASS_CODES",
    "COVERAGE_COPAY_TYPE_CODES",
    "ELIGIBILITY_PURPOSES",
    "FM_STATUS",
    "PROFILES",
    "REMITTANCE_OUTCOMES",
    "SUBSCRIBER_RELATIONSHIPS",
    "check_coverage",
    "check_eligibility_request",
    "check_eligibility_response",
    "check_related_person",
]

JSON = dict[str, Any]

CORE = "http://hl7.org/fhir/StructureDefinition/"
COVERAGE_COPAY_TYPE = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"

FM_STATUS = ("active", "cancelled", "draft", "entered-in-error")
ELIGIBILITY_PURPOSES = ("auth-requirements", "benefits", "discovery", "validation")
REMITTANCE_OUTCOMES = ("queued", "complete", "error", "partial")
SUBSCRIBER_RELATIONSHIPS = ("child", "parent", "spouse", "common", "other", "self", "injured")
COVERAGE_CLASS_CODES = ("group", "subgroup", "plan", "subplan", "class", "subclass",
                        "sequence", "rxbin", "rxpcn", "rxid", "rxgroup")
COVERAGE_COPAY_TYPE_CODES = ("gpvisit", "spvisit", "emergency", "inpthosp", "televisit",
                             "urgentcare", "copaypct", "copay", "deductible", "maxoutofpocket")


def _status(resource: JSON) -> Iterator[Issue]:
    rtype = resource["resourceType"]
    status = resource.get("status")
    if status is None:
        yield error(f"{rtype}.status", "is required (fm-status)")
    elif status not in FM_STATUS:
        yield error(f"{rtype}.status", f"must be one of {', '.join(FM_STATUS)} (fm-status)",
                    code="code-invalid")


def _codes_in(resource: JSON, path: str, system: str, allowed: tuple[str, ...],
              name: str) -> Iterator[Issue]:
    """Codings of ``system`` at ``path`` must use a code of that system."""
    rtype = resource["resourceType"]
    for where, concept in select(resource, path, rtype):
        for i, c in enumerate(codings(concept)):
            if c.get("system") == system and c.get("code") not in allowed:
                yield error(f"{where}.coding[{i}].code", f"is not a {name} code",
                            code="code-invalid")


def _purpose(resource: JSON) -> Iterator[Issue]:
    rtype = resource["resourceType"]
    purposes = resource.get("purpose")
    if not purposes:
        yield error(f"{rtype}.purpose", "is required (1..*)")
        return
    for i, p in enumerate(purposes):
        if p not in ELIGIBILITY_PURPOSES:
            yield error(f"{rtype}.purpose[{i}]",
                        f"must be one of {', '.join(ELIGIBILITY_PURPOSES)}", code="code-invalid")


def check_coverage(cov: JSON) -> Iterator[Issue]:
    """US Core Coverage: status, beneficiary, relationship 1..1, payor 1..1, us-core-15."""
    yield from _status(cov)
    yield from require(cov, "beneficiary", "US Core Coverage needs the beneficiary (Patient)")
    yield from require(cov, "relationship", "US Core Coverage.relationship is 1..1")
    yield from _codes_in(cov, "relationship", systems.SUBSCRIBER_RELATIONSHIP,
                         SUBSCRIBER_RELATIONSHIPS, "subscriber-relationship")
    rel = cov.get("relationship")
    if rel and not any(c.get("system") == systems.SUBSCRIBER_RELATIONSHIP for c in codings(rel)):
        yield warning("Coverage.relationship",
                      "should have a subscriber-relationship code (extensible binding)")
    payors = cov.get("payor") or []
    if not payors:
        yield error("Coverage.payor", "is required (US Core Coverage.payor 1..1)")
    for i in range(1, len(payors)):
        yield error(f"Coverage.payor[{i}]", "US Core Coverage allows one payor (max 1)",
                    code="structure")
    members = [
        (where, ident) for where, ident in select(cov, "identifier", "Coverage")
        if any(c.get("system") == systems.V2_0203 and c.get("code") == "MB"
               for c in codings(ident.get("type")))
    ]
    if not members and not cov.get("subscriberId"):
        yield error("Coverage", "needs a member id: an identifier of type MB or subscriberId "
                    "(us-core-15)", code="invariant")
    for where, _ in members[1:]:
        yield error(where, "only one member id identifier (identifier:memberid 0..1)",
                    code="structure")
    for where, ident in members:
        if not ident.get("value"):
            yield error(f"{where}.value", "the member id identifier needs a value")
    seen: dict[str, str] = {}
    for where, cls in select(cov, "class", "Coverage"):
        for i, c in enumerate(codings(cls.get("type"))):
            code = c.get("code")
            if code in ("group", "plan") and c.get("system") != systems.COVERAGE_CLASS:
                yield error(f"{where}.type.coding[{i}].system",
                            f"a '{code}' class type must be from {systems.COVERAGE_CLASS}",
                            code="value")
            elif c.get("system") == systems.COVERAGE_CLASS:
                if code not in COVERAGE_CLASS_CODES:
                    yield error(f"{where}.type.coding[{i}].code", "is not a coverage-class code",
                                code="code-invalid")
                elif code in ("group", "plan"):
                    if code in seen:
                        yield error(where, f"a second '{code}' class (class:{code} 0..1)",
                                    code="structure")
                    seen[code] = where
                    if not (cls.get("value") or _absent(cls.get("_value"))):
                        yield error(f"{where}.value", "is required (or a data-absent-reason "
                                    "when only the name is known)")
    yield from _codes_in(cov, "costToBeneficiary.type", COVERAGE_COPAY_TYPE,
                         COVERAGE_COPAY_TYPE_CODES, "coverage-copay-type")
    order = cov.get("order")
    if order is not None and not (isinstance(order, int) and order >= 1):
        yield error("Coverage.order", "must be a positive integer", code="value")


def check_related_person(rp: JSON) -> Iterator[Issue]:
    """US Core RelatedPerson: active 1..1, patient 1..1, us-core-14 (name or relationship)."""
    if not isinstance(rp.get("active"), bool):
        yield error("RelatedPerson.active", "is required (US Core RelatedPerson)")
    yield from require(rp, "patient")
    if not rp.get("name") and not rp.get("relationship"):
        yield error("RelatedPerson", "needs a name or a relationship (us-core-14)",
                    code="invariant")


def check_eligibility_request(req: JSON) -> Iterator[Issue]:
    """Base R4 CoverageEligibilityRequest: status, purpose, patient, created, insurer."""
    yield from _status(req)
    yield from _purpose(req)
    for path in ("patient", "created", "insurer"):
        yield from require(req, path)
    for where, ins in select(req, "insurance", "CoverageEligibilityRequest"):
        if not ins.get("coverage"):
            yield error(f"{where}.coverage", "is required (insurance.coverage 1..1)")


def check_eligibility_response(rsp: JSON) -> Iterator[Issue]:
    """Base R4 CoverageEligibilityResponse: required elements, outcome, ces-1."""
    rtype = "CoverageEligibilityResponse"
    yield from _status(rsp)
    yield from _purpose(rsp)
    for path in ("patient", "created", "request", "insurer"):
        yield from require(rsp, path)
    outcome = rsp.get("outcome")
    if outcome is None:
        yield error(f"{rtype}.outcome", "is required (remittance-outcome)")
    elif outcome not in REMITTANCE_OUTCOMES:
        yield error(f"{rtype}.outcome", f"must be one of {', '.join(REMITTANCE_OUTCOMES)}",
                    code="code-invalid")
    for where, ins in select(rsp, "insurance", rtype):
        if not ins.get("coverage"):
            yield error(f"{where}.coverage", "is required (insurance.coverage 1..1)")
    for where, item in select(rsp, "insurance.item", rtype):
        if bool(item.get("category")) == bool(item.get("productOrService")):
            yield error(where, "needs category or productOrService, not both (ces-1)",
                        code="invariant")
        for bwhere, benefit in select(item, "benefit", where):
            if not benefit.get("type"):
                yield error(f"{bwhere}.type", "is required")
    for where, err in select(rsp, "error", rtype):
        if not err.get("code"):
            yield error(f"{where}.code", "is required (error.code 1..1)")
    if outcome == "error" and not rsp.get("error"):
        yield warning(f"{rtype}.error", "an 'error' outcome should say why (error.code)")


PROFILES = [
    Profile(systems.profile("us-core-coverage"), "Coverage", check_coverage, "US Core Coverage"),
    Profile(systems.profile("us-core-relatedperson"), "RelatedPerson", check_related_person,
            "US Core RelatedPerson"),
    Profile(CORE + "CoverageEligibilityRequest", "CoverageEligibilityRequest",
            check_eligibility_request, "CoverageEligibilityRequest (base R4)"),
    Profile(CORE + "CoverageEligibilityResponse", "CoverageEligibilityResponse",
            check_eligibility_response, "CoverageEligibilityResponse (base R4)"),
]


def _absent(element: Any) -> bool:
    """Does a primitive's ``_x`` element carry a data-absent-reason extension?"""
    return isinstance(element, dict) and any(
        isinstance(e, dict) and e.get("url") == systems.DATA_ABSENT_EXTENSION and e.get("valueCode")
        for e in element.get("extension", []) or [])
