"""The ekg task: a resting 12-lead EKG the MA recorded, in the clinic's words.

The MA records the tracing and the machine's measurements; the interpretation is the
provider's. Until the provider signs (``signed``: who, when, the impression), everything
is ``preliminary``; a task sent again with ``signed`` makes it ``final``.

Measurements are the electrocardiograph's: heart rate (/min), PR, QRS, QT and QTc (ms) and
the QRS axis (degrees). A QTc not given is computed from QT and heart rate with the
formula named in ``qtc_formula`` (Bazett by default: QTc = QT / √RR, RR = 60 / HR in
seconds); a QTc given is checked against it (±10 ms, the machine's rounding and
measurement differences). The tracing is the machine's PDF, base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import ClassVar, Literal

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
from .base import TaskModel, refuse_at
from .common import ClinicianRef, PatientRef, VisitId
from .vitals import Number

__all__ = ["LIMITS", "MAX_PDF_BYTES", "QTC_TOLERANCE_MS", "EkgTask", "Signature", "Tracing",
           "qtc"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: What an electrocardiograph can report at all (project heuristics, like §2.7): a value
#: outside is a typing or unit error and is refused naming the field.
LIMITS: dict[str, tuple[float, float, str]] = {
    "heart_rate": (20, 300, "/min"),
    "pr_ms": (40, 600, "ms"),
    "qrs_ms": (40, 300, "ms"),
    "qt_ms": (150, 800, "ms"),
    "qtc_ms": (150, 900, "ms"),
    "axis_deg": (-180, 360, "deg"),
}
#: How far a given QTc may be from the one computed with its formula.
QTC_TOLERANCE_MS = 10
#: The largest tracing taken (a 12-lead PDF is tens to hundreds of kB).
MAX_PDF_BYTES = 10 * 1024 * 1024

Formula = Literal["bazett", "fridericia"]


def qtc(qt_ms: float, heart_rate: float, formula: str = "bazett") -> int:
    """The corrected QT in whole ms: Bazett QT/√RR or Fridericia QT/∛RR (RR in seconds)."""
    rr = 60 / heart_rate
    root = math.sqrt(rr) if formula == "bazett" else rr ** (1 / 3)
    return math.floor(qt_ms / root + 0.5)


class Tracing(BaseModel):
    """The EKG tracing as the machine printed it: a PDF, base64-encoded."""

    model_config = _MODEL

    pdf_base64: str = Field(min_length=8, description="the PDF, base64 (RFC 4648)")
    title: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("pdf_base64")
    @classmethod
    def _is_pdf(cls, value: str) -> str:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("is not base64 (RFC 4648, no line breaks)") from None
        if not data.startswith(b"%PDF-"):
            raise ValueError("is not a PDF (it does not begin with %PDF-)")
        if len(data) > MAX_PDF_BYTES:
            raise ValueError(f"is larger than {MAX_PDF_BYTES // (1024 * 1024)} MB")
        return value

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.pdf_base64)


class Signature(BaseModel):
    """The provider's reading of the EKG: it makes the report final."""

    model_config = _MODEL

    by: ClinicianRef
    at: AwareDatetime = Field(description="when the provider signed (with offset)")
    impression: str = Field(min_length=1, max_length=4000,
                            description="the provider's interpretation, as written")



class EkgTask(TaskModel):
    """A resting 12-lead EKG: the procedure, the tracing and the machine's measurements."""

    kind: ClassVar[str] = "ekg"

    task: Literal["ekg"]
    patient: PatientRef
    effective: AwareDatetime = Field(description="when the EKG was recorded (with offset)")
    visit: VisitId | None = None
    performer: ClinicianRef | None = None
    tracing: Tracing
    heart_rate: Number = Field(description="ventricular rate, /min")
    pr_ms: Number | None = None
    qrs_ms: Number | None = None
    qt_ms: Number | None = None
    qtc_ms: Number | None = None
    qtc_formula: Formula = "bazett"
    axis_deg: Number | None = Field(default=None, description="QRS axis, degrees")
    signed: Signature | None = None

    @field_validator("heart_rate", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms", "axis_deg")
    @classmethod
    def _limits(cls, value: float | None, info: ValidationInfo) -> float | None:
        lo, hi, unit = LIMITS[str(info.field_name)]
        if value is not None and not lo <= value <= hi:
            raise ValueError(f"is outside what an EKG reports ({lo:g}–{hi:g} {unit}); "
                             "check the value and its unit")
        return value

    @property
    def computed_qtc(self) -> int | None:
        """The QTc from QT and heart rate with :attr:`qtc_formula`, or None without QT."""
        if self.qt_ms is None:
            return None
        return qtc(self.qt_ms, self.heart_rate, self.qtc_formula)

    @property
    def qtc_value(self) -> float | None:
        """The QTc written: the machine's when given, else the computed one."""
        return self.qtc_ms if self.qtc_ms is not None else self.computed_qtc

    @model_validator(mode="after")
    def _consistent(self) -> EkgTask:
        errors: list[tuple[tuple[str | int, ...], str]] = []
        computed = self.computed_qtc
        if self.qtc_ms is not None and computed is not None and \
                abs(self.qtc_ms - computed) > QTC_TOLERANCE_MS:
            errors.append((("qtc_ms",), f"does not match QT and heart rate: {self.qtc_formula}"
                                        f" gives {computed} ms (allowed difference "
                                        f"{QTC_TOLERANCE_MS} ms); check the values or "
                                        "'qtc_formula'"))
        if self.qt_ms is not None and self.qrs_ms is not None and self.qrs_ms >= self.qt_ms:
            errors.append((("qrs_ms",), "is not shorter than the QT interval"))
        if self.signed is not None and self.signed.at < self.effective:
            errors.append((("signed", "at"), "is before the EKG was recorded"))
        refuse_at("EkgTask", errors, "value")
        return self

    def warnings(self) -> list[Problem]:
        out = []
        if self.qt_ms is None and self.qtc_ms is None:
            out.append(Problem("qt_ms", "no QT or QTc: the provider will read them from "
                                        "the tracing", "incomplete"))
        return out
