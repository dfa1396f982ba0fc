"""The immunization task: a vaccine dose given here, not given, or recorded from history.

One task is one dose (one US Core Immunization). ``status`` says which of three things
the MA records:

* ``given`` — the clinic gave the dose now: a CVX code that CDC lists as Active, the
  administration time with a UTC offset, and product details (lot, expiry, dose, site…).
* ``not-given`` — the dose was due but not given: a reason is required (patient objection,
  immunity, medical precaution, out of stock …) and product details are refused, since no
  product was used (FHIR ``status=not-done`` + ``statusReason``).
* ``historical`` — a dose given elsewhere, reported by a record or the patient
  (``primarySource=false`` + ``reportOrigin``); inactive/unspecified CVX codes are allowed
  and the date may be a date or an approximate text ("fall 2019").

Cross-field rules raise a pydantic error at the field they are about (e.g. ``vaccine.cvx``,
``expiration_date``) so the pipeline reports ``task[i].<field>``.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from ..codes import cvx, mvx
from ..errors import Problem
from .base import FieldError, TaskId, TaskModel, refuse_at
from .common import ClinicianRef, LocationRef, Lot, PatientRef
from .product import EXPIRED_LOT, lot_expired

__all__ = [
    "ELIGIBILITY",
    "FUNDING_SOURCES",
    "NOT_GIVEN_REASONS",
    "REPORT_ORIGINS",
    "ROUTES",
    "SITES",
    "ImmunizationTask",
    "VaccineGiven",
    "VisDocument",
]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: v3-ActSite codes for injection sites (HL7 table 0163), with their displays.
SITES: dict[str, str] = {
    "LD": "left deltoid", "RD": "right deltoid", "LA": "left arm", "RA": "right arm",
    "LT": "left thigh", "RT": "right thigh", "LVL": "left vastus lateralis",
    "RVL": "right vastus lateralis", "LG": "left gluteus medius", "RG": "right gluteus medius",
    "BN": "bilateral nares",
}
#: v3-RouteOfAdministration codes. Intranasal is NASINHL "Inhalation, nasal"; the R4 example
#: value set's NASINHLC means "nasal cannula" in the code system (mapping-reference §3.4 C3).
ROUTES: dict[str, str] = {
    "IM": "Injection, intramuscular", "SQ": "Injection, subcutaneous",
    "IDINJ": "Injection, intradermal", "PO": "Swallow, oral", "NASINHL": "Inhalation, nasal",
    "IVINJ": "Injection, intravenous", "TRNSDERM": "Transdermal",
}
#: v3-ActReason codes for a dose not given (R4 immunization-status-reason + refusal detail).
NOT_GIVEN_REASONS: dict[str, str] = {
    "PATOBJ": "patient objection", "RELIG": "religious objection",
    "PHILISOP": "philosophical objection", "VACSAF": "vaccine safety concerns",
    "IMMUNE": "immunity", "MEDPREC": "medical precaution", "OSTOCK": "product out of stock",
}
#: CDC PHIN VS immunization funding source (PHVS_ImmunizationFundingSource_IIS).
FUNDING_SOURCES: dict[str, str] = {
    "VXC50": "Public", "VXC51": "Public VFC", "VXC52": "Public non-VFC",
    "VXC1": "Federal funds", "VXC2": "State funds", "VXC3": "Tribal funds",
    "PHC68": "Military funds", "PHC70": "Private funds", "OTH": "Other", "UNK": "Unspecified",
}
#: VFC / program eligibility (HL7 table 0064 values used by CDC; labels from AIRA).
ELIGIBILITY: dict[str, str] = {
    "V01": "Not VFC eligible",
    "V02": "VFC eligible-Medicaid/Medicaid managed care",
    "V03": "VFC eligible-Uninsured",
    "V04": "VFC eligible-American Indian/Alaskan Native",
    "V05": "VFC eligible-Federally Qualified Health Center Patient (under-insured)",
    "V06": "VFC eligible- State specific eligibility (e.g. S-CHIP plan)",
    "V07": "VFC eligibility- Local-specific eligibility",
    "V08": "Not VFC eligible-Under-insured",
    "V22": "CHIP", "V23": "317", "V24": "Medicare", "V25": "State program eligibility",
}
#: R4 immunization-origin codes: who reported a historical dose.
REPORT_ORIGINS: dict[str, str] = {
    "provider": "Other Provider", "record": "Written Record",
    "recall": "Parent/Guardian/Patient Recall", "school": "School Record",
    "jurisdiction": "Jurisdictional IIS",
}

Site = Literal["LD", "RD", "LA", "RA", "LT", "RT", "LVL", "RVL", "LG", "RG", "BN"]
Route = Literal["IM", "SQ", "IDINJ", "PO", "NASINHL", "IVINJ", "TRNSDERM"]
Reason = Literal["PATOBJ", "RELIG", "PHILISOP", "VACSAF", "IMMUNE", "MEDPREC", "OSTOCK"]
Funding = Literal["VXC50", "VXC51", "VXC52", "VXC1", "VXC2", "VXC3", "PHC68", "PHC70",
                  "OTH", "UNK"]
Eligibility = Literal["V01", "V02", "V03", "V04", "V05", "V06", "V07", "V08",
                      "V22", "V23", "V24", "V25"]
Origin = Literal["provider", "record", "recall", "school", "jurisdiction"]


class VaccineGiven(BaseModel):
    """The vaccine: a CVX code (checked against the shipped CDC table), NDC optional."""

    model_config = _MODEL

    cvx: str = Field(description="CDC CVX code, a string ('03', '140')")
    ndc: str | None = Field(
        default=None, pattern=r"^(\d{4,5}-\d{3,4}-\d{1,2}|\d{11})$",
        description="NDC of the product (dashed 10-digit or 11-digit), sent as a translation",
    )

    @field_validator("cvx")
    @classmethod
    def _digits(cls, value: str) -> str:
        """Whether a code is in the CDC table is judged once, with the status (in the
        task); here only what cannot be a CVX code at all is refused, in words."""
        if not value.isascii() or not value.isdigit() or len(value) > 8:
            raise ValueError("is not a CVX code: CVX codes are the digits of the CDC CVX "
                             "table, e.g. '03' or '140'")
        return value


class VisDocument(BaseModel):
    """A Vaccine Information Statement given to the patient (Immunization.education).

    Three ways a clinic records which VIS it gave, all accepted: the CDC VIS document
    type and its edition date (``document_type`` + ``published``, the usual way), the
    24-digit fully-encoded barcode (``document``), or a URL (``reference``).
    """

    model_config = _MODEL

    document: str | None = Field(
        default=None, pattern=r"^\d{24}$",
        description="the 24-digit VIS fully-encoded barcode string (education.documentType)",
    )
    document_type: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="the CDC VIS document type as named on the statement, e.g. "
                    "'Influenza (Flu) Vaccine (Inactivated or Recombinant) VIS'; with "
                    "'published' (education.documentType + publicationDate)",
    )
    reference: str | None = Field(
        default=None, pattern=r"^(urn:|https?://)\S+$", description="URL of the VIS document",
    )
    published: date | None = Field(default=None, description="VIS edition date")
    presented: date | None = Field(default=None, description="date the VIS was given")

    @model_validator(mode="after")
    def _document_or_reference(self) -> VisDocument:
        if self.document and self.document_type:
            raise ValueError("give the VIS barcode ('document') or its document type "
                             "('document_type' + 'published'), not both")
        if self.document_type and self.published is None:
            raise ValueError("a VIS given by 'document_type' needs its edition date in "
                             "'published' (the date printed on the statement)")
        if not (self.document or self.document_type or self.reference):
            raise ValueError("a VIS needs its document type and edition date ('document_type'"
                             " + 'published'), the 24-digit barcode ('document') or a URL "
                             "('reference'); imm-1")
        return self


class ImmunizationTask(TaskModel):
    """One vaccine dose: given here, not given, or recorded from history."""

    kind: ClassVar[str] = "immunization"

    task: Literal["immunization"]
    id: TaskId
    patient: PatientRef
    status: Literal["given", "not-given", "historical"] = "given"
    vaccine: VaccineGiven
    occurred: AwareDatetime | None = Field(
        default=None, description="when the dose was given (or declined), with UTC offset",
    )
    occurred_date: date | None = Field(default=None, description="historical: date only")
    occurred_text: str | None = Field(
        default=None, min_length=1, max_length=100,
        description="historical: approximate time as reported ('fall 2019')",
    )
    report_origin: Origin | None = Field(default=None, description="historical: who reported it")
    reason_not_given: Reason | None = None
    manufacturer: str | None = Field(default=None, pattern=r"^[A-Za-z]{2,3}$",
                                     description="CDC MVX code, e.g. PMC")
    lot_number: Lot | None = None
    expiration_date: date | None = None
    dose_ml: float | None = Field(default=None, gt=0, le=10, description="dose in mL")
    site: Site | None = None
    route: Route | None = None
    administered_by: ClinicianRef | None = None
    ordered_by: ClinicianRef | None = None
    vis: list[VisDocument] = Field(default_factory=list, max_length=10)
    funding_source: Funding | None = None
    eligibility: Eligibility | None = None
    visit: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
                              description="appointment id of the visit (Immunization.encounter)")
    location: LocationRef | None = None
    note: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _consistent(self) -> ImmunizationTask:
        errors: list[FieldError] = []
        vaccine = cvx(self.vaccine.cvx)
        if vaccine is None:
            errors.append((("vaccine", "cvx"), "is not a code in the CDC CVX table"))
        elif self.status == "given" and not vaccine.active:
            errors.append((("vaccine", "cvx"),
                           f"CVX {self.vaccine.cvx} is {vaccine.status} in the CDC table; only "
                           "Active codes may be given (inactive codes are for historical records)"))
        if self.manufacturer is not None and mvx(self.manufacturer) is None:
            errors.append((("manufacturer",), "is not a code in the CDC MVX table"))
        if self.status == "historical":
            given = [f for f in ("occurred", "occurred_date", "occurred_text")
                     if getattr(self, f) is not None]
            if len(given) != 1:
                errors.append(((given[1] if len(given) > 1 else "occurred",),
                               "a historical dose needs exactly one of 'occurred', "
                               "'occurred_date' or 'occurred_text'"))
        else:
            if self.occurred is None:
                errors.append((("occurred",), f"is required for a dose {self.status}"))
            for name in ("occurred_date", "occurred_text", "report_origin"):
                if getattr(self, name) is not None:
                    errors.append(((name,), "is only for historical doses"))
        if self.status == "not-given":
            if self.reason_not_given is None:
                errors.append((("reason_not_given",),
                               "is required when the dose was not given (statusReason)"))
            for name in ("lot_number", "expiration_date", "dose_ml", "site", "route",
                         "manufacturer", "administered_by", "funding_source"):
                if getattr(self, name) is not None:
                    errors.append(((name,), "must be empty: no product was given"))
        elif self.reason_not_given is not None:
            errors.append((("reason_not_given",),
                           "is only for a dose not given (statusReason goes with not-done)"))
        if self.status == "given" and lot_expired(self.expiration_date, self.occurred):
            errors.append((("expiration_date",), EXPIRED_LOT))
        refuse_at("ImmunizationTask", errors)
        return self

    def warnings(self) -> list[Problem]:
        out = []
        if self.status == "given":
            if self.lot_number is None:
                out.append(Problem("lot_number", "no lot number for a dose given here "
                                                 "(needed for recalls and VFC accounting)",
                                                 "incomplete"))
            maker = mvx(self.manufacturer) if self.manufacturer else None
            if maker is not None and not maker.active:
                out.append(Problem("manufacturer", f"MVX {maker.code} is Inactive in the CDC "
                                                   "table; check the product's manufacturer",
                                                   "code-invalid"))
        if self.dose_ml is not None and self.dose_ml > 1.0:
            out.append(Problem("dose_ml", "above 1 mL; most vaccine doses are 0.1-1.0 mL", "value"))
        if self.status == "historical" and self.report_origin is None:
            out.append(Problem("report_origin", "who reported this historical dose is unknown",
                               "incomplete"))
        return out
