"""One v2 immunization order group (ORC, RXA, RXR, OBX…) → one US Core Immunization.

Shared by the VXU^V04 reader (a dose an EHR or an IIS sends) and the RSP^K11 reader (the
doses of a registry history). Pure. Every RXA/RXR/OBX fact lands somewhere in the FHIR:
the mapped elements of mapping-reference §3.9, the original v2 codings next to the FHIR
ones (NCIT route, HL70163 site, NIP001 source, NIP002 refusal), and an OBX no rule maps
in ``note`` with a warning, so nothing is dropped silently. Problems name segment and
field (``RXA[2]-3``), never a value.
"""

from __future__ import annotations

import csv
import re
import uuid
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from mafhir import systems
from mafhir.codes import cvx, mvx
from mafhir.errors import Problem
from mafhir.fhirtypes import coding
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.datatypes import (
    DtmError,
    Times,
    _offset,
    codeable,
    ei_identifier,
    null,
    read_dtm,
    readable,
    xcn_reference,
)
from mafhir.hl7v2.message import Message, Segment
from mafhir.hl7v2.terminology import ucum_code

from .codes import INFORMATION_SOURCE as NIP001
from .codes import V2_ROUTE_TO_FHIR
from .terms import (
    COMPLETION,
    FORECAST_LOINC,
    IMMUNIZATION_ORIGIN,
    NCIT,
    NIP001_ORIGIN,
    NIP002,
    NIP002_REASON,
    OBX_EDUCATION,
    OBX_ELIGIBILITY,
    OBX_FUNDING,
)

__all__ = ["DoseGroup", "DoseReader", "cvx_for_ndc", "dose_groups", "message_tz", "ndc11"]

JSON = dict[str, Any]
PROFILE = systems.profile("us-core-immunization")
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_NDC = re.compile(r"^(\d{4,5})-(\d{3,4})-(\d{1,2})$")
_OFFSET = re.compile(r"[+-]\d{4}$")
V2_0163 = systems.THO + "v2-0163"
V2_0322 = systems.THO + "v2-0322"
NIP001_SYSTEM = "urn:mafhir:v2-0396:NIP001"
NIP002_SYSTEM = "urn:mafhir:v2-0396:NIP002"
ROUTE_DISPLAY = {"IM": "Injection, intramuscular", "SQ": "Injection, subcutaneous",
                 "IDINJ": "Injection, intradermal", "PO": "Swallow, oral",
                 "NASINHL": "Inhalation, nasal", "IVINJ": "Injection, intravenous",
                 "TRNSDERM": "Transdermal"}
SITES = {"LD", "RD", "LA", "RA", "LT", "RT", "LVL", "RVL", "LG", "RG", "BN"}
FUNCTION = {"AP": "Administering Provider", "OP": "Ordering Provider"}


def ndc11(text: str) -> str | None:
    """An NDC as the 11-digit 5-4-2 form (``49281-0215-88``), or None when it cannot be said
    for sure (a 10-digit NDC without dashes is ambiguous)."""
    text = text.strip()
    m = _NDC.match(text)
    if m:
        a, b, c = m.groups()
        return f"{a.zfill(5)}-{b.zfill(4)}-{c.zfill(2)}"
    if len(text) == 11 and text.isdigit():
        return f"{text[:5]}-{text[5:9]}-{text[9:]}"
    return None


@cache
def _ndc_table() -> dict[str, str]:
    text = resources.files("mafhir_iis").joinpath("data", "ndc_cvx.csv").read_text("utf-8")
    return {r["ndc"]: r["cvx"] for r in
            csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))}


def cvx_for_ndc(ndc: str) -> str | None:
    """The CVX the CDC's NDC crosswalk gives an NDC (any dashing), or None."""
    key = ndc11(ndc)
    return _ndc_table().get(key) if key else None


def message_tz(msg: Message, ctx: V2Context) -> tzinfo | None:
    """The zone of the sender's times without an offset: the zone configured for this
    sender, else the offset MSH-7 states, else the receiver's or clinic's zone (None: such
    times are refused, never pinned to UTC) — the rule the lab and pharmacy readers use."""
    configured = ctx.zone(msg.msh.get(3), msg.msh.get(4))
    if configured is not None and configured.per_sender:
        return configured.tz
    stamp = _OFFSET.search(msg.msh.get(7))
    if stamp:
        try:
            return _offset(stamp.group())
        except DtmError:
            pass
    return configured.tz if configured is not None else None


@dataclass
class DoseGroup:
    """One order group: ORC (optional), RXA, RXR (optional), its OBX rows."""

    orc: Segment | None
    rxa: Segment
    rxr: Segment | None = None
    obx: list[Segment] = field(default_factory=list)


def dose_groups(msg: Message, warnings: list[Problem]) -> list[DoseGroup]:
    """The order groups of a VXU or RSP in message order. An ORC with no RXA (registries
    send such groups with OBX rows only) is reported: without the administration segment
    there is no dose to attach its rows to, and guessing one would misfile them."""
    out: list[DoseGroup] = []
    orc: Segment | None = None
    orphans = 0

    def orphan(seg: Segment) -> None:
        warnings.append(Problem(seg.where(), f"an order group without an RXA; its {orphans} "
                                "OBX row(s) were not mapped (kept in the stored message)",
                                "incomplete"))

    for seg in msg.segments[1:]:
        if seg.name == "ORC":
            if orc is not None:
                orphan(orc)
            orc, orphans = seg, 0
        elif seg.name == "RXA":
            out.append(DoseGroup(orc, seg))
            orc = None
        elif seg.name == "RXR" and out and orc is None and out[-1].rxr is None \
                and not out[-1].obx:
            out[-1].rxr = seg
        elif seg.name == "OBX" and orc is not None:
            orphans += 1
        elif seg.name == "OBX" and out:
            out[-1].obx.append(seg)
        elif seg.name == "OBX":
            warnings.append(Problem(seg.where(), "an OBX before any order group (not about "
                                    "a dose); not mapped (kept in the stored message)",
                                    "incomplete"))
    if orc is not None:
        orphan(orc)
    return out


def _number(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUM.match(text):
        return None
    return Decimal(text)


@dataclass
class DoseReader:
    """Reads the doses of one message in the sender's zone, collecting problems (refuse)
    and warnings (kept with a flag)."""

    msg: Message
    ctx: V2Context
    tz: tzinfo | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    used: set[tuple[str, str]] = field(default_factory=set)
    no_zone_reported: bool = False

    def time(self, text: str, where: str) -> str | None:
        """A DTM as FHIR, or None with a problem naming ``where`` (nothing invented); the
        shared reader (:class:`~mafhir.hl7v2.datatypes.Times`) does the reading, and "no
        zone configured" is reported once per message, not once per field."""
        before = len(self.problems)
        value = Times(self.tz, self.problems).at(text.strip(), where)
        if len(self.problems) > before and self.problems[-1].code == "business-rule":
            if self.no_zone_reported:
                del self.problems[before:]
            self.no_zone_reported = True
        return value

    def date(self, text: str, where: str) -> str | None:
        """A DT (or a DTM's date part) as a FHIR date."""
        text = null(text).strip()
        if not text:
            return None
        try:
            return read_dtm(text[:8], None)
        except DtmError as exc:
            self.problems.append(Problem(where, exc.reason, exc.code))
            return None

    # ---------------------------------------------------------------- identity
    def identifier(self, group: DoseGroup, k: int) -> JSON:
        """ORC-3 (the filler's stable dose id, needed for update and delete), else ORC-2,
        else an id derived from the message (sender, control id, group): the same dose
        resent gets the same id, so a conditional create does not add it twice. An id
        repeated within one message (registries reuse ORC-3) gets ``-<group>``."""
        base = f"{self.ctx.map.clinic.system}/v2/immunization"
        ident = None
        if group.orc is not None:
            for n in (3, 2):
                if null(group.orc.get(n)):
                    ident = ei_identifier(group.orc.v(n), base)
                    break
        if ident is None:
            name = f"{self.msg.sender_name}|{self.msg.control_id}|{k}"
            ident = {"system": f"{base}/message",
                     "value": uuid.uuid5(uuid.NAMESPACE_URL, name).hex}
        key = (ident["system"], ident["value"])
        if key in self.used:
            ident = {**ident, "value": f"{ident['value']}-{k}"}
        self.used.add((ident["system"], ident["value"]))
        return ident

    # ---------------------------------------------------------------- the dose
    def immunization(self, group: DoseGroup, k: int, patient: JSON) -> JSON:
        """The US Core Immunization of one order group."""
        rxa = group.rxa
        imm: JSON = {"resourceType": "Immunization", "meta": {"profile": [PROFILE]}}
        contained: list[JSON] = []
        imm["identifier"] = [self.identifier(group, k)]
        action = null(rxa.get(21)).upper()
        completion = null(rxa.get(20)).upper()
        if action == "D":
            imm["status"] = "entered-in-error"
        elif completion in COMPLETION or not completion:
            imm["status"] = COMPLETION.get(completion, "completed")
        else:
            imm["status"] = "completed"
            self.problems.append(Problem(rxa.where(20), "is not a completion status of HL7 "
                                         "table 0322 (CP, PA, RE, NA)", "code-invalid"))
        reason = self._status_reason(group)
        if reason and imm["status"] == "not-done":
            imm["statusReason"] = reason
        elif reason:
            imm.setdefault("note", []).append({"text": "reason not given (RXA-18): " +
                                               " ".join(c.get("display", c["code"]) for c in
                                                        reason["coding"])})
        imm["vaccineCode"] = self._vaccine(rxa)
        imm["patient"] = patient
        when = self.time(rxa.get(3), rxa.where(3))
        if when is None and not null(rxa.get(3)).strip():
            self.problems.append(Problem(rxa.where(3), "the administration date is missing "
                                         "(RXA-3 is required)", "required"))
        elif when is not None:
            imm["occurrenceDateTime"] = when
        recorded = self.time(rxa.get(22), rxa.where(22))
        if recorded:
            imm["recorded"] = recorded
        self._source(rxa, imm)
        if "primarySource" not in imm and completion in ("RE", "NA") and \
                not null(rxa.get(9)):
            # the guide leaves RXA-9 empty unless the dose was given: a refusal or a dose
            # not given is what the submitter itself saw and recorded
            imm["primarySource"] = True
        location = rxa.v(11)
        place = null(location.c(4)) or readable(location)
        if place:
            imm["location"] = {"display": place}
        maker = rxa.v(17)
        if null(maker.c(1)) or null(maker.c(2)):
            code = null(maker.c(1)).upper()
            row = mvx(code) if code else None
            org: JSON = {"resourceType": "Organization", "id": "mvx",
                         "name": null(maker.c(2)) or (row.name if row else code)}
            if code:
                org["identifier"] = [{"system": systems.MVX, "value": code}]
            contained.append(org)
            imm["manufacturer"] = {"reference": "#mvx", "display": org["name"]}
        lots = [null(r.c(1)) for r in rxa.reps(15) if null(r.c(1))]
        if lots:
            imm["lotNumber"] = lots[0]
            if len(lots) > 1:
                imm.setdefault("note", []).append({"text": "further lot numbers (RXA-15): " +
                                                   ", ".join(lots[1:])})
        expires = self.date(rxa.get(16), rxa.where(16))
        if expires:
            imm["expirationDate"] = expires
        if group.rxr is not None:
            self._route_site(group.rxr, imm)
        dose = self._dose(rxa)
        if dose:
            imm["doseQuantity"] = dose
        performers = []
        for function, seg, n in (("AP", rxa, 10), ("OP", group.orc, 12)):
            if seg is None:
                continue
            actor = xcn_reference(seg.v(n), "", self.warnings, seg.where(n))
            if actor:
                performers.append({"function": {"coding": [coding(
                    systems.IMMUNIZATION_FUNCTION, function, FUNCTION[function])]},
                    "actor": actor})
        if performers:
            imm["performer"] = performers
        indications = [c for r in rxa.reps(19) if (c := codeable(r))]
        if indications:
            imm["reasonCode"] = indications
        if completion == "PA":
            imm["isSubpotent"] = True
            imm["subpotentReason"] = [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/immunization-subpotent-reason",
                "code": "partial", "display": "Partial Dose"}]}]
        self._observations(group.obx, imm)
        if contained:
            imm["contained"] = contained
        return imm

    def _vaccine(self, rxa: Segment) -> JSON:
        """RXA-5 with its alternate coding; an NDC alone gains the CVX of the CDC crosswalk
        (US Core wants CVX, the NDC as a translation)."""
        value = rxa.v(5)
        concept = codeable(value) or {}
        codings = concept.get("coding", [])
        for c in codings:
            if c.get("system") == systems.NDC and (ndc := ndc11(c["code"])):
                c["code"] = ndc
        if not any(c.get("system") == systems.CVX for c in codings):
            ndcs = [c["code"] for c in codings if c.get("system") == systems.NDC]
            code = next((x for n in ndcs if (x := cvx_for_ndc(n))), None)
            if code:
                row = cvx(code)
                codings.insert(0, coding(systems.CVX, code, row.short_description
                                         if row else None))
            elif not value:
                self.problems.append(Problem(rxa.where(5), "the vaccine is missing (RXA-5 is "
                                             "required)", "required"))
            else:
                self.warnings.append(Problem(rxa.where(5), "no CVX code (and no NDC the CDC "
                                             "crosswalk knows); kept as sent", "incomplete"))
        if codings:
            concept["coding"] = codings
        return concept

    def _status_reason(self, group: DoseGroup) -> JSON | None:
        reps = group.rxa.reps(18)
        codings: list[JSON] = []
        for rep in reps:
            code = null(rep.c(1))
            sysname = null(rep.c(3)).upper()
            if code in NIP002 and sysname in ("", "NIP002"):
                v3 = NIP002_REASON[code]
                codings.append(coding(systems.ACT_REASON, v3, None))
                codings.append(coding(NIP002_SYSTEM, code, null(rep.c(2)) or NIP002[code]))
            elif (concept := codeable(rep)) is not None:
                codings.extend(concept.get("coding", []))
        for obx in group.obx:  # evidence of immunity: the dose was not needed
            if null(obx.get(3)).strip() == "59784-9":
                codings.append(coding(systems.ACT_REASON, "IMMUNE", "immunity"))
        return {"coding": codings} if codings else None

    def _source(self, rxa: Segment, imm: JSON) -> None:
        """RXA-9 (NIP001): ``00`` → primarySource true; ``01``–``08`` → false with the
        origin (and the NIP001 coding itself, so "source unspecified" stays said)."""
        for rep in rxa.reps(9):
            code = null(rep.c(1))
            if code not in NIP001:
                if code:
                    self.warnings.append(Problem(rxa.where(9), "is not an NIP001 information "
                                                 "source; kept as sent", "code-invalid"))
                    imm.setdefault("note", []).append({"text": f"information source (RXA-9): "
                                                       f"{readable(rep)}"})
                continue
            imm["primarySource"] = code == "00"
            if code != "00":
                origin: list[JSON] = []
                if code in NIP001_ORIGIN:
                    origin.append(coding(IMMUNIZATION_ORIGIN, NIP001_ORIGIN[code], None))
                origin.append(coding(NIP001_SYSTEM, code, NIP001[code]))
                imm["reportOrigin"] = {"coding": origin}
            return

    def _route_site(self, rxr: Segment, imm: JSON) -> None:
        route = rxr.v(1)
        if route:
            v3 = None
            for n in (1, 4):
                code, sysname = null(route.c(n)), null(route.c(n + 2)).upper()
                if sysname in ("NCIT", "HL70162", "") and code.upper() in V2_ROUTE_TO_FHIR:
                    v3 = v3 or V2_ROUTE_TO_FHIR[code.upper()]
            concept = codeable(route) or {}
            for c in concept.get("coding", []):
                if c.get("system", "").endswith(":NCIT"):
                    c["system"] = NCIT
            if v3:
                concept["coding"] = [coding(systems.ROUTE, v3, ROUTE_DISPLAY[v3]),
                                     *concept.get("coding", [])]
            imm["route"] = concept
        site = rxr.v(2)
        if site:
            concept = codeable(site) or {}
            code = null(site.c(1)).upper()
            if code in SITES:
                concept["coding"] = [coding(systems.ACT_SITE, code, None), *[
                    c for c in concept.get("coding", []) if c.get("system") != V2_0163]]
                concept["coding"][0].pop("display", None)
                if null(site.c(2)):
                    concept.setdefault("text", null(site.c(2)))
            imm["site"] = concept

    def _dose(self, rxa: Segment) -> JSON | None:
        """RXA-6 + RXA-7; ``999`` is the guide's "amount unknown", not a dose of 999."""
        text = null(rxa.get(6)).strip()
        if not text or text == "999":
            return None
        value = _number(text)
        if value is None:
            self.problems.append(Problem(rxa.where(6), "the amount is not a number", "value"))
            return None
        unit = rxa.v(7)
        shown = null(unit.c(2)) or null(unit.c(1))
        code = ucum_code(null(unit.c(1))) if null(unit.c(1)) else None
        out: JSON = {"value": value}
        if code:
            out.update(unit=null(unit.c(1)) or code, system=systems.UCUM, code=code)
        elif shown:
            out["unit"] = shown
        return out

    # ---------------------------------------------------------------- OBX
    def _observations(self, rows: list[Segment], imm: JSON) -> None:
        vis: dict[str, JSON] = {}
        protocol: JSON = {}
        for obx in rows:
            loinc = null(obx.get(3)).strip()
            value = obx.v(5)
            where = obx.where(5)
            if loinc == OBX_ELIGIBILITY and (c := codeable(value)):
                imm.setdefault("programEligibility", []).append(c)
            elif loinc == OBX_FUNDING and (c := codeable(value)) and "fundingSource" not in imm:
                imm["fundingSource"] = c
            elif loinc in OBX_EDUCATION and self._education(obx, vis):
                pass
            elif loinc in ("30973-2", "59782-3") and null(value.c(1)).isdigit() and \
                    int(null(value.c(1))) > 0:
                key = "doseNumberPositiveInt" if loinc == "30973-2" else \
                    "seriesDosesPositiveInt"
                protocol[key] = int(null(value.c(1)))
            elif loinc == "59779-9" and null(value.c(2) or value.c(1)):
                protocol["authority"] = {"display": null(value.c(2)) or null(value.c(1))}
            elif loinc == "59784-9":
                imm.setdefault("note", []).append(
                    {"text": f"evidence of immunity (OBX 59784-9): {readable(value)}"})
            else:
                label = null(obx.get(3, 2)) or FORECAST_LOINC.get(loinc, "")
                imm.setdefault("note", []).append(
                    {"text": f"{loinc} {label}: {readable(value)}".replace("  ", " ")})
                self.warnings.append(Problem(where, "an observation no rule maps (OBX-3 "
                                             "code or value type unexpected); kept in "
                                             "Immunization.note", "incomplete"))
        education = [e for e in vis.values() if e.get("documentType") or e.get("reference")]
        for e in vis.values():
            if e not in education:  # dates with no document: kept, reported
                self.warnings.append(Problem("OBX-4", "VIS dates without a VIS document in "
                                             "the same OBX-4 group; kept in note",
                                             "incomplete"))
                imm.setdefault("note", []).append({"text": "VIS " + ", ".join(
                    f"{k} {v}" for k, v in e.items())})
        if education:
            imm["education"] = education
        if protocol.get("doseNumberPositiveInt") or protocol.get("seriesDosesPositiveInt"):
            if "doseNumberPositiveInt" not in protocol:  # doseNumber[x] is 1..1
                protocol["doseNumberString"] = "unknown"
            imm["protocolApplied"] = [protocol]
        elif protocol.get("authority"):
            imm.setdefault("note", []).append(
                {"text": f"schedule used: {protocol['authority']['display']}"})

    def _education(self, obx: Segment, vis: dict[str, JSON]) -> bool:
        """A VIS row into the education entry of its OBX-4 group; False when its value is
        not of the type the code needs (then it is kept as an unmapped row)."""
        loinc = null(obx.get(3)).strip()
        value = obx.v(5)
        key = null(obx.get(4)) or f"#{obx.occurrence}"
        text = null(value.c(1))
        if loinc == "69764-9" and text:
            vis.setdefault(key, {})["documentType"] = text
        elif loinc == "30956-7" and text:
            vis.setdefault(key, {}).setdefault(
                "documentType", f"{readable(value)} (VIS by vaccine type)")
        elif loinc in ("29768-9", "29769-7") and re.match(r"^\d{8}", text):
            day = self.date(text, obx.where(5))
            if day:
                name = "publicationDate" if loinc == "29768-9" else "presentationDate"
                vis.setdefault(key, {})[name] = day
        else:
            return False
        return True
