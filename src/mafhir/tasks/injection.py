"""The injection task: an in-office medication that is not a vaccine (B12, ceftriaxone,
Depo-Provera, ketorolac, testosterone, allergy shots), given here or not given.

One task is one administration (one MedicationAdministration; mapping-reference §9).
Vaccines are never injections in mafhir: they are ``immunization`` tasks (Immunization).

* ``given`` — the medication (RxNorm and/or NDC), the time with a UTC offset, the dose with
  its unit (UCUM once parsed: ``mcg`` becomes ``ug``, ``ml`` ``mL``), route and site, the
  lot and its expiry (an expired lot is refused, the same rule as for vaccines), the MA who
  gave it and the provider who ordered it.
* ``not-given`` — ordered but not given: a reason is required and product details are
  refused, since nothing was given (FHIR ``status=not-done`` + ``statusReason``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import Problem
from .base import FieldError, TaskId, TaskModel, refuse_at
from .common import Lot, PatientRef, PractitionerRef
from .immunization import NOT_GIVEN_REASONS, SITES
from .product import EXPIRED_LOT, lot_expired
from .text import Name
from .vitals import Number

__all__ = ["DOSE_UNITS", "INJECTION_NOT_GIVEN", "INJECTION_ROUTES", "INJECTION_SITES", "Dose",
           "InjectionTask", "MedicationGiven"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: Routes of an in-office injection, as the clinic writes them → SNOMED CT route codes
#: (mapping-reference §9, example value set route-codes). ``SQ`` is read as ``SC``.
INJECTION_ROUTES: dict[str, tuple[str, str]] = {
    "IM": ("78421000", "Intramuscular route"),
    "SC": ("34206005", "Subcutaneous route"),
    "IV": ("47625008", "Intravenous route"),
}
#: Injection sites: the vaccine sites (v3-ActSite, HL7 table 0163) minus the nares.
INJECTION_SITES: dict[str, str] = {k: v for k, v in SITES.items() if k != "BN"}
#: Units a dose may be given in (UCUM): mass, volume and international units.
DOSE_UNITS: dict[str, str] = {"mg": "mg", "ug": "mcg", "g": "g", "mL": "mL", "[IU]": "IU"}
#: Spellings people write that are not UCUM, and what they mean.
_UNIT_ALIASES = {"mcg": "ug", "µg": "ug", "units": "[IU]", "unit": "[IU]", "iu": "[IU]",
                 "cc": "mL", "ml": "mL"}

InjectionRoute = Annotated[Literal["IM", "SC", "IV"],
                           BeforeValidator(lambda v: "SC" if v == "SQ" else v)]
InjectionSite = Literal["LD", "RD", "LA", "RA", "LT", "RT", "LVL", "RVL", "LG", "RG"]
NotGivenReason = Literal["PATOBJ", "RELIG", "PHILISOP", "MEDPREC", "OSTOCK"]
#: v3-ActReason codes for an injection not given: the vaccine refusal codes that apply.
INJECTION_NOT_GIVEN: dict[str, str] = {k: NOT_GIVEN_REASONS[k] for k in get_args(NotGivenReason)}


def _dose_unit(value: Any) -> Any:
    """A unit as written → its UCUM code, checked by the project's UCUM parser."""
    if not isinstance(value, str):
        return value
    from ..hl7v2.terminology import ucum_code

    text = value.strip()
    code = _UNIT_ALIASES.get(text.lower()) or ucum_code(text) or text
    if code not in DOSE_UNITS:
        raise PydanticCustomError(
            "value_error", "is not a dose unit; use one of mg, mcg, g, mL or units (IU)")
    return code


DoseUnit = Annotated[str, BeforeValidator(_dose_unit)]


class MedicationGiven(BaseModel):
    """The product: an RxNorm clinical drug and/or the NDC of the vial actually used."""

    model_config = _MODEL

    rxnorm: str | None = Field(default=None, pattern=r"^\d{1,9}$",
                               description="RxNorm code (SCD/SBD), e.g. '1665005'")
    ndc: str | None = Field(
        default=None, pattern=r"^(\d{4,5}-\d{3,4}-\d{1,2}|\d{11})$",
        description="NDC of the product used (dashed 10-digit or 11-digit)")
    name: Name | None = Field(default=None, min_length=1, max_length=200,
                              description="the name as charted ('ceftriaxone 500 mg')")

    @model_validator(mode="after")
    def _coded(self) -> MedicationGiven:
        if not (self.rxnorm or self.ndc):
            raise ValueError("an injection needs 'rxnorm' or 'ndc' (what was given must be "
                             "coded; a name alone cannot be checked)")
        return self


class Dose(BaseModel):
    """The amount given, with its unit (``1 mL``, ``500 mg``, ``1000 mcg``)."""

    model_config = _MODEL

    value: Annotated[Number, Field(gt=0, le=10000)]
    unit: DoseUnit


class InjectionTask(TaskModel):
    """One in-office injection of a medication that is not a vaccine."""

    kind: ClassVar[str] = "injection"

    task: Literal["injection"]
    id: TaskId
    patient: PatientRef
    status: Literal["given", "not-given"] = "given"
    medication: MedicationGiven
    occurred: AwareDatetime = Field(description="when it was given (or declined), with offset")
    reason_not_given: NotGivenReason | None = None
    dose: Dose | None = None
    route: InjectionRoute | None = None
    site: InjectionSite | None = None
    lot_number: Lot | None = None
    expiration_date: date | None = None
    administered_by: PractitionerRef | None = Field(
        default=None, description="the MA who gave it (MedicationAdministration.performer)")
    ordered_by: PractitionerRef = Field(
        description="the provider who ordered it (requester of the MedicationRequest)")
    order_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
        description="the EHR's id of the order; the order is written under the task id "
                    "when not given")
    visit: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
                              description="appointment id of the visit (context)")
    note: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> InjectionTask:
        errors: list[FieldError] = []
        if self.status == "given":
            if self.dose is None:
                errors.append((("dose",), "is required for an injection given (mad-1)"))
            if self.administered_by is None:
                errors.append((("administered_by",),
                               "is required for an injection given (who gave it)"))
            if self.reason_not_given is not None:
                errors.append((("reason_not_given",),
                               "is only for an injection not given (statusReason goes with "
                               "not-done)"))
            if lot_expired(self.expiration_date, self.occurred):
                errors.append((("expiration_date",), EXPIRED_LOT))
        else:
            if self.reason_not_given is None:
                errors.append((("reason_not_given",),
                               "is required when the injection was not given (statusReason)"))
            for name in ("dose", "route", "site", "lot_number", "expiration_date"):
                if getattr(self, name) is not None:
                    errors.append(((name,), "must be empty: nothing was given"))
        refuse_at("InjectionTask", errors)
        return self

    def warnings(self) -> list[Problem]:
        out = []
        if self.status == "given" and self.lot_number is None:
            out.append(Problem("lot_number", "no lot number for an injection given here "
                                             "(needed for recalls)", "incomplete"))
        return out

