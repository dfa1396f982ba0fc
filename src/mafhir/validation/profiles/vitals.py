"""US Core vital-sign profiles (6.1.0 and 7.0.0 alike) and the screening-assessment profile
used for pain scores (the invariants of every Observation are in :mod:`.observation`).

The profile engine (``mafhir.profiles``) checks these profiles from their
StructureDefinitions; what is left here is what it does not name at the same element:
effective[x] missing or of another type, a component slice given twice, us-core-3 on a
screening quantity, and mafhir's own plausibility warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import (
    error,
    has_coding,
    plausibility,
    select,
)
from .observation import value_key as _value_key

__all__ = [
    "PROFILES",
    "VITAL_PROFILES",
    "check_screening_assessment",
    "vital_sign_check",
]

JSON = dict[str, Any]

LOINC = systems.LOINC


def _effective(obs: JSON, allowed: tuple[str, ...]) -> Iterator[Issue]:
    """effective[x] present, of an allowed type (the engine names a missing one at
    ``Observation.effective``, not ``effective[x]``; its precision is vs-1/us-core-1's)."""
    present = [k for k in obs if k.startswith("effective")]
    if not present:
        yield error("Observation.effective[x]", "is required")
        return
    for key in present:
        if key not in allowed:
            yield error(f"Observation.{key}",
                        f"effective[x] must be one of {', '.join(allowed)}", code="structure")


def _quantity_value(obs: JSON) -> Iterator[Issue]:
    """mafhir's own warning on a value that is not a valueQuantity (the profiles allow it;
    the quantity's value, unit, UCUM system and code are the engine's)."""
    key = _value_key(obs)
    if key is not None and key != "valueQuantity":
        yield plausibility(f"Observation.{key}", "a vital sign value is usually a "
                           "valueQuantity (US Core 6.1.0/7.0.0 allow other types)")


def _component_slice(obs: JSON, code: str, name: str) -> Iterator[Issue]:
    """A component sliced on its LOINC code appears once, with a valueQuantity value
    (a plausibility warning else); its presence (min 1), its quantity's elements and unit
    are the engine's, from the slice's definition."""
    found = [(w, c) for w, c in select(obs, "component", "Observation")
             if has_coding(c.get("code"), LOINC, code)]
    if len(found) > 1:
        yield error(found[1][0], f"the {name} component may appear only once",
                    code="structure")
    for where, comp in found:
        key = _value_key(comp)
        if key is not None and key != "valueQuantity":
            yield plausibility(f"{where}.{key}", f"the {name} value is usually a "
                               "valueQuantity")


def vital_sign_check(units: bool,
                     extra: Callable[[JSON], Iterator[Issue]] | None = None,
                     ) -> Callable[[JSON], Iterator[Issue]]:
    """What the StructureDefinitions of one US Core vital-sign profile do not say.

    The profile engine enforces the rest from the definitions themselves (each retired
    rule has a test that the engine alone names its error, tests/test_vitals_profiles.py):
    status (required binding), the VSCat category slice, the fixed LOINC code or the
    PulseOx/O2Sat codings, subject, the precision of effectiveDateTime (vs-1), the UCUM
    quantity (value, unit, system, code and the allowed units), vs-3 and the required
    components. ``units``: the profile has a top-level valueQuantity.
    """

    def check(obs: JSON) -> Iterator[Issue]:
        yield from _effective(obs, ("effectiveDateTime", "effectivePeriod"))
        if units:
            yield from _quantity_value(obs)
        if extra is not None:
            yield from extra(obs)

    return check


def _blood_pressure(obs: JSON) -> Iterator[Issue]:
    key = _value_key(obs)
    if key is not None:
        # R4's bp profile says value[x] 0..0; US Core 6.1.0/7.0.0 leave it 0..1
        yield plausibility(f"Observation.{key}",
                           "a blood pressure panel has no value of its own; the readings "
                           "are components")
    yield from _component_slice(obs, "8480-6", "systolic")
    yield from _component_slice(obs, "8462-4", "diastolic")


def _pulse_oximetry(obs: JSON) -> Iterator[Issue]:
    yield from _component_slice(obs, "3151-8", "inhaled oxygen flow rate")
    yield from _component_slice(obs, "3150-0", "inhaled oxygen concentration")


#: profile id → (fixed LOINC, allowed UCUM codes or None, extra rules); the codes and
#: units are the definitions' (the engine checks them), kept as data for the mappers
VITAL_PROFILES: dict[str, tuple[str | None, tuple[str, ...] | None,
                                Callable[[JSON], Iterator[Issue]] | None]] = {
    "us-core-blood-pressure": ("85354-9", None, _blood_pressure),
    "us-core-heart-rate": ("8867-4", ("/min",), None),
    "us-core-respiratory-rate": ("9279-1", ("/min",), None),
    "us-core-body-temperature": ("8310-5", ("Cel", "[degF]"), None),
    "us-core-pulse-oximetry": (None, ("%",), _pulse_oximetry),
    "us-core-body-height": ("8302-2", ("cm", "[in_i]"), None),
    "us-core-body-weight": ("29463-7", ("kg", "[lb_av]", "g"), None),
    "us-core-bmi": ("39156-5", ("kg/m2",), None),
    "us-core-head-circumference": ("9843-4", ("cm", "[in_i]"), None),
}


def check_screening_assessment(obs: JSON) -> Iterator[Issue]:
    """US Core Observation Screening Assessment (used for the 0–10 pain score): what the
    engine does not name at the element. Status, the survey category slice, code, subject,
    us-core-1 and us-core-2 are the definitions' (the engine's alone)."""
    yield from _effective(obs, ("effectiveDateTime", "effectivePeriod", "effectiveTiming",
                                "effectiveInstant"))
    q = obs.get("valueQuantity")
    if isinstance(q, dict) and q.get("system") not in (None, systems.UCUM):
        yield error("Observation.valueQuantity.system",
                    f"must be {systems.UCUM} (us-core-3)", code="invariant")


_TITLES = {
    "us-core-blood-pressure": "US Core Blood Pressure",
    "us-core-heart-rate": "US Core Heart Rate",
    "us-core-respiratory-rate": "US Core Respiratory Rate",
    "us-core-body-temperature": "US Core Body Temperature",
    "us-core-pulse-oximetry": "US Core Pulse Oximetry",
    "us-core-body-height": "US Core Body Height",
    "us-core-body-weight": "US Core Body Weight",
    "us-core-bmi": "US Core BMI",
    "us-core-head-circumference": "US Core Head Circumference",
}

PROFILES: list[Profile] = [
    *(Profile(systems.profile(pid), "Observation",
              vital_sign_check(units is not None, extra), _TITLES[pid])
      for pid, (_code, units, extra) in VITAL_PROFILES.items()),
    Profile(systems.profile("us-core-observation-screening-assessment"), "Observation",
            check_screening_assessment, "US Core Observation Screening Assessment"),
]
