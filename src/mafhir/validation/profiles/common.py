"""US Core Organization and Location (6.1.0 and 7.0.0 alike): mafhir's own rules."""

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
#: of Practitioner.name.family; the gender and telecom bindings; us-core-6 on Patient.name,
#: tests/test_common_profiles.py) the profile engine checks; what is left here are rules
#: the engine does not name at the same element (an NPI's 10 digits at its value) and
#: mafhir's own warnings.


def _identifiers_named(resource: JSON) -> Iterator[Issue]:
    """US Core Organization and Location leave identifier.system/value optional; an
    identifier without both cannot be matched to anything, so mafhir warns."""
    rtype = resource["resourceType"]
    for where, ident in select(resource, "identifier", rtype):
        for key in ("system", "value"):
            if not ident.get(key):
                yield plausibility(f"{where}.{key}", "an identifier without system and value "
                                   "identifies nothing")


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
    Profile(systems.profile("us-core-organization"), "Organization", check_organization,
            "US Core Organization"),
    Profile(systems.profile("us-core-location"), "Location", check_location, "US Core Location"),
]
