"""The follow_up task: a call or action the MA owes (call back a result, schedule a referral,
chase a prior authorization or a refill), and its lifecycle.

Every task carries the whole item (patient, reason, due date, what it is about) and the
status it moves to; the mapper writes the FHIR Task with a conditional PUT, so each step
replaces the last.

==============  ======================================  ============
status          allowed from                            meaning
==============  ======================================  ============
requested       (unknown), requested                    on the list
in-progress     requested, in-progress                  being worked
completed       requested, in-progress                  done (``outcome`` says how)
cancelled       requested, in-progress                  no longer needed
==============  ======================================  ============

With no known state (no earlier task of this run moved the item and ``current_status``
is not stated) only ``requested`` may start; completing a cancelled item, or anything
after completion, is refused naming both states.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, ValidationError, field_validator, model_validator

from ..errors import InputError, Problem, TransitionError
from .appointment import CodedText
from .base import TaskId, TaskModel
from .common import PatientRef, PractitionerRef
from .outreach import ItemRef, Priority, problem

__all__ = ["FOLLOW_UP_TRANSITIONS", "FollowUpStatus", "FollowUpTask", "follow_up_step"]

FollowUpStatus = Literal["requested", "in-progress", "completed", "cancelled"]

#: status → the states it may follow (None: unknown).
FOLLOW_UP_TRANSITIONS: dict[str, frozenset[str | None]] = {
    "requested": frozenset({None, "requested"}),
    "in-progress": frozenset({"requested", "in-progress"}),
    "completed": frozenset({"requested", "in-progress"}),
    "cancelled": frozenset({"requested", "in-progress"}),
}


class FollowUpTask(TaskModel):
    """One step of one follow-up item (``id``), with the item as it stands."""

    kind: ClassVar[str] = "follow_up"

    task: Literal["follow_up"]
    id: TaskId
    status: FollowUpStatus = "requested"
    current_status: FollowUpStatus | None = Field(
        default=None, description="The item's status before this task, when an earlier run "
        "(or the EHR) moved it")
    patient: PatientRef
    created: AwareDatetime = Field(description="When the item was put on the list")
    due: AwareDatetime = Field(description="When it is due (Task.restriction.period.end)")
    reason: CodedText = Field(description="Why the MA owes it (Task.reasonCode)")
    focus: ItemRef | None = Field(default=None, description="What it is about: the result to "
                                  "call back, the referral, the prior authorization, the refill")
    owner: PractitionerRef | None = Field(default=None, description="Who owes it")
    priority: Priority = "routine"
    call: TaskId | None = Field(default=None, description="The phone_call that left this item "
                                "(Task.basedOn its Communication)")
    at: AwareDatetime | None = Field(default=None, description="When it was started, "
                                     "completed or cancelled (Task.lastModified)")
    outcome: str | None = Field(default=None, min_length=1, max_length=500,
                                description="How it ended (Task.output), for completed")

    @field_validator("reason", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> FollowUpTask:
        errs = []
        if self.due < self.created:
            errs.append(problem("due", "is before 'created': an item cannot be due before "
                                "it was put on the list"))
        if self.status == "requested":
            if self.at is not None:
                errs.append(problem("at", "is only for in-progress, completed and cancelled"))
        elif self.at is None:
            errs.append(problem("at", f"is required for '{self.status}' (when it happened)"))
        elif self.at < self.created:
            errs.append(problem("at", "is before 'created'"))
        if self.status == "completed" and self.outcome is None:
            errs.append(problem("outcome", "is required for 'completed' (how it ended)"))
        if self.status != "completed" and self.outcome is not None:
            errs.append(problem("outcome", "is only for 'completed'"))
        if errs:
            raise ValidationError.from_exception_data(type(self).__name__, errs)
        return self

    def overdue(self, now: datetime) -> bool:
        return self.status in ("requested", "in-progress") and self.due < now


def follow_up_step(task: TaskModel, known: str | None) -> str:
    """The Lifecycle step of a follow-up: its new status, or a refusal naming both states."""
    if not isinstance(task, FollowUpTask):
        raise TypeError(f"not a follow_up task: {type(task).__name__}")
    stated = task.current_status
    if known is not None and stated is not None and known != stated:
        raise InputError([Problem("current_status", f"says '{stated}' but an earlier task of "
                                  f"this run left the item '{known}'", "conflict")])
    current = known if known is not None else stated
    allowed = FOLLOW_UP_TRANSITIONS[task.status]
    if current is None and None not in allowed:
        raise InputError([Problem("current_status", f"is required for '{task.status}': no "
                                  "earlier task of this run moved this item (only "
                                  "'requested' may start without one)", "required")])
    if current not in allowed:
        raise TransitionError("status", str(current), task.status)
    return task.status
