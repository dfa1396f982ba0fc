"""IN1 → US Core Coverage + its payer Organization (pure), for every inbound v2 message
that carries insurance: the lab plugin's orders (the lab bills the insurance the order
names: ``ServiceRequest.insurance`` points at the Coverage) and the ADT plugin's
registrations. It lives in the core so that neither plugin imports the other; what it
needs of a message reader (times in the message's zone, the problems list, the clinic) is
the small :class:`InsuranceReader` protocol, which the lab plugin's ``Reader`` meets.

Identifiers follow the core's coverage mapper (payer ``<clinic>/payer``, member id
``<clinic>/payer/<id>/member-id``, the card key
:func:`~mafhir.mappers.coverage.coverage_key`), so the clinic's own order read back finds
the clinic's own Coverage; both are conditional creates, so a richer card already on the
server is never overwritten by what an order carried.

Fields (v2-to-FHIR IG IN1[Coverage], US Core Coverage): IN1-2 → class plan, IN1-3 →
payer identifier, IN1-4 → payer name, IN1-8/9 → class group, IN1-12/13 → period,
IN1-15 → type, IN1-17 → relationship, IN1-36 (else IN1-49) → member id, IN1-49 (else
the member id) → subscriberId. Real IN1s are often thin: a Coverage without a member id
or a relationship is still written (nothing dropped) but does not claim US Core.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from .. import systems
from ..bundle import Entry, create
from ..errors import Problem
from ..fhirtypes import codeable as fhir_codeable
from ..fhirtypes import coding, identifier
from ..identity import identifier_from_reference, identifier_query
from ..mappers.coverage import MB_TYPE, RELATIONSHIP_DISPLAY, coverage_key
from .context import V2Context
from .datatypes import codeable
from .message import Message, Segment

__all__ = ["RELATIONSHIP_FROM_V2", "InsuranceReader", "coverage", "coverages"]

JSON = dict[str, Any]
ORGANIZATION_TYPE = systems.THO + "organization-type"
V2_0063 = systems.THO + "v2-0063"
_CODE = re.compile(r"^[^\s]+(\s[^\s]+)*$")  # FHIR code
_V2_CODE = re.compile(r"^[A-Z]{3}$")  # table 0063 codes are three letters

#: IN1-17 says who the *insured* is to the patient (HL7 table 0063); Coverage.relationship
#: says who the *patient* is to the subscriber — so a parent insured makes the patient a
#: child (subscriber-relationship codes).
RELATIONSHIP_FROM_V2 = {
    "SEL": "self", "SPO": "spouse", "DOM": "common",
    "PAR": "child", "MTH": "child", "FTH": "child",
    "CHD": "parent", "NCH": "parent", "SCH": "parent", "FCH": "parent",
}


class InsuranceReader(Protocol):
    """What IN1 needs of the reader of its message."""

    ctx: V2Context
    problems: list[Problem]

    def time(self, text: str, where: str) -> str | None:
        """A DTM as FHIR, or None with a problem naming ``where`` added to ``problems``."""
        ...


def _ref(resource: JSON) -> JSON:
    ident = resource["identifier"][0]
    return {"reference": f"{resource['resourceType']}?"
                         f"{identifier_query(ident['system'], ident['value'])}"}


def _class(kind: str, value: str, name: str) -> JSON:
    out: JSON = {"type": fhir_codeable(coding(systems.COVERAGE_CLASS, kind, kind.title())),
                 "value": value}
    if name:
        out["name"] = name
    return out


def _payer(in1: Segment, system: str) -> JSON | None:
    payer_id = in1.get(3) or in1.get(4)  # IN1-3 company id, else its name as the key
    if not payer_id:
        return None
    org: JSON = {"resourceType": "Organization"}
    name = in1.get(4)
    if name:  # US Core Organization needs a name
        org["meta"] = {"profile": [systems.profile("us-core-organization")]}
    org["identifier"] = [identifier(system, payer_id)]
    org["active"] = True
    org["type"] = [fhir_codeable(coding(ORGANIZATION_TYPE, "pay", "Payer"))]
    if name:
        org["name"] = name
    return org


def coverage(reader: InsuranceReader, in1: Segment, patient: JSON) -> tuple[JSON | None, JSON]:
    """The payer Organization (None when IN1 names none) and the Coverage of one IN1."""
    clinic = reader.ctx.map.clinic
    payer = _payer(in1, clinic.task_system("payer"))
    payer_id = payer["identifier"][0]["value"] if payer else ""
    member = in1.get(36) or in1.get(49)
    subscriber_id = in1.get(49) or member
    v2_rel = in1.get(17).upper()
    rel = RELATIONSHIP_FROM_V2.get(v2_rel)
    parsed = identifier_from_reference(patient["reference"])
    mrn_system, mrn = (parsed[1], parsed[2]) if parsed else ("", "")
    cov: JSON = {"resourceType": "Coverage"}
    if member and rel and payer is not None:
        cov["meta"] = {"profile": [systems.profile("us-core-coverage")]}
    idents = [identifier(clinic.task_system("coverage"),
                         coverage_key(mrn_system, mrn, payer_id, member or ""))]
    if member:
        idents.append(identifier(f"{clinic.task_system('payer')}/{payer_id}/member-id",
                                 member, type=MB_TYPE))
    cov["identifier"] = idents
    cov["status"] = "active"
    plan_type = codeable(in1.v(15))
    if plan_type and all(_CODE.match(c.get("code", "")) for c in plan_type.get("coding", [])):
        cov["type"] = plan_type  # (not a code — a sender's shifted field, a name — is left out)
    if rel == "self":
        cov["subscriber"] = patient
    if subscriber_id:
        cov["subscriberId"] = subscriber_id
    cov["beneficiary"] = patient
    if rel:
        codings = [coding(systems.SUBSCRIBER_RELATIONSHIP, rel, RELATIONSHIP_DISPLAY[rel])]
        codings.append(coding(V2_0063, v2_rel))  # what the sender said, kept
        cov["relationship"] = {"coding": codings}
    elif _V2_CODE.match(v2_rel):  # a table 0063 code with no subscriber-relationship match
        cov["relationship"] = {"coding": [coding(V2_0063, v2_rel, in1.get(17, 2) or None)]}
    start, end = reader.time(in1.get(12), in1.where(12)), reader.time(in1.get(13), in1.where(13))
    if start or end:
        cov["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    if payer is not None:
        cov["payor"] = [_ref(payer)]
    classes = []
    if in1.get(8):
        classes.append(_class("group", in1.get(8), in1.get(9)))
    if in1.get(2):
        classes.append(_class("plan", in1.get(2), in1.get(2, 2)))
    if classes:
        cov["class"] = classes
    return payer, cov


def coverages(reader: InsuranceReader, msg: Message,
              patient: JSON) -> tuple[list[Entry], list[JSON]]:
    """Entries (payers, Coverages) for every IN1, and references to the Coverages."""
    entries: list[Entry] = []
    refs: list[JSON] = []
    for in1 in msg.all("IN1"):
        payer, cov = coverage(reader, in1, patient)
        if payer is None:  # R4 Coverage.payor is 1..*: an IN1 naming no insurer
            reader.problems.append(Problem(in1.where(3), "the insurance company (IN1-3 or "
                                                         "IN1-4) is missing", "required"))
            continue
        if payer is not None:
            entries.append(create(payer))
        entries.append(create(cov))
        refs.append(_ref(cov))
    return entries, refs
