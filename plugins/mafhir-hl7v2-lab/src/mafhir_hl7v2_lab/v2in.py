"""Lab segments → FHIR: PID → the patient reference, ORC/OBR → ServiceRequest, OBX →
Observation, SPM → Specimen. Pure; shared by the ORU^R01 and OML/ORM readers.

Problems raise :class:`~mafhir.errors.InputError` naming segment and field
(``OBX[4]-5``), never the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from typing import Any

from mafhir import systems
from mafhir.bundle import Entry
from mafhir.errors import InputError, Problem
from mafhir.fhirtypes import codeable as fhir_codeable
from mafhir.fhirtypes import coding, data_absent
from mafhir.hl7v2.context import V2Context, Zone
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.datatypes import (
    DtmError,
    Times,
    _offset,
    codeable,
    cx_full,
    cx_identifier,
    ei_identifier,
    identifier_from,
    read_dtm,
    readable,
    sender_system,
    xad_address,
    xcn_reference,
    xpn_name,
    xtn_contact,
)
from mafhir.hl7v2.escape import unescape
from mafhir.hl7v2.message import Message, Segment, Value
from mafhir.hl7v2.patient import patient_from_pid
from mafhir.hl7v2.terminology import ucum_code
from mafhir.validation.structure import CONTROL_CHARACTERS, control_characters

from .codes import (
    INTERPRETATION_V3,
    OBS_STATUS,
    PRIORITY_FROM_V2,
    SERVICEREQUEST_CATEGORY_LAB,
    V3_INTERPRETATION,
)

__all__ = ["Reader", "order_identifiers", "ucum"]

JSON = dict[str, Any]
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_RANGE = re.compile(r"^\s*([+-]?\d*\.?\d+)\s*(?:-|to|–)\s*([+-]?\d*\.?\d+)\s*$")
_SN_FLAT = re.compile(r"^(<=|>=|<>|<|>|=)?\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))$")
_COMPARATORS = ("<", "<=", ">=", ">")
#: OBX-4 as the IG's OG[Extension-Subidentifier] map writes it.
SUBID_EXTENSION = "http://hl7.org/fhir/StructureDefinition/observation-v2-subid"
#: OBX-5 ED/RP → Observation: R4 has no valueAttachment, so it goes in the R5→R4
#: cross-version extension. Those are named after the *element*, and for a choice element
#: that is ``Observation.value`` (the extension carries ``valueAttachment``); the IG's OBX
#: table writes ``https://…extension-Observation.valueAttachment``, a typo naming no
#: published extension, so the published canonical (``http://``) is written instead.
VALUE_ATTACHMENT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"
#: ED-3 data subtype (HL7 table 0291) → MIME type; a subtype already in MIME form is kept.
ED_SUBTYPES = {"PDF": "application/pdf", "JPEG": "image/jpeg", "GIF": "image/gif",
               "TIFF": "image/tiff", "PNG": "image/png", "RTF": "application/rtf",
               "HTML": "text/html", "XML": "application/xml", "SGML": "text/sgml",
               "POSTSCRIPT": "application/postscript", "OCTET-STREAM": "application/octet-stream",
               "X-HL7-CDA-LEVEL-ONE": "application/x-hl7-cda-level-one+xml",
               "BASIC": "audio/basic", "WAV": "audio/wav", "MPEG": "video/mpeg",
               "PLAIN": "text/plain"}
#: ED-2 type of data (table 0191) → MIME type when ED-3 is empty.
ED_TYPES = {"TEXT": "text/plain", "HTML": "text/html", "AP": "application/octet-stream",
            "IM": "application/octet-stream", "AU": "application/octet-stream",
            "NS": "application/octet-stream"}
#: OBX-5 of a composite type FHIR has no Observation.value for (XPN, XAD, XTN, CX): the
#: value is a readable string, and this extension carries it as its FHIR type
#: (HumanName, Address, ContactPoint, Identifier) so no part is lost to the joining.
STRUCTURED_VALUE = "urn:mafhir:StructureDefinition/observation-v2-structured-value"
_OFFSET = re.compile(r"[+-]\d{4}$")
V2_0078 = systems.THO + "v2-0078"
V2_0074 = systems.THO + "v2-0074"


def _number(text: str) -> Decimal | None:
    """A v2 number as a Decimal: ``13.40`` keeps its trailing zero (the lab's precision),
    which a float would drop; :func:`mafhir.io.dumps` writes it digit for digit."""
    text = text.strip()
    if not _NUM.match(text):
        return None
    return Decimal(text)


def ucum(unit: Value) -> tuple[str | None, str]:
    """(UCUM code or None, text to show) for an OBX-6 unit: the sender's unit as written,
    checked by the UCUM library even when declared UCUM (a declaration is not proof)."""
    code, text = unit.c(1), unit.c(2)
    shown = text or code
    return (ucum_code(code) if code else None), shown


def order_identifiers(orc: Segment | None, obr: Segment | None, ctx: V2Context
                      ) -> list[JSON]:
    """Placer (PLAC) and filler (FILL) order numbers of an order group."""
    base = f"{ctx.map.clinic.system}/v2/order"
    out: list[JSON] = []
    for number, kind in ((2, "PLAC"), (3, "FILL")):
        for seg in (obr, orc):  # OBR-2/ORC-2 (OBR-3/ORC-3): both kept when they differ
            value = seg.v(number) if seg is not None else None
            if value:
                ident = ei_identifier(value, f"{base}/{kind.lower()}", kind)
                if ident and not any(i["system"] == ident["system"] and
                                     i["value"] == ident["value"] for i in out):
                    out.append(ident)
    return out


@dataclass
class Reader:
    """Reads the segments of one message with its context (clock, zone, clinic)."""

    msg: Message
    ctx: V2Context
    problems: list[Problem] = field(default_factory=list)
    used: set[tuple[str, str]] = field(default_factory=set)

    warnings: list[Problem] = field(default_factory=list)
    patient_entry: Entry | None = None

    def __post_init__(self) -> None:
        msh = self.msg.msh
        configured = self.ctx.zone(msh.get(3), msh.get(4))
        stamp = _OFFSET.search(msh.get(7))
        self.zone: Zone | None = configured
        if stamp and (configured is None or not configured.per_sender):
            # the sender's own statement of its offset beats a receiver-wide default
            try:
                self.zone = Zone(_offset(stamp.group()), stamp.group(), "the offset of MSH-7")
            except DtmError as exc:
                self.problems.append(Problem("MSH-7", exc.reason, exc.code))
        self.tz: tzinfo | None = self.zone.tz if self.zone else None
        self.zone_used = False
        self.no_zone_reported = False

    def unique(self, idents: list[JSON], k: int) -> list[JSON]:
        """Order identifiers made distinct within the message.

        Some senders put two OBRs under one placer number; each becomes its own
        ServiceRequest/DiagnosticReport (``<number>-<group>``) instead of one
        overwriting the other in the Bundle.
        """
        if any((i["system"], i["value"]) in self.used for i in idents):
            idents = [{**i, "value": f"{i['value']}-{k}"} for i in idents]
        self.used.update((i["system"], i["value"]) for i in idents)
        return idents

    # ---------------------------------------------------------------- small things
    def time(self, text: str, where: str) -> str | None:
        """A DTM as FHIR, or None with a problem naming ``where`` (nothing invented)."""
        if not text:
            return None
        try:
            value = read_dtm(text, self.tz)
        except DtmError as exc:
            if exc.code == "business-rule":
                if self.no_zone_reported:
                    return None
                self.no_zone_reported = True
            self.problems.append(Problem(where, exc.reason, exc.code))
            return None
        if "T" in value and not _OFFSET.search(text.strip()):
            self.zone_used = True
        return value

    def instant(self, text: str, where: str) -> str | None:
        value = self.time(text, where)
        return value if value and "T" in value else None

    def fail(self) -> None:
        if self.problems:
            raise InputError(self.problems)

    def finish(self, bundle: JSON) -> JSON | Converted:
        """The Bundle, refused when a string in it holds a control character, and with the
        warnings (the zone applied, NPIs kept under the sender's system) when there are."""
        esc = self.msg.seps.escape
        suspect = CONTROL_CHARACTERS.search(self.msg.text) or f"{esc}X" in self.msg.text
        if suspect and next(control_characters(bundle, "Bundle"), None) is not None:
            self.problems.extend(self.control_problems())
        self.fail()
        warnings = list(self.warnings)
        if self.zone_used and self.zone is not None:
            warnings.insert(0, Problem("MSH-7", f"times without a UTC offset were read in "
                                                f"{self.zone.name} ({self.zone.source})",
                                       "incomplete"))
        return Converted(bundle, tuple(warnings)) if warnings else bundle

    def control_problems(self) -> list[Problem]:
        """Each field whose text holds a control character FHIR strings forbid."""
        out = []
        for seg in self.msg.segments:
            for n, raw in enumerate(seg.fields[1:], start=1):
                if seg.name == "MSH" and n <= 2:
                    continue
                text = unescape(raw, seg.seps) if seg.seps.escape in raw else raw
                m = CONTROL_CHARACTERS.search(text)
                if m:
                    out.append(Problem(seg.where(n), f"holds the control character "
                                                     f"U+{ord(m.group()):04X}, which a FHIR "
                                                     f"string may not contain", "value"))
        return out

    def patient(self) -> JSON:
        """The reference to the PID's patient; the US Core Patient itself goes into
        :attr:`patient_entry` (see :mod:`mafhir.hl7v2.patient`)."""
        pid = self.msg.first("PID")
        if pid is None:
            raise InputError([Problem("PID", "the PID segment is missing", "required")])
        if not pid.get(3) and not pid.get(2):
            raise InputError([Problem("PID-3", "the patient identifier is missing",
                                      "required")])
        try:
            found = patient_from_pid(pid, self.ctx, self.msg.sender_name, self.tz)
        except InputError as exc:
            for problem in exc.problems:
                if problem.code != "business-rule" or not self.no_zone_reported:
                    self.problems.append(problem)
                if problem.code == "business-rule" and problem.location != "PID-3":
                    self.no_zone_reported = True
            return {"reference": "Patient?identifier=unmatched"}
        if any("T" in t and not _OFFSET.search(t) for t in (pid.get(7), pid.get(29)) if t):
            self.zone_used = True
        self.warnings.extend(found.warnings)
        self.patient_entry = found.entry
        return found.reference

    def clinician(self, value: Value, where: str) -> JSON | None:
        """An XCN as a reference; an NPI failing its check digit is kept under the
        sender's system, with a warning."""
        own = sender_system(self.ctx.map.clinic.system, self.msg.sender_name, "clinician")
        return xcn_reference(value, own, self.warnings, where)

    # ---------------------------------------------------------------- ServiceRequest
    def service_request(self, orc: Segment | None, obr: Segment | None, idents: list[JSON],
                        patient: JSON, status: str, extra_dg1: list[Segment],
                        dg1: list[Segment], notes: list[Segment]) -> JSON:
        code = codeable(obr.v(4)) if obr is not None else None
        sr: JSON = {
            "resourceType": "ServiceRequest",
            "meta": {"profile": [systems.profile("us-core-servicerequest")]},
            "identifier": idents,
            "status": status,
            "intent": "order",
            "category": [fhir_codeable(coding(systems.SNOMED, *SERVICEREQUEST_CATEGORY_LAB))],
        }
        priority = ""
        if obr is not None:
            priority = obr.get(5) or obr.get(27, 6)
        if not priority and orc is not None:
            priority = orc.get(7, 6)
        if PRIORITY_FROM_V2.get(priority[:1].upper()):
            sr["priority"] = PRIORITY_FROM_V2[priority[:1].upper()]
        sr["code"] = code or data_absent("unknown")
        sr["subject"] = patient
        authored = self.time(orc.get(9), orc.where(9)) if orc is not None else None
        if authored:
            sr["authoredOn"] = authored
        requester = (self.clinician(orc.v(12), orc.where(12)) if orc is not None else None) \
            or (self.clinician(obr.v(16), obr.where(16)) if obr is not None else None)
        if requester:
            sr["requester"] = requester
        reasons = [c for seg in [*extra_dg1, *dg1] if (c := codeable(seg.v(3)))]
        if reasons:
            sr["reasonCode"] = reasons
        texts = [t for n in notes if (t := self.note_text(n))]
        if texts:
            sr["note"] = [{"text": t} for t in texts]
        return sr

    def note_text(self, nte: Segment) -> str:
        return "\n".join(r.text() for r in nte.reps(3))

    # ---------------------------------------------------------------- Specimen
    def specimen(self, spm: Segment, patient: JSON, request: JSON | None,
                 fallback: JSON) -> JSON:
        idents = []
        eip = spm.v(2)
        for comp in (1, 2):
            subs = [*eip.subs(comp), "", "", "", ""]
            ident = identifier_from(subs[0], subs[1], subs[2], subs[3],
                                    f"{self.ctx.map.clinic.system}/v2/specimen")
            if ident:
                idents.append(ident)
        if not idents:
            idents.append(fallback)
        spec: JSON = {
            "resourceType": "Specimen",
            "meta": {"profile": [systems.profile("us-core-specimen")]},
            "identifier": idents,
        }
        accession = spm.v(30)
        if accession:
            acc = cx_identifier(accession, f"{self.ctx.map.clinic.system}/v2/accession")
            if acc:
                spec["accessionIdentifier"] = acc
        availability = spm.get(20)
        if availability in ("Y", "N"):
            spec["status"] = "available" if availability == "Y" else "unavailable"
        spec["type"] = codeable(spm.v(4)) or data_absent("unknown")
        spec["subject"] = patient
        received = self.time(spm.get(18), spm.where(18))
        if received:
            spec["receivedTime"] = received
        if request:
            spec["request"] = [request]
        collection: JSON = {}
        start = self.time(spm.get(17, 1), spm.where(17, 1))
        end = self.time(spm.get(17, 2), spm.where(17, 2))
        if start and end:
            collection["collectedPeriod"] = {"start": start, "end": end}
        elif start:
            collection["collectedDateTime"] = start
        method = codeable(spm.v(7))
        if method:
            collection["method"] = method
        site = codeable(spm.v(8))
        if site:
            collection["bodySite"] = site
        if collection:
            spec["collection"] = collection
        conditions = [c for r in spm.reps(24) if (c := codeable(r))]
        if conditions:
            spec["condition"] = conditions
        container = codeable(spm.v(27))
        if container:
            spec["container"] = [{"type": container}]
        description = spm.text(14)
        if description:
            spec["note"] = [{"text": description}]
        return spec

    # ---------------------------------------------------------------- Observation
    def observation(self, obx: Segment, ident: JSON, patient: JSON, notes: list[Segment],
                    default_time: str | None, profile: str | None) -> JSON:
        obs: JSON = {"resourceType": "Observation"}
        if profile:
            obs["meta"] = {"profile": [profile]}
        subid = self.sub_id(obx)
        if subid:
            obs["extension"] = [subid]
        obs["identifier"] = [ident]
        flag = obx.get(11).upper()
        obs["status"] = OBS_STATUS.get(flag, "unknown")
        obs["category"] = [fhir_codeable(coding(systems.OBSERVATION_CATEGORY, "laboratory",
                                                "Laboratory"))]
        code = codeable(obx.v(3))
        if code is None:  # kept with its value: US Core allows a data-absent code
            code = data_absent("unknown")
        obs["code"] = code
        obs["subject"] = patient
        when = self.time(obx.get(14), obx.where(14)) if obx.get(14) else default_time
        if when:
            obs["effectiveDateTime"] = when
        performer = obx.get(23) or obx.get(15, 2) or obx.get(15)
        if performer:
            obs["performer"] = [{"display": performer}]
        value = self.value(obx)
        if value is not None and value[0] == "attachment":
            # R4 has no valueAttachment: the cross-version extension carries it; the value
            # itself is absent for R4 readers ("unsupported"), never dropped
            obs.setdefault("extension", []).append({"url": VALUE_ATTACHMENT,
                                                    "valueAttachment": value[1]})
            obs["dataAbsentReason"] = data_absent("unsupported")
        elif value is not None and value[0] == "structured":
            obs["valueString"] = value[1][0]
            obs.setdefault("extension", []).extend(value[1][1])
        elif value is not None:
            obs[value[0]] = value[1]
        else:
            obs["dataAbsentReason"] = data_absent(
                "not-asked" if flag == "N" else "not-performed" if flag == "X" else "unknown")
        interp = []
        for rep in obx.reps(8):
            flag_code = rep.c(1)
            if not flag_code:
                continue
            if flag_code in INTERPRETATION_V3:
                interp.append(fhir_codeable(coding(V3_INTERPRETATION, flag_code,
                                                   INTERPRETATION_V3[flag_code])))
            else:
                interp.append(fhir_codeable(coding(V2_0078, flag_code, rep.c(2) or None)))
        if interp:
            obs["interpretation"] = interp
        ref_range = self.reference_range(obx)
        if ref_range:
            obs["referenceRange"] = [ref_range]
        method = codeable(obx.v(17))
        if method:
            obs["method"] = method
        texts = [t for n in notes if (t := self.note_text(n))]
        if texts:
            obs["note"] = [{"text": t} for t in texts]
        return obs

    def quantity(self, number: Decimal, unit: Value) -> JSON:
        code, shown = ucum(unit)
        q: JSON = {"value": number}
        if shown:
            q["unit"] = shown
        if code:
            q["system"] = systems.UCUM
            q["code"] = code
        return q

    def reference_range(self, obx: Segment) -> JSON | None:
        text = obx.text(7)
        if not text:
            return None
        out: JSON = {}
        m = _RANGE.match(text)
        code, shown = ucum(obx.v(6))
        if m and code:
            low, high = _number(m.group(1)), _number(m.group(2))
            if low is not None and high is not None:
                out["low"] = {"value": low, "unit": shown, "system": systems.UCUM, "code": code}
                out["high"] = {"value": high, "unit": shown, "system": systems.UCUM,
                               "code": code}
        out["text"] = text
        return out

    def value(self, obx: Segment) -> tuple[str, Any] | None:
        vt = obx.get(2).upper()
        reps = obx.reps(5)
        if not reps:
            return None
        unit = obx.v(6)
        if vt == "NM":
            numbers = [_number(r.text()) for r in reps]
            if any(n is None for n in numbers):
                self.problems.append(Problem(obx.where(5), "value type NM but the value is not "
                                                           "a number", "value"))
                return None
            if len(numbers) == 1:
                assert numbers[0] is not None
                return "valueQuantity", self.quantity(numbers[0], unit)
            return "valueString", "~".join(r.text() for r in reps)
        if vt in ("ST", "TX", "FT"):
            return "valueString", "\n".join(r.text() for r in reps)
        if vt in ("CE", "CWE", "CNE", "IS", "ID", "CF", "CV"):
            concepts = [c for r in reps if (c := codeable(r))]
            if not concepts:
                return None
            merged = concepts[0]
            for extra in concepts[1:]:
                merged.setdefault("coding", []).extend(extra.get("coding", []))
            return "valueCodeableConcept", merged
        if vt == "SN":
            return self.structured_numeric(obx, reps[0], unit)
        if vt == "NA":
            data = [r.c(i) for r in reps[:1] for i in range(1, len(r.components) + 1)]
            if any(_number(d) is None for d in data if d):
                self.problems.append(Problem(obx.where(5), "value type NA but a component is "
                                                           "not a number", "value"))
                return None
            return "valueSampledData", {"origin": {"value": 0}, "period": 0, "dimensions": 1,
                                        "data": " ".join(d if d else "E" for d in data)}
        if vt in ("DT", "DTM", "TS"):
            when = self.time(reps[0].c(1), obx.where(5))
            if when is None:
                return None
            return "valueDateTime", when
        if vt == "TM":
            m = re.match(r"^(\d{2})(\d{2})?(\d{2})?", reps[0].c(1))
            if not m:
                self.problems.append(Problem(obx.where(5), "value type TM but the value is not "
                                                           "a time", "value"))
                return None
            return "valueTime", f"{m.group(1)}:{m.group(2) or '00'}:{m.group(3) or '00'}"
        if vt == "NR":
            low, high = _number(reps[0].c(1)), _number(reps[0].c(2))
            out: JSON = {}
            if low is not None:
                out["low"] = self.quantity(low, unit)
            if high is not None:
                out["high"] = self.quantity(high, unit)
            return ("valueRange", out) if out else ("valueString", reps[0].text())
        if vt == "DR":
            start = self.time(reps[0].c(1), obx.where(5, 1))
            end = self.time(reps[0].c(2), obx.where(5, 2))
            period = {k: v for k, v in (("start", start), ("end", end)) if v}
            return ("valuePeriod", period) if period else ("valueString", reps[0].text())
        if vt == "ED":
            return self.encapsulated(obx, reps[0])
        if vt == "RP":
            return self.reference_pointer(reps[0])
        if vt in ("XPN", "XAD", "XTN", "CX"):
            return self.structured(obx, vt, reps)
        # CP, EI, …: the components kept readable (no v2 delimiter left), never dropped
        return "valueString", "\n".join(readable(r) for r in reps)

    def structured(self, obx: Segment, vt: str, reps: list[Value]) -> tuple[str, Any] | None:
        """XPN/XAD/XTN/CX: FHIR has no Observation.value of their types, so a readable
        string, and the FHIR type itself in :data:`STRUCTURED_VALUE`."""
        times = Times(self.tz, self.problems)
        where = obx.where(5)
        made: list[tuple[str, JSON]] = []
        for rep in reps:
            if vt == "XPN":
                found, key = xpn_name(rep, times, where), "valueHumanName"
            elif vt == "XAD":
                found, key = xad_address(rep, times, where), "valueAddress"
            elif vt == "XTN":
                found, key = xtn_contact(rep), "valueContactPoint"
            else:
                fallback = sender_system(self.ctx.map.clinic.system, self.msg.sender_name,
                                         rep.c(4, 1) or rep.c(4, 2))
                found = cx_full(rep, self.ctx.namespaces_for(self.msg.sender_name), fallback,
                                times, where,
                                self.warnings)
                key = "valueIdentifier"
            if found:
                made.append((key, found))
        if not made:
            return "valueString", "\n".join(readable(r) for r in reps)
        return "structured", ("\n".join(readable(r) for r in reps),
                              [{"url": STRUCTURED_VALUE, key: v} for key, v in made])

    def reference_pointer(self, rep: Value) -> tuple[str, Any] | None:
        """RP (pointer ^ application ^ type ^ subtype) → an Attachment by url, as the IG's
        OBX table maps it (in the value cross-version extension)."""
        pointer = rep.c(1)
        if not pointer:
            return None
        out: JSON = {"url": pointer}
        kind, subtype = rep.c(3), rep.c(4)
        if "/" in subtype:
            out["contentType"] = subtype.strip().lower()
        elif subtype and subtype.strip().upper() in ED_SUBTYPES:
            out["contentType"] = ED_SUBTYPES[subtype.strip().upper()]
        elif kind.strip().upper() in ED_TYPES:
            out["contentType"] = ED_TYPES[kind.strip().upper()]
        return "attachment", out

    def sub_id(self, obx: Segment) -> JSON | None:
        """OBX-4 as the IG's sub-id extension (OG.1 original, OG.2 group, OG.3 sequence,
        OG.4 identifier), so the receiver can still see how the sender grouped rows."""
        og = obx.v(4)
        if not og:
            return None
        parts: list[JSON] = [{"url": "original-sub-identifier", "valueString": og.c(1)}] \
            if og.c(1) else []
        for comp, name in ((2, "group"), (3, "sequence")):
            text = og.c(comp)
            if text:
                number = _number(text)
                if number is None:
                    self.problems.append(Problem(obx.where(4, comp), f"the sub-id {name} "
                                                                     "is not a number", "value"))
                    continue
                parts.append({"url": name, "valueDecimal": number})
        if og.c(4):
            parts.append({"url": "identifier", "valueString": og.c(4)})
        return {"url": SUBID_EXTENSION, "extension": parts} if parts else None

    def encapsulated(self, obx: Segment, rep: Value) -> tuple[str, Any] | None:
        """OBX-5 ED → an Attachment: contentType from ED-3 (else ED-2), data base64 per
        ED-4 (A: the text's UTF-8 bytes, Hex, Base64). A malformed ED is an error naming
        the component; an ED without data (ED-5 empty) is an absent value."""
        kind, subtype, encoding, data = rep.c(2), rep.c(3), rep.c(4), rep.c(5)
        if not data:
            return None
        enc = encoding.strip().upper()
        if enc == "BASE64":
            compact = re.sub(r"\s+", "", data)
            try:
                base64.b64decode(compact, validate=True)
            except (binascii.Error, ValueError):
                self.problems.append(Problem(obx.where(5, 5), "ED data is not valid Base64",
                                             "value"))
                return None
            encoded = compact
        elif enc == "HEX":
            try:
                raw = bytes.fromhex(data)
            except ValueError:
                self.problems.append(Problem(obx.where(5, 5), "ED data is not valid hex", "value"))
                return None
            encoded = base64.b64encode(raw).decode("ascii")
        elif enc == "A":
            encoded = base64.b64encode(data.encode("utf-8")).decode("ascii")
        else:
            self.problems.append(Problem(obx.where(5, 4), "ED encoding must be A, Hex or "
                                                          "Base64 (HL7 table 0299)",
                                                          "code-invalid"))
            return None
        if "/" in subtype:
            content_type = subtype.strip().lower()
        elif subtype:
            content_type = ED_SUBTYPES.get(subtype.strip().upper(), "application/octet-stream")
        else:
            content_type = ED_TYPES.get(kind.strip().upper(), "application/octet-stream")
        return "attachment", {"contentType": content_type, "data": encoded}

    def structured_numeric(self, obx: Segment, rep: Value, unit: Value
                           ) -> tuple[str, Any] | None:
        text = rep.text()
        if len(rep.components) == 1:
            m = _SN_FLAT.match(text.strip())
            if m and m.group(1) != "<>":
                q = self.quantity(_number(m.group(2)), unit)  # type: ignore[arg-type]
                if m.group(1) in _COMPARATORS:
                    q = {"value": q["value"], "comparator": m.group(1),
                         **{k: v for k, v in q.items() if k != "value"}}
                return "valueQuantity", q
            return "valueString", text
        comparator, n1, sep, n2 = rep.c(1), _number(rep.c(2)), rep.c(3), _number(rep.c(4))
        if n1 is None:
            return "valueString", text
        if not sep and n2 is None and comparator in ("", "=", *_COMPARATORS):
            q = self.quantity(n1, unit)
            if comparator in _COMPARATORS:
                q = {"value": n1, "comparator": comparator,
                     **{k: v for k, v in q.items() if k != "value"}}
            return "valueQuantity", q
        if sep == "-" and n2 is not None and not comparator:
            return "valueRange", {"low": self.quantity(n1, unit), "high": self.quantity(n2, unit)}
        if sep in (":", "/") and n2 is not None and not comparator:
            return "valueRatio", {"numerator": {"value": n1}, "denominator": {"value": n2}}
        return "valueString", text
