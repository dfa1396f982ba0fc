"""PID → a US Core Patient for the pharmacy's inbound messages (RDE^O11, RDE^O25, OMP^O09).

A prescription read back names its patient with name, birth date and sex; dropping them
loses what the clinic checks it is the right person with. What PID has is kept as sent;
what US Core requires and PID lacks (a name, the sex) is marked with a data-absent-reason
and reported as an ``incomplete`` warning, never invented.

TODO(H2): replace with ``mafhir.hl7v2.patient.patient_from_pid`` (the shared PID reader:
race/ethnicity, telecom, identity rules) once it is on main; this local reader exists only
until then and keeps to the elements both agree on.
"""

from __future__ import annotations

import re
from typing import Any

from mafhir import systems
from mafhir.errors import Problem
from mafhir.hl7v2 import Segment

from .fhir import absent

__all__ = ["GENDER", "patient_from_pid"]

JSON = dict[str, Any]
#: HL7 table 0001 → Patient.gender (the V2-to-FHIR IG's AdministrativeSex map).
GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other",
          "N": "other"}
MRN_TYPE = {"coding": [{"system": systems.V2_0203, "code": "MR",
                        "display": "Medical Record Number"}]}
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")


def _names(pid: Segment) -> list[JSON]:
    out = []
    for rep in pid.reps(5):  # XPN: family (FN.1) ^ given ^ middle ^ suffix ^ prefix
        family, given = rep.c(1, 1), [g for g in (rep.c(2), rep.c(3)) if g]
        if not (family or given):
            continue
        name: JSON = {}
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        if rep.c(4):
            name["suffix"] = [rep.c(4)]
        if rep.c(5):
            name["prefix"] = [rep.c(5)]
        out.append(name)
    return out


def _address(pid: Segment) -> JSON | None:
    rep = next(iter(pid.reps(11)), None)
    if rep is None:
        return None
    out: JSON = {}
    lines = [line for line in (rep.c(1, 1), rep.c(2)) if line]
    if lines:
        out["line"] = lines
    for key, n in (("city", 3), ("state", 4), ("postalCode", 5), ("country", 6)):
        if rep.c(n).strip():
            out[key] = rep.c(n).strip()
    return out or None


def patient_from_pid(pid: Segment, system: str, mrn: str) -> tuple[JSON, list[Problem]]:
    """The US Core Patient of ``pid`` keyed on the MRN, and the gaps it is kept despite."""
    warnings: list[Problem] = []
    patient: JSON = {"resourceType": "Patient",
                     "meta": {"profile": [systems.profile("us-core-patient")]},
                     "identifier": [{"use": "usual", "type": MRN_TYPE, "system": system,
                                     "value": mrn}]}
    names = _names(pid)
    if names:
        patient["name"] = names
    else:
        patient["name"] = [absent("unknown")]
        warnings.append(Problem(pid.where(5), "the patient's name is absent; kept with a "
                                              "data-absent-reason", "incomplete"))
    gender = GENDER.get(pid.get(8).upper())
    if gender:
        patient["gender"] = gender
    else:
        patient["_gender"] = absent("unknown")
        warnings.append(Problem(pid.where(8), "the patient's sex is absent or not in table "
                                              "0001; kept with a data-absent-reason",
                                "incomplete"))
    born = _DATE.match(pid.get(7))
    if born:
        patient["birthDate"] = "-".join(born.groups())
    address = _address(pid)
    if address:
        patient["address"] = [address]
    return patient, warnings
