"""US Core Patient, Practitioner, Organization and Location (6.1.0 and 7.0.0 alike)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import error, require, select

__all__ = ["PROFILES"]

JSON = dict[str, Any]

GENDERS = ("male", "female", "other", "unknown")


def _identifiers_complete(resource: JSON) -> Iterator[Issue]:
    rtype = resource["resourceType"]
    for where, ident in select(resource, "identifier", rtype):
        for key in ("system", "value"):
            if not ident.get(key):
                yield error(f"{where}.{key}", "is required on every identifier")


def check_patient(p: JSON) -> Iterator[Issue]:
    yield from require(p, "identifier", "US Core Patient needs an identifier (the MRN)")
    yield from _identifiers_complete(p)
    yield from require(p, "name", "US Core Patient needs a name")
    for where, name in select(p, "name", "Patient"):
        has_name = bool(name.get("family") or name.get("given"))
        dar = any(e.get("url") == systems.DATA_ABSENT_EXTENSION
                  for e in name.get("extension", []))
        if has_name == dar:
            yield error(where, "needs family or given, or else a data-absent-reason (us-core-6)",
                        code="invariant")
    if p.get("gender") not in GENDERS:
        yield error("Patient.gender", f"is required, one of {', '.join(GENDERS)}",
                    code="required" if "gender" not in p else "code-invalid")
    for where, tel in select(p, "telecom", "Patient"):
        if not tel.get("system") or not tel.get("value"):
            yield error(where, "telecom needs system and value")


def check_practitioner(p: JSON) -> Iterator[Issue]:
    yield from require(p, "identifier", "US Core Practitioner needs an identifier (NPI)")
    yield from _identifiers_complete(p)
    yield from require(p, "name", "US Core Practitioner needs a name")
    for where, name in select(p, "name", "Practitioner"):
        if not name.get("family"):
            yield error(f"{where}.family", "is required (US Core Practitioner.name.family 1..1)")


def check_organization(o: JSON) -> Iterator[Issue]:
    if not isinstance(o.get("active"), bool):
        yield error("Organization.active", "is required (US Core Organization)")
    yield from require(o, "name", "US Core Organization needs a name")
    yield from _identifiers_complete(o)
    for where, ident in select(o, "identifier", "Organization"):
        if ident.get("system") == systems.NPI and not (
            isinstance(ident.get("value"), str) and len(ident["value"]) == 10
        ):
            yield error(f"{where}.value", "an NPI has 10 digits", code="value")


def check_location(loc: JSON) -> Iterator[Issue]:
    yield from require(loc, "name", "US Core Location needs a name")
    if loc.get("status") not in (None, "active", "suspended", "inactive"):
        yield error("Location.status", "must be active, suspended or inactive", code="code-invalid")
    yield from _identifiers_complete(loc)


PROFILES = [
    Profile(systems.profile("us-core-patient"), "Patient", check_patient, "US Core Patient"),
    Profile(systems.profile("us-core-practitioner"), "Practitioner", check_practitioner,
            "US Core Practitioner"),
    Profile(systems.profile("us-core-organization"), "Organization", check_organization,
            "US Core Organization"),
    Profile(systems.profile("us-core-location"), "Location", check_location, "US Core Location"),
]
