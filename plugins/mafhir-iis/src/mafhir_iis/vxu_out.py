"""FHIR → VXU^V04 (CDC IG profile Z22): one patient's doses, one order group each.

Pure: resources, a :class:`~mafhir.hl7v2.V2Context` (the clock) and the registry's
:class:`VxuSettings` in, message text out, written by :func:`mafhir.hl7v2.build_message`
(every value escaped). Works from the core's ``immunization`` tasks and from any US Core
Immunization with its Patient (and Practitioners, RelatedPersons) in the set.

=========  ==========================================================================
MSH        MSH-3/4 the clinic's application and IIS facility id, MSH-5/6 the registry,
           MSH-15/16 ``ER``/``AL``, MSH-21 ``Z22^CDCPHINVS``, MSH-22/23 organisations
PID        PID-3 MRN (``MR``), PID-5 legal name (``L``), PID-6 mother's maiden name
           (``M``), PID-7/8, PID-10/22 race/ethnicity (CDCREC), PID-11, PID-13 (``PRN``)
PD1        PD1-11 publicity (0215), PD1-12 protection (Y/N), PD1-16 registry status (0441)
NK1        the responsible person of a minor (Patient.contact or RelatedPerson, 0063)
ORC        ORC-1 ``RE``, ORC-3 the dose's business identifier (stable: updates and
           deletes name it), ORC-12 ordering provider (NPI)
RXA        RXA-3 date, RXA-5 CVX (NDC as the alternate), RXA-6/7 amount (``999``
           unknown), RXA-9 NIP001 (``00`` administered, ``01``–``08`` historical; empty
           for a dose not given), RXA-10 administering provider (NPI), RXA-11 the
           facility, RXA-15/16/17 lot, expiry, MVX, RXA-18 refusal (NIP002), RXA-20
           CP/PA/RE/NA, RXA-21 ``A`` (``D`` for entered-in-error)
RXR        RXR-1 route (NCIT, HL70162 alternate), RXR-2 site (HL70163)
OBX        64994-7 eligibility (+ OBX-17 ``VXC40``), 30963-3 funding source, VIS by
           barcode (69764-9 + 29769-7) or by vaccine type (30956-7 + 29768-9 + 29769-7),
           each group under one OBX-4 sub-id
=========  ==========================================================================

What the guide requires and the resources do not have is refused with an InputError
naming the FHIR element and the v2 field (``Patient.birthDate (PID-7)``), never a value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from mafhir import systems
from mafhir.codes import cvx as cvx_row
from mafhir.codes import mvx as mvx_row
from mafhir.errors import InputError, Problem
from mafhir.hl7v2 import V2Context, build_message, msh
from mafhir.hl7v2.segments import dtm_of_fhir, pid_segment
from mafhir.resourceset import ResourceSet

from .codes import (
    INFORMATION_SOURCE,
    ORIGIN_TO_NIP001,
    PARENTAL_DECISION,
    PATIENT_DECISION,
    REFUSAL_TO_NIP002,
    RELATIONSHIP_TO_0063,
    ROUTE_TO_V2,
)

__all__ = ["MOTHERS_MAIDEN_NAME", "VxuSettings", "control_id", "vxu_from_fhir", "vxu_v04"]

JSON = dict[str, Any]
MOTHERS_MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
ORIGIN_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-origin"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
NPI_AUTHORITY = ("NPI", "2.16.840.1.113883.4.6", "ISO")
ADULT_AGE = 18
_ADDRESS_USE = {"home": "H", "work": "B", "temp": "C", "old": "BA", "billing": "M"}


@dataclass(frozen=True)
class VxuSettings:
    """What the registry's interface agreement fixes (``mafhir.toml [iis.NAME]``).

    ``facility_id`` is the clinic's id at the registry (MSH-4, RXA-11). ``publicity``
    (table 0215), ``protection`` (Y/N) and ``registry_status`` (table 0441) are the
    clinic's defaults for PD1 (a patient whose record carries the confidentiality label
    R or V is sent with protection ``Y`` whatever the default).
    """

    facility_id: str = ""
    sending_application: str = "MAFHIR"
    receiving_application: str = ""
    receiving_facility: str = ""
    sending_organisation: str = ""
    receiving_organisation: str = ""
    processing_id: str = "P"
    publicity: str = ""
    protection: str = ""
    registry_status: str = ""

    @classmethod
    def from_context(cls, ctx: V2Context) -> VxuSettings:
        """Settings from a bare v2 context (``mafhir convert --to hl7v2``)."""
        return cls(facility_id=ctx.facility or ctx.map.clinic.name,
                   sending_application=ctx.application,
                   receiving_application=ctx.receiving[0],
                   receiving_facility=ctx.receiving[1], processing_id=ctx.processing_id)


# ---------------------------------------------------------------- small readers

def _code(concept: JSON | None, system: str) -> tuple[str, str]:
    for c in (concept or {}).get("coding", []) or []:
        if c.get("system") == system and c.get("code"):
            return str(c["code"]), str(c.get("display") or "")
    return "", ""


def _num(value: Any) -> str:
    """A number digit for digit as the resource holds it (a Decimal keeps its zeros)."""
    return "" if value is None else str(value)


def _xcn(who: JSON | None) -> tuple | None:
    """A practitioner as XCN by NPI (the guide needs no more), name when known."""
    if who is None:
        return None
    npi = next((i.get("value", "") for i in who.get("identifier", []) or []
                if i.get("system") == systems.NPI), "")
    name = (who.get("name") or [{}])[0]
    given = name.get("given", []) or []
    if not npi and not name:
        return None
    return (npi, name.get("family", ""), given[0] if given else "", " ".join(given[1:]),
            "", "", "", "", NPI_AUTHORITY if npi else "", "L", "", "", "NPI" if npi else "")


def _performer(imm: JSON, resources: ResourceSet, function: str) -> JSON | None:
    for perf in imm.get("performer", []) or []:
        code, _ = _code(perf.get("function"), systems.IMMUNIZATION_FUNCTION)
        if code == function:
            return resources.resolve(perf.get("actor"))
    return None


def _age_at(patient: JSON, when: str) -> int | None:
    born = str(patient.get("birthDate") or "")
    if len(born) != 10 or len(when) < 10:
        return None
    b, w = date.fromisoformat(born), date.fromisoformat(when[:10])
    return w.year - b.year - ((w.month, w.day) < (b.month, b.day))


def control_id(immunizations: list[JSON], patient: JSON | None = None) -> str:
    """MSH-10 from the doses and the patient: a re-send of the same message keeps its
    control id (a registry with duplicate detection answers it once); a changed dose or
    changed demographics get a new one."""
    seed = json.dumps([immunizations, patient], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(seed.encode()).hexdigest()[:20]


# ---------------------------------------------------------------- segments

def _pid(resources: ResourceSet, imm: JSON, patient: JSON, ctx: V2Context) -> list:
    pid = pid_segment(resources, imm.get("patient") or {}, ctx, "Immunization.patient")
    pid += [None] * (23 - len(pid))
    name = (patient.get("name") or [{}])[0]
    given = name.get("given", []) or []
    if name.get("family") or given:
        pid[5] = (name.get("family", ""), given[0] if given else "", " ".join(given[1:]),
                  "", "", "", "L")
    maiden = next((e.get("valueString") for e in patient.get("extension", []) or []
                   if e.get("url") == MOTHERS_MAIDEN_NAME and e.get("valueString")), None)
    pid[6] = (maiden, "", "", "", "", "", "M") if maiden else None
    addr = (patient.get("address") or [None])[0]
    if addr:
        pid[11] = (" ".join(addr.get("line", []) or []), "", addr.get("city", ""),
                   addr.get("state", ""), addr.get("postalCode", ""),
                   addr.get("country", ""), _ADDRESS_USE.get(addr.get("use", ""), "L"))
    phone = next((t.get("value", "") for t in patient.get("telecom", []) or []
                  if t.get("system") == "phone" and t.get("value")), "")
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 10:  # the guide's form: area code and local number apart
        pid[13] = ("", "PRN", "PH", "", "", digits[:3], digits[3:])
    elif phone:
        pid[13] = (phone, "PRN", "PH")
    return pid


def _pd1(patient: JSON, settings: VxuSettings, at: str) -> list | None:
    labels = {c.get("code") for c in (patient.get("meta") or {}).get("security", []) or []
              if c.get("system") == CONFIDENTIALITY}
    protection = "Y" if labels & {"R", "V"} else settings.protection
    if not (settings.publicity or protection or settings.registry_status):
        return None
    pd1: list = ["PD1"] + [None] * 18
    if settings.publicity:
        pd1[11] = (settings.publicity, "", "HL70215")
        pd1[18] = at
    if protection:
        pd1[12] = protection
        pd1[13] = at
    if settings.registry_status:
        pd1[16] = settings.registry_status
        pd1[17] = at
    return pd1


def _relationship(concepts: list[JSON]) -> tuple[str, str] | None:
    for concept in concepts:
        for c in concept.get("coding", []) or []:
            found = RELATIONSHIP_TO_0063.get(str(c.get("code", "")).upper())
            if found:
                return found
    return None


def _nk1(patient: JSON, resources: ResourceSet, minor: bool) -> list[list]:
    """The responsible persons of a minor: Patient.contact, then RelatedPersons."""
    if not minor:
        return []
    people: list[tuple[JSON, tuple[str, str]]] = []
    for contact in patient.get("contact", []) or []:
        rel = _relationship(contact.get("relationship", []) or [])
        if rel and contact.get("name"):
            people.append((contact, rel))
    for person in resources.of_type("RelatedPerson"):
        if person.get("patient") and resources.resolve(person["patient"]) is not patient:
            continue  # someone else's
        rel = _relationship(person.get("relationship", []) or [])
        if rel and person.get("name"):
            people.append(({"name": (person.get("name") or [{}])[0],
                            "address": (person.get("address") or [None])[0],
                            "telecom": person.get("telecom")}, rel))
    out = []
    for n, (who, (code, display)) in enumerate(people, start=1):
        name = who["name"] if isinstance(who.get("name"), dict) else {}
        given = name.get("given", []) or []
        addr = who.get("address")
        out.append(["NK1", str(n), (name.get("family", ""), given[0] if given else "",
                                    " ".join(given[1:]), "", "", "", "L"),
                    (code, display, "HL70063"),
                    (" ".join(addr.get("line", []) or []), "", addr.get("city", ""),
                     addr.get("state", ""), addr.get("postalCode", ""),
                     addr.get("country", ""), "L") if addr else None])
    return out


def _vaccine(imm: JSON, where: str, problems: list[Problem]) -> tuple:
    code, display = _code(imm.get("vaccineCode"), systems.CVX)
    ndc, ndc_display = _code(imm.get("vaccineCode"), systems.NDC)
    if not code:
        problems.append(Problem(f"{where}.vaccineCode", "has no CVX code; the guide requires "
                                                        "the vaccine as CVX (RXA-5)", "required"))
        return ()
    row = cvx_row(code)
    text = row.short_description if row else display
    return (code, text, "CVX", ndc, ndc_display, "NDC") if ndc else (code, text, "CVX")


def _when(imm: JSON, where: str, problems: list[Problem]) -> str:
    when = imm.get("occurrenceDateTime")
    if not when:
        problems.append(Problem(f"{where}.occurrence[x]",
                                "has no date; the guide requires the administration date "
                                "(RXA-3), and an approximate text cannot be sent as one",
                                "required"))
        return ""
    if len(when) < 10:
        problems.append(Problem(f"{where}.occurrenceDateTime", "is only a year or month; "
                                "RXA-3 needs at least the day", "value"))
        return ""
    return str(when)


def _completion(imm: JSON) -> tuple[str, str]:
    """RXA-20 and RXA-21 from the status (HL7 0322 / 0323)."""
    status = imm.get("status")
    if status == "not-done":
        reason, _ = _code(imm.get("statusReason"), systems.ACT_REASON)
        refused = reason in ("PATOBJ", *REFUSAL_TO_NIP002)
        return ("RE" if refused else "NA"), "A"
    if status == "entered-in-error":
        return "CP", "D"
    return ("PA" if imm.get("isSubpotent") else "CP"), "A"


def _source(imm: JSON, completion: str) -> tuple | None:
    """RXA-9 (NIP001): empty for a dose not given (IZ conformance rule)."""
    if completion not in ("CP", "PA"):
        return None
    if imm.get("primarySource", True) is not False:
        code = "00"
    else:
        origin, _ = _code(imm.get("reportOrigin"), ORIGIN_SYSTEM)
        code = ORIGIN_TO_NIP001.get(origin, "01")
    return (code, INFORMATION_SOURCE[code], "NIP001")


def _refusal(imm: JSON, minor: bool) -> tuple | None:
    reason, _ = _code(imm.get("statusReason"), systems.ACT_REASON)
    if reason == "PATOBJ":
        code, text = PARENTAL_DECISION if minor else PATIENT_DECISION
    elif reason in REFUSAL_TO_NIP002:
        code, text = REFUSAL_TO_NIP002[reason]
    else:
        return None
    return (code, text, "NIP002")


def _manufacturer(imm: JSON, resources: ResourceSet) -> tuple | None:
    ref = imm.get("manufacturer") or {}
    target = str(ref.get("reference", ""))
    org = None
    if target.startswith("#"):
        org = next((c for c in imm.get("contained", []) or [] if c.get("id") == target[1:]),
                   None)
    elif target:
        org = resources.resolve(ref)
    idents = list((org or {}).get("identifier", []) or [])
    if ref.get("identifier"):
        idents.append(ref["identifier"])
    code = next((str(i.get("value")) for i in idents if i.get("system") == systems.MVX), "")
    if not code:
        return None
    row = mvx_row(code)
    return (code.upper(), row.name if row else (org or {}).get("name", ""), "MVX")


def _rxa(imm: JSON, resources: ResourceSet, settings: VxuSettings, minor: bool, where: str,
         problems: list[Problem]) -> list:
    vaccine = _vaccine(imm, where, problems)
    when = _when(imm, where, problems)
    completion, action = _completion(imm)
    given = completion in ("CP", "PA") and imm.get("primarySource", True) is not False
    dose = imm.get("doseQuantity") or {}
    amount = _num(dose.get("value")) if dose.get("value") is not None else ""
    unit = dose.get("code") or dose.get("unit") or ""
    rxa: list = ["RXA"] + [None] * 21
    rxa[1], rxa[2] = "0", "1"
    rxa[3] = dtm_of_fhir(when) if when else ""
    rxa[5] = vaccine
    rxa[6] = amount or "999"
    rxa[7] = (unit, unit, "UCUM") if amount and unit else None
    rxa[9] = _source(imm, completion)
    rxa[10] = _xcn(_performer(imm, resources, "AP"))
    rxa[11] = ("", "", "", (settings.facility_id,)) if given and settings.facility_id \
        else None
    rxa[15] = imm.get("lotNumber")
    rxa[16] = dtm_of_fhir(imm.get("expirationDate"))
    rxa[17] = _manufacturer(imm, resources)
    rxa[18] = _refusal(imm, minor) if completion == "RE" else None
    rxa[20] = completion
    rxa[21] = action
    return rxa


def _rxr(imm: JSON, where: str, problems: list[Problem]) -> list | None:
    route, _ = _code(imm.get("route"), systems.ROUTE)
    site, site_display = _code(imm.get("site"), systems.ACT_SITE)
    if not route and not site:
        return None
    if route and route not in ROUTE_TO_V2:
        problems.append(Problem(f"{where}.route", "is not a route the guide has a code for "
                                                  "(RXR-1: NCIT / HL70162)", "code-invalid"))
        return None
    if not route:
        problems.append(Problem(f"{where}.route", "is missing while a site is given; RXR-1 "
                                                  "(route) is required in an RXR", "required"))
        return None
    ncit, name, v2 = ROUTE_TO_V2[route]
    return ["RXR", (ncit, name, "NCIT", v2, name, "HL70162"),
            (site, site_display, "HL70163") if site else None]


def _obx(n: int, sub: int, kind: str, code: tuple, value: Any, at: str,
         method: tuple | None = None) -> list:
    obx: list = ["OBX"] + [None] * 17
    obx[1], obx[2], obx[3], obx[4], obx[5] = str(n), kind, code, str(sub), value
    obx[11], obx[14], obx[17] = "F", at, method
    return obx


def _observations(imm: JSON, at: str) -> list[list]:
    out: list[list] = []
    sub = 0

    def add(kind: str, code: tuple, value: Any, method: tuple | None = None,
            same_group: bool = False) -> None:
        nonlocal sub
        if not same_group:
            sub += 1
        out.append(_obx(len(out) + 1, sub, kind, code, value, at, method))

    for concept in imm.get("programEligibility", []) or []:
        code, display = _code(concept, systems.V2_0064)
        if code:
            add("CE", ("64994-7", "Vaccine funding program eligibility category", "LN"),
                (code, display, "HL70064"),
                ("VXC40", "Eligibility captured at the immunization level", "CDCPHINVS"))
    funding, display = _code(imm.get("fundingSource"), systems.CDCPHINVS)
    if funding:
        add("CE", ("30963-3", "Vaccine funding source", "LN"), (funding, display, "CDCPHINVS"))
    vaccine, vaccine_text = _code(imm.get("vaccineCode"), systems.CVX)
    for edu in imm.get("education", []) or []:
        presented = dtm_of_fhir(edu.get("presentationDate"))
        barcode = str(edu.get("documentType") or "")
        if len(barcode) == 24 and barcode.isdigit():
            add("CE", ("69764-9", "Document type", "LN"), (barcode, "", "cdcgs1vis"))
        else:  # the vaccine-type method: the dose's CVX and the VIS edition date
            add("CE", ("30956-7", "Vaccine type", "LN"), (vaccine, vaccine_text, "CVX"))
            if edu.get("publicationDate"):
                add("TS", ("29768-9", "Date vaccine information statement published", "LN"),
                    dtm_of_fhir(edu["publicationDate"]), same_group=True)
        if presented:
            add("TS", ("29769-7", "Date vaccine information statement presented", "LN"),
                presented, same_group=True)
    return out


# ---------------------------------------------------------------- the message

def vxu_v04(resources: ResourceSet, ctx: V2Context, settings: VxuSettings) -> str:
    """The VXU^V04 for every Immunization in ``resources`` (one patient's); InputError
    listing every element the guide requires and the resources lack."""
    doses = resources.of_type("Immunization")
    problems: list[Problem] = []
    if not doses:
        raise InputError([Problem("Immunization", "there is no Immunization to report",
                                  "required")])
    if len({json.dumps(d.get("patient"), sort_keys=True, default=str) for d in doses}) > 1:
        raise InputError([Problem("Immunization.patient", "one VXU carries one patient's "
                                  "doses; send them apart", "invariant")])
    if not settings.facility_id:
        problems.append(Problem("iis.facility_id", "is not configured; MSH-4 (the clinic's "
                                                   "id at the registry) is required",
                                "required"))
    patient = resources.resolve(doses[0].get("patient")) or {}
    if not patient.get("name"):
        problems.append(Problem("Patient.name", "is missing; the guide requires the "
                                                "patient's legal name (PID-5)", "required"))
    if not patient.get("birthDate"):
        problems.append(Problem("Patient.birthDate", "is missing; the guide requires the "
                                                     "date of birth (PID-7)", "required"))
    try:
        pid = _pid(resources, doses[0], patient, ctx)
    except InputError as exc:  # no identifier: PID-3 is required
        problems.extend(Problem(f"{p.location} (PID-3)", p.message, p.code)
                        for p in exc.problems)
        pid = []
    at = dtm_of_fhir(str(doses[0].get("occurrenceDateTime") or ""))[:8] or \
        ctx.now.strftime("%Y%m%d")
    minor = (_age_at(patient, str(doses[0].get("occurrenceDateTime") or "")
                     or ctx.now.date().isoformat()) or 0) < ADULT_AGE
    groups: list[list] = []
    for n, imm in enumerate(doses):
        where = "Immunization" if len(doses) == 1 else f"Immunization[{n}]"
        ident = next((i for i in imm.get("identifier", []) or [] if i.get("value")), None)
        if ident is None:
            problems.append(Problem(f"{where}.identifier", "is missing; ORC-3 (the dose's "
                                    "id, used for updates and deletes) is required",
                                    "required"))
            continue
        when = dtm_of_fhir(str(imm.get("occurrenceDateTime") or ""))[:8]
        groups.append(["ORC", "RE", None, (ident["value"], settings.sending_application),
                       None, None, None, None, None, None, None, None,
                       _xcn(_performer(imm, resources, "OP"))])
        groups.append(_rxa(imm, resources, settings, minor, where, problems))
        rxr = _rxr(imm, where, problems)
        if rxr:
            groups.append(rxr)
        groups.extend(_observations(imm, when))
    if problems:
        raise InputError(problems)
    header = msh(sending=(settings.sending_application, settings.facility_id),
                 receiving=(settings.receiving_application, settings.receiving_facility),
                 at=ctx.now, message_type=("VXU", "V04", "VXU_V04"),
                 control_id=control_id(doses, patient), processing=settings.processing_id,
                 accept_ack="ER", app_ack="AL", profile=("Z22", "CDCPHINVS"))
    header += [(settings.sending_organisation,) if settings.sending_organisation else None,
               (settings.receiving_organisation,) if settings.receiving_organisation
               else None]
    segments: list[list] = [header, pid]
    pd1 = _pd1(patient, settings, at)
    if pd1:
        segments.append(pd1)
    segments += _nk1(patient, resources, minor)
    segments += groups
    return build_message(segments)


def vxu_from_fhir(resources: ResourceSet, ctx: V2Context) -> str:
    """The ``hl7v2:VXU^V04`` converter's writer: settings from the v2 context."""
    return vxu_v04(resources, ctx, VxuSettings.from_context(ctx))
