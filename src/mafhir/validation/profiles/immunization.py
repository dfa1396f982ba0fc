"""US Core Immunization (6.1.0 and 7.0.0) and the base R4 Immunization invariant imm-1.

US Core 6.1.0 and 7.0.0 have the same mandatory elements (status, vaccineCode, patient,
occurrence[x]); 7.0.0 adds encounter and location as Must Support, which are optional and
need no rule. Rules on ``CORE + "Immunization"`` apply to every Immunization.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import systems
from ...codes import cvx
from ...registry import Profile
from ..issues import Issue
from ..rules import codings, error, plausibility, require, select, warning

__all__ = ["PROFILES", "check_immunization", "check_us_core_immunization"]

JSON = dict[str, Any]

CORE = "http://hl7.org/fhir/StructureDefinition/Immunization"


def check_immunization(imm: JSON) -> Iterator[Issue]:
    """Base R4 rules every Immunization must meet, whichever profile it claims (imm-1 is
    the engine's alone: it names it at the same education element)."""
    dose = imm.get("doseQuantity")
    if isinstance(dose, dict):
        if dose.get("value") is None:
            yield error("Immunization.doseQuantity.value", "is required when a dose is given")
        if dose.get("code") and not dose.get("system"):
            yield error("Immunization.doseQuantity.system",
                        "is required when a code is present (qty-3)", code="invariant")
        elif dose.get("system") not in (None, systems.UCUM):
            yield warning("Immunization.doseQuantity.system",
                          f"should be UCUM ({systems.UCUM}), e.g. code 'mL'")
        elif dose.get("system") == systems.UCUM and not dose.get("code"):
            yield error("Immunization.doseQuantity.code", "a UCUM quantity needs its code")
    yield from _manufacturer(imm)


def _manufacturer(imm: JSON) -> Iterator[Issue]:
    """R4 manufacturer is a Reference(Organization); a local one must be contained."""
    ref = imm.get("manufacturer")
    if ref is None:
        return
    if not isinstance(ref, dict) or "coding" in ref:
        yield error("Immunization.manufacturer",
                    "is a Reference(Organization) in R4, not a CodeableConcept", code="structure")
        return
    target = ref.get("reference")
    if isinstance(target, str) and target.startswith("#"):
        found = [c for c in imm.get("contained", []) if c.get("id") == target[1:]]
        if not found:
            yield error("Immunization.manufacturer.reference",
                        "refers to a contained resource that is not there", code="not-found")
        elif found[0].get("resourceType") != "Organization":
            yield error("Immunization.manufacturer.reference", "must refer to an Organization",
                        code="value")
    elif not (target or ref.get("identifier") or ref.get("display")):
        yield error("Immunization.manufacturer", "needs a reference, identifier or display")


def check_us_core_immunization(imm: JSON) -> Iterator[Issue]:
    """US Core Immunization: mandatory and Must Support elements, CVX, not-done rules (the
    status and its required binding are the engine's alone)."""
    status = imm.get("status")
    yield from require(imm, "vaccineCode", "US Core Immunization needs the vaccine (CVX)")
    cvx_codings = [c for c in codings(imm.get("vaccineCode")) if c.get("system") == systems.CVX]
    if imm.get("vaccineCode") and not cvx_codings:
        # US Core binds vaccineCode extensibly (CVX, NDC as an additional binding): NDC
        # alone or text alone is conformant, though registries want CVX
        yield plausibility("Immunization.vaccineCode",
                           f"no CVX coding ({systems.CVX}); immunization registries expect "
                           "one (NDC as a translation)")
    for i, c in enumerate(codings(imm.get("vaccineCode"))):
        if c.get("system") != systems.CVX:
            continue
        where = f"Immunization.vaccineCode.coding[{i}].code"
        row = cvx(str(c.get("code", "")))
        if row is None:
            yield warning(where, "is not in mafhir's CDC CVX table (new or mistyped code?)",
                          code="code-invalid")
        elif status == "completed" and imm.get("primarySource") is True and not row.active:
            yield warning(where, f"CVX {row.code} is {row.status}; a dose given by the "
                                 "recording organization should use an Active code")
    yield from require(imm, "patient", "US Core Immunization needs the patient")
    if "occurrenceDateTime" not in imm and "occurrenceString" not in imm:
        yield error("Immunization.occurrence[x]", "is required (US Core: 1..1)")
    if "primarySource" not in imm:
        yield warning("Immunization.primarySource",
                      "is Must Support: say whether the recording organization gave the dose")
    if imm.get("statusReason") and status != "not-done":
        # Not a conformance error (R4 has no invariant), but statusReason explains why a
        # dose was not given; on a completed dose it contradicts the status.
        yield warning("Immunization.statusReason",
                      "is for status not-done (why the dose was not given)")
    if status == "not-done" and not imm.get("statusReason"):
        yield warning("Immunization.statusReason", "should say why the dose was not given")
    if imm.get("reportOrigin") and imm.get("primarySource") is not False:
        yield warning("Immunization.reportOrigin", "is only for primarySource = false")
    for where, perf in select(imm, "performer", "Immunization"):
        for c in codings(perf.get("function")):
            if c.get("system") == systems.IMMUNIZATION_FUNCTION and c.get("code") not in (
                    "AP", "OP"):
                yield warning(f"{where}.function", "v2-0443 function should be AP or OP")


PROFILES = [
    Profile(systems.profile("us-core-immunization"), "Immunization", check_us_core_immunization,
            "US Core Immunization"),
    Profile(CORE, "Immunization", check_immunization, "FHIR R4 Immunization (qty-3, manufacturer)"),
]
