"""The appointment task: one step in the life of a clinic appointment, and its state machine.

Every task carries the whole appointment (patient, times, service, practitioner, place),
not only what changed: the mapper writes the Appointment (and, from check-in on, the
Encounter) with a conditional PUT, which replaces the stored resource as a whole.

Lifecycle (``step``): the state of an appointment is its ``Appointment.status``, except
that after ``start`` it is ``in-progress`` (the Encounter's status: the Appointment stays
``checked-in``), so that a visit cannot be started twice or completed before check-in.

==============  =================================================  ===============
action          allowed from                                        new state
==============  =================================================  ===============
book            (unknown), proposed, pending, waitlist, booked       booked
confirm         proposed, pending, booked                            booked
reschedule      proposed, pending, booked                            booked
cancel          proposed, pending, booked, waitlist                  cancelled
no_show         pending, booked                                      noshow
check_in        booked, arrived                                      checked-in
start           arrived, checked-in                                  in-progress
complete        arrived, checked-in, in-progress                     fulfilled
==============  =================================================  ===============

With no known state (no earlier task of this run touched the appointment and the task
states no ``current_status``) only ``book`` is allowed: every other action needs the
appointment's history, which then lives in the EHR and must be stated. When both are
known they must agree (``in-progress`` agrees with a stated ``checked-in``).

Check-in sets ``checked-in`` rather than ``arrived``: the MA's check-in is the point
where "all pre-encounter administrative work is complete" (R4 appointmentstatus), and
the Encounter it opens is ``arrived`` (waiting to be seen). Cancelling after check-in
(left without being seen) is not an action of this kind: it would also have to cancel
the Encounter.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .. import systems
from ..errors import InputError, Problem, TransitionError
from .base import TaskId, TaskModel
from .common import ClinicianRef, LocationRef, PatientRef
from .text import Identifier

__all__ = [
    "ACTIONS",
    "APPOINTMENT_TYPES",
    "CANCEL_REASONS",
    "CPT",
    "ENCOUNTER_ACTIONS",
    "ICD10CM",
    "STATUSES",
    "TRANSITIONS",
    "Action",
    "AppointmentStatus",
    "AppointmentTask",
    "CodedText",
    "appointment_status",
    "step",
]

CPT = "http://www.ama-assn.org/go/cpt"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"

#: Short names the clinic may use for a code system; stored as the URI.
SYSTEM_ALIASES = {
    "snomed": systems.SNOMED,
    "sct": systems.SNOMED,
    "cpt": CPT,
    "loinc": systems.LOINC,
    "icd10cm": ICD10CM,
    "icd-10-cm": ICD10CM,
}

Action = Literal[
    "book", "confirm", "reschedule", "cancel", "no_show", "check_in", "start", "complete"
]
ACTIONS: tuple[str, ...] = Action.__args__  # type: ignore[attr-defined]

#: R4 appointmentstatus (http://hl7.org/fhir/appointmentstatus), all ten codes.
AppointmentStatus = Literal[
    "proposed", "pending", "booked", "arrived", "fulfilled", "cancelled", "noshow",
    "entered-in-error", "checked-in", "waitlist",
]
STATUSES: tuple[str, ...] = AppointmentStatus.__args__  # type: ignore[attr-defined]

#: v2-0276 (the R4 preferred binding of Appointment.appointmentType), code → display.
APPOINTMENT_TYPES = {
    "CHECKUP": "A routine check-up, such as an annual physical",
    "EMERGENCY": "Emergency appointment",
    "FOLLOWUP": "A follow up visit from a previous appointment",
    "ROUTINE": "Routine appointment - default if not valued",
    "WALKIN": "A previously unscheduled walk-in visit",
}
AppointmentType = Literal["CHECKUP", "EMERGENCY", "FOLLOWUP", "ROUTINE", "WALKIN"]

#: THO appointment-cancellation-reason (the R4 example binding), code → display.
CANCEL_REASONS = {
    "pat": "Patient",
    "pat-crs": "Patient: Canceled via automated reminder system",
    "pat-cpp": "Patient: Canceled via Patient Portal",
    "pat-dec": "Patient: Deceased",
    "pat-fb": "Patient: Feeling Better",
    "pat-lt": "Patient: Lack of Transportation",
    "pat-mt": "Patient: Member Terminated",
    "pat-mv": "Patient: Moved",
    "pat-preg": "Patient: Pregnant",
    "pat-swl": "Patient: Scheduled from Wait List",
    "pat-ucp": "Patient: Unhappy/Changed Provider",
    "prov": "Provider",
    "prov-pers": "Provider: Personal",
    "prov-dch": "Provider: Discharged",
    "prov-edu": "Provider: Edu/Meeting",
    "prov-hosp": "Provider: Hospitalized",
    "prov-labs": "Provider: Labs Out of Acceptable Range",
    "prov-mri": "Provider: MRI Screening Form Marked Do Not Proceed",
    "prov-onc": "Provider: Oncology Treatment Plan Changes",
    "maint": "Equipment Maintenance/Repair",
    "meds-inc": "Prep/Med Incomplete",
    "other": "Other",
    "oth-cms": "Other: CMS Therapy Cap Service Not Authorized",
    "oth-err": "Other: Error",
    "oth-fin": "Other: Financial",
    "oth-iv": "Other: Improper IV Access/Infiltrate IV",
    "oth-int": "Other: No Interpreter Available",
    "oth-mu": "Other: Prep/Med/Results Unavailable",
    "oth-room": "Other: Room/Resource Maintenance",
    "oth-oerr": "Other: Schedule Order Error",
    "oth-swie": "Other: Silent Walk In Error",
    "oth-weath": "Other: Weather",
}
CancelReason = Literal[
    "pat", "pat-crs", "pat-cpp", "pat-dec", "pat-fb", "pat-lt", "pat-mt", "pat-mv", "pat-preg",
    "pat-swl", "pat-ucp", "prov", "prov-pers", "prov-dch", "prov-edu", "prov-hosp",
    "prov-labs", "prov-mri", "prov-onc", "maint", "meds-inc", "other", "oth-cms", "oth-err",
    "oth-fin", "oth-iv", "oth-int", "oth-mu", "oth-room", "oth-oerr", "oth-swie", "oth-weath",
]

#: Actions that open or change the Encounter (and so need an event time ``at``).
ENCOUNTER_ACTIONS = frozenset({"check_in", "start", "complete"})

#: action → (states it may follow, state it leads to); None stands for "unknown".
TRANSITIONS: dict[str, tuple[frozenset[str | None], str]] = {
    "book": (frozenset({None, "proposed", "pending", "waitlist", "booked"}), "booked"),
    "confirm": (frozenset({"proposed", "pending", "booked"}), "booked"),
    "reschedule": (frozenset({"proposed", "pending", "booked"}), "booked"),
    "cancel": (frozenset({"proposed", "pending", "booked", "waitlist"}), "cancelled"),
    "no_show": (frozenset({"pending", "booked"}), "noshow"),
    "check_in": (frozenset({"booked", "arrived"}), "checked-in"),
    "start": (frozenset({"arrived", "checked-in"}), "in-progress"),
    "complete": (frozenset({"arrived", "checked-in", "in-progress"}), "fulfilled"),
}

#: Lifecycle states that are not Appointment.status codes, and the status they show.
_STATE_STATUS = {"in-progress": "checked-in"}

#: Longest plausible visit and the widest plausible gap between check-in and start time.
LONG_APPOINTMENT = timedelta(hours=4)
CHECK_IN_GAP = timedelta(hours=12)
LONG_VISIT = timedelta(hours=24)


_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def appointment_status(state: str) -> str:
    """The Appointment.status a lifecycle state shows."""
    return _STATE_STATUS.get(state, state)


class CodedText(BaseModel):
    """A code (``system`` + ``code``, optional ``display``) and/or free ``text``.

    ``system`` is a URI or one of the short names snomed, cpt, loinc, icd10cm.
    A bare string is read as ``text``.
    """

    model_config = _MODEL

    system: str | None = Field(default=None, pattern=r"^(urn:|https?://)\S+$")
    code: str | None = Field(default=None, pattern=r"^[^\s]+( [^\s]+)*$", max_length=64)
    display: str | None = Field(default=None, min_length=1)
    text: str | None = Field(default=None, min_length=1)

    @field_validator("system", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return SYSTEM_ALIASES.get(value.strip().lower(), value)
        return value

    @model_validator(mode="after")
    def _something(self) -> CodedText:
        if not (self.code or self.text):
            raise ValueError("needs a 'code' or a 'text'")
        if self.display and not self.code:
            raise ValueError("'display' belongs to a 'code'; use 'text' for free text")
        return self


def _text_or_code(value: Any) -> Any:
    return {"text": value} if isinstance(value, str) else value


def _problem(loc: str, message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(loc,),
                            input=None)


def _whole_minutes(value: datetime) -> bool:
    offset = value.utcoffset()
    return offset is not None and offset.total_seconds() % 60 == 0


class AppointmentTask(TaskModel):
    """One step of one appointment (``appointment_id``), with the appointment as it stands.

    ``start`` plus ``end`` or ``minutes`` are required except for ``cancel`` (app-3).
    ``at`` is the time of the event for check_in / start / complete. ``start`` and
    ``complete`` rewrite the whole Encounter, so they repeat the check-in time
    (``checked_in_at``); ``complete`` may also repeat ``started_at``.
    """

    kind: ClassVar[str] = "appointment"

    task: Literal["appointment"]
    id: TaskId
    appointment_id: Identifier = Field(
        min_length=1, max_length=128, pattern=r"^\S+$",
        description="The appointment's business id, the same on every task about it",
    )
    action: Action
    current_status: AppointmentStatus | None = Field(
        default=None, description="The appointment's status before this task, when the EHR "
        "holds its history (checked against what earlier tasks of this run did)",
    )
    patient: PatientRef
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    minutes: int | None = Field(default=None, ge=1, le=1440, description="Duration in minutes "
                                "(instead of 'end')")
    slot: str | None = Field(default=None, pattern=r"^[A-Za-z0-9\-.]{1,64}$",
                             description="Server id of the Slot booked")
    service_type: CodedText | None = None
    appointment_type: AppointmentType | None = None
    reason: CodedText | None = None
    practitioner: ClinicianRef | None = None
    location: LocationRef | None = None
    cancel_reason: CancelReason | None = None
    at: AwareDatetime | None = Field(default=None, description="When the check-in, start or "
                                     "completion happened")
    checked_in_at: AwareDatetime | None = Field(default=None, description="The check-in time, "
                                                "repeated by start and complete")
    started_at: AwareDatetime | None = Field(default=None, description="When the visit "
                                             "started, optionally repeated by complete")
    encounter_type: CodedText | None = Field(default=None, description="Encounter.type "
                                             "(SNOMED or CPT); a generic office visit if absent")

    @field_validator("service_type", "reason", "encounter_type", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return _text_or_code(value)

    @property
    def end_time(self) -> datetime | None:
        """The end, from ``end`` or from ``start`` + ``minutes``."""
        if self.end is not None:
            return self.end
        if self.start is not None and self.minutes is not None:
            return self.start + timedelta(minutes=self.minutes)
        return None

    @model_validator(mode="after")
    def _consistent(self) -> AppointmentTask:
        errs: list[InitErrorDetails] = []
        action = self.action
        for name in ("start", "end", "at", "checked_in_at", "started_at"):
            value = getattr(self, name)
            if value is not None and not _whole_minutes(value):
                errs.append(_problem(name, "the UTC offset must be whole minutes"))
        # times of the appointment (app-2, app-3)
        if self.end is not None and self.minutes is not None:
            errs.append(_problem("minutes", "give 'end' or 'minutes', not both"))
        if self.start is None:
            if self.end is not None or self.minutes is not None:
                errs.append(_problem("start", "is required with 'end' or 'minutes' "
                                     "(app-2: start and end go together)"))
            elif action != "cancel":
                errs.append(_problem("start", f"is required for '{action}' (app-3: only a "
                                     "proposed, cancelled or waitlisted appointment has no time)"))
        elif self.end is None and self.minutes is None:
            errs.append(_problem("end", "give 'end' or 'minutes' with 'start' "
                                 "(app-2: start and end go together)"))
        elif self.end is not None and self.end <= self.start:
            errs.append(_problem("end", "must be after 'start'"))
        # cancel reason (app-4)
        if self.cancel_reason is not None and action != "cancel":
            why = (" (app-4; a no-show carries no cancelation reason)" if action == "no_show"
                   else " (app-4)")
            errs.append(_problem("cancel_reason", f"is only for 'cancel'{why}"))
        # event times of the Encounter
        if action in ENCOUNTER_ACTIONS:
            if self.at is None:
                errs.append(_problem("at", f"is required for '{action}' (when it happened)"))
            if self.encounter_type is not None and self.encounter_type.code and \
                    not self.encounter_type.system:
                errs.append(_problem("encounter_type.system", "is required with a code"))
        else:
            for name in ("at", "encounter_type"):
                if getattr(self, name) is not None:
                    errs.append(_problem(name, "is only for check_in, start and complete "
                                         "(the actions that change the Encounter)"))
        if action in ("start", "complete"):
            if self.checked_in_at is None:
                errs.append(_problem("checked_in_at", f"is required for '{action}': the "
                                     "Encounter is rewritten whole, with its check-in time"))
        elif self.checked_in_at is not None:
            hint = "; use 'at' for the check-in time" if action == "check_in" else ""
            errs.append(_problem("checked_in_at", f"is only for start and complete{hint}"))
        if self.started_at is not None and action != "complete":
            hint = "; use 'at' for the start time" if action == "start" else ""
            errs.append(_problem("started_at", f"is only for complete{hint}"))
        if not errs:
            errs.extend(self._in_order())
        if errs:
            raise ValidationError.from_exception_data(type(self).__name__, errs)
        return self

    def _in_order(self) -> list[InitErrorDetails]:
        """check-in ≤ start of the visit ≤ completion."""
        out = []
        if self.checked_in_at is not None and self.started_at is not None and \
                self.started_at < self.checked_in_at:
            out.append(_problem("started_at", "must not be before 'checked_in_at'"))
        before = self.started_at or self.checked_in_at
        if before is not None and self.at is not None and self.at < before:
            name = "started_at" if self.started_at is not None else "checked_in_at"
            out.append(_problem("at", f"must not be before '{name}'"))
        return out

    def warnings(self) -> list[Problem]:
        out: list[Problem] = []
        end = self.end_time
        if self.start is not None and end is not None and end - self.start > LONG_APPOINTMENT:
            out.append(Problem("end", "the appointment lasts more than 4 hours", "value"))
        checked_in = self.at if self.action == "check_in" else self.checked_in_at
        if checked_in is not None and self.start is not None and \
                abs(checked_in - self.start) > CHECK_IN_GAP:
            where = "at" if self.action == "check_in" else "checked_in_at"
            out.append(Problem(where, "check-in is more than 12 hours from the appointment "
                                      "start", "value"))
        if self.action == "complete" and self.at is not None and self.checked_in_at is not None \
                and self.at - self.checked_in_at > LONG_VISIT:
            out.append(Problem("at", "the visit lasted more than 24 hours", "value"))
        if self.action == "cancel" and self.cancel_reason is None:
            out.append(Problem("cancel_reason", "a cancelled appointment should say why",
                               "incomplete"))
        for name in ("service_type", "reason"):
            concept = getattr(self, name)
            if concept is not None and concept.code and not concept.system:
                out.append(Problem(f"{name}.system",
                                   "a code without a system cannot be interpreted", "required"))
        et = self.encounter_type
        if et is not None and et.system and et.system not in (systems.SNOMED, CPT):
            out.append(Problem("encounter_type.system", "US Core Encounter.type expects SNOMED "
                                                       "(is-a 308335008) or CPT", "code-invalid"))
        return out


def step(task: TaskModel, known: str | None) -> str:
    """The Lifecycle step: the state after ``task`` given the ``known`` state (or None).

    Raises :class:`TransitionError` (naming both states) for an illegal step, and an
    :class:`InputError` on ``current_status`` when the state is needed but unknown, or
    when the stated one contradicts what this run did.
    """
    if not isinstance(task, AppointmentTask):
        raise TypeError(f"not an appointment task: {type(task).__name__}")
    stated = task.current_status
    if known is not None and stated is not None and appointment_status(known) != stated:
        raise InputError([Problem("current_status", f"says '{stated}' but an earlier task of "
                                  f"this run left the appointment '{appointment_status(known)}'",
                                  "conflict")])
    current = known if known is not None else stated
    allowed, target = TRANSITIONS[task.action]
    if current is None:
        if None in allowed:
            return target
        raise InputError([Problem("current_status", f"is required for '{task.action}': no "
                                  "earlier task of this run set this appointment's status "
                                  "(only 'book' may start without one)", "required")])
    if current not in allowed:
        raise TransitionError("action", current, target)
    return target
