"""The vitals task: what the MA measured while rooming a patient, in the clinic's words.

Any subset of the vital signs may be given; each is either a value or ``not_obtained``
with a reason. Limits come from mapping-reference §2.7 (project heuristics, not a
standard): a value outside the hard limits is refused with the field named, a value
outside the soft range maps but is reported by :meth:`VitalsTask.warnings`. Units are
UCUM codes once parsed; friendly spellings ("F", "lb", "in") are normalised on input so
that nothing but valid UCUM reaches FHIR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
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

from ..errors import Problem
from ..strictjson import exact_float
from .base import TaskModel
from .common import ClinicianRef, PatientRef, VisitId

__all__ = [
    "BLOOD_PRESSURE_POSITIONS",
    "BMI_FROM_MONTHS",
    "BP_CUFF_SITES",
    "HEAD_PERCENTILE_UNTIL_MONTHS",
    "INFANT_HEIGHT_CM",
    "KG_PER_LB",
    "LIMITS",
    "MEASUREMENTS",
    "NOT_OBTAINED_REASONS",
    "TEMPERATURE_SITES",
    "BloodPressure",
    "BmiCheck",
    "HeadCircumference",
    "HeartRate",
    "Height",
    "Length",
    "Limits",
    "Number",
    "Pain",
    "Percentile",
    "Rate",
    "RespiratoryRate",
    "SpO2",
    "Temperature",
    "VitalsTask",
    "Weight",
    "age_in_months",
    "bmi_of",
    "celsius",
    "centimetres",
    "kilograms",
    "round_half_up",
]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: Exact conversions (mapping-reference §2.7).
KG_PER_LB = 0.45359237
CM_PER_IN = 2.54

#: Why a measurement was not obtained, in the clinic's words (mapped to data-absent-reason
#: codes by the mapper): the patient refused, the patient could not do it (e.g. cannot
#: stand on the scale), the equipment failed, or nobody knows.
NotObtained = Literal["patient-refused", "unable", "equipment", "unknown"]
NOT_OBTAINED_REASONS: tuple[str, ...] = get_args(NotObtained)

#: Body positions and sites the mapper can code (SNOMED CT codes live in the mapper).
Position = Literal["sitting", "standing", "supine"]
CuffSite = Literal["left-arm", "right-arm", "left-wrist", "right-wrist", "left-thigh",
                   "right-thigh"]
TemperatureSite = Literal["oral", "tympanic", "axillary", "rectal", "forehead"]
BLOOD_PRESSURE_POSITIONS: tuple[str, ...] = get_args(Position)
BP_CUFF_SITES: tuple[str, ...] = get_args(CuffSite)
TEMPERATURE_SITES: tuple[str, ...] = get_args(TemperatureSite)

#: The measurements a vitals task can carry (the task's field names, BMI excluded).
MEASUREMENTS = ("blood_pressure", "heart_rate", "respiratory_rate", "temperature", "spo2",
                "height", "length", "weight", "head_circumference", "pain",
                "weight_for_length_percentile", "head_circumference_percentile")

#: No BMI under 2 years (CDC: BMI-for-age charts start at 2; WHO weight-for-length before).
BMI_FROM_MONTHS = 24
#: Shorter than a typical 2-year-old (CDC growth charts, ~86 cm): a BMI computed for a
#: patient of unknown age from such a height may be an infant's (project heuristic).
INFANT_HEIGHT_CM = 87
#: The head circumference percentile charts end at 36 months (mapping-reference §2.1, C12).
HEAD_PERCENTILE_UNTIL_MONTHS = 36


def _number(value: Any) -> Any:
    """A JSON number, kept as given (int stays int); booleans, strings and NaN refused.

    A Decimal is what :func:`mafhir.io.loads` reads for ``104.0``-like text: a number too,
    unless a float cannot hold it digit for digit (refused, never rounded silently).
    """
    kind = type(value)  # the common cases first: one identity test, no isinstance chain
    if kind is int:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("must be a finite number")
        if value == value.to_integral_value() and "." not in str(value):
            return int(value)
        number = exact_float(value)
        if number is None:
            raise ValueError("has more digits (or a larger exponent) than a number here can "
                             "keep exactly; write it with at most 15 significant digits")
        return number
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Number = Annotated[int | float, BeforeValidator(_number)]


def _unit_alias(aliases: dict[str, str]) -> Any:
    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            return aliases.get(value.strip(), aliases.get(value.strip().lower(), value))
        return value

    return BeforeValidator(normalise)


TemperatureUnit = Annotated[
    Literal["[degF]", "Cel"],
    _unit_alias({"F": "[degF]", "f": "[degF]", "degf": "[degF]", "°F": "[degF]",
                 "°f": "[degF]", "[degf]": "[degF]", "C": "Cel", "c": "Cel", "cel": "Cel",
                 "degc": "Cel", "°C": "Cel", "°c": "Cel"}),
]
LengthUnit = Annotated[
    Literal["[in_i]", "cm"],
    _unit_alias({"in": "[in_i]", "inch": "[in_i]", "inches": "[in_i]", "[in_i]": "[in_i]",
                 "cm": "cm"}),
]
WeightUnit = Annotated[
    Literal["[lb_av]", "kg", "g"],
    _unit_alias({"lb": "[lb_av]", "lbs": "[lb_av]", "[lb_av]": "[lb_av]", "kg": "kg",
                 "g": "g"}),
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits (refuse outside) and a soft range (warn outside), in ``unit``.

    ``soft_hi_open`` makes the upper soft bound itself a warning (a temperature of
    40 °C / 104 °F is flagged, as the issue asks).
    """

    unit: str
    hard_lo: float
    hard_hi: float
    soft_lo: float | None = None
    soft_hi: float | None = None
    soft_hi_open: bool = False
    soft_text: str | None = None

    def hard_error(self, value: float, shown: str | None = None) -> str | None:
        if self.hard_lo <= value <= self.hard_hi:
            return None
        return (f"is outside the physiological limits {shown or self.range_text()}; "
                "check the value and its unit")

    def soft_warning(self, value: float) -> str | None:
        low = self.soft_lo is not None and value < self.soft_lo
        high = self.soft_hi is not None and (
            value >= self.soft_hi if self.soft_hi_open else value > self.soft_hi)
        if not (low or high):
            return None
        if self.soft_text:
            return f"is implausible ({self.soft_text}); please confirm"
        lo = "" if self.soft_lo is None else f"{self.soft_lo:g}"
        hi = "" if self.soft_hi is None else f"{self.soft_hi:g}"
        span = f"{lo}–{hi}" if lo and hi else (f"≥ {lo}" if lo else f"< {hi}")
        return f"is implausible (outside the usual range {span} {self.unit}); please confirm"

    def range_text(self) -> str:
        return f"{self.hard_lo:g}–{self.hard_hi:g} {self.unit}"


#: mapping-reference §2.7. Height has no soft range (it is age-dependent and the task does
#: not always know the age); weight and head circumference have none in the table.
LIMITS: dict[str, Limits] = {
    "systolic": Limits("mm[Hg]", 40, 300, 80, 200),
    "diastolic": Limits("mm[Hg]", 20, 200, 40, 120),
    "heart_rate": Limits("/min", 20, 300, 40, 150),
    "respiratory_rate": Limits("/min", 4, 80, 8, 30),
    "temperature": Limits("Cel", 30, 45, 35, 40, soft_hi_open=True,
                          soft_text="below 35 Cel / 95 [degF] or at least 40 Cel / 104 [degF]"),
    "spo2": Limits("%", 50, 100, 88, None),
    # O2 flow is not in §2.7: project choice, 0 (room air) up to high-flow devices.
    "o2_flow": Limits("L/min", 0, 80),
    "height": Limits("cm", 20, 250),
    "weight": Limits("kg", 0.3, 500),
    "head_circumference": Limits("cm", 20, 70),
    "bmi": Limits("kg/m2", 8, 100, 12, 60),
    "percentile": Limits("%", 0, 100),
}


def celsius(value: float, unit: str) -> float:
    return (value - 32) * 5 / 9 if unit == "[degF]" else value


def centimetres(value: float, unit: str) -> float:
    return value * CM_PER_IN if unit == "[in_i]" else value


def kilograms(value: float, unit: str) -> float:
    if unit == "[lb_av]":
        return value * KG_PER_LB
    return value / 1000 if unit == "g" else value


def round_half_up(value: float, places: int = 1) -> float:
    """Round as people do (24.95 → 25.0), not banker's rounding on binary floats."""
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_HALF_UP))


def bmi_of(weight_kg: float, height_cm: float) -> float:
    """Body mass index, kg/m², to one decimal (as charted)."""
    metres = height_cm / 100
    return round_half_up(weight_kg / (metres * metres), 1)


class _Measure(BaseModel):
    """One measurement: a value, or ``not_obtained`` with a reason (never both)."""

    model_config = _MODEL

    not_obtained: NotObtained | None = None

    def _present(self) -> bool:
        """Is a reading given? Most measures have one ``value``; others say otherwise."""
        return getattr(self, "value", None) is not None

    @property
    def obtained(self) -> bool:
        return self.not_obtained is None

    @model_validator(mode="after")
    def _value_or_reason(self) -> _Measure:
        if self.not_obtained is not None and self._present():
            raise ValueError("give a value or 'not_obtained', not both")
        if self.not_obtained is None and not self._present():
            raise ValueError("needs a value, or 'not_obtained' with a reason")
        if getattr(self, "unit", None) is not None and getattr(self, "value", None) is None:
            raise ValueError("'unit' goes with 'value'")
        return self


class Rate(_Measure):
    """A rate per minute; subclasses name their limits."""

    limits_key: ClassVar[str] = ""
    value: Number | None = None

    @field_validator("value")
    @classmethod
    def _limits(cls, v: float | None) -> float | None:
        _check_hard(v, cls.limits_key)
        return v


class HeartRate(Rate):
    """Heart rate, beats per minute."""

    limits_key: ClassVar[str] = "heart_rate"


class RespiratoryRate(Rate):
    """Respiratory rate, breaths per minute."""

    limits_key: ClassVar[str] = "respiratory_rate"


def _check_hard(value: float | None, key: str, converted: float | None = None,
                shown: str | None = None) -> None:
    if value is None:
        return
    message = LIMITS[key].hard_error(value if converted is None else converted, shown)
    if message:
        raise ValueError(message)


class BloodPressure(_Measure):
    """Systolic and diastolic in mm[Hg]; a missing side needs ``not_obtained``.

    ``{"systolic": 120, "not_obtained": "equipment"}`` records a systolic reading whose
    diastolic could not be read; ``{"not_obtained": "patient-refused"}`` records neither.
    """

    systolic: Number | None = None
    diastolic: Number | None = None
    position: Position | None = None
    cuff_site: CuffSite | None = None

    def _present(self) -> bool:
        return self.systolic is not None and self.diastolic is not None

    @field_validator("systolic", "diastolic")
    @classmethod
    def _limits(cls, v: float | None, info: ValidationInfo) -> float | None:
        _check_hard(v, str(info.field_name))
        return v

    @model_validator(mode="after")
    def _sides(self) -> BloodPressure:
        if (self.systolic is None) != (self.diastolic is None) and self.not_obtained is None:
            missing = "diastolic" if self.diastolic is None else "systolic"
            raise ValueError(f"{missing} is missing: give it, or say why in 'not_obtained'")
        if (self.systolic is not None and self.diastolic is not None
                and self.diastolic >= self.systolic):
            raise ValueError("diastolic must be lower than systolic")
        return self

    @model_validator(mode="after")
    def _value_or_reason(self) -> BloodPressure:
        if self._present() and self.not_obtained is not None:
            raise ValueError("give both readings or 'not_obtained', not both")
        if self.systolic is None and self.diastolic is None and self.not_obtained is None:
            raise ValueError("needs systolic and diastolic, or 'not_obtained' with a reason")
        return self


class Temperature(_Measure):
    """Body temperature in °F (``[degF]``) or °C (``Cel``), with an optional site."""

    unit: TemperatureUnit | None = None
    value: Number | None = None
    site: TemperatureSite | None = None

    @field_validator("value")
    @classmethod
    def _limits(cls, v: float | None, info: ValidationInfo) -> float | None:
        unit = info.data.get("unit")
        if v is None or unit is None:
            return v
        _check_hard(v, "temperature", celsius(v, unit), "30–45 Cel (86–113 [degF])")
        return v

    @model_validator(mode="after")
    def _unit_needed(self) -> Temperature:
        if self.value is not None and self.unit is None:
            raise ValueError("needs 'unit' ([degF] or Cel)")
        return self


class SpO2(_Measure):
    """Pulse oximetry in %, with the inhaled oxygen flow (0 L/min = room air) if known."""

    value: Number | None = None
    o2_flow: Number | None = None

    @field_validator("value")
    @classmethod
    def _limits(cls, v: float | None) -> float | None:
        _check_hard(v, "spo2")
        return v

    @field_validator("o2_flow")
    @classmethod
    def _flow_limits(cls, v: float | None) -> float | None:
        _check_hard(v, "o2_flow")
        return v


class _Length(_Measure):
    limits_key: ClassVar[str] = ""

    unit: LengthUnit | None = None
    value: Number | None = None

    @field_validator("value")
    @classmethod
    def _limits(cls, v: float | None, info: ValidationInfo) -> float | None:
        unit = info.data.get("unit")
        if v is None or unit is None:
            return v
        lim = LIMITS[cls.limits_key]
        inches = f"{lim.hard_lo / CM_PER_IN:.1f}–{lim.hard_hi / CM_PER_IN:.1f} [in_i]"
        shown = f"{lim.range_text()} ({inches})"
        _check_hard(v, cls.limits_key, centimetres(v, unit), shown)
        return v

    @model_validator(mode="after")
    def _unit_needed(self) -> _Length:
        if self.value is not None and self.unit is None:
            raise ValueError("needs 'unit' ([in_i] or cm)")
        return self

    @property
    def cm(self) -> float | None:
        if self.value is None or self.unit is None:
            return None
        return centimetres(self.value, self.unit)


class Height(_Length):
    """Body height (length for infants) in inches or centimetres."""

    limits_key: ClassVar[str] = "height"


class Length(_Length):
    """Recumbent length of an infant (lying down; LOINC 8306-3), inches or centimetres.

    Its own measure, not a height: a BMI is never computed from it.
    """

    limits_key: ClassVar[str] = "height"


class Percentile(_Measure):
    """A growth percentile the EHR computed from its charts (0–100 %), with the chart's
    name when known (US Core puts it in ``note``, e.g. 'WHO Males, 0-2 years Chart')."""

    value: Number | None = None
    chart: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("value")
    @classmethod
    def _limits(cls, v: float | None) -> float | None:
        _check_hard(v, "percentile")
        return v


class HeadCircumference(_Length):
    """Occipital-frontal head circumference in inches or centimetres."""

    limits_key: ClassVar[str] = "head_circumference"


class Weight(_Measure):
    """Body weight: ``value`` + ``unit`` ([lb_av], kg or g), or ``lb`` + ``oz`` for infants.

    Pounds and ounces are charted as decimal pounds (7 lb 8 oz → 7.5 [lb_av]): UCUM has no
    compound unit, and pounds keep the value the scale showed without rounding to grams.
    """

    unit: WeightUnit | None = None
    value: Number | None = None
    lb: Annotated[int, Field(ge=0, strict=True)] | None = None
    oz: Annotated[Number, Field(ge=0, lt=16)] | None = None

    def _present(self) -> bool:
        return self.value is not None or self.lb is not None or self.oz is not None

    @field_validator("value")
    @classmethod
    def _limits(cls, v: float | None, info: ValidationInfo) -> float | None:
        unit = info.data.get("unit")
        if v is None or unit is None:
            return v
        _check_hard(v, "weight", kilograms(v, unit),
                    "0.3–500 kg (0.66–1102 [lb_av], 300–500000 g)")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> Weight:
        if self.value is not None and (self.lb is not None or self.oz is not None):
            raise ValueError("give 'value' with 'unit', or 'lb' and 'oz', not both")
        if self.value is not None and self.unit is None:
            raise ValueError("needs 'unit' ([lb_av], kg or g)")
        if (self.lb is None) != (self.oz is None):
            raise ValueError("an infant weight needs both 'lb' and 'oz' (oz may be 0)")
        if self.lb is not None and self.oz is not None:
            kg = self.pounds * KG_PER_LB  # type: ignore[operator]
            message = LIMITS["weight"].hard_error(kg, "0.3–500 kg (0.66–1102 [lb_av])")
            if message:
                raise ValueError(f"lb and oz: {message}")
        return self

    @property
    def pounds(self) -> float | None:
        """Decimal pounds of an lb + oz weight (exact: n/16 is a binary fraction)."""
        if self.lb is None or self.oz is None:
            return None
        return self.lb + self.oz / 16

    @property
    def quantity(self) -> tuple[float, str] | None:
        """The weight as charted: (value, UCUM code)."""
        if self.value is not None and self.unit is not None:
            return self.value, self.unit
        if self.pounds is not None:
            return self.pounds, "[lb_av]"
        return None

    @property
    def kg(self) -> float | None:
        q = self.quantity
        return None if q is None else kilograms(*q)


class Pain(_Measure):
    """Pain severity on the 0–10 numeric rating scale, as the patient reported it."""

    score: Annotated[int, Field(ge=0, le=10, strict=True)] | None = None

    def _present(self) -> bool:
        return self.score is not None


class BmiCheck(BaseModel):
    """A BMI the clinic's system already showed; only checked, never trusted."""

    model_config = _MODEL

    value: Number



class VitalsTask(TaskModel):
    """Vital signs taken at one moment of a visit (one Observation per measurement).

    BMI is computed from ``height`` and ``weight`` whenever both were obtained; a
    ``bmi`` in the task is only compared with that (±0.5 kg/m², §2.7).
    """

    kind: ClassVar[str] = "vitals"

    task: Literal["vitals"]
    patient: PatientRef
    effective: AwareDatetime = Field(description="When the vitals were taken (with offset)")
    visit: VisitId | None = None
    performer: ClinicianRef | None = None

    blood_pressure: BloodPressure | None = None
    heart_rate: HeartRate | None = None
    respiratory_rate: RespiratoryRate | None = None
    temperature: Temperature | None = None
    spo2: SpO2 | None = None
    height: Height | None = None
    length: Length | None = None
    weight: Weight | None = None
    head_circumference: HeadCircumference | None = None
    pain: Pain | None = None
    weight_for_length_percentile: Percentile | None = None
    head_circumference_percentile: Percentile | None = None
    # Last, so that its validator sees height and weight; validated even when absent so
    # that a computed BMI outside the hard limits is refused at ``bmi``.
    bmi: BmiCheck | None = Field(default=None, validate_default=True)

    @field_validator("length")
    @classmethod
    def _height_or_length(cls, v: Length | None, info: ValidationInfo) -> Length | None:
        if v is not None and info.data.get("height") is not None:
            raise ValueError("give the standing 'height' or the recumbent 'length', not both")
        return v

    @field_validator("bmi")
    @classmethod
    def _bmi_matches(cls, v: BmiCheck | None, info: ValidationInfo) -> BmiCheck | None:
        height, weight = info.data.get("height"), info.data.get("weight")
        months = _months_of(info.data.get("patient"), info.data.get("effective"))
        if months is not None and months < BMI_FROM_MONTHS:
            if v is not None:
                raise ValueError(f"no BMI under 2 years (the patient is {months} months old): "
                                 "weight-for-length percentile is the measure at this age")
            return v
        computed = _computed_bmi(height, weight)
        if computed is None:
            if v is not None and "height" in info.data and "weight" in info.data:
                raise ValueError(
                    "a BMI needs height and weight measured at the same visit; "
                    "it is computed from them, never taken alone")
            return v
        message = LIMITS["bmi"].hard_error(computed)
        if message:
            raise ValueError(f"computed from height and weight, {message}")
        if v is not None and abs(v.value - computed) > 0.5:
            raise ValueError(
                f"does not match height and weight (computed {computed:g} kg/m2; "
                "allowed difference 0.5)")
        return v

    @model_validator(mode="after")
    def _something_measured(self) -> VitalsTask:
        if all(getattr(self, name) is None for name in MEASUREMENTS):
            raise ValueError(
                "at least one measurement is required (" + ", ".join(MEASUREMENTS) + ")")
        return self

    @property
    def age_months(self) -> int | None:
        """Completed months of age when measured, or None when the birth date is unknown."""
        return _months_of(self.patient, self.effective)

    @property
    def computed_bmi(self) -> float | None:
        """BMI from this visit's height and weight, or None when either is missing or the
        patient is under 2 years (a recumbent length never makes a BMI)."""
        months = self.age_months
        if months is not None and months < BMI_FROM_MONTHS:
            return None
        return _computed_bmi(self.height, self.weight)

    def warnings(self) -> list[Problem]:
        out: list[Problem] = []

        def soft(location: str, key: str, value: float | None) -> None:
            if value is not None and (message := LIMITS[key].soft_warning(value)):
                out.append(Problem(location, message, "value"))

        if self.blood_pressure is not None:
            soft("blood_pressure.systolic", "systolic", self.blood_pressure.systolic)
            soft("blood_pressure.diastolic", "diastolic", self.blood_pressure.diastolic)
        if self.heart_rate is not None:
            soft("heart_rate.value", "heart_rate", self.heart_rate.value)
        if self.respiratory_rate is not None:
            soft("respiratory_rate.value", "respiratory_rate", self.respiratory_rate.value)
        t = self.temperature
        if t is not None and t.value is not None and t.unit is not None:
            soft("temperature.value", "temperature", celsius(t.value, t.unit))
        if self.spo2 is not None:
            soft("spo2.value", "spo2", self.spo2.value)
        soft("bmi", "bmi", self.computed_bmi)
        born = self.patient.birth_date
        if (self.head_circumference is not None and self.head_circumference.obtained
                and born is not None and _years(born, self.effective.date()) >= 3):
            out.append(Problem("head_circumference",
                               "is usually measured only before age 3; please confirm", "value"))
        months = self.age_months
        height_cm = self.height.cm if self.height is not None else None
        if months is None and self.computed_bmi is not None and height_cm is not None \
                and height_cm < INFANT_HEIGHT_CM:
            out.append(Problem("bmi", "computed without knowing the age; there is no BMI "
                                      "under 2 years: give the patient's birth_date, or "
                                      "'length' for an infant", "incomplete"))
        if months is not None:
            if self.weight_for_length_percentile is not None and months >= BMI_FROM_MONTHS:
                out.append(Problem("weight_for_length_percentile", "is the measure under 2 "
                                   "years; from 2 years BMI-for-age is charted", "value"))
            if (self.head_circumference_percentile is not None
                    and months > HEAD_PERCENTILE_UNTIL_MONTHS):
                out.append(Problem("head_circumference_percentile", "the head circumference "
                                   "charts end at 36 months; please confirm", "value"))
            if self.length is not None and months >= BMI_FROM_MONTHS:
                out.append(Problem("length", "a recumbent length is usually measured only "
                                   "before age 2; standing height after", "value"))
        return out


def age_in_months(born: date, on: date) -> int:
    """Completed months of age on a day (a month is complete on the same day of month)."""
    months = (on.year - born.year) * 12 + on.month - born.month
    return months - 1 if on.day < born.day else months


def _months_of(patient: Any, when: Any) -> int | None:
    if not isinstance(patient, PatientRef) or patient.birth_date is None or when is None:
        return None
    return age_in_months(patient.birth_date, when.date())


def _years(born: date, on: date) -> int:
    """Completed years of age on a day."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _computed_bmi(height: Height | None, weight: Weight | None) -> float | None:
    if height is None or weight is None or height.cm is None or weight.kg is None:
        return None
    return bmi_of(weight.kg, height.cm)
