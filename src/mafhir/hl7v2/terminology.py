"""Code systems and units as senders write them → canonical FHIR URIs and UCUM codes.

Shared by every v2 plugin (lab results, pharmacy orders, registries). Two jobs:

* :func:`system_for` / :func:`system_name`: v2 coding-system names (table 0396 and the
  spellings real senders use: ``I9``, ``I9C``, ``I10``, ``ICD10CM``, ``SNM``, ``LN``…) ⇄
  the canonical URI of mapping-reference §1. A known code system always gets its
  canonical URI, never an invented ``urn:``; a local ``99zzz`` name gets the system the
  sender is configured with (:func:`local_systems`), else a stable
  ``urn:mafhir:v2-0396:<name>`` so the code is kept, not guessed.
* :func:`ucum_code`: a unit as written (``µmol/L``, ``umol/l``, ``IU/L``, ``mg/g crea``,
  ``beats/min``…) → its UCUM code, checked against the UCUM grammar and atom table by
  ``ucumvert`` (a maintained parser built from the UCUM essence); None when it is not
  UCUM and no known spelling says what it is. Callers keep the original text in
  ``Quantity.unit``: the code is added, the text never changed.

``I10`` is read as ICD-10-CM: table 0396 names it "ICD-10" (WHO), but US senders use it
for ICD-10-CM codes, WHO ICD-10 is not used for US diagnoses, and US Core binds
ICD-10-CM. A sender that really means WHO ICD-10 can be configured like a local name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from types import MappingProxyType
from urllib.parse import quote, unquote

from .. import systems

__all__ = [
    "CODE_SYSTEMS",
    "ICD9CM",
    "ICD10CM",
    "RXNORM",
    "UNIT_SPELLINGS",
    "is_local",
    "is_ucum",
    "local_systems",
    "local_systems_from_settings",
    "system_for",
    "system_name",
    "ucum_code",
]

ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"

#: v2 coding-system names (table 0396 and real senders' variants) → FHIR system URIs.
#: Looked up case-insensitively, ignoring ``-``, ``_``, ``.`` and spaces.
CODE_SYSTEMS: dict[str, str] = {
    "LN": systems.LOINC, "LOINC": systems.LOINC,
    "SCT": systems.SNOMED, "SNM": systems.SNOMED, "SNOMED": systems.SNOMED,
    "SNM3": systems.SNOMED, "SNOMEDCT": systems.SNOMED, "SCT2": systems.SNOMED,
    "UCUM": systems.UCUM, "CVX": systems.CVX, "MVX": systems.MVX, "NDC": systems.NDC,
    "RXNORM": RXNORM,
    "I10C": ICD10CM, "ICD10CM": ICD10CM, "I10": ICD10CM, "ICD10": ICD10CM,
    "I9": ICD9CM, "I9C": ICD9CM, "I9CDX": ICD9CM, "ICD9": ICD9CM, "ICD9CM": ICD9CM,
    "C4": CPT, "CPT": CPT, "CPT4": CPT,
    "CDCREC": systems.CDC_RACE_ETHNICITY, "CDCPHINVS": systems.CDCPHINVS,
    "NPI": systems.NPI, "ISO+": "urn:mafhir:v2-0396:ISO%2B",
}
_KEYS = {re.sub(r"[-_. ]", "", k).upper(): v for k, v in CODE_SYSTEMS.items()}
_HL7_TABLE = re.compile(r"^HL7(\d{4})$", re.I)
_LOCAL = re.compile(r"^(99[A-Za-z0-9]{3}|L)$")
_URN = "urn:mafhir:v2-0396:"
_REVERSE = {
    systems.LOINC: "LN", systems.SNOMED: "SCT", systems.UCUM: "UCUM", systems.CVX: "CVX",
    systems.MVX: "MVX", systems.NDC: "NDC", RXNORM: "RXNORM", ICD10CM: "I10C",
    ICD9CM: "I9CDX", "http://hl7.org/fhir/sid/icd-10": "I10", CPT: "C4",
    systems.CDC_RACE_ETHNICITY: "CDCREC", systems.CDCPHINVS: "CDCPHINVS",
}

_NONE: Mapping[str, str] = MappingProxyType({})
_local: ContextVar[Mapping[str, str]] = ContextVar("mafhir_local_code_systems", default=_NONE)


def is_local(name: str) -> bool:
    """Is ``name`` a local coding system (``99zzz`` or ``L``, table 0396)?"""
    return bool(_LOCAL.match(name.strip()))


@contextmanager
def local_systems(mapping: Mapping[str, str]) -> Iterator[None]:
    """Within the block, local names (``99zzz``) resolve to the sender's own system URIs.

    The receiver sets this per message from the sender's configuration, so converters
    (and :func:`~mafhir.hl7v2.datatypes.codeable`) need no extra argument.
    """
    token = _local.set(MappingProxyType(dict(mapping)))
    try:
        yield
    finally:
        _local.reset(token)


def local_systems_from_settings(settings: Mapping[str, str], sender: str) -> dict[str, str]:
    """``code-system.APP^FACILITY.NAME=URI`` (or ``code-system.NAME=URI`` for every
    sender) settings → the local-name map of messages from ``sender`` (``APP|FACILITY``)."""
    own = f"code-system.{sender.replace('|', '^')}."
    out: dict[str, str] = {}
    for key, uri in settings.items():
        if key.startswith(own):
            out[key[len(own):]] = uri
        elif key.startswith("code-system.") and key.count(".") == 1:
            out.setdefault(key.split(".", 1)[1], uri)
    return out


def system_for(name: str, local: Mapping[str, str] | None = None) -> str | None:
    """The FHIR system URI of a v2 coding-system name ('' → None).

    ``local`` (else the :func:`local_systems` in force) maps the sender's own names.
    """
    name = name.strip()
    if not name:
        return None
    configured = (_local.get() if local is None else local).get(name)
    if configured:
        return configured
    known = _KEYS.get(re.sub(r"[-_. ]", "", name).upper())
    if known:
        return known
    table = _HL7_TABLE.match(name)
    if table:
        return f"{systems.THO}v2-{table.group(1)}"
    return _URN + quote(name, safe="")


def system_name(uri: str, local: Mapping[str, str] | None = None) -> str:
    """The v2 coding-system name of a FHIR system URI (the reverse of :func:`system_for`)."""
    if uri in _REVERSE:
        return _REVERSE[uri]
    for name, own in (_local.get() if local is None else local).items():
        if own == uri:
            return name
    if uri.startswith(f"{systems.THO}v2-") and uri[-4:].isdigit():
        return f"HL7{uri[-4:]}"
    if uri.startswith(_URN):
        return unquote(uri[len(_URN):])
    return "L"


# ------------------------------------------------------------------ units

#: Whole spellings seen in real messages → UCUM (looked up lower-cased, µ read as u).
#: Checked against UCUM when first used, like every result of :func:`ucum_code`.
UNIT_SPELLINGS: dict[str, str] = {
    "mg/dl": "mg/dL", "g/dl": "g/dL", "meq/l": "meq/L", "mmol/l": "mmol/L", "umol/l": "umol/L",
    "nmol/l": "nmol/L", "pmol/l": "pmol/L", "u/l": "U/L", "iu/l": "[IU]/L", "iu/ml": "[IU]/mL",
    "miu/ml": "m[IU]/mL", "miu/l": "m[IU]/L", "uiu/ml": "u[IU]/mL", "ng/ml": "ng/mL",
    "pg/ml": "pg/mL", "ug/dl": "ug/dL", "ug/l": "ug/L", "ng/dl": "ng/dL", "mg/l": "mg/L",
    "g/l": "g/L", "fl": "fL", "pg": "pg", "%": "%", "ku/l": "kU/L", "u/ml": "U/mL",
    "k/ul": "10*3/uL", "k/mm3": "10*3/uL", "m/ul": "10*6/uL", "x10e3/ul": "10*3/uL",
    "x10e6/ul": "10*6/uL", "10^3/ul": "10*3/uL", "10^6/ul": "10*6/uL", "10^9/l": "10*9/L",
    "10^12/l": "10*12/L", "x10^9/l": "10*9/L", "x10^12/l": "10*12/L",
    "giga.l-1": "10*9/L", "tera.l-1": "10*12/L", "10*9/l": "10*9/L", "10*12/l": "10*12/L",
    "mg/g crea": "mg/g{creat}", "mg/g creat": "mg/g{creat}", "mg/g cr": "mg/g{creat}",
    "mg/g creatinine": "mg/g{creat}", "ug/mg creat": "ug/mg{creat}",
    "beats/min": "/min", "beats/minute": "/min", "bpm": "/min", "breaths/min": "/min",
    "/min": "/min", "sec": "s", "seconds": "s", "mm/hr": "mm/h", "mm/h": "mm/h",
    "mmhg": "mm[Hg]", "mm hg": "mm[Hg]", "cmh2o": "cm[H2O]",
    "degf": "[degF]", "°f": "[degF]", "deg f": "[degF]", "f": "[degF]",
    "degc": "Cel", "°c": "Cel", "deg c": "Cel", "c": "Cel",
    "in": "[in_i]", "inch": "[in_i]", "inches": "[in_i]", "lb": "[lb_av]", "lbs": "[lb_av]",
    "g": "g", "kg": "kg", "wk": "wk", "ml": "mL", "l": "L", "ratio": "{ratio}",
    "mosm/kg": "mosm/kg", "ml/min/1.73m2": "mL/min/{1.73_m2}",
    "ml/min/1.73 m2": "mL/min/{1.73_m2}", "ml/min/1.73m^2": "mL/min/{1.73_m2}",
    "kg/m2": "kg/m2", "kg/m^2": "kg/m2", "mcg": "ug", "mg/hr": "mg/h", "ml/hr": "mL/h",
    "cells/ul": "{cells}/uL", "/hpf": "/[HPF]", "/lpf": "/[LPF]",
}
#: Atoms (between ``/`` and ``.``) written the common wrong way → UCUM.
_ATOMS = {"hr": "h", "hrs": "h", "sec": "s", "mcg": "ug", "iu": "[IU]", "miu": "m[IU]",
          "uiu": "u[IU]", "meq": "meq", "mmhg": "mm[Hg]"}
_LITRE = re.compile(r"^([munpfdck]?)l$", re.I)
_NUMBER = re.compile(r"^[\d.]+$")
_MICRO = str.maketrans({"\u00b5": "u", "\u03bc": "u"})


@lru_cache(maxsize=1)
def _parser():
    from ucumvert import get_ucum_parser

    return get_ucum_parser()


@lru_cache(maxsize=4096)
def is_ucum(code: str) -> bool:
    """Does ``code`` parse as UCUM (grammar and atoms, case-sensitive)?"""
    if not code or code != code.strip():
        return False
    try:
        _parser().parse(code)
    except Exception:  # lark's parse errors: not UCUM
        return False
    return True


def _atom(token: str) -> str:
    low = token.lower()
    if low in _ATOMS:
        return _ATOMS[low]
    litre = _LITRE.match(token)
    if litre:
        return litre.group(1).lower() + "L"
    return token


@lru_cache(maxsize=4096)
def ucum_code(text: str) -> str | None:
    """The UCUM code of a unit as written, or None when it cannot be said for sure.

    Known spellings first (so ``C`` is Celsius, not coulomb), then atom by atom (``mg/hr``
    → ``mg/h``, ``umol/l`` → ``umol/L``), then the text itself; every answer passes the UCUM
    check.
    """
    raw = (text or "").strip()
    if not raw or _NUMBER.match(raw):  # a bare number is UCUM's "1", never a unit sent
        return None
    plain = raw.translate(_MICRO)
    spelled = UNIT_SPELLINGS.get(plain.lower())
    if spelled is not None:
        return spelled if is_ucum(spelled) else None
    parts = re.split(r"([/.])", plain)
    rebuilt = "".join(p if p in "/." else _atom(p) for p in parts)
    if is_ucum(rebuilt):
        return rebuilt
    return plain if is_ucum(plain) else None
