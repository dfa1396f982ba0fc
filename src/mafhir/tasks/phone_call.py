"""The phone_call task: one call the MA made or took, and what came of it.

Rules the model enforces (refused naming the field):

* a pharmacy, a lab or a payer is never told a result, and a pharmacy is not called
  about a symptom (``topic``): results go to the patient or the guardian;
* a voicemail carries no clinical details: with ``outcome = voicemail`` the model takes no
  ``message`` — mafhir leaves only a call-back request (see the mapper);
* ``triage`` that reached the caller is handed to a nurse: it needs a ``follow_up`` with
  an ``owner`` (the nurse who calls back);
* a follow-up is due after the call.
"""

from __future__ import annotations

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

from .appointment import CodedText
from .base import TaskId, TaskModel
from .common import PatientRef, PractitionerRef
from .outreach import ItemRef, Priority, problem

__all__ = ["CallFollowUp", "Outcome", "Party", "PhoneCallTask", "Topic"]

Party = Literal["patient", "guardian", "pharmacy", "lab", "payer"]
Topic = Literal["appointment", "refill", "result", "billing", "triage"]
Outcome = Literal["reached", "voicemail", "no_answer", "wrong_number"]

#: Who may be told about what: a result or a symptom only to the patient or guardian.
ALLOWED_TOPICS: dict[str, frozenset[str]] = {
    "patient": frozenset({"appointment", "refill", "result", "billing", "triage"}),
    "guardian": frozenset({"appointment", "refill", "result", "billing", "triage"}),
    "pharmacy": frozenset({"refill"}),
    "lab": frozenset({"appointment"}),
    "payer": frozenset({"billing", "refill"}),
}


class CallFollowUp(BaseModel):
    """What the call leaves to do: written as a follow_up Task (``<call id>.follow-up``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    due: AwareDatetime
    reason: CodedText
    owner: PractitionerRef | None = None
    priority: Priority = "routine"

    @field_validator("reason", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value


class PhoneCallTask(TaskModel):
    """One call: direction, with whom, about what, and the outcome."""

    kind: ClassVar[str] = "phone_call"

    task: Literal["phone_call"]
    id: TaskId
    patient: PatientRef
    direction: Literal["inbound", "outbound"]
    party: Party = "patient"
    party_name: str | None = Field(default=None, min_length=1, max_length=200,
                                   description="The guardian's, pharmacy's, lab's or payer's "
                                   "name (not for the patient)")
    topic: Topic
    about: list[ItemRef] = Field(default_factory=list, max_length=10)
    outcome: Outcome
    at: AwareDatetime = Field(description="When the call took place")
    by: PractitionerRef | None = Field(default=None, description="The MA (or clinician) on "
                                       "the clinic's side")
    message: str | None = Field(default=None, min_length=1, max_length=2000,
                                description="What was said (not for a voicemail)")
    follow_up: CallFollowUp | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PhoneCallTask:
        errs = []
        if self.topic not in ALLOWED_TOPICS[self.party]:
            errs.append(problem("topic", f"a call with a {self.party} cannot be about "
                                f"'{self.topic}' (results and symptoms are discussed with "
                                "the patient or guardian only)"))
        if self.party not in ("patient", "guardian"):
            for i, item in enumerate(self.about):
                if item.type == "result":
                    errs.append(problem(f"about[{i}]", f"a {self.party} is never told a "
                                        "result (results go to the patient or guardian)"))
        if self.party == "patient" and self.party_name is not None:
            errs.append(problem("party_name", "is only for a guardian, pharmacy, lab or payer "
                                "(the patient is 'patient')"))
        if self.outcome == "voicemail" and self.message is not None:
            errs.append(problem("message", "a voicemail carries no clinical details: mafhir "
                                "leaves only a call-back request; record the rest in a "
                                "follow_up"))
        if self.outcome in ("no_answer", "wrong_number") and self.message is not None:
            errs.append(problem("message", f"nothing was said on a '{self.outcome}' call"))
        if self.direction == "inbound" and self.outcome != "reached":
            errs.append(problem("outcome", "an inbound call was reached (it was answered)"))
        if self.topic == "triage" and self.outcome == "reached" and \
                (self.follow_up is None or self.follow_up.owner is None):
            errs.append(problem("follow_up.owner", "symptom triage is handed to a nurse: "
                                "give the follow_up with its owner"))
        if self.follow_up is not None and self.follow_up.due < self.at:
            errs.append(problem("follow_up.due", "is before the call ('at')"))
        if errs:
            raise ValidationError.from_exception_data(type(self).__name__, errs)
        return self
