"""PID → a US Core Patient, for every inbound v2 converter (lab results and orders,
pharmacy).

A result names its patient; dropping the demographics it carries loses what the clinic
needs to check it is the right person. The Patient goes into the Bundle as a conditional
create on the clinic MRN (``ifNoneExist``: what the EHR holds is not overwritten unless
:attr:`V2Context.patient_update` says so), and every resource links to it.

Identity follows design rule 2: an identifier's system comes from its assigning
authority (the sender's namespace table, else an OID/URI the CX itself states); only an
identifier whose authority maps to the clinic's MRN system is a match key. Without one
the message is held for review (``business-rule`` on PID-3) — a lab's accession number,
an SSN or a literal ``MRN`` must never file a result under someone's chart. An SSN is
never a match key and never appears in a message or log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from .. import systems
from ..bundle import Entry, create, update
from ..errors import InputError, Problem
from ..identity import identifier_query
from .context import V2Context
from .datatypes import (
    SSN_SYSTEM,
    DtmError,
    Times,
    codeable,
    cx_full,
    null,
    read_dtm,
    readable,
    sender_system,
    xad_address,
    xpn_name,
    xtn_contact,
)
from .message import Segment, Value

__all__ = ["ETHNICITY_FROM_V2", "GENDER", "PidPatient", "patient_from_pid"]

JSON = dict[str, Any]
US_CORE_RACE = systems.profile("us-core-race")
US_CORE_ETHNICITY = systems.profile("us-core-ethnicity")
EXT = "http://hl7.org/fhir/StructureDefinition/"
NULL_FLAVOR = systems.THO + "v3-NullFlavor"
#: HL7 table 0001 → Patient.gender (v2-to-FHIR IG concept map AdministrativeSex).
GENDER = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other",
          "N": "other"}
#: OMB race and ethnicity categories (CDC Race & Ethnicity code system).
OMB_RACE = {"1002-5", "2028-9", "2054-5", "2076-8", "2106-3"}
OMB_ETHNICITY = {"2135-2", "2186-5"}
#: HL7 table 0189 (ethnic group) → the CDC code US Core carries.
ETHNICITY_FROM_V2 = {"H": ("2135-2", "Hispanic or Latino"),
                     "N": ("2186-5", "Not Hispanic or Latino")}
_CDC_CODE = re.compile(r"^\d{4}-\d$")
_CDC_SYSTEMS = {"", "CDCREC", "HL70005", "HL70189", "2.16.840.1.113883.6.238"}
MRN_TYPE = {"coding": [{"system": systems.V2_0203, "code": "MR",
                        "display": "Medical Record Number"}]}


@dataclass(frozen=True)
class PidPatient:
    """The Patient a PID describes, the reference every resource uses, its Bundle entry,
    and what was kept despite a gap (``warnings``)."""

    resource: JSON
    reference: JSON
    entry: Entry
    warnings: tuple[Problem, ...] = ()


def _race_or_ethnicity(url: str, reps: list[Value], omb: set[str],
                       v2_table: dict[str, tuple[str, str]] | None = None) -> JSON | None:
    """The US Core race/ethnicity extension: OMB categories, detailed CDC codes, and the
    text as sent (a code outside the CDC set is kept in the text, not guessed)."""
    parts: list[JSON] = []
    texts: list[str] = []
    for rep in reps:
        code, display, sysname = null(rep.c(1)), null(rep.c(2)), null(rep.c(3)).upper()
        if v2_table and code.upper() in v2_table and sysname in ("", "HL70189"):
            code, display = v2_table[code.upper()]
        texts.append(display or code)
        if code in ("UNK", "ASKU") or (code == "U" and url == US_CORE_ETHNICITY):
            nf = "UNK" if code == "U" else code
            parts.append({"url": "ombCategory", "valueCoding": {
                "system": NULL_FLAVOR, "code": nf,
                "display": "Unknown" if nf == "UNK" else "Asked but no answer"}})
        elif _CDC_CODE.match(code) and sysname in _CDC_SYSTEMS:
            coding = {"system": systems.CDC_RACE_ETHNICITY, "code": code}
            if display:
                coding["display"] = display
            parts.append({"url": "ombCategory" if code in omb else "detailed",
                          "valueCoding": coding})
    text = ", ".join(t for t in texts if t)
    if not text:
        return None
    parts.append({"url": "text", "valueString": text})
    return {"url": url, "extension": parts}


def _yes_no(pid: Segment, n: int, warnings: list[Problem]) -> bool | None:
    """A Y/N indicator (HL7 table 0136); another value is reported, not guessed at."""
    text = null(pid.get(n)).upper()
    if text in ("Y", "N"):
        return text == "Y"
    if text:
        warnings.append(Problem(f"PID-{n}", "is not Y or N (HL7 table 0136); not mapped",
                                "code-invalid"))
    return None


def _match_key(idents: list[JSON], ctx: V2Context, authorities: list[str]) -> JSON:
    mrn_system = ctx.map.clinic.mrn_namespace
    for ident in idents:
        if ident["system"] == mrn_system:
            return ident
    named = ", ".join(sorted({a for a in authorities if a})) or "none"
    raise InputError([Problem(
        "PID-3", f"no identifier of the clinic's MRN authority (assigning authorities sent: "
                 f"{named}); held for review: map the authority of the clinic's MRN in this "
                 f"sender's namespaces, or send the MRN with it", "business-rule")])


def patient_from_pid(pid: Segment, ctx: V2Context, sender: str = "",
                     tz: tzinfo | None = None) -> PidPatient:
    """The US Core Patient of ``pid``; InputError listing every PID problem (each naming
    its field, never a value): ``business-rule`` on PID-3 when no identifier is the
    clinic's MRN, ``value`` for an impossible date, ``code-invalid`` for a sex code
    outside HL7 table 0001."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    times = Times(tz, problems)
    base = ctx.map.clinic.system
    idents: list[JSON] = []
    authorities: list[str] = []
    namespaces = ctx.namespaces_for(sender)
    for n in (3, 2, 4):
        for k, rep in enumerate(pid.reps(n), start=1):
            where = f"PID-{n}" if k == 1 else f"PID-{n}[{k}]"
            authority = rep.c(4, 1) or rep.c(4, 2)
            ident = cx_full(rep, namespaces, sender_system(base, sender, authority),
                            times, where, warnings)
            if ident is None:
                continue
            if null(rep.c(5)).upper() == "SS":
                ident["system"] = SSN_SYSTEM  # never a match key, whatever its authority
            if n == 3:
                authorities.append(authority)
            if not any(i["system"] == ident["system"] and i["value"] == ident["value"]
                       for i in idents):
                idents.append(ident)
    ssn = null(pid.get(19))
    if ssn and not any(i["system"] == SSN_SYSTEM and i["value"] == ssn for i in idents):
        idents.append({"type": {"coding": [{"system": systems.V2_0203, "code": "SS"}]},
                       "system": SSN_SYSTEM, "value": ssn})
    licence = pid.v(20)
    if null(licence.c(1)):
        idents.append({"type": {"coding": [{"system": systems.V2_0203, "code": "DL"}]},
                       "system": sender_system(base, sender, f"DL {licence.c(2)}".strip()),
                       "value": licence.c(1)})
    key: JSON | None = None
    try:
        key = _match_key(idents, ctx, authorities)
    except InputError as exc:
        problems.extend(exc.problems)
    if key is not None:
        idents.remove(key)
        key = {"use": "usual", **({} if "type" in key else {"type": MRN_TYPE}), **key}
        idents.insert(0, key)
    patient: JSON = {"resourceType": "Patient",
                     "meta": {"profile": [systems.profile("us-core-patient")]}}
    extensions: list[JSON] = []
    race = _race_or_ethnicity(US_CORE_RACE, pid.reps(10), OMB_RACE)
    if race:
        extensions.append(race)
    ethnicity = _race_or_ethnicity(US_CORE_ETHNICITY, pid.reps(22), OMB_ETHNICITY,
                                   ETHNICITY_FROM_V2)
    if ethnicity:
        extensions.append(ethnicity)
    maiden = pid.v(6)
    if null(maiden.c(1)):
        extensions.append({"url": EXT + "patient-mothersMaidenName",
                           "valueString": null(maiden.c(1))})
    place = pid.v(23)
    if null(place.c(1)):  # ST in v2.5.1, an XAD in some senders: kept structured then
        where_born = xad_address(place, times, "PID-23") if len(place.components) > 1 \
            else None
        extensions.append({"url": EXT + "patient-birthPlace",
                           "valueAddress": {**(where_born or {}), "text": readable(place)}})
    religion = codeable(pid.v(17))
    if religion:
        extensions.append({"url": EXT + "patient-religion", "valueCodeableConcept": religion})
    for n, name in ((26, "citizenship"), (28, "nationality")):
        for rep in pid.reps(n):
            country = codeable(rep)
            if country and null(rep.c(1)):
                extensions.append({"url": EXT + f"patient-{name}", "extension": [
                    {"url": "code", "valueCodeableConcept": country}]})
    if extensions:
        patient["extension"] = extensions
    patient["identifier"] = idents
    names = [h for k, rep in enumerate(pid.reps(5), start=1)
             if (h := xpn_name(rep, times, "PID-5" if k == 1 else f"PID-5[{k}]"))]
    names += [h for k, rep in enumerate(pid.reps(9), start=1)  # aliases
              if (h := xpn_name(rep, times, "PID-9" if k == 1 else f"PID-9[{k}]"))]
    if not names:
        names = [{"extension": [{"url": EXT + "data-absent-reason", "valueCode": "unknown"}]}]
        warnings.append(Problem("PID-5", "the patient name is missing", "incomplete"))
    patient["name"] = names
    telecom = []
    for n, default_use in ((13, "home"), (14, "work"), (40, "")):  # 40: v2.7+
        for rep in pid.reps(n):
            point = xtn_contact(rep)
            if point:
                if point["system"] != "email" and default_use:
                    point.setdefault("use", default_use)
                telecom.append(point)
    if telecom:
        patient["telecom"] = telecom
    sex = null(pid.get(8)).upper()
    if sex in GENDER:
        patient["gender"] = GENDER[sex]
    elif sex:
        problems.append(Problem("PID-8", "the administrative sex is not in HL7 table 0001",
                                "code-invalid"))
    else:
        patient["gender"] = "unknown"  # US Core requires it; the gap is reported
        warnings.append(Problem("PID-8", "the administrative sex is missing", "incomplete"))
    born = null(pid.get(7))
    if born:
        try:
            when = read_dtm(born, tz)
        except DtmError as exc:
            if exc.code != "business-rule":
                problems.append(Problem("PID-7", exc.reason, exc.code))
            else:  # a birth time with no zone to read it in: birthDate is a date and
                # needs none, so the date is kept and only the time left out, reported
                when = read_dtm(born.strip()[:8], None)
                patient["birthDate"] = when
                warnings.append(Problem("PID-7", f"the birth time was not kept: {exc.reason}",
                                        "incomplete"))
        else:
            patient["birthDate"] = when.split("T")[0]
            if "T" in when:
                patient["_birthDate"] = {"extension": [{"url": EXT + "patient-birthTime",
                                                        "valueDateTime": when}]}
    died = times.at(pid.get(29), "PID-29")
    if died:
        patient["deceasedDateTime"] = died
    elif _yes_no(pid, 30, warnings) is not None:
        patient["deceasedBoolean"] = _yes_no(pid, 30, [])
    addresses = [a for k, rep in enumerate(pid.reps(11), start=1)
                 if (a := xad_address(rep, times, "PID-11" if k == 1 else f"PID-11[{k}]"))]
    if addresses:
        patient["address"] = addresses
    marital = codeable(pid.v(16))
    if marital:
        patient["maritalStatus"] = marital
    order = null(pid.get(25))
    if order.isdigit():
        patient["multipleBirthInteger"] = int(order)
    elif _yes_no(pid, 24, warnings) is not None:
        patient["multipleBirthBoolean"] = _yes_no(pid, 24, [])
    language = codeable(pid.v(15))
    if language:
        patient["communication"] = [{"language": language}]
    if problems:
        raise InputError(problems)
    assert key is not None
    reference = {"reference": f"Patient?{identifier_query(key['system'], key['value'])}"}
    entry = update(patient) if ctx.patient_update else create(patient)
    return PidPatient(patient, reference, entry, tuple(warnings))

