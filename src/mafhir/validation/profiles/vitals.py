"""US Core vital-sign profiles (6.1.0 and 7.0.0 alike) and the screening-assessment profile
used for pain scores (the invariants of every Observation are in :mod:`.observation`).

Each rule names the constraint it stands for (us-core-*, vs-*, obs-*) and reports the
FHIR path where it fails. Rules are from the US Core 7.0.0 StructureDefinitions (same
codes, cardinalities and bindings in 6.1.0) and the FHIR R4 Observation and vitalsigns
definitions (mapping-reference §2.1–2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ... import systems
from ...registry import Profile
from ..issues import Issue
from ..rules import (
    codings,
    error,
    has_coding,
    plausibility,
    require,
    require_coding,
    select,
    ucum_quantity,
)
from .observation import is_vital_sign as _is_vital_sign
from .observation import value_key as _value_key

__all__ = [
    "OBSERVATION_STATUS",
    "PROFILES",
    "VITAL_PROFILES",
    "check_screening_assessment",
    "vital_sign_check",
]

JSON = dict[str, Any]

#: The required ``observation-status`` value set (R4).
OBSERVATION_STATUS = ("registered", "preliminary", "final", "amended", "corrected",
                      "cancelled", "entered-in-error", "unknown")

LOINC = systems.LOINC
CATEGORY = systems.OBSERVATION_CATEGORY


def _status(obs: JSON) -> Iterator[Issue]:
    status = obs.get("status")
    if status is None:
        yield error("Observation.status", "is required")
    elif status not in OBSERVATION_STATUS:
        yield error("Observation.status",
                    f"must be one of {', '.join(OBSERVATION_STATUS)} (observation-status)",
                    code="code-invalid")


def _effective(obs: JSON, allowed: tuple[str, ...], rule: str) -> Iterator[Issue]:
    present = [k for k in obs if k.startswith("effective")]
    if not present:
        yield error("Observation.effective[x]", "is required")
        return
    for key in present:
        if key not in allowed:
            yield error(f"Observation.{key}",
                        f"effective[x] must be one of {', '.join(allowed)}", code="structure")
    when = obs.get("effectiveDateTime")
    if isinstance(when, str) and len(when) < 10:
        yield error("Observation.effectiveDateTime",
                    f"must be precise to the day at least ({rule})", code="invariant")


def _quantity_value(obs: JSON, allowed: tuple[str, ...]) -> Iterator[Issue]:
    key = _value_key(obs)
    if key is None:
        return  # absence is vs-2's business (dataAbsentReason or components)
    if key != "valueQuantity":
        yield plausibility(f"Observation.{key}", "a vital sign value is usually a "
                           "valueQuantity (US Core 6.1.0/7.0.0 allow other types)")
        return
    yield from ucum_quantity(obs["valueQuantity"], "Observation.valueQuantity", allowed)


def _components_have_values(obs: JSON) -> Iterator[Issue]:
    for where, comp in select(obs, "component", "Observation"):
        if _value_key(comp) is None and not comp.get("dataAbsentReason"):
            yield error(where, "needs a value or a dataAbsentReason (vs-3)", code="invariant")


def _component_slice(obs: JSON, code: str, name: str, unit: str,
                     required: bool) -> Iterator[Issue]:
    """A component sliced on its LOINC code: 1..1 (or 0..1) with a UCUM ``unit`` value."""
    found = [(w, c) for w, c in select(obs, "component", "Observation")
             if has_coding(c.get("code"), LOINC, code)]
    if required and not found:
        yield error("Observation.component",
                    f"needs the {name} component ({LOINC}|{code})", code="required")
    if len(found) > 1:
        yield error(found[1][0], f"the {name} component may appear only once",
                    code="structure")
    for where, comp in found:
        key = _value_key(comp)
        if key is None:
            continue  # vs-3 reports a component with neither value nor dataAbsentReason
        if key != "valueQuantity":
            yield plausibility(f"{where}.{key}", f"the {name} value is usually a "
                               "valueQuantity")
            continue
        yield from ucum_quantity(comp["valueQuantity"], f"{where}.valueQuantity", (unit,))


def vital_sign_check(code: str | None, units: tuple[str, ...] | None,
                     extra: Callable[[JSON], Iterator[Issue]] | None = None,
                     ) -> Callable[[JSON], Iterator[Issue]]:
    """The rules of one US Core vital-sign profile (a child of us-core-vital-signs).

    ``code`` is the LOINC the profile fixes with a pattern on ``Observation.code`` (None
    when the profile slices ``code.coding`` instead, as pulse oximetry does); ``units``
    the allowed UCUM codes of ``valueQuantity`` (None: no top-level value).
    """

    def check(obs: JSON) -> Iterator[Issue]:
        yield from _status(obs)
        yield from require(obs, "category", "a vital sign needs a category")
        if obs.get("category") and not _is_vital_sign(obs):
            yield error("Observation.category",
                        f"must include {CATEGORY}|vital-signs (slice VSCat)", code="value")
        if code is not None:
            yield from require_coding(obs, "code", LOINC, code, "fixed by the profile")
        yield from require(obs, "subject", "a vital sign is about a patient")
        yield from _effective(obs, ("effectiveDateTime", "effectivePeriod"), "us-core-1")
        if units is not None:
            yield from _quantity_value(obs, units)
        yield from _components_have_values(obs)
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
    comps = obs.get("component") or []
    if len(comps) < 2:
        yield error("Observation.component",
                    "needs at least the systolic and diastolic components (2..*)")
    yield from _component_slice(obs, "8480-6", "systolic", "mm[Hg]", required=True)
    yield from _component_slice(obs, "8462-4", "diastolic", "mm[Hg]", required=True)


def _pulse_oximetry(obs: JSON) -> Iterator[Issue]:
    for code, slice_name in (("59408-5", "PulseOx"), ("2708-6", "O2Sat")):
        if not has_coding(obs.get("code"), LOINC, code):
            yield error("Observation.code.coding",
                        f"must have {LOINC}|{code} (slice {slice_name}; both 59408-5 and "
                        "2708-6 are required)", code="value")
    if len(codings(obs.get("code"))) < 2:
        yield error("Observation.code.coding", "needs at least two codings (2..*)")
    yield from _component_slice(obs, "3151-8", "inhaled oxygen flow rate", "L/min",
                                required=False)
    yield from _component_slice(obs, "3150-0", "inhaled oxygen concentration", "%",
                                required=False)


#: profile id → (fixed LOINC, allowed UCUM codes or None, extra rules)
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
    """US Core Observation Screening Assessment (used for the 0–10 pain score)."""
    yield from _status(obs)
    if not any(has_coding(c, CATEGORY, "survey") for c in obs.get("category", [])):
        yield error("Observation.category",
                    f"must include {CATEGORY}|survey (slice survey 1..1)",
                    code="required" if not obs.get("category") else "value")
    yield from require(obs, "code", "an observation needs a code")
    yield from require(obs, "subject", "a screening or assessment is about a patient")
    yield from _effective(obs, ("effectiveDateTime", "effectivePeriod", "effectiveTiming",
                                "effectiveInstant"), "us-core-1")
    if (not obs.get("component") and not obs.get("hasMember")
            and _value_key(obs) is None and not obs.get("dataAbsentReason")):
        yield error("Observation", "needs a value or a dataAbsentReason unless it has "
                    "components or members (us-core-2)", code="invariant")
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
    *(Profile(systems.profile(pid), "Observation", vital_sign_check(code, units, extra),
              _TITLES[pid])
      for pid, (code, units, extra) in VITAL_PROFILES.items()),
    Profile(systems.profile("us-core-observation-screening-assessment"), "Observation",
            check_screening_assessment, "US Core Observation Screening Assessment"),
]
