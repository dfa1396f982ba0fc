"""The skin_test task: a tuberculin skin test (Mantoux), placed and later read.

One task is one test, known by its id: the MA sends it when the PPD is placed
(``placement``) and again, with the same id, when the test is read 48–72 hours later
(``placement`` + ``reading``). The placement is written once (a conditional create); the
reading is linked to it.

Rules (CDC, "Tuberculin Skin Testing" fact sheet):

* the reading is the induration across the forearm in whole millimetres (0 or more);
* it is interpreted with the risk group's cut-off the clinic gives: 5, 10 or 15 mm
  (positive at or above it) — mafhir does not guess the risk group;
* a reading outside 48–72 hours is kept and flagged (a warning); a positive reaction can
  still be measured up to 7 days, so a reading later than that, or before the placement,
  is refused;
* a PPD lot that had expired on the placement date is refused, as a vaccine's is.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import Problem
from .base import TaskModel, refuse_at
from .common import ClinicianRef, Lot, PatientRef, VisitId
from .product import lot_expired
from .text import Name

__all__ = ["READ_LATEST", "READ_WINDOW", "Placement", "Reading", "SkinTestTask"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: When a reading is valid (hours after placement) and the latest it is taken at all.
READ_WINDOW = (timedelta(hours=48), timedelta(hours=72))
READ_LATEST = timedelta(days=7)


class Placement(BaseModel):
    """The intradermal injection of 0.1 mL PPD (5 TU) on the forearm."""

    model_config = _MODEL

    placed: AwareDatetime = Field(description="when the PPD was injected (with offset)")
    site: Literal["left-forearm", "right-forearm"]
    product: Name | None = Field(default=None, min_length=1, max_length=200,
                                 description="the PPD product, e.g. Tubersol or Aplisol")
    lot: Lot | None = None
    expiration_date: date | None = None
    performer: ClinicianRef | None = None
    visit: VisitId | None = None


class Reading(BaseModel):
    """The induration measured 48–72 hours later, and the cut-off it is read against."""

    model_config = _MODEL

    read: AwareDatetime = Field(description="when the test was read (with offset)")
    induration_mm: int = Field(strict=True,
                               description="transverse diameter of the induration, mm "
                                           "(not the redness); 0 when none")
    positive_from_mm: Literal[5, 10, 15] = Field(
        description="the risk group's cut-off (CDC: 5, 10 or 15 mm); positive at or above")
    reader: ClinicianRef | None = None
    visit: VisitId | None = None

    @field_validator("induration_mm")
    @classmethod
    def _millimetres(cls, value: int) -> int:
        if value < 0:
            raise ValueError("an induration cannot be negative (0 mm means none)")
        if value > 100:
            raise ValueError("is larger than a forearm (over 100 mm); check the value")
        return value

    @property
    def positive(self) -> bool:
        return self.induration_mm >= self.positive_from_mm


class SkinTestTask(TaskModel):
    """A tuberculin skin test: its placement and, once read, its reading."""

    kind: ClassVar[str] = "skin_test"

    task: Literal["skin_test"]
    patient: PatientRef
    placement: Placement
    reading: Reading | None = None
    note: str | None = Field(default=None, min_length=1, max_length=2000)

    @property
    def hours_to_reading(self) -> float | None:
        if self.reading is None:
            return None
        return (self.reading.read - self.placement.placed).total_seconds() / 3600

    @model_validator(mode="after")
    def _timeline(self) -> SkinTestTask:
        errors: list[tuple[tuple[str | int, ...], str]] = []
        p = self.placement
        if lot_expired(p.expiration_date, p.placed):
            errors.append((("placement", "expiration_date"),
                           "the PPD lot had expired on the placement date"))
        if self.reading is not None:
            elapsed = self.reading.read - p.placed
            if elapsed <= timedelta(0):
                errors.append((("reading", "read"), "is not after the placement"))
            elif elapsed > READ_LATEST:
                days = elapsed.total_seconds() / 86400
                errors.append((("reading", "read"),
                               f"is {days:.0f} days after the placement; a skin test is "
                               "read 48–72 hours after it (a positive reaction up to 7 "
                               "days): place a new test"))
        refuse_at("SkinTestTask", errors, "value")
        return self

    def warnings(self) -> list[Problem]:
        out = []
        if self.placement.lot is None:
            out.append(Problem("placement.lot", "no PPD lot number (needed for recalls)",
                               "incomplete"))
        hours = self.hours_to_reading
        lo, hi = (w.total_seconds() / 3600 for w in READ_WINDOW)
        if hours is not None and not lo <= hours <= hi:
            out.append(Problem("reading.read", f"read {hours:.0f} hours after placement, "
                                               "outside the 48–72 hour window; kept as "
                                               "read (CDC: a negative read outside the "
                                               "window should be repeated)", "value"))
        return out
