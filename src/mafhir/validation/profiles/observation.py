"""The invariants every Observation must meet, whichever plugin made it.

They are registered under the core resource's canonical, so they apply to vital signs,
lab results and any Observation a plugin adds, without each family repeating them (and
without two plugins claiming one canonical).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import codings, error, has_coding, select

__all__ = ["BASE_OBSERVATION", "PROFILES", "check_observation", "is_vital_sign", "value_key"]

JSON = dict[str, Any]

#: Rules registered under the core resource canonical apply to every Observation.
BASE_OBSERVATION = "http://hl7.org/fhir/StructureDefinition/Observation"


def value_key(node: Any) -> str | None:
    """The ``value[x]`` element present on ``node`` (e.g. ``valueQuantity``), if any."""
    if not isinstance(node, dict):
        return None
    return next((k for k in node if k.startswith("value") and k[5:6].isupper()), None)


def is_vital_sign(resource: JSON) -> bool:
    """Is it in the ``vital-signs`` category (where vs-2 applies)?"""
    return any(has_coding(c, systems.OBSERVATION_CATEGORY, "vital-signs")
               for c in resource.get("category", []))


def _same_coding(a: JSON, b: JSON) -> bool:
    return a.get("system") == b.get("system") and a.get("code") == b.get("code")


def check_observation(obs: JSON) -> Iterator[Issue]:
    """Invariants of every Observation the profile engine does not report at the element:
    obs-7 (named at the component that repeats the code) and, for vital-sign ones, vs-2.
    obs-6 (no dataAbsentReason beside a value) is the engine's alone: it evaluates the
    StructureDefinition's own expression, and a copy here reported it twice."""
    value = value_key(obs)
    if value is not None and obs.get("component"):  # the cheap tests first: most have none
        own = codings(obs.get("code"))
        for where, comp in select(obs, "component", "Observation"):
            if any(_same_coding(c, o) for c in codings(comp.get("code")) for o in own):
                yield error(f"{where}.code",
                            "repeats the Observation's own code while the Observation has "
                            "a value (obs-7)", code="invariant")
    if (value is None and not obs.get("component") and not obs.get("hasMember")
            and not obs.get("dataAbsentReason") and is_vital_sign(obs)):
        yield error("Observation", "a vital sign without components needs a value or a "
                    "dataAbsentReason (vs-2)", code="invariant")


PROFILES: list[Profile] = [
    Profile(BASE_OBSERVATION, "Observation", check_observation,
            "FHIR R4 Observation invariants (obs-7; vs-2 for vital signs)"),
]
