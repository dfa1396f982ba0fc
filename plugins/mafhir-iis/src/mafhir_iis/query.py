"""QBP^Q11 (CDC IIS guide, profiles Z34 and Z44) from a FHIR Patient (pure).

Z34 asks for the complete immunization history (the IIS answers RSP^K11 Z32), Z44 for the
evaluated history and forecast (Z42). QPD carries what the registry matches on: the
patient identifier list (the clinic MRN, written as :func:`mafhir.hl7v2.segments.pid_segment`
writes PID-3, so the IIS echoes an identifier mafhir reads back as the clinic's), legal
name, mother's maiden name, birth date, sex, address and phone. The guide leaves most of
them RE, but a registry cannot match a child without identifier, name and birth date, so
those are refused when missing — each problem naming the Patient element, never a value.
"""

from __future__ import annotations

from typing import Any, Literal

from mafhir.errors import InputError, Problem
from mafhir.hl7v2.build import Reps, build_message, msh
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.segments import GENDER, dtm_of_fhir

__all__ = ["QUERY_NAMES", "Kind", "qbp_q11"]

JSON = dict[str, Any]
Kind = Literal["Z34", "Z44"]
QUERY_NAMES: dict[str, str] = {"Z34": "Request Immunization History",
                               "Z44": "Request Evaluated History and Forecast"}
MAIDEN = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"


def _mrn(patient: JSON) -> JSON | None:
    idents = [i for i in patient.get("identifier", []) or [] if i.get("value")]
    return next((i for i in idents if any(c.get("code") == "MR" for c in
                                          (i.get("type") or {}).get("coding", []))),
                idents[0] if idents else None)


def _legal_name(patient: JSON) -> JSON:
    names = patient.get("name", []) or []
    return next((n for n in names if n.get("use") == "official"), names[0] if names else {})


def qbp_q11(patient: JSON, kind: Kind = "Z34", *, ctx: V2Context, query_tag: str,
            control_id: str, max_records: int = 10,
            sending_organization: str = "", receiving_organization: str = "") -> str:
    """The QBP^Q11 text asking the registry about ``patient`` (a FHIR Patient).

    ``query_tag`` (QPD-2) comes back in QAK-1 and ties the answer to the question;
    ``max_records`` is RCP-2 (how many candidates the registry may return).
    InputError lists every missing element the registry needs."""
    if kind not in QUERY_NAMES:
        raise InputError([Problem("kind", "is Z34 (history) or Z44 (evaluated history and "
                                          "forecast)", "value")])
    problems: list[Problem] = []
    mrn = _mrn(patient)
    if mrn is None:
        problems.append(Problem("Patient.identifier", "the registry matches on the patient "
                                "identifier (QPD-3); the patient has none", "required"))
    name = _legal_name(patient)
    given = [g for g in name.get("given", []) or [] if g]
    if not name.get("family") or not given:
        problems.append(Problem("Patient.name", "the registry needs the legal family and "
                                "given name (QPD-4)", "required"))
    if not patient.get("birthDate"):
        problems.append(Problem("Patient.birthDate", "the registry needs the birth date "
                                "(QPD-6)", "required"))
    if not query_tag:
        problems.append(Problem("query_tag", "QPD-2 ties the answer to the question; it "
                                "must not be empty", "required"))
    if max_records < 1:
        problems.append(Problem("max_records", "must be at least 1 (RCP-2)", "value"))
    if problems:
        raise InputError(problems)
    assert mrn is not None
    maiden = next((e.get("valueString", "") for e in patient.get("extension", []) or []
                   if e.get("url") == MAIDEN), "")
    addr = next((a for a in patient.get("address", []) or []
                 if a.get("use") in (None, "home")), None)
    phone = next((t for t in patient.get("telecom", []) or []
                  if t.get("system") == "phone" and t.get("value")), None)
    header = msh(sending=(ctx.application, ctx.facility), receiving=ctx.receiving,
                 at=ctx.now, message_type=("QBP", "Q11", "QBP_Q11"), control_id=control_id,
                 processing=ctx.processing_id, accept_ack="ER", app_ack="AL",
                 profile=(kind, "CDCPHINVS"))
    header += [sending_organization or None, receiving_organization or None]
    qpd = [
        "QPD", (kind, QUERY_NAMES[kind], "CDCPHINVS"), query_tag,
        Reps([(mrn["value"], "", "", (ctx.application, mrn.get("system", ""), "URI"), "MR")]),
        (name["family"], given[0], " ".join(given[1:]), "", "", "", "L"),
        (maiden, "", "", "", "", "", "M") if maiden else None,
        dtm_of_fhir(patient["birthDate"]),
        GENDER.get(patient.get("gender", ""), "U"),
        (" ".join(addr.get("line", [])), "", addr.get("city", ""), addr.get("state", ""),
         addr.get("postalCode", ""), addr.get("country", ""), "L") if addr else None,
        (phone["value"], "PRN", "PH") if phone else None,
    ]
    rcp = ["RCP", "I", (str(max_records), ("RD", "records", "HL70126"))]
    return build_message([header, qpd, rcp])
