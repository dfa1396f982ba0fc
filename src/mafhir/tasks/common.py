"""The people and places tasks refer to: patient, practitioner, location."""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .text import Identifier, Name

__all__ = ["Address", "ClinicianRef", "LocationRef", "Lot", "Npi", "PatientRef",
           "PractitionerRef", "VisitId", "npi_is_valid"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: The visit a task belongs to: the appointment id whose Encounter check-in opened.
VisitId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
                               description="The appointment id whose Encounter this is")]
#: A product's lot number (a vaccine, a test kit, a PPD vial), as printed.
Lot = Annotated[Identifier, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]


@lru_cache(maxsize=4096)
def npi_is_valid(npi: str) -> bool:
    """The NPI check digit: Luhn over the ten digits prefixed by the card issuer 80840.

    Remembered: a clinic's few clinicians recur in nearly every task."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + npi)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _check_npi(value: str) -> str:
    if not npi_is_valid(value):
        raise ValueError("not a valid NPI (10 digits with a Luhn check digit)")
    return value


Npi = Annotated[str, Field(description="National Provider Identifier"), AfterValidator(_check_npi)]


class Address(BaseModel):
    model_config = _MODEL

    line: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=4)
    city: str | None = None
    state: str | None = Field(default=None, pattern=r"^[A-Z]{2}$", description="USPS code")
    postal_code: str | None = Field(default=None, pattern=r"^\d{5}(-\d{4})?$")
    country: str = "US"


class PatientRef(BaseModel):
    """The patient: the MRN alone for a known patient, or demographics for a new one.

    With demographics a US Core Patient is written (conditional create on the MRN);
    with the MRN alone, resources refer to ``Patient?identifier=<system>|<mrn>``.
    A newborn not yet named is a new patient with no ``family`` or ``given``: its
    ``Patient.name`` carries a data-absent-reason (US Core us-core-6 allows it).
    """

    model_config = _MODEL

    mrn: Identifier = Field(min_length=1, max_length=64, description="Medical record number")
    system: Identifier | None = Field(
        default=None,
        pattern=r"^(urn:|https?://)\S+$",
        description="MRN namespace URI; the clinic's MRN system when omitted",
    )
    family: Name | None = Field(default=None, min_length=1)
    given: list[Annotated[Name, Field(min_length=1)]] = Field(default_factory=list)
    birth_date: date | None = None
    gender: Literal["male", "female", "other", "unknown"] | None = None
    phone: str | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    address: Address | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

    @property
    def unnamed(self) -> bool:
        """A new patient not yet named (a newborn known by MRN, birth date and sex)."""
        return self.has_demographics and not (self.family or self.given)

    @property
    def has_demographics(self) -> bool:
        return any(
            (self.family, self.given, self.birth_date, self.gender, self.phone, self.email,
             self.address, self.language)
        )

    @model_validator(mode="after")
    def _new_patient_is_complete(self) -> PatientRef:
        if self.has_demographics:
            if not (self.family or self.given) and self.birth_date is None:
                raise ValueError(
                    "a new patient needs a name ('family' or 'given'), or at least "
                    "'birth_date' and 'gender' when not yet named (a newborn)"
                )
            if self.gender is None:
                raise ValueError(
                    "a new patient needs 'gender' (US Core Patient.gender is required; "
                    "use 'unknown' if not known)"
                )
        return self


class ClinicianRef(BaseModel):
    """A clinician, identified by NPI, named or not.

    With a name, a US Core Practitioner is written (it needs identifier and family name).
    With the NPI alone the EHR already knows the clinician: resources refer to them by
    identifier (``{"identifier": {"system": us-npi, "value": …}}``) and no name is
    invented. The MA's own kinds take this (a vaccinator, an ordering provider, an
    appointment's practitioner, a performer).
    """

    model_config = _MODEL

    npi: Npi
    family: Name | None = Field(default=None, min_length=1)
    given: list[Annotated[Name, Field(min_length=1)]] = Field(default_factory=list)
    prefix: Name | None = None
    suffix: Name | None = None

    @property
    def npi_only(self) -> bool:
        """Known by NPI alone: referred to by identifier, no Practitioner written."""
        return self.family is None

    @model_validator(mode="after")
    def _name_has_family(self) -> ClinicianRef:
        if self.family is None and (self.given or self.prefix or self.suffix):
            raise ValueError("a practitioner's name needs 'family' (US Core "
                             "Practitioner.name.family); or give the NPI alone")
        return self


class PractitionerRef(ClinicianRef):
    """A clinician identified by NPI *and* named (US Core Practitioner needs identifier and
    family name): for what must carry the name itself, such as an HL7 v2 message's
    ordering provider or a prescription's prescriber."""

    family: Name = Field(min_length=1)


class LocationRef(BaseModel):
    """A place in the clinic (exam room, front desk, satellite office)."""

    model_config = _MODEL

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")
    name: Name = Field(min_length=1)
    address: Address | None = None
