"""The point-of-care test task: one CLIA-waived test the MA ran and read, in the clinic's
words.

``test`` names the test; the result goes in the field that test reports:

* ``glucose``, ``a1c``, ``inr``, ``hemoglobin``, ``lead`` — ``value`` with its ``unit``
  (a default per test), ``comparator`` ``>``/``<`` for a meter's HI/LO, ``fasting`` for a
  glucose (a fasting glucose has its own LOINC), ``reference_range`` from the kit's
  package insert when it differs from the catalog's typical range;
* ``urine_hcg``, ``strep``, ``covid`` — ``result``: positive, negative or invalid (the
  control line did not appear: recorded, with no value);
* ``influenza`` — ``influenza_a`` and/or ``influenza_b``, each a result as above;
* ``urine_dipstick`` — ``dipstick``: each pad read, as a number in the pad's unit or as the
  word on the bottle's colour chart (negative, trace, small, moderate, large, 1+ … 4+).

``kit`` is the test kit or meter and its lot (Observation.device → Device.lotNumber); a kit
lot that had expired on the test date is refused, as a vaccine's is. Values outside what a
test can read at all are refused naming the field (a glucose of 4,000 mg/dL); ranges and
limits are project heuristics (:mod:`mafhir.codes.poc`).
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
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..codes.poc import DIPSTICK, HEMOGLOBIN_BY_SEX, QUANTITATIVE, Quantitative
from ..errors import Problem
from .base import TaskModel, refuse_at
from .common import ClinicianRef, Lot, PatientRef, VisitId
from .product import lot_expired
from .text import Name
from .vitals import Number

__all__ = [
    "ANSWERS",
    "DEFAULT_UNITS",
    "TESTS",
    "Dipstick",
    "Kit",
    "PocTestTask",
    "ReferenceRange",
    "flag",
]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

Test = Literal["urine_dipstick", "urine_hcg", "glucose", "a1c", "strep", "influenza", "covid",
               "inr", "hemoglobin", "lead"]
TESTS: tuple[str, ...] = get_args(Test)

#: A qualitative result; ``invalid`` is a run whose control failed (no result to report).
Answer = Literal["positive", "negative", "invalid"]
ANSWERS: tuple[str, ...] = get_args(Answer)

#: The unit a quantitative result is in when the task does not say.
DEFAULT_UNITS = {"glucose": "mg/dL", "a1c": "%", "inr": "{INR}", "hemoglobin": "g/dL",
                 "lead": "ug/dL"}
#: How clinics write those units → UCUM.
_UNIT_ALIASES = {"mg/dl": "mg/dL", "mmol/l": "mmol/L", "inr": "{INR}", "{inr}": "{INR}",
                 "g/dl": "g/dL", "ug/dl": "ug/dL", "mcg/dl": "ug/dL", "µg/dl": "ug/dL",
                 "%": "%", "mmol/mol": "mmol/mol"}

#: Which task fields each test reports its result in.
_RESULT_FIELDS = {"value", "unit", "comparator", "fasting", "reference_range", "result",
                  "influenza_a", "influenza_b", "dipstick"}
_FIELDS_OF: dict[str, set[str]] = {
    **{t: {"value", "unit", "comparator", "reference_range"}
       for t in ("a1c", "inr", "hemoglobin", "lead")},
    "glucose": {"value", "unit", "comparator", "reference_range", "fasting"},
    "urine_hcg": {"result"}, "strep": {"result"}, "covid": {"result"},
    "influenza": {"influenza_a", "influenza_b"},
    "urine_dipstick": {"dipstick"},
}


def _unit(value: Any) -> Any:
    if isinstance(value, str):
        return _UNIT_ALIASES.get(value.strip().lower(), value.strip())
    return value


DipWord = Literal["negative", "positive", "trace", "small", "moderate", "large", "1+", "2+",
                  "3+", "4+"]
Pad = Number | DipWord


class Kit(BaseModel):
    """The test kit or meter used, and its lot (CLIA quality control and recalls)."""

    model_config = _MODEL

    name: Name = Field(min_length=1, max_length=200, description="kit or meter as sold")
    manufacturer: Name | None = Field(default=None, min_length=1, max_length=200)
    model: str | None = Field(default=None, min_length=1, max_length=100)
    lot: Lot | None = None
    expiration_date: date | None = None


class ReferenceRange(BaseModel):
    """A reference range in the result's unit (from the kit's package insert)."""

    model_config = _MODEL

    low: Number | None = None
    high: Number | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ReferenceRange:
        if self.low is None and self.high is None:
            raise ValueError("needs 'low', 'high' or both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("'low' is above 'high'")
        return self


class Dipstick(BaseModel):
    """The pads of a urine dipstick, each a number in its unit or a colour-chart word."""

    model_config = _MODEL

    specific_gravity: Pad | None = None
    ph: Pad | None = None
    protein: Pad | None = None
    glucose: Pad | None = None
    ketones: Pad | None = None
    bilirubin: Pad | None = None
    blood: Pad | None = None
    nitrite: Pad | None = None
    leukocytes: Pad | None = None
    urobilinogen: Pad | None = None

    def read(self) -> dict[str, float | str]:
        """The pads read, in the panel's order."""
        return {name: getattr(self, name) for name in DIPSTICK
                if getattr(self, name) is not None}

    @model_validator(mode="after")
    def _pads(self) -> Dipstick:
        errors: list[tuple[tuple[str | int, ...], str]] = []
        for name, value in self.read().items():
            pad = DIPSTICK[name]
            if isinstance(value, str):
                if not pad.words:
                    errors.append(((name,), "this pad is read as a number, not a word"))
                elif value not in pad.words:
                    errors.append(((name,), f"'{value}' is not a reading of this pad "
                                            f"(words: {', '.join(pad.words)})"))
            elif pad.quantity is None:
                errors.append(((name,), "this pad is read as a word (" + ", ".join(pad.words)
                               + "), not a number"))
            elif not pad.hard_lo <= value <= pad.hard_hi:
                errors.append(((name,), f"is outside what the pad can read ({pad.hard_lo:g}–"
                                        f"{pad.hard_hi:g} {pad.quantity[2]})"))
        if not errors and not self.read():
            errors.append(((), "no pad was read: give at least one of "
                               + ", ".join(DIPSTICK)))
        refuse_at("Dipstick", errors, "value")
        return self



def flag(value: float, comparator: str | None, low: float | None, high: float | None
         ) -> str | None:
    """The interpretation of a number against a range: H, L, N, or None without a range.

    A meter's ``>600`` is high when 600 is at or above the upper limit; ``<3.3`` is normal
    when 3.3 is at or below it (a lead under the meter's floor is under 3.5).
    """
    if low is None and high is None:
        return None
    if high is not None and (value > high or (comparator == ">" and value >= high)):
        return "H"
    if low is not None and (value < low or (comparator == "<" and value <= low)):
        return "L"
    return "N"


class PocTestTask(TaskModel):
    """One point-of-care test, run and read by the MA (US Core Laboratory Observations)."""

    kind: ClassVar[str] = "poc_test"

    task: Literal["poc_test"]
    patient: PatientRef
    test: Test
    effective: AwareDatetime = Field(description="When the result was read (with offset)")
    visit: VisitId | None = None
    performer: ClinicianRef | None = None
    kit: Kit | None = None
    value: Number | None = None
    unit: Annotated[str, BeforeValidator(_unit)] | None = Field(
        default=None, validate_default=True,
        description="UCUM unit of 'value'; the test's usual unit when omitted")
    comparator: Literal["<", ">"] | None = Field(
        default=None, description="a meter's LO/HI: the value is its reading limit")
    fasting: bool | None = Field(default=None, description="glucose: the patient fasted")
    reference_range: ReferenceRange | None = None
    result: Answer | None = None
    influenza_a: Answer | None = None
    influenza_b: Answer | None = None
    dipstick: Dipstick | None = None
    note: str | None = Field(default=None, min_length=1, max_length=2000)

    @field_validator("unit")
    @classmethod
    def _default_unit(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A quantitative result always says its unit (the test's usual one if unsaid)."""
        if v is None and info.data.get("value") is not None:
            return DEFAULT_UNITS.get(str(info.data.get("test")))
        return v

    @property
    def spec(self) -> Quantitative | None:
        """The catalog row of a quantitative result (None for other tests)."""
        if self.test not in DEFAULT_UNITS:
            return None
        key = "glucose_fasting" if self.test == "glucose" and self.fasting else self.test
        return QUANTITATIVE[key].get(self.unit or DEFAULT_UNITS[self.test])

    @property
    def range(self) -> tuple[float | None, float | None]:
        """The reference range used for the flag: the task's, else the catalog's."""
        if self.reference_range is not None:
            return self.reference_range.low, self.reference_range.high
        if self.test == "hemoglobin" and self.patient.gender in HEMOGLOBIN_BY_SEX:
            return HEMOGLOBIN_BY_SEX[self.patient.gender]
        spec = self.spec
        return (None, None) if spec is None else (spec.low, spec.high)

    @property
    def interpretation(self) -> str | None:
        """H / L / N of a quantitative result against :attr:`range`."""
        if self.value is None or self.spec is None:
            return None
        return flag(self.value, self.comparator, *self.range)

    @model_validator(mode="after")
    def _consistent(self) -> PocTestTask:
        errors: list[tuple[tuple[str | int, ...], str]] = []
        words = self.test.replace("_", " ")
        allowed = _FIELDS_OF[self.test]
        for name in sorted(_RESULT_FIELDS - allowed):
            if getattr(self, name) is not None:
                errors.append(((name,), f"is not part of a {words} test (it reports "
                                        + ", ".join(sorted(allowed)) + ")"))
        if self.test in DEFAULT_UNITS:
            units = QUANTITATIVE[self.test]
            if self.value is None:
                errors.append((("value",), f"a {words} test needs its 'value'"))
            elif self.unit is not None and self.unit not in units:
                errors.append((("unit",), f"a {words} is reported in "
                                          + " or ".join(units) + f", not '{self.unit}'"))
            elif (spec := self.spec) is not None and not (
                    spec.hard_lo <= self.value <= spec.hard_hi):
                errors.append((("value",), spec.hard_error()))
        elif self.test == "influenza":
            if self.influenza_a is None and self.influenza_b is None:
                errors.append((("influenza_a",), "an influenza test needs 'influenza_a' "
                                                 "and/or 'influenza_b'"))
        elif self.test == "urine_dipstick":
            if self.dipstick is None:
                errors.append((("dipstick",), "a urine dipstick needs the pads read"))
        elif self.result is None:
            errors.append((("result",), f"a {words} test needs its 'result' "
                                        "(positive, negative or invalid)"))
        kit = self.kit
        if kit is not None and lot_expired(kit.expiration_date, self.effective):
            errors.append((("kit", "expiration_date"),
                           "the kit lot had expired on the test date; results from an "
                           "expired kit are not reportable"))
        refuse_at("PocTestTask", errors, "value")
        return self

    def warnings(self) -> list[Problem]:
        out: list[Problem] = []
        if self.kit is None or self.kit.lot is None:
            out.append(Problem("kit.lot", "no kit lot (needed for CLIA quality control and "
                                          "recalls)", "incomplete"))
        answers = (self.result, self.influenza_a, self.influenza_b)
        if "invalid" in answers:
            out.append(Problem("result", "the test was invalid (its control failed): "
                                         "repeat it with a new kit", "value"))
        low, high = (3.0, 22.2) if self.unit == "mmol/L" else (54, 400)  # project heuristic
        if self.test == "glucose" and self.value is not None and not low <= self.value <= high:
            out.append(Problem("value", "a critical glucose: tell the provider now", "value"))
        return out

