"""US Core Encounter (6.1.0 and 7.0.0 alike) and the base R4 Appointment invariants.

US Core does not profile Appointment, so its rules are registered under the base
canonical ``http://hl7.org/fhir/StructureDefinition/Appointment``: they apply to every
Appointment, claimed profile or not (app-1..app-3, participant.status, status codes).

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
from ..rules import codings, error, require, select

__all__ = [
    "APPOINTMENT",
    "APPOINTMENT_STATUSES",
    "ENCOUNTER_STATUSES",
    "PARTICIPATION_STATUSES",
    "PROFILES",
    "check_appointment",
    "check_encounter",
]

JSON = dict[str, Any]

APPOINTMENT = "http://hl7.org/fhir/StructureDefinition/Appointment"

#: R4 required bindings (CodeSystems appointmentstatus, encounter-status, participationstatus).
APPOINTMENT_STATUSES = (
    "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
    "entered-in-error", "checked-in", "waitlist",
)
ENCOUNTER_STATUSES = (
    "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
    "entered-in-error", "unknown",
)
PARTICIPATION_STATUSES = ("accepted", "declined", "tentative", "needs-action")
#: app-3: the statuses that may leave start/end out.
UNTIMED = ("proposed", "cancelled", "waitlist")


def _code(resource: JSON, key: str, allowed: tuple[str, ...], where: str,
          what: str) -> Iterator[Issue]:
    value = resource.get(key)
    if value in (None, ""):
        yield error(where, f"is required ({what})")
    elif value not in allowed:
        yield error(where, f"must be a code of {what}: {', '.join(allowed)}", code="code-invalid")


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
    """status, class (a Coding), type 1..*, subject (a Patient), complete identifiers."""
    yield from _code(enc, "status", ENCOUNTER_STATUSES, "Encounter.status",
                     "encounter-status")
    cls = enc.get("class")
    if not isinstance(cls, dict) or not cls:
        yield error("Encounter.class", "is required (US Core Encounter.class 1..1)")
    elif "coding" in cls or "text" in cls:
        yield error("Encounter.class", "is a Coding in R4, not a CodeableConcept",
                    code="structure")
    else:
        for key in ("system", "code"):
            if not cls.get(key):
                yield error(f"Encounter.class.{key}",
                            "is required (e.g. v3-ActCode AMB for an office visit)")
    yield from require(enc, "type", "US Core Encounter.type is 1..*")
    for where, concept in select(enc, "type", "Encounter"):
        if not (codings(concept) or (isinstance(concept, dict) and concept.get("text"))):
            yield error(where, "needs a coding or a text")
    if not enc.get("subject"):
        yield error("Encounter.subject", "is required (US Core Encounter.subject 1..1)")
    else:
        kind = _reference_type(enc["subject"])
        if kind is not None and kind != "Patient":
            yield error("Encounter.subject", "must reference a Patient (us-core-patient)",
                        code="value")
    for where, ident in select(enc, "identifier", "Encounter"):
        for key in ("system", "value"):
            if not ident.get(key):
                yield error(f"{where}.{key}", "is required on every identifier (US Core 1..1)")
    for where, hist in select(enc, "statusHistory", "Encounter"):
        yield from _code(hist, "status", ENCOUNTER_STATUSES, f"{where}.status",
                         "encounter-status")
        if not hist.get("period"):
            yield error(f"{where}.period", "is required (statusHistory.period 1..1)")
        yield from _period(hist.get("period"), f"{where}.period")
    yield from _period(enc.get("period"), "Encounter.period")


# ---------------------------------------------------------------- base Appointment

def check_appointment(appt: JSON) -> Iterator[Issue]:
    """status, participant 1..* with status, app-1 … app-3, and start before end (which no
    R4 invariant says). app-4 is the profile engine's alone: it evaluates the
    StructureDefinition's expression as written ('no-show', pitfall C4), and a copy here
    reported it twice."""
    status = appt.get("status")
    yield from _code(appt, "status", APPOINTMENT_STATUSES, "Appointment.status",
                     "appointmentstatus")
    yield from require(appt, "participant", "Appointment.participant is 1..*")
    for where, part in select(appt, "participant", "Appointment"):
        if not (part.get("type") or part.get("actor")):
            yield error(where, "needs a type or an actor (app-1)", code="invariant")
        yield from _code(part, "status", PARTICIPATION_STATUSES, f"{where}.status",
                         "participationstatus")
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
