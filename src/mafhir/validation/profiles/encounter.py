"""US Core Encounter (6.1.0 and 7.0.0 alike) and the base R4 Appointment invariants.

US Core does not profile Appointment, so its rules are registered under the base
canonical ``http://hl7.org/fhir/StructureDefinition/Appointment``: they apply to every
Appointment, claimed profile or not. Only what the profile engine does not name at the
same element is here (tests/test_appointment_profiles.py shows the engine alone naming
each retired rule: status codes, required elements, app-1, participant.status).

app-4 (``cancelationReason.exists() implies (status='no-show' or status='cancelled')``)
is left to the profile engine, which evaluates it as R4 wrote it: 'no-show' is not a code
(the code is ``noshow``), so a cancelation reason on a no-show appointment is rejected
(pitfall C4), and the appointment mapper never writes one there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ... import systems
from ...fhirtypes import parse_fhir_datetime
from ...registry import Profile
from ..issues import Issue
from ..rules import codings, error, select

__all__ = ["APPOINTMENT", "PROFILES", "check_appointment", "check_encounter"]

JSON = dict[str, Any]

APPOINTMENT = "http://hl7.org/fhir/StructureDefinition/Appointment"

#: app-3: the statuses that may leave start/end out.
UNTIMED = ("proposed", "cancelled", "waitlist")


def _time(value: Any) -> datetime | None:
    """A dateTime with a time and offset, or None (partial dates are not compared)."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        return parse_fhir_datetime(value)
    except ValueError:
        return None


def _period(period: Any, where: str) -> Iterator[Issue]:
    """per-1: start ≤ end when both are present."""
    if not isinstance(period, dict):
        return
    start, end = _time(period.get("start")), _time(period.get("end"))
    if start is not None and end is not None and end < start:
        yield error(f"{where}.end", "must not be before start (per-1)", code="invariant")


def _reference_type(ref: Any) -> str | None:
    text = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(text, str) or text.startswith(("urn:", "#")):
        return None
    head = text.split("?", 1)[0].rstrip("/").split("/")
    if "?" in text:
        return head[-1]
    return head[-2] if len(head) >= 2 else None


# ---------------------------------------------------------------- US Core Encounter

def check_encounter(enc: JSON) -> Iterator[Issue]:
    """What the engine does not name: class as a Coding with system and code, each type
    coded or named, the subject a Patient, per-1. Status (required binding, also in
    statusHistory), class, type 1..*, subject, identifier.system/value and
    statusHistory.period are the definitions' (the engine's alone)."""
    cls = enc.get("class")
    if isinstance(cls, dict) and cls:
        if "coding" in cls or "text" in cls:
            yield error("Encounter.class", "is a Coding in R4, not a CodeableConcept",
                        code="structure")
        else:
            for key in ("system", "code"):
                if not cls.get(key):
                    yield error(f"Encounter.class.{key}",
                                "is required (e.g. v3-ActCode AMB for an office visit)")
    for where, concept in select(enc, "type", "Encounter"):
        if not (codings(concept) or (isinstance(concept, dict) and concept.get("text"))):
            yield error(where, "needs a coding or a text")
    if enc.get("subject"):
        kind = _reference_type(enc["subject"])
        if kind is not None and kind != "Patient":
            yield error("Encounter.subject", "must reference a Patient (us-core-patient)",
                        code="value")
    for where, hist in select(enc, "statusHistory", "Encounter"):
        yield from _period(hist.get("period"), f"{where}.period")
    yield from _period(enc.get("period"), "Encounter.period")


# ---------------------------------------------------------------- base Appointment

def check_appointment(appt: JSON) -> Iterator[Issue]:
    """app-2 and app-3 named at the missing start or end, and start before end (which no
    R4 invariant says). Status, participant 1..*, app-1 and participant.status (required,
    bound) are the engine's alone, as is app-4: it evaluates the StructureDefinition's
    expression as written ('no-show', pitfall C4), and a copy here reported it twice."""
    status = appt.get("status")
    has_start, has_end = bool(appt.get("start")), bool(appt.get("end"))
    if has_start != has_end:
        missing = "end" if has_start else "start"
        yield error(f"Appointment.{missing}", "start and end go together (app-2)",
                    code="invariant")
    elif not has_start and status not in UNTIMED:
        yield error("Appointment.start",
                    f"start and end are required unless status is {', '.join(UNTIMED)} (app-3)",
                    code="invariant")
    start, end = _time(appt.get("start")), _time(appt.get("end"))
    if start is not None and end is not None and end < start:
        yield error("Appointment.end", "must not be before start", code="value")


PROFILES = [
    Profile(systems.profile("us-core-encounter"), "Encounter", check_encounter,
            "US Core Encounter"),
    Profile(APPOINTMENT, "Appointment", check_appointment,
            "Appointment (base R4 invariants app-1..app-3)"),
]
