"""The coverage task: the patient's insurance card, and optionally an eligibility check.

The MA copies the card (payer, member id, group, plan, subscriber, dates, copays printed on
it) and, when the practice runs a real-time 270/271 check, its result (active or not, copay,
coinsurance, deductible remaining). Amounts are US dollars with at most two decimals.

Decisions (see ``mappers/coverage.py`` for the FHIR side):

* ``coinsurance_percent`` is a **whole percent 0–100** (20 for 20 %), as the R4 example
  writes ``copay-percent`` (``allowedUnsignedInt``). X12 EB08 carries a fraction (0.2 = 20 %);
  whoever reads a 271 multiplies by 100. A fractional input such as 0.2 is refused so that
  a fraction cannot pass as a percent.
* The deductible is the annual amount (EB06 ``23``) plus, optionally, what is left of it
  (EB06 ``29``); ``remaining`` needs ``amount`` and cannot exceed it.
* A failed check (X12 AAA, e.g. ``75`` Subscriber/Insured Not Found) carries ``error``
  and no result values.
* A check with neither ``active`` nor ``error`` (nor values) is one still to run: only
  the CoverageEligibilityRequest is written, and the payer's answer comes back through
  the ``x12`` destination (plugins/mafhir-x12-eligibility).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import Problem
from .base import TaskModel
from .common import PatientRef, PractitionerRef
from .text import Identifier, Name

__all__ = [
    "ORDERS",
    "RELATIONSHIPS",
    "CardCopays",
    "CoverageTask",
    "Deductible",
    "Eligibility",
    "EligibilityError",
    "Payer",
    "Period",
    "PlanClass",
    "Subscriber",
]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: subscriber-relationship codes (the patient's relationship to the subscriber).
RELATIONSHIPS = ("self", "spouse", "child", "parent", "common", "other", "injured")
Relationship = Literal["self", "spouse", "child", "parent", "common", "other", "injured"]

#: Coverage.order for each word the clinic uses.
ORDERS = {"primary": 1, "secondary": 2, "tertiary": 3}

#: An amount of US dollars printed on a card or returned by a payer.
Money = Annotated[
    Decimal,
    Field(ge=0, le=10_000_000, max_digits=10, decimal_places=2,
          description="US dollars, at most two decimals"),
]

#: An identifier used as a value (not in a URI): no spaces, 1-80 characters.
_Token = Annotated[Identifier, Field(min_length=1, max_length=80, pattern=r"^\S+$")]


class Payer(BaseModel):
    """The insurer as printed on the card, with its electronic payer id."""

    model_config = _MODEL

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,79}$",
        description="Electronic (EDI) payer id, e.g. 60054; letters, digits, . _ -",
    )
    name: Name = Field(min_length=1, max_length=200)


class PlanClass(BaseModel):
    """A group or plan on the card: its number and, when printed, its name.

    Many cards print a plan's name ("Gold PPO 1500") and no plan number: the name alone
    is taken, and ``Coverage.class.value`` then says the number is unknown
    (data-absent-reason) instead of inventing one.
    """

    model_config = _MODEL

    id: _Token | None = None
    name: Name | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _id_or_name(self) -> PlanClass:
        if self.id is None and self.name is None:
            raise ValueError("needs the number ('id') or the name ('name') printed on the card")
        return self


class Period(BaseModel):
    """When the coverage is in effect (the card's effective and end dates)."""

    model_config = _MODEL

    start: date | None = None
    end: date | None = None

    @field_validator("end")
    @classmethod
    def _end_not_before_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if end is not None and start is not None and end < start:
            raise ValueError("the end date is before the start date")
        return end


class Subscriber(BaseModel):
    """The policy holder and the patient's relationship to them.

    ``self`` means the patient holds the policy; anyone else needs a name (a RelatedPerson
    is written for them). ``member_id`` is the subscriber id when it differs from the
    card's member id (Coverage.subscriberId), e.g. a family id without the person suffix.
    """

    model_config = _MODEL

    relationship: Relationship = Field(
        description="The patient's relationship to the subscriber (subscriber-relationship)"
    )
    given: list[Annotated[Name, Field(min_length=1)]] = Field(default_factory=list)
    family: Name | None = Field(default=None, min_length=1, validate_default=True)
    birth_date: date | None = None
    gender: Literal["male", "female", "other", "unknown"] | None = None
    member_id: _Token | None = Field(
        default=None, description="The subscriber's own member id, when it differs"
    )

    @field_validator("family")
    @classmethod
    def _name_matches_relationship(cls, family: str | None, info: ValidationInfo) -> str | None:
        relationship = info.data.get("relationship")
        if relationship is None:  # already reported
            return family
        named = bool(family or info.data.get("given"))
        if relationship != "self" and not named:
            raise ValueError(
                f"a subscriber who is the patient's '{relationship}' needs a name "
                "(family or given)"
            )
        if relationship == "self" and named:
            raise ValueError("with relationship 'self' the subscriber is the patient: give no name")
        return family

    @model_validator(mode="after")
    def _self_has_no_details(self) -> Subscriber:
        if self.relationship == "self" and (self.birth_date or self.gender):
            raise ValueError(
                "with relationship 'self' the subscriber is the patient: give no birth_date "
                "or gender"
            )
        return self


class CardCopays(BaseModel):
    """Copays printed on the card (Coverage.costToBeneficiary)."""

    model_config = _MODEL

    primary_care: Money | None = Field(default=None, description="coverage-copay-type gpvisit")
    specialist: Money | None = Field(default=None, description="coverage-copay-type spvisit")
    emergency: Money | None = Field(default=None, description="coverage-copay-type emergency")
    urgent_care: Money | None = Field(default=None, description="coverage-copay-type urgentcare")
    telehealth: Money | None = Field(default=None, description="coverage-copay-type televisit")


class Deductible(BaseModel):
    """The annual deductible and what is left of it this year."""

    model_config = _MODEL

    amount: Money = Field(description="The annual deductible (X12 EB06 23)")
    remaining: Money | None = Field(default=None, description="Left to meet (X12 EB06 29)")

    @field_validator("remaining")
    @classmethod
    def _remaining_within_amount(cls, remaining: Decimal | None,
                                 info: ValidationInfo) -> Decimal | None:
        amount = info.data.get("amount")
        if remaining is not None and amount is not None and remaining > amount:
            raise ValueError("the remaining deductible is more than the deductible itself")
        return remaining


class EligibilityError(BaseModel):
    """Why the payer could not answer (X12 AAA03 reject reason, kept as sent)."""

    model_config = _MODEL

    code: str = Field(pattern=r"^[A-Z0-9]{2}$",
                      description="X12 AAA03 reject reason, e.g. 72, 73, 75, 42")
    text: str | None = Field(default=None, min_length=1, max_length=500)


class Eligibility(BaseModel):
    """One real-time eligibility check (270/271) and what the payer answered."""

    model_config = _MODEL

    checked_at: AwareDatetime = Field(description="When the check ran (with UTC offset)")
    service_date: date | None = Field(default=None, description="Date of service asked about")
    service_type: str = Field(
        default="30", pattern=r"^[A-Z0-9]{1,2}$",
        description="X12 service type (element 1365); 30 = Health Benefit Plan Coverage",
    )
    provider: PractitionerRef | None = Field(
        default=None, description="The requesting clinician; the clinic when omitted"
    )
    error: EligibilityError | None = None
    network: Literal["in", "out"] = "in"
    unit: Literal["individual", "family"] = "individual"
    copay: Money | None = Field(default=None, description="Copay per visit (EB01 B)")
    coinsurance_percent: int | None = Field(
        default=None, ge=0, le=100,
        description="Whole percent 0-100 (20 = 20 %); X12 EB08 fractions times 100",
    )
    deductible: Deductible | None = None
    # after the values: whether it may be left out depends on them (a check to run)
    active: bool | None = Field(default=None, validate_default=True,
                                description="Coverage in force (271 EB01 1-5 vs 6-8); "
                                "left out with no values: a check still to run")

    @field_validator("coinsurance_percent", mode="before")
    @classmethod
    def _percent_not_fraction(cls, value: Any) -> Any:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(
                "must be a whole percent 0-100 (20 for 20 %); a fraction such as 0.2 from "
                "X12 EB08 must be multiplied by 100"
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 100:
            raise ValueError("must be a percent from 0 to 100 (20 for 20 %)")
        return value

    @field_validator("active")
    @classmethod
    def _active_unless_failed(cls, active: bool | None, info: ValidationInfo) -> bool | None:
        failed = info.data.get("error") is not None
        values = any(info.data.get(k) is not None
                     for k in ("copay", "coinsurance_percent", "deductible"))
        if active is None and not failed and "error" in info.data and values:
            raise ValueError("is required: did the payer report the coverage active (true/false)?")
        if active is not None and failed:
            raise ValueError("a failed check (error) has no answer: leave 'active' out")
        return active

    @model_validator(mode="after")
    def _failed_check_has_no_values(self) -> Eligibility:
        if self.error is not None and (
            self.copay is not None or self.coinsurance_percent is not None
            or self.deductible is not None
        ):
            raise ValueError("a failed check (error) has no copay, coinsurance or deductible")
        return self

    @property
    def pending(self) -> bool:
        """No answer yet: a check to run (an ``x12:NAME`` destination asks the payer)."""
        return self.active is None and self.error is None

    @property
    def has_benefits(self) -> bool:
        return (self.copay is not None or self.coinsurance_percent is not None
                or self.deductible is not None)


class CoverageTask(TaskModel):
    """The insurance card (→ US Core Coverage) and an optional eligibility check."""

    kind: ClassVar[str] = "coverage"

    task: Literal["coverage"]
    patient: PatientRef
    status: Literal["active", "cancelled", "draft", "entered-in-error"] = Field(
        default="active",
        description="Record status of the card (fm-status); not whether it is in force",
    )
    payer: Payer
    member_id: _Token = Field(description="Member id on the card (identifier type MB)")
    group: PlanClass | None = None
    plan: PlanClass | None = None
    subscriber: Subscriber
    period: Period | None = None
    order: Literal["primary", "secondary", "tertiary"] | None = None
    payer_type: str | None = Field(
        default=None, pattern=r"^[1-9][0-9]{0,4}$",
        description="Source of Payment Typology code, e.g. 1 Medicare, 2 Medicaid, "
        "5 Private Health Insurance, 81 Self-pay",
    )
    copays: CardCopays | None = None
    eligibility: Eligibility | None = None

    @model_validator(mode="before")
    @classmethod
    def _same_member_id_once(cls, data: Any) -> Any:
        """A subscriber member id equal to the card's says nothing more: keep it once."""
        if isinstance(data, dict):
            sub = data.get("subscriber")
            if (isinstance(sub, dict) and sub.get("member_id") is not None
                    and sub.get("member_id") == data.get("member_id")):
                data = {**data, "subscriber": {k: v for k, v in sub.items() if k != "member_id"}}
        return data

    def warnings(self) -> list[Problem]:
        out: list[Problem] = []
        elig = self.eligibility
        if elig is not None and elig.coinsurance_percent == 1:
            out.append(Problem(
                "eligibility.coinsurance_percent",
                "1 % coinsurance is unusual; if the payer sent the fraction 1.0 it means 100",
                "value",
            ))
        if elig is not None and elig.active and self.status in ("cancelled", "entered-in-error"):
            out.append(Problem("status", f"the card is '{self.status}' but the payer reports "
                                         "the coverage active", "conflict"))
        if (elig is not None and elig.service_date and self.period is not None
                and ((self.period.start and elig.service_date < self.period.start)
                     or (self.period.end and elig.service_date > self.period.end))):
            out.append(Problem("eligibility.service_date",
                               "is outside the card's coverage period", "invariant"))
        return out
