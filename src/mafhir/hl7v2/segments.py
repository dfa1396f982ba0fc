"""Segments that every v2 interface writes the same way, built from FHIR resources.

The lab's orders and the pharmacy's prescriptions both open with the patient; writing
PID once here keeps the two (and the next interface) from drifting apart.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, Problem
from ..fhirtypes import parse_fhir_datetime
from ..identity import identifier_from_reference
from ..resourceset import ResourceSet
from .context import V2Context
from .datatypes import format_dtm

__all__ = ["GENDER", "dtm_of_fhir", "pid_segment"]

JSON = dict[str, Any]

#: administrative-gender → HL7 table 0001.
GENDER = {"male": "M", "female": "F", "other": "O", "unknown": "U"}


def dtm_of_fhir(text: str | None) -> str:
    """A FHIR date or dateTime as a v2 DT/DTM (empty when absent)."""
    if not text:
        return ""
    if "T" not in text:
        return text.replace("-", "")
    return format_dtm(parse_fhir_datetime(text))


def _mrn(resource: JSON) -> JSON | None:
    idents = resource.get("identifier", []) or []
    return next((i for i in idents if any(c.get("code") == "MR" for c in
                                          (i.get("type") or {}).get("coding", []))),
                idents[0] if idents else None)


def pid_segment(resources: ResourceSet, ref: JSON, ctx: V2Context, where: str) -> list:
    """PID for the patient ``ref`` names: the Patient in the set, or its MRN reference.

    ``where`` is the FHIR path of ``ref``, named in the error when there is no patient.
    """
    resource = resources.resolve(ref)
    if resource is not None:
        mrn = _mrn(resource)
        if mrn is None:
            raise InputError([Problem(where, "the patient has no identifier")])
        system, value = mrn.get("system", ""), mrn["value"]
    else:
        parsed = identifier_from_reference(str((ref or {}).get("reference", "")))
        if parsed is None:
            raise InputError([Problem(where, "refers to no patient this input holds or names "
                                             "by MRN")])
        _, system, value = parsed
        resource = {}
    name = (resource.get("name") or [{}])[0]
    given = name.get("given", [])
    addr = (resource.get("address") or [None])[0]
    phone = next((t["value"] for t in resource.get("telecom", []) or []
                  if t.get("system") == "phone"), "")
    return ["PID", "1", None, (value, "", "", (ctx.application, system, "URI"), "MR"), None,
            (name.get("family", ""), given[0] if given else "", " ".join(given[1:]))
            if name else None, None, dtm_of_fhir(resource.get("birthDate")),
            GENDER.get(resource.get("gender", ""), ""), None, None,
            (" ".join(addr.get("line", [])), "", addr.get("city", ""), addr.get("state", ""),
             addr.get("postalCode", ""), addr.get("country", "")) if addr else None, None,
            (phone, "PRN", "PH") if phone else None]
