"""A CoverageEligibilityRequest (with its Coverage, Patient and payer) written as a 270.

Pure: the FHIR is read into a :class:`Request270` (every missing piece named, as a FHIR
path), and :func:`write_270` writes it with the control number it is given — allocating
that number is the connector's job (``controlnumbers.py``), before anything is sent.

The 270 asks about one patient: 2100C is the subscriber (member id, name, birth date);
when the Coverage's ``relationship`` is not ``self`` the patient is a dependent and gets a
2100D loop of their own, the subscriber's details coming from ``Coverage.subscriber``.
Service types are ``30`` (Health Benefit Plan Coverage, always) plus each category the
request names; the date of service is ``servicedDate`` (else the day ``created``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mafhir.errors import InputError, Problem
from mafhir.mappers.coverage import X12_SERVICE_TYPE
from mafhir.resourceset import ResourceSet
from mafhir.systems import SUBSCRIBER_RELATIONSHIP, V2_0203

from .config import Partner
from .segments import Delimiters, build_segment

__all__ = ["DELIMITERS", "IMPLEMENTATION", "Person", "Request270", "request_from_fhir",
           "write_270"]

JSON = dict[str, Any]
IMPLEMENTATION = "005010X279A1"
#: What mafhir writes with (the separators 5010 partners expect by default).
DELIMITERS = Delimiters("*", ":", "^", "~")
#: FHIR subscriber-relationship → 2100D INS02 / what the 270 says of the dependent.
_RELATIONSHIP_INS = {"spouse": "01", "child": "19", "other": "34", "common": "01",
                     "parent": "G8", "injured": "G8"}


@dataclass(frozen=True, slots=True)
class Person:
    """A subscriber or dependent as the 270 names them."""

    family: str
    given: str
    birth_date: date | None
    gender: str | None  # M / F / U


@dataclass(frozen=True, slots=True)
class Request270:
    """Everything a 270 says, read from FHIR (see :func:`request_from_fhir`)."""

    payer_id: str
    payer_name: str
    member_id: str
    subscriber: Person
    dependent: Person | None
    relationship: str
    service_date: date
    service_types: tuple[str, ...]
    reference: str  # BHT03 / TRN02: how the 271 is matched to this request


def _payer_id(org: JSON) -> str:
    """The EDI payer id: the identifier whose system ends in ``/payer`` (the core
    mapper's), else the only identifier."""
    idents = org.get("identifier") or []
    chosen = next((i for i in idents if str(i.get("system", "")).endswith("/payer")),
                  idents[0] if len(idents) == 1 else None)
    return str((chosen or {}).get("value") or "")


def _person(resource: JSON | None) -> Person | None:
    if resource is None:
        return None
    name = (resource.get("name") or [{}])[0]
    born = resource.get("birthDate")
    return Person(family=str(name.get("family") or ""),
                  given=" ".join(name.get("given") or []),
                  birth_date=date.fromisoformat(born) if born and len(born) == 10 else None,
                  gender={"male": "M", "female": "F"}.get(resource.get("gender") or "",
                                                           "U" if resource.get("gender")
                                                           else None))


def _code(concept: JSON | None, system: str) -> str | None:
    for c in (concept or {}).get("coding") or []:
        if c.get("system") == system and c.get("code"):
            return str(c["code"])
    return None


def request_from_fhir(resources: ResourceSet, reference: str) -> Request270:
    """The one CoverageEligibilityRequest of ``resources`` as a :class:`Request270`."""
    requests = resources.of_type("CoverageEligibilityRequest")
    if len(requests) != 1:
        raise InputError([Problem("CoverageEligibilityRequest", f"a 270 asks one question; "
                                  f"found {len(requests)} requests", "structure")])
    cer = requests[0]
    problems: list[Problem] = []
    payer = resources.resolve(cer.get("insurer"))
    coverage = resources.resolve(((cer.get("insurance") or [{}])[0]).get("coverage"))
    patient = resources.resolve(cer.get("patient"))
    if payer is None:
        problems.append(Problem("CoverageEligibilityRequest.insurer", "the payer "
                                "Organization is not in the Bundle", "required"))
    if coverage is None:
        problems.append(Problem("CoverageEligibilityRequest.insurance[0].coverage",
                                "the Coverage is not in the Bundle", "required"))
    if patient is None:
        problems.append(Problem("CoverageEligibilityRequest.patient", "the Patient is not in "
                                "the Bundle nor where the clinic keeps patients "
                                "(MAFHIR_PATIENTS)", "not-found"))
    if problems:
        raise InputError(problems)
    assert payer is not None and coverage is not None and patient is not None
    payer_id = _payer_id(payer)
    if not payer_id:
        problems.append(Problem("Organization.identifier", "the payer has no EDI payer id",
                                "required"))
    member = next((str(i["value"]) for i in coverage.get("identifier") or []
                   if _code(i.get("type"), V2_0203)
                   == "MB" and i.get("value")), None) or coverage.get("subscriberId")
    if not member:
        problems.append(Problem("Coverage.identifier:memberid", "the member id is missing "
                                "(identifier type MB or subscriberId)", "required"))
    relationship = _code(coverage.get("relationship"), SUBSCRIBER_RELATIONSHIP) \
        or "self"
    patient_person = _person(patient)
    assert patient_person is not None
    if relationship == "self":
        subscriber, dependent = patient_person, None
    else:
        sub = resources.resolve(coverage.get("subscriber"))
        subscriber = _person(sub) or Person("", "", None, None)
        dependent = patient_person
    who = dependent or subscriber
    if not who.family:
        problems.append(Problem("Patient.name.family", "the patient's family name is needed "
                                "to ask the payer", "required"))
    if who.birth_date is None:
        problems.append(Problem("Patient.birthDate", "the patient's birth date is needed to "
                                "ask the payer", "required"))
    served = cer.get("servicedDate") or str(cer.get("created") or "")[:10]
    if not served:
        problems.append(Problem("CoverageEligibilityRequest.servicedDate", "no date of "
                                "service (servicedDate or created)", "required"))
    if problems:
        raise InputError(problems)
    types = ["30"]
    for item in cer.get("item") or []:
        code = _code(item.get("category"), X12_SERVICE_TYPE)
        if code and code not in types:
            types.append(code)
    return Request270(payer_id=payer_id, payer_name=str(payer.get("name") or ""),
                      member_id=str(member), subscriber=subscriber, dependent=dependent,
                      relationship=relationship,
                      service_date=date.fromisoformat(served[:10]),
                      service_types=tuple(types), reference=reference)


def _isa_id(value: str) -> str:
    return f"{value:<15}"[:15]


def write_270(req: Request270, partner: Partner, control: int, now: datetime) -> str:
    """The 270 interchange (ISA13 = GS06 = ST02 = ``control``)."""
    d = DELIMITERS
    isa_control = f"{control:09d}"
    segs = [
        "ISA*00*" + " " * 10 + "*00*" + " " * 10 + f"*{partner.sender_qualifier}*"
        f"{_isa_id(partner.sender_id)}*{partner.receiver_qualifier}*"
        f"{_isa_id(partner.receiver_id)}*{now:%y%m%d}*{now:%H%M}*{d.repetition}*00501*"
        f"{isa_control}*0*{partner.usage}*{d.component}{d.segment}",
    ]

    def seg(sid: str, *elements: str) -> None:
        segs.append(build_segment(sid, elements, d))

    seg("GS", "HS", partner.sender_id, partner.receiver_id, f"{now:%Y%m%d}", f"{now:%H%M}",
        str(control), "X", IMPLEMENTATION)
    st_at = len(segs)
    st = f"{control:04d}"
    seg("ST", "270", st, IMPLEMENTATION)
    seg("BHT", "0022", "13", req.reference, f"{now:%Y%m%d}", f"{now:%H%M}")
    seg("HL", "1", "", "20", "1")
    seg("NM1", "PR", "2", req.payer_name[:60], "", "", "", "", "PI", req.payer_id)
    seg("HL", "2", "1", "21", "1")
    seg("NM1", "1P", "2", partner.provider_name[:60], "", "", "", "", "XX",
        partner.provider_npi)
    seg("HL", "3", "2", "22", "1" if req.dependent else "0")
    trace_company = "9" + f"{''.join(c for c in partner.sender_id if c.isalnum()):0<9}"[:9]

    def person(loop: str, who: Person) -> None:
        if loop == "2100D" or req.dependent is None:
            seg("TRN", "1", req.reference, trace_company)
        if loop == "2100C":
            seg("NM1", "IL", "1", who.family, who.given, "", "", "", "MI", req.member_id)
        else:
            seg("NM1", "03", "1", who.family, who.given)
        if who.birth_date:
            seg("DMG", "D8", f"{who.birth_date:%Y%m%d}", who.gender or "")
        if loop == "2100D":
            seg("INS", "N", _RELATIONSHIP_INS.get(req.relationship, "34"))
        if loop == "2100D" or req.dependent is None:
            seg("DTP", "291", "D8", f"{req.service_date:%Y%m%d}")
            for code in req.service_types:
                seg("EQ", code)

    person("2100C", req.subscriber)
    if req.dependent is not None:
        seg("HL", "4", "3", "23", "0")
        person("2100D", req.dependent)
    seg("SE", str(len(segs) - st_at + 1), st)
    seg("GE", "1", str(control))
    seg("IEA", "1", isa_control)
    return "\n".join(segs) + "\n"
