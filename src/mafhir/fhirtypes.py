"""Small, pure builders for FHIR datatypes as JSON dicts.

Mappers build plain dicts (the FHIR JSON itself) rather than model objects: it keeps
the exact precision of what the clinic gave (a round trip through the models rewrites
``.123`` as ``.123000``), and it is an order of magnitude faster. Every dict built here
is then checked against the ``fhir.resources`` R4B models before it is written.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from . import systems

__all__ = [
    "codeable",
    "coding",
    "data_absent",
    "fhir_date",
    "fhir_datetime",
    "identifier",
    "local_references",
    "quantity",
    "reference",
]

JSON = dict[str, Any]


def fhir_datetime(value: datetime) -> str:
    """An aware datetime as a FHIR dateTime/instant, seconds always present.

    Milliseconds are written only when present; UTC is written as ``Z``.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a FHIR dateTime with a time needs a UTC offset")
    spec = "seconds"
    if value.microsecond:
        spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
    text = value.isoformat(timespec=spec)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_fhir_datetime(text: str) -> datetime:
    """Read a FHIR dateTime that carries a time and an offset."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("dateTime has no UTC offset")
    return value


def fhir_date(value: date) -> str:
    return value.isoformat()


def coding(system: str, code: str, display: str | None = None) -> JSON:
    out: JSON = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def codeable(*codings: JSON, text: str | None = None) -> JSON:
    out: JSON = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def quantity(value: float | int, code: str, unit: str | None = None) -> JSON:
    """A UCUM quantity with the human ``unit`` that every US Core vital requires."""
    return {"value": value, "unit": unit or code, "system": systems.UCUM, "code": code}


def identifier(system: str, value: str, **extra: Any) -> JSON:
    return {**extra, "system": system, "value": value}


def reference(ref: str, display: str | None = None) -> JSON:
    out: JSON = {"reference": ref}
    if display:
        out["display"] = display
    return out


def data_absent(code: str) -> JSON:
    """A ``dataAbsentReason`` CodeableConcept from the R4 data-absent-reason codes."""
    return {"coding": [coding(systems.DATA_ABSENT_REASON, code, DATA_ABSENT_DISPLAY.get(code))]}


DATA_ABSENT_DISPLAY = {
    "unknown": "Unknown",
    "asked-unknown": "Asked But Unknown",
    "temp-unknown": "Temporarily Unknown",
    "not-asked": "Not Asked",
    "asked-declined": "Asked But Declined",
    "masked": "Masked",
    "not-applicable": "Not Applicable",
    "unsupported": "Unsupported",
    "as-text": "As Text",
    "error": "Error",
    "not-a-number": "Not a Number (NaN)",
    "negative-infinity": "Negative Infinity (NINF)",
    "positive-infinity": "Positive Infinity (PINF)",
    "not-performed": "Not Performed",
    "not-permitted": "Not Permitted",
}


def local_references(node: Any) -> set[str]:
    """Every ``Type/id`` a resource (or a list of them) refers to — the references a
    server stores resolved — without versions; conditional and absolute ones left out."""
    out: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str) and "?" not in ref and ":" not in ref:
                parts = ref.split("/_history/")[0].rstrip("/").split("/")
                if len(parts) == 2 and all(parts):
                    out.add("/".join(parts))
            stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, (dict, list)))
    return out
