"""US Core Coverage (6.1.0 = 7.0.0) and CoverageEligibilityResponse: what the profile
engine does not say from the StructureDefinitions.

The engine checks status (fm-status), beneficiary, relationship 1..1, payor 1..1, us-core-15,
all of US Core RelatedPerson (active, patient, us-core-14) and of the base R4
CoverageEligibilityRequest/Response (status, purpose, outcome bindings, required elements,
ces-1); tests/test_coverage_profiles.py shows the engine alone naming each. Left here:
codes of subscriber-relationship, coverage-class and coverage-copay-type (extensible
bindings: a code from another system is allowed, a wrong code in *these* systems is not,
which the engine does not look up), the member-id and class slices named at the repeated
element, and mafhir's own warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import codings, error, select, warning

__all__ = [
    "COVERAGE_CLASS_CODES",
    "COVERAGE_COPAY_TYPE_CODES",
    "PROFILES",
    "SUBSCRIBER_RELATIONSHIPS",
    "check_coverage",
    "check_eligibility_response",
]

JSON = dict[str, Any]

CORE = "http://hl7.org/fhir/StructureDefinition/"
COVERAGE_COPAY_TYPE = "http://terminology.hl7.org/CodeSystem/coverage-copay-type"

SUBSCRIBER_RELATIONSHIPS = ("child", "parent", "spouse", "common", "other", "self", "injured")
COVERAGE_CLASS_CODES = ("group", "subgroup", "plan", "subplan", "class", "subclass",
                        "sequence", "rxbin", "rxpcn", "rxid", "rxgroup")
COVERAGE_COPAY_TYPE_CODES = ("gpvisit", "spvisit", "emergency", "inpthosp", "televisit",
                             "urgentcare", "copaypct", "copay", "deductible", "maxoutofpocket")


def _codes_in(resource: JSON, path: str, system: str, allowed: tuple[str, ...],
              name: str) -> Iterator[Issue]:
    """Codings of ``system`` at ``path`` must use a code of that system."""
    rtype = resource["resourceType"]
    for where, concept in select(resource, path, rtype):
        for i, c in enumerate(codings(concept)):
            if c.get("system") == system and c.get("code") not in allowed:
                yield error(f"{where}.coding[{i}].code", f"is not a {name} code",
                            code="code-invalid")


def check_coverage(cov: JSON) -> Iterator[Issue]:
    """US Core Coverage: relationship, class and copay codes, the member id and the class
    slices named at the repeated element, order (status, beneficiary, relationship 1..1,
    payor 1..1 and us-core-15 are the engine's)."""
    yield from _codes_in(cov, "relationship", systems.SUBSCRIBER_RELATIONSHIP,
                         SUBSCRIBER_RELATIONSHIPS, "subscriber-relationship")
    rel = cov.get("relationship")
    if rel and not any(c.get("system") == systems.SUBSCRIBER_RELATIONSHIP for c in codings(rel)):
        yield warning("Coverage.relationship",
                      "should have a subscriber-relationship code (extensible binding)")
    members = [
        (where, ident) for where, ident in select(cov, "identifier", "Coverage")
        if any(c.get("system") == systems.V2_0203 and c.get("code") == "MB"
               for c in codings(ident.get("type")))
    ]
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


def check_eligibility_response(rsp: JSON) -> Iterator[Issue]:
    """mafhir's own warning: an 'error' outcome without the error that says why (the base
    R4 rules, required elements, bindings and ces-1, are the engine's)."""
    if rsp.get("outcome") == "error" and not rsp.get("error"):
        yield warning("CoverageEligibilityResponse.error",
                      "an 'error' outcome should say why (error.code)")


PROFILES = [
    Profile(systems.profile("us-core-coverage"), "Coverage", check_coverage, "US Core Coverage"),
    Profile(CORE + "CoverageEligibilityResponse", "CoverageEligibilityResponse",
            check_eligibility_response, "CoverageEligibilityResponse (mafhir's warning)"),
]


def _absent(element: Any) -> bool:
    """Does a primitive's ``_x`` element carry a data-absent-reason extension?"""
    return isinstance(element, dict) and any(
        isinstance(e, dict) and e.get("url") == systems.DATA_ABSENT_EXTENSION and e.get("valueCode")
        for e in element.get("extension", []) or [])
