"""The reminder task: an appointment confirmation or reminder, or a recall (annual exam,
a vaccine the registry forecast says is due, a lab due), scheduled on a channel; when it
went out (``sent``), and the patient's reply.

A reply moves the appointment through the appointment lifecycle
(:mod:`mafhir.tasks.appointment`) — ``confirmed`` is ``confirm``, ``cancel_requested``
is ``cancel`` with reason ``pat-crs`` (canceled via automated reminder system). It
changes only the Appointment's status (a JSON Patch on the one with the clinic's
appointment id, which is the EHR's filler id for the schedule feed): the reminder names
the appointment by id and start, and its status when no earlier task of the run set it.

Refused, naming the field: a reminder scheduled in the past that was not sent (it would
never go out), one scheduled after the appointment it reminds of, a reply before the
reminder was sent, a reply to a recall (recalls are answered by booking), an SMS or call
without a phone number, an email without an address.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .appointment import AppointmentStatus, AppointmentTask, CodedText
from .base import TaskId, TaskModel
from .common import LocationRef, PatientRef, PractitionerRef
from .outreach import problem
from .text import Identifier

__all__ = ["APPOINTMENT_PURPOSES", "Channel", "Purpose", "ReminderAppointment",
           "ReminderTask", "Reply"]

Purpose = Literal["appointment_confirmation", "appointment_reminder", "recall_annual_exam",
                  "recall_vaccine", "recall_lab"]
APPOINTMENT_PURPOSES = frozenset({"appointment_confirmation", "appointment_reminder"})
Channel = Literal["sms", "phone", "email", "mail", "portal"]
Reply = Literal["confirmed", "cancel_requested"]

_PHONE = r"^\+?[0-9 ()\-.]{7,20}$"
_EMAIL = r"^[^@\s]+@[^@\s]+$"


class ReminderAppointment(BaseModel):
    """The appointment a reminder is about: its id (the clinic's appointment id — the
    EHR's filler id, SCH-2, for appointments the schedule feed booked) and start; its
    status before a reply when no earlier task of the run set it."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: Identifier = Field(min_length=1, max_length=128, pattern=r"^\S+$")
    start: AwareDatetime
    minutes: int | None = Field(default=None, ge=1, le=1440)
    end: AwareDatetime | None = None
    status: AppointmentStatus | None = Field(default=None, description="Its status before the "
                                             "reply, when no earlier task of the run set it")
    practitioner: PractitionerRef | None = None
    location: LocationRef | None = None
    service_type: CodedText | None = None
    appointment_type: Literal["CHECKUP", "EMERGENCY", "FOLLOWUP", "ROUTINE", "WALKIN"] | None \
        = None
    reason: CodedText | None = None

    @model_validator(mode="after")
    def _times(self) -> ReminderAppointment:
        if self.minutes is not None and self.end is not None:
            raise ValueError("give 'minutes' or 'end', not both")
        if self.end is not None and self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        return self


class ReminderTask(TaskModel):
    """One reminder or recall, scheduled, perhaps sent, perhaps answered."""

    kind: ClassVar[str] = "reminder"

    task: Literal["reminder"]
    id: TaskId
    patient: PatientRef
    purpose: Purpose
    channel: Channel
    to: str | None = Field(default=None, max_length=254, description="Phone number (sms, "
                           "phone) or email address (email); mail and portal use the record's")
    scheduled: AwareDatetime = Field(description="When it is to go out")
    appointment: ReminderAppointment | None = None
    due: date | None = Field(default=None, description="When the recall is due")
    sent: AwareDatetime | None = None
    reply: Reply | None = None
    replied_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReminderTask:
        errs = []
        appointment = self.purpose in APPOINTMENT_PURPOSES
        if appointment and self.appointment is None:
            errs.append(problem("appointment", f"is required for '{self.purpose}'"))
        if not appointment:
            if self.appointment is not None:
                errs.append(problem("appointment", "is only for appointment confirmations "
                                    "and reminders (a recall asks to book one)"))
            if self.due is None:
                errs.append(problem("due", f"is required for '{self.purpose}' (when the "
                                    "patient is due)"))
            if self.reply is not None:
                errs.append(problem("reply", "a recall is answered by booking, not by a reply"))
        if self.channel in ("sms", "phone") and (self.to is None or
                                                 not _matches(_PHONE, self.to)):
            errs.append(problem("to", f"a phone number is required for '{self.channel}'"))
        elif self.channel == "email" and (self.to is None or not _matches(_EMAIL, self.to)):
            errs.append(problem("to", "an email address is required for 'email'"))
        elif self.channel in ("mail", "portal") and self.to is not None:
            errs.append(problem("to", f"'{self.channel}' goes to the patient's record, not "
                                "an address given here"))
        if self.appointment is not None and self.scheduled >= self.appointment.start:
            errs.append(problem("scheduled", "is not before the appointment it reminds of"))
        if self.sent is None and self.scheduled < datetime.now(UTC) - timedelta(minutes=5):
            errs.append(problem("scheduled", "is in the past and the reminder was not sent "
                                "(give 'sent', or schedule it again)"))
        if self.reply is not None and self.sent is None:
            errs.append(problem("reply", "needs 'sent': a reminder not sent has no reply"))
        if (self.reply is None) != (self.replied_at is None):
            errs.append(problem("replied_at", "goes with 'reply' (both or neither)"))
        elif self.replied_at is not None and self.sent is not None and \
                self.replied_at < self.sent:
            errs.append(problem("replied_at", "is before 'sent'"))
        if errs:
            raise ValidationError.from_exception_data(type(self).__name__, errs)
        return self

    def appointment_change(self) -> AppointmentTask | None:
        """The appointment step the reply stands for (None without a reply): its id,
        action, stated status and cancel reason — what the shared lifecycle and the
        reply's status change read. It is not a whole appointment task (a reply changes
        only the status, never rewrites the Appointment), so it is not validated as one."""
        appt = self.appointment
        if self.reply is None or appt is None:
            return None
        data: dict[str, Any] = {
            "task": "appointment", "id": f"{self.id[:58]}.reply",
            "appointment_id": appt.id,
            "action": "confirm" if self.reply == "confirmed" else "cancel",
            "current_status": appt.status, "patient": self.patient, "start": appt.start,
            "cancel_reason": "pat-crs" if self.reply == "cancel_requested" else None}
        return AppointmentTask.model_construct(**data)


def _matches(pattern: str, value: str) -> bool:
    import re

    return re.match(pattern, value) is not None
