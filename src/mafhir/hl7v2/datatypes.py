"""HL7 v2 datatypes ⇄ FHIR datatypes: DTM, CWE, CX/EI, XCN, XON — shared by every v2 plugin.

Pure functions over :class:`~mafhir.hl7v2.message.Value`. Code-system names map to URIs
in :mod:`mafhir.hl7v2.terminology` (``system_for``/``system_name`` are re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from .. import systems
from ..errors import Problem
from ..tasks.common import npi_is_valid
from .message import Value
from .terminology import CODE_SYSTEMS, system_for, system_name  # moved; re-exported

__all__ = [
    "ADDRESS_TYPE",
    "ADDRESS_USE",
    "CODE_SYSTEMS",
    "NAME_USE",
    "SSN_SYSTEM",
    "TELECOM_SYSTEM",
    "TELECOM_USE",
    "DtmError",
    "Times",
    "authority_system",
    "codeable",
    "cx_full",
    "cx_identifier",
    "dtm_to_datetime",
    "dtm_to_fhir",
    "ei_identifier",
    "format_dtm",
    "identifier_from",
    "npi_checked",
    "null",
    "read_dtm",
    "readable",
    "sender_system",
    "system_for",
    "system_name",
    "xad_address",
    "xcn_reference",
    "xpn_name",
    "xtn_contact",
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
#: (name, first character, last character, low, high) of the DTM parts checked for range.
_PARTS = (("month", 5, 6, 1, 12), ("day", 7, 8, 1, 31), ("hour", 9, 10, 0, 23),
          ("minute", 11, 12, 0, 59), ("second", 13, 14, 0, 59))


class DtmError(ValueError):
    """A DTM that cannot be read as it stands: ``reason`` names the part and its character
    positions, never the value (it may be a birth date); ``code`` is a Problem code
    (``value``: not a time; ``business-rule``: no offset and no zone configured)."""

    def __init__(self, reason: str, code: str = "value") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _offset(text: str) -> timezone:
    """A ``+hhmm``/``-hhmm`` offset; DtmError when it is not a real UTC offset."""
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 14 or minutes > 59 or (hours == 14 and minutes):
        raise DtmError("the UTC offset (the last 5 characters) is not between -1400 and +1400")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def read_dtm(text: str, default_tz: tzinfo | None) -> str:
    """A DTM as a FHIR date or dateTime, keeping its precision, or DtmError saying why.

    Nothing is invented: an impossible part (month 13, 30 February, offset ``+9999``) is
    an error naming its character positions; a time without an offset takes
    ``default_tz`` (the sender's zone, from configuration) and with none configured is
    refused (``business-rule``), never pinned to UTC. Minutes-only times gain ``:00``
    seconds, as FHIR requires.

    A message repeats its times (every OBX of a panel was observed at once), so what
    was read is remembered per (text, zone); a DtmError is not, and is raised each time.
    """
    try:
        return _read_dtm_cached(text, default_tz)
    except TypeError:  # a zone that cannot be a key (an unhashable tzinfo): read it now
        return _read_dtm(text, default_tz)


@lru_cache(maxsize=4096)
def _read_dtm_cached(text: str, default_tz: tzinfo | None) -> str:
    return _read_dtm(text, default_tz)


def _read_dtm(text: str, default_tz: tzinfo | None) -> str:
    text = text.strip()
    m = _DTM.match(text)
    if not m:
        raise DtmError("is not a date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")
    year, month, day, hour, minute, second, frac, off = m.groups()
    parts = (month, day, hour, minute, second)
    for (name, first, last, low, high), part in zip(_PARTS, parts, strict=True):
        if part is not None and not low <= int(part) <= high:
            raise DtmError(f"the {name} (characters {first}-{last}) is out of range")
    if day is not None:
        try:
            datetime(int(year), int(month), int(day))
        except ValueError:
            raise DtmError("the day (characters 7-8) does not exist in that month") from None
    tz: tzinfo | None = _offset(off) if off else default_tz
    if hour is None:
        return "-".join(p for p in (year, month, day) if p)
    if tz is None:
        raise DtmError("has no UTC offset and no time zone is configured for this sender "
                       "or the clinic (set one; times are never assumed to be UTC)",
                       "business-rule")
    dt = datetime(int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0))
    offset = tz.utcoffset(dt)
    assert offset is not None
    if not off and offset != tz.utcoffset(dt.replace(fold=1)):
        # a local time that happens twice (clocks back) or never (clocks forward) at a
        # daylight-saving change: any offset chosen here would be a guess
        raise DtmError("is a local time that occurs twice or never in the sender's zone "
                       "(a daylight-saving change); send it with its UTC offset",
                       "business-rule")
    total = int(offset.total_seconds() // 60)
    sign = "-" if total < 0 else "+"
    zone = f"{sign}{abs(total) // 60:02d}:{abs(total) % 60:02d}"
    if zone == "+00:00":
        zone = "Z"
    fraction = frac if frac else ""
    return f"{year}-{month}-{day}T{hour}:{minute or '00'}:{second or '00'}{fraction}{zone}"


def dtm_to_datetime(text: str, default_tz: tzinfo | None = None) -> datetime | None:
    """A DTM with at least minutes as an aware datetime (None when it has no time, no
    zone, or cannot be read)."""
    try:
        value = read_dtm(text, default_tz)
    except DtmError:
        return None
    if "T" not in value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def dtm_to_fhir(text: str, default_tz: tzinfo | None = None) -> str | None:
    """A DTM as a FHIR dateTime, keeping its precision; None when it cannot be read.

    The lenient form of :func:`read_dtm` (which says why): an impossible time is None,
    and a time without an offset when no zone is given is kept as its date alone.
    Converters that must not lose the reason use :func:`read_dtm`.
    """
    if not text:
        return None
    try:
        return read_dtm(text, default_tz)
    except DtmError as exc:
        if exc.code == "business-rule":
            return read_dtm(text.strip()[:8], None)
        return None


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


def xcn_reference(value: Value, fallback_system: str = "", warnings: list[Problem] | None = None,
                  where: str = "") -> JSON | None:
    """An XCN (a clinician) as a Reference by identifier and display name.

    An id the XCN says is an NPI (XCN-13 ``NPI``, authority ``NPI`` or the NPI OID) is an
    ``us-npi`` identifier only when its check digit holds; otherwise it is kept under
    ``fallback_system`` (the sender's own) and a warning naming ``where`` is added.
    """
    if not value:
        return None
    given = " ".join(p for p in (value.c(3), value.c(4)) if p)
    display = " ".join(p for p in (value.c(6), given, value.c(2), value.c(5)) if p)
    out: JSON = {}
    ident = value.c(1)
    authority = value.c(9) or value.c(9, 2)
    if ident:
        if value.c(13) == "NPI" or authority == "NPI" or NPI_OID in value.raw:
            checked = npi_checked(ident, fallback_system, where or "XCN",
                                  [] if warnings is None else warnings)
            out["identifier"] = checked if checked["system"] else {"value": ident}
        elif fallback_system:
            out["identifier"] = {"system": fallback_system, "value": ident}
        else:
            out["identifier"] = {"value": ident}
    if display:
        out["display"] = display
    return out or None


# --------------------------------------------------------------------------- identity
#: The Social Security Administration's OID: a CX with this authority is an SSN.
SSA_OID = "2.16.840.1.113883.4.1"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
NPI_OID = "2.16.840.1.113883.4.6"
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")


def null(text: str) -> str:
    """``""`` (v2's explicit null) as empty: a value that says "none", never the text."""
    return "" if text == '""' else text


def authority_system(namespace: str, universal: str, utype: str,
                     namespaces: Mapping[str, str]) -> str | None:
    """The identifier system an assigning authority (HD) stands for, or None when unknown.

    Configuration first (the per-sender table: namespace id, universal id, or
    ``namespace&universal`` → system), then what the HD itself says: an ISO OID is
    ``urn:oid:``, a URI is itself, the SSA's OID is the SSN system. A bare local name is
    unknown: guessing it were the clinic's would file a result under the wrong patient.
    """
    for key in (f"{namespace}&{universal}" if namespace and universal else "", namespace,
                universal):
        if key and key in namespaces:
            return namespaces[key]
    utype = utype.upper()
    if universal == SSA_OID:
        return SSN_SYSTEM
    if universal == NPI_OID or namespace.upper() == "NPI":
        return systems.NPI
    if universal and utype == "ISO" and _OID.match(universal):
        return f"urn:oid:{universal}"
    if universal and utype in ("URI", "URL") and re.match(r"^(urn:|https?://)\S+$", universal):
        return universal
    return None


def sender_system(base: str, sender: str, authority: str) -> str:
    """The sender's own namespace for an identifier no configured or standard system
    names: kept (nothing is dropped), never mistaken for the clinic's."""
    return f"{base}/v2/sender/{quote(sender, safe='')}/{quote(authority or '-', safe='')}"


def npi_checked(value: str, fallback_system: str, where: str, warnings: list[Problem]
                ) -> JSON:
    """An identifier said to be an NPI: ``us-npi`` when its check digit holds (the core's
    :func:`~mafhir.tasks.common.npi_is_valid`), else kept under ``fallback_system`` with
    a warning — labelling a wrong number an NPI would let it match a real clinician."""
    if npi_is_valid(value):
        return {"system": systems.NPI, "value": value}
    warnings.append(Problem(where, "is labelled an NPI but fails the NPI length or check "
                                   "digit; kept under the sender's system", "value"))
    return {"system": fallback_system, "value": value}


# --------------------------------------------------------------------------- composites
#: HL7 table 0200 name type → HumanName.use (v2-to-FHIR IG concept map NameType).
NAME_USE = {"BAD": "old", "D": "usual", "L": "official", "M": "maiden", "MSK": "anonymous",
            "N": "nickname", "NAV": "temp", "R": "official", "TEMP": "temp"}
#: HL7 table 0190 address type → Address.use / Address.type (IG AddressType maps).
ADDRESS_USE = {"BA": "old", "BI": "billing", "C": "temp", "B": "work", "H": "home",
               "O": "work"}
ADDRESS_TYPE = {"M": "postal", "SH": "postal"}
#: HL7 tables 0201 (use) and 0202 (equipment) → ContactPoint.use / .system (IG maps; a
#: cellular phone is system ``phone`` with use ``mobile`` in R4).
TELECOM_USE = {"PRN": "home", "WPN": "work", "PRS": "mobile"}
TELECOM_SYSTEM = {"PH": "phone", "FX": "fax", "MD": "other", "CP": "phone", "SAT": "other",
                  "BP": "pager", "INTERNET": "email", "X.400": "email", "TDD": "other",
                  "TTY": "other"}


@dataclass
class Times:
    """Reads the DTM parts of composites in one zone, collecting what cannot be read."""

    tz: tzinfo | None
    problems: list[Problem]

    def at(self, text: str, where: str) -> str | None:
        text = null(text)
        if not text:
            return None
        try:
            return read_dtm(text, self.tz)
        except DtmError as exc:
            self.problems.append(Problem(where, exc.reason, exc.code))
            return None

    def period(self, start: str, end: str, where: str, first: int) -> JSON | None:
        out = {k: v for k, v in (("start", self.at(start, f"{where}.{first}")),
                                 ("end", self.at(end, f"{where}.{first + 1}"))) if v}
        return out or None


def xpn_name(value: Value, times: Times, where: str) -> JSON | None:
    """An XPN as a HumanName: family (FN.1), given (2, 3), prefix (5), suffix (4, 6, 14),
    use (7, table 0200), period (12/13)."""
    out: JSON = {}
    use = NAME_USE.get(null(value.c(7)).upper())
    if use:
        out["use"] = use
    family = null(value.c(1))
    if family:
        out["family"] = family
    given = [g for n in (2, 3) if (g := null(value.c(n)))]
    if given:
        out["given"] = given
    prefix = null(value.c(5))
    if prefix:
        out["prefix"] = [prefix]
    suffix = [s for n in (4, 6, 14) if (s := null(value.c(n)))]
    if suffix:
        out["suffix"] = suffix
    period = times.period(value.c(12), value.c(13), where, 12)
    if period:
        out["period"] = period
    return out if set(out) - {"use"} else None


def xad_address(value: Value, times: Times, where: str) -> JSON | None:
    """An XAD as an Address: lines (1.1, 2), city (3), state (4), postal code (5),
    country (6), use/type (7, table 0190), district (9, the county), period (13/14)."""
    out: JSON = {}
    kind = null(value.c(7)).upper()
    if kind in ADDRESS_USE:
        out["use"] = ADDRESS_USE[kind]
    if kind in ADDRESS_TYPE:
        out["type"] = ADDRESS_TYPE[kind]
    street = null(value.c(1)) or " ".join(p for n in (2, 3) if (p := null(value.c(1, n))))
    lines = [p for p in (street, null(value.c(2))) if p]
    if lines:
        out["line"] = lines
    for key, n in (("city", 3), ("district", 9), ("state", 4), ("postalCode", 5),
                   ("country", 6)):
        text = null(value.c(n))
        if text:
            out[key] = text
    period = times.period(value.c(13), value.c(14), where, 13)
    if period:
        out["period"] = period
    return out if set(out) - {"use", "type"} else None


def xtn_contact(value: Value) -> JSON | None:
    """An XTN as a ContactPoint: the number from XTN-12 (unformatted), else 5-8 (country,
    area, local, extension), else XTN-1; an e-mail from XTN-4; use from XTN-2."""
    equipment = null(value.c(3)).upper()
    email = null(value.c(4))
    country, area, local, ext = (null(value.c(n)) for n in (5, 6, 7, 8))
    number = null(value.c(12)) or " ".join(p for p in (
        f"+{country}" if country else "", f"({area})" if area else "", local,
        f"ext. {ext}" if ext else "") if p)
    if not number and not null(value.c(6)):
        number = null(value.c(1))
    out: JSON = {}
    if email and (equipment in ("INTERNET", "X.400") or not number):
        out["system"], out["value"] = "email", email
    elif number:
        out["system"], out["value"] = TELECOM_SYSTEM.get(equipment, "phone"), number
    else:
        return None
    use = TELECOM_USE.get(null(value.c(2)).upper()) or ("mobile" if equipment == "CP" else None)
    if use:
        out["use"] = use
    return out


def cx_full(value: Value, namespaces: Mapping[str, str], fallback: str, times: Times,
            where: str, warnings: list[Problem] | None = None) -> JSON | None:
    """A CX as an Identifier: system from its assigning authority (configured, else an
    OID/URI, else ``fallback``, the sender's own), type (CX-5, table 0203), period
    (CX-7/8), assigner (CX-6 or CX-4 name). An NPI is one only when its check digit
    holds (else ``fallback``, with a warning in ``warnings``)."""
    ident = null(value.c(1))
    if not ident:
        return None
    system = authority_system(value.c(4, 1), value.c(4, 2), value.c(4, 3), namespaces) \
        or fallback
    if system == systems.NPI:
        system = npi_checked(ident, fallback, where,
                             [] if warnings is None else warnings)["system"]
    out: JSON = {}
    id_type = null(value.c(5))
    if id_type:
        out["type"] = {"coding": [{"system": systems.V2_0203, "code": id_type}]}
    out["system"] = system
    out["value"] = ident
    period = times.period(value.c(7), value.c(8), where, 7)
    if period:
        out["period"] = period
    assigner = null(value.c(6)) or null(value.c(4))
    if assigner:
        out["assigner"] = {"display": assigner}
    return out


def readable(value: Value) -> str:
    """A composite's components joined for a person to read (no v2 delimiters left)."""
    return " ".join(p for p in (null(c) for c in
                                (value.c(i) for i in range(1, len(value.components) + 1))) if p)
