"""HL7 v2 datatypes ⇄ FHIR datatypes: DTM, CWE, CX/EI, XCN, XON — shared by every v2 plugin.

Pure functions over :class:`~mafhir.hl7v2.message.Value`. Code-system names map to URIs
in :mod:`mafhir.hl7v2.terminology` (``system_for``/``system_name`` are re-exported here).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote

from .. import systems
from .message import Value
from .terminology import CODE_SYSTEMS, system_for, system_name  # moved; re-exported

__all__ = [
    "CODE_SYSTEMS",
    "codeable",
    "cx_identifier",
    "dtm_to_datetime",
    "dtm_to_fhir",
    "ei_identifier",
    "format_dtm",
    "identifier_from",
    "system_for",
    "system_name",
    "xcn_reference",
]

JSON = dict[str, Any]

def _coding(code: str, display: str, sysname: str) -> JSON | None:
    if not code and not display:
        return None
    out: JSON = {}
    system = system_for(sysname)
    if system:
        out["system"] = system
    if code:
        out["code"] = code
    if display:
        out["display"] = display
    return out if code else None


def codeable(value: Value, text_fallback: bool = True) -> JSON | None:
    """A CE/CWE/CNE as a CodeableConcept: primary and alternate codings, original text."""
    if not value:
        return None
    codings = []
    first = _coding(value.c(1), value.c(2), value.c(3))
    if first:
        codings.append(first)
    alt = _coding(value.c(4), value.c(5), value.c(6))
    if alt:
        codings.append(alt)
    out: JSON = {}
    if codings:
        out["coding"] = codings
    text = value.c(9) or (value.c(2) if not codings else "")
    if not codings and not text and text_fallback:
        text = value.c(1)
    if text:
        out["text"] = text
    return out or None


_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$")


def _offset(text: str) -> timezone:
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5])))


def dtm_to_datetime(text: str, default_tz: tzinfo | None = None) -> datetime | None:
    """A DTM with at least minutes as an aware datetime (None when it has no time)."""
    m = _DTM.match(text.strip())
    if not m or m.group(4) is None:
        return None
    year, month, day, hour, minute, second, frac, off = m.groups()
    tz = _offset(off) if off else default_tz
    micro = round(float(frac) * 1_000_000) if frac else 0
    dt = datetime(int(year), int(month), int(day), int(hour), int(minute or 0),
                  int(second or 0), min(micro, 999_999))
    if tz is None:
        return None
    return dt.replace(tzinfo=tz)


def dtm_to_fhir(text: str, default_tz: tzinfo | None = None) -> str | None:
    """A DTM as a FHIR dateTime, keeping its precision; None when it cannot be read.

    A time with no offset takes ``default_tz`` (the sender's, from MSH-7, or the
    receiver's setting): FHIR refuses a time without one. Minutes-only times gain
    ``:00`` seconds, as FHIR requires.
    """
    m = _DTM.match(text.strip()) if text else None
    if not m:
        return None
    year, month, day, hour, minute, second, frac, off = m.groups()
    try:
        datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
                 int(second or 0))
    except ValueError:
        return None
    if hour is None:
        return "-".join(p for p in (year, month, day) if p)
    tz: tzinfo | None = _offset(off) if off else default_tz
    if tz is None:
        return f"{year}-{month}-{day}"
    dt = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    offset = tz.utcoffset(dt) if not off else _offset(off).utcoffset(None)
    assert offset is not None
    total = int(offset.total_seconds() // 60)
    sign = "-" if total < 0 else "+"
    zone = f"{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
    if zone == "+00:00":
        zone = "Z"
    fraction = frac if frac else ""
    return f"{year}-{month}-{day}T{hour}:{minute or '00'}:{second or '00'}{fraction}{zone}"


def format_dtm(value: datetime) -> str:
    """An aware datetime as a v2 DTM with seconds and offset: ``20260304091500-0500``."""
    if value.tzinfo is None:
        raise ValueError("a DTM for another system needs a UTC offset")
    return value.strftime("%Y%m%d%H%M%S%z")


def identifier_from(entity: str, namespace: str, universal: str, utype: str,
                    fallback_system: str, id_type: str | None = None) -> JSON | None:
    """An entity id and its assigning authority (HD parts) as an Identifier.

    The system is the universal id (``urn:oid:`` for ISO, as is for URI/URL), else a
    namespace under ``fallback_system``, else ``fallback_system`` itself.
    """
    if not entity:
        return None
    utype = utype.upper()
    if universal and utype == "ISO":
        system = f"urn:oid:{universal}"
    elif universal and utype in ("URI", "URL"):
        system = universal
    elif namespace:
        system = f"{fallback_system}/{quote(namespace, safe='')}"
    else:
        system = fallback_system
    out: JSON = {"system": system, "value": entity}
    if id_type:
        out["type"] = {"coding": [{"system": systems.V2_0203, "code": id_type}]}
    return out


def ei_identifier(value: Value, fallback_system: str, id_type: str | None = None
                  ) -> JSON | None:
    """An EI (entity ^ namespace ^ universal id ^ type) as an Identifier."""
    return identifier_from(value.c(1), value.c(2), value.c(3), value.c(4), fallback_system,
                           id_type)


def cx_identifier(value: Value, fallback_system: str, id_type: str | None = None
                  ) -> JSON | None:
    """A CX (id ^ check ^ scheme ^ authority(HD) ^ type) as an Identifier."""
    return identifier_from(value.c(1), value.c(4, 1), value.c(4, 2), value.c(4, 3),
                           fallback_system, id_type)


def xcn_reference(value: Value) -> JSON | None:
    """An XCN (a clinician) as a Reference by NPI identifier and display name."""
    if not value:
        return None
    given = " ".join(p for p in (value.c(3), value.c(4)) if p)
    display = " ".join(p for p in (value.c(6), given, value.c(2), value.c(5)) if p)
    out: JSON = {}
    ident = value.c(1)
    authority = value.c(9) or value.c(9, 2)
    if ident:
        if value.c(13) == "NPI" or authority == "NPI" or "2.16.840.1.113883.4.6" in value.raw:
            out["identifier"] = {"system": systems.NPI, "value": ident}
        else:
            out["identifier"] = {"value": ident}
    if display:
        out["display"] = display
    return out or None
