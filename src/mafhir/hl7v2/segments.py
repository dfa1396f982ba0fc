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
from .build import Reps
from .context import V2Context
from .datatypes import format_dtm

__all__ = ["GENDER", "dtm_of_fhir", "pid_segment"]

JSON = dict[str, Any]

US_CORE_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
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


def _cdc(patient: JSON, url: str) -> list[tuple[str, str, str]]:
    """The OMB codes of a US Core race or ethnicity extension, as CWE (code^text^CDCREC)."""
    out = []
    for ext in patient.get("extension", []) or []:
        if ext.get("url") != url:
            continue
        for part in ext.get("extension", []) or []:
            if part.get("url") in ("ombCategory", "detailed"):
                c = part.get("valueCoding") or {}
                if c.get("code"):
                    out.append((c["code"], c.get("display", ""), "CDCREC"))
    return out


def pid_segment(resources: ResourceSet, ref: JSON, ctx: V2Context, where: str) -> list:
    """PID for the patient ``ref`` names: the Patient in the set, or its MRN reference.

    Name, birth date, sex, address, phone, race and ethnicity come from the Patient when
    the set holds it (a channel adds it from the clinic's store first:
    :mod:`mafhir.hl7v2.patients`). ``where`` is the FHIR path of ``ref``, named in the
    error when there is no patient.
    """
    resource = resources.resolve(ref)
    named = identifier_from_reference(str((ref or {}).get("reference", "")))
    if resource is not None:
        mrn = _mrn(resource)
        if named is not None and named[0] == "Patient":  # the identifier the order names
            mrn = {"system": named[1], "value": named[2]}
        if mrn is None:
            raise InputError([Problem(where, "the patient has no identifier", "required")])
        system, value = mrn.get("system", ""), mrn["value"]
    else:
        if named is None:
            raise InputError([Problem(where, "refers to no patient this input holds or names "
                                             "by MRN", "not-found")])
        _, system, value = named
        resource = {}
    name = (resource.get("name") or [{}])[0]
    given = name.get("given", [])
    addr = (resource.get("address") or [None])[0]
    phone = next((t["value"] for t in resource.get("telecom", []) or []
                  if t.get("system") == "phone"), "")
    race = _cdc(resource, US_CORE_RACE)
    ethnicity = _cdc(resource, US_CORE_ETHNICITY)
    fields: list = [
        "PID", "1", None, (value, "", "", (ctx.application, system, "URI"), "MR"), None,
        (name.get("family", ""), given[0] if given else "", " ".join(given[1:]))
        if name.get("family") or given else None, None,
        dtm_of_fhir(resource.get("birthDate")), GENDER.get(resource.get("gender", ""), ""),
        None, Reps(race) if race else None,
        (" ".join(addr.get("line", [])), "", addr.get("city", ""), addr.get("state", ""),
         addr.get("postalCode", ""), addr.get("country", "")) if addr else None, None,
        (phone, "PRN", "PH") if phone else None]
    if ethnicity:
        fields += [None] * (22 - len(fields)) + [Reps(ethnicity)]
    return fields
