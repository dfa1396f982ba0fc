"""US Core Patient, Practitioner, Organization and Location (6.1.0 and 7.0.0 alike)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import error, plausibility, select

__all__ = ["PROFILES"]

JSON = dict[str, Any]

#: What the StructureDefinitions say (cardinality of identifier, name, gender, telecom and
#: of Practitioner.name.family; the gender and telecom bindings) the profile engine checks;
#: what is left here are rules the definitions do not hold as data.


def _identifiers_named(resource: JSON) -> Iterator[Issue]:
    """US Core Organization and Location leave identifier.system/value optional; an
    identifier without both cannot be matched to anything, so mafhir warns."""
    rtype = resource["resourceType"]
    for where, ident in select(resource, "identifier", rtype):
        for key in ("system", "value"):
            if not ident.get(key):
                yield plausibility(f"{where}.{key}", "an identifier without system and value "
                                   "identifies nothing")


def check_patient(p: JSON) -> Iterator[Issue]:
    """us-core-6 (a name has family or given, or a data-absent-reason): kept here until
    the FHIRPath engine (``mafhir.profiles.fhirpath``) evaluates the invariant itself."""
    for where, name in select(p, "name", "Patient"):
        has_name = bool(name.get("family") or name.get("given"))
        dar = any(e.get("url") == systems.DATA_ABSENT_EXTENSION
                  for e in name.get("extension", []))
        if has_name == dar:
            yield error(where, "needs family or given, or else a data-absent-reason (us-core-6)",
                        code="invariant")


def check_organization(o: JSON) -> Iterator[Issue]:
    yield from _identifiers_named(o)
    for where, ident in select(o, "identifier", "Organization"):
        if ident.get("system") == systems.NPI and not (
            isinstance(ident.get("value"), str) and len(ident["value"]) == 10
        ):
            yield error(f"{where}.value", "an NPI has 10 digits", code="value")


def check_location(loc: JSON) -> Iterator[Issue]:
    yield from _identifiers_named(loc)


PROFILES = [
    Profile(systems.profile("us-core-patient"), "Patient", check_patient, "US Core Patient"),
    Profile(systems.profile("us-core-organization"), "Organization", check_organization,
            "US Core Organization"),
    Profile(systems.profile("us-core-location"), "Location", check_location, "US Core Location"),
]
