"""What a mapper needs to know beyond the task: the clinic it works for.

Kept out of the task itself so that one NDJSON file of tasks does not repeat the clinic
on every line, and so that mappers stay pure (``MapContext`` is an input, not a lookup).
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["DEFAULT_CLINIC", "Clinic", "MapContext"]


class Clinic(BaseModel):
    """The clinic (a US Core Organization) and the namespaces of its identifiers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Organization.name")
    system: str = Field(
        pattern=r"^(urn:|https?://)\S+$",
        description="Base URI of the clinic's identifier namespaces; task identifiers are "
        "'<system>/<kind>' and the MRN namespace defaults to '<system>/mrn'.",
    )
    npi: str | None = Field(default=None, pattern=r"^\d{10}$", description="Organization NPI")
    mrn_system: str | None = Field(default=None, description="MRN namespace URI")
    phone: str | None = None
    address_line: str | None = None
    city: str | None = None
    state: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    postal_code: str | None = None
    time_zone: str | None = Field(
        default=None, description="IANA zone (e.g. America/Chicago) of the clinic: the zone "
        "of inbound HL7 v2 times sent without an offset when their sender has none configured")

    @field_validator("time_zone")
    @classmethod
    def _iana(cls, value: str | None) -> str | None:
        """An unknown zone name fails when the settings load, not at the first message."""
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError("not an IANA time zone (e.g. America/Chicago)") from exc
        return value

    @property
    def mrn_namespace(self) -> str:
        return self.mrn_system or f"{self.system}/mrn"

    def task_system(self, kind: str) -> str:
        """The identifier system of resources made from tasks of ``kind``."""
        return f"{self.system}/{kind}"


DEFAULT_CLINIC = Clinic(name="mafhir clinic", system="urn:mafhir:clinic")


@dataclass(frozen=True, slots=True)
class MapContext:
    """Inputs to every mapper besides the task."""

    clinic: Clinic = DEFAULT_CLINIC
