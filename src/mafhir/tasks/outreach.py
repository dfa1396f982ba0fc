"""What the front-office kinds (phone_call, reminder, follow_up) point at and share.

A call, a reminder or a follow-up is *about* something the EHR already holds — an
appointment, a lab result, an order, a referral, a prior authorization, a prescription.
mafhir refers to it by its business identifier (a conditional reference the server
resolves), never by a server id it does not know.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import InitErrorDetails, PydanticCustomError

from .text import Identifier

__all__ = ["ITEM_RESOURCES", "ItemKind", "ItemRef", "Priority", "problem"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

ItemKind = Literal["appointment", "result", "order", "referral", "prior_auth", "prescription",
                   "reminder"]

#: item kind → (FHIR resource type, the clinic identifier namespace it is looked up in).
#: A prior authorization is a Claim with ``use = preauthorization`` in R4; a referral is
#: a ServiceRequest like an order, in a namespace of its own; a reminder (a recall the MA
#: closed on the worklist) is the reminder kind's CommunicationRequest.
ITEM_RESOURCES: dict[str, tuple[str, str]] = {
    "appointment": ("Appointment", "appointment"),
    "result": ("DiagnosticReport", "result"),
    "order": ("ServiceRequest", "order"),
    "referral": ("ServiceRequest", "referral"),
    "prior_auth": ("Claim", "prior-auth"),
    "prescription": ("MedicationRequest", "prescription"),
    "reminder": ("CommunicationRequest", "reminder"),
}

#: R4 request-priority, least urgent first.
Priority = Literal["routine", "urgent", "asap", "stat"]


class ItemRef(BaseModel):
    """One thing a call, reminder or follow-up is about, by its business identifier.

    ``system`` is the identifier namespace; the clinic's ``<system>/<kind>`` when omitted.
    """

    model_config = _MODEL

    type: ItemKind
    id: Identifier = Field(min_length=1, max_length=128, pattern=r"^\S+$")
    system: str | None = Field(default=None, pattern=r"^(urn:|https?://)\S+$")


def problem(loc: str, message: str) -> InitErrorDetails:
    """One refusal of a model validator, naming the field."""
    return InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(loc,),
                            input=None)
