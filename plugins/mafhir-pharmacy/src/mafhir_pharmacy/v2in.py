"""HL7 v2 → FHIR for the pharmacy: RDE^O11 (orders read back) and refill requests
(RDE^O25, or OMP^O09 where a pharmacy sends that) as worklist Tasks.

Pure. A refill request becomes a :class:`~.tasks.RefillRequestTask` first, so what
reaches the worklist passed the same model checks as one typed by the MA, then the
``refill_request`` mapper makes its Task and Communication. Problems raise
:class:`~mafhir.errors.InputError` naming segment and field (``ORC[2]-12``), never a
value; the listener answers them with an AE and keeps the message.
"""

from __future__ import annotations

import re
import uuid
from datetime import tzinfo
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from mafhir import systems
from mafhir.bundle import Entry, create, transaction
from mafhir.errors import InputError, Problem
from mafhir.fhirtypes import codeable, coding
from mafhir.hl7v2 import Message, Segment, V2Context
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.datatypes import codeable as v2_codeable
from mafhir.hl7v2.datatypes import dtm_to_fhir, ei_identifier, xcn_reference
from mafhir.hl7v2.patient import PidPatient, patient_from_pid
from mafhir.hl7v2.terminology import system_for, ucum_code
from mafhir.identity import identifier_query
from mafhir.tasks import PatientRef

from .codes import FREQUENCIES, ROUTES, V2_0162
from .fhir import MR_PROFILE, PLACER_TYPE, absent, ucum
from .mappers import refill_request_to_fhir
from .tasks import RefillRequestTask

__all__ = ["order_groups", "rde_o11_to_fhir", "refill_request_tasks", "refill_requests",
           "refill_requests_to_fhir"]

JSON = dict[str, Any]
_NUM = re.compile(r"^\d+(\.\d+)?$")
_UCUM_HINTS = {"tab": "{tbl}", "tabs": "{tbl}", "tablet": "{tbl}", "{tbl}": "{tbl}",
               "cap": "{cap}", "caps": "{cap}", "capsule": "{cap}", "{cap}": "{cap}",
               "ml": "mL", "mg": "mg", "g": "g"}
#: CWE-3 names under which a unit is read as UCUM (after terminology's spelling check).
_UNIT_SYSTEMS = ("", "UCUM", "ISO+", "ANS+", "ISO")


def order_groups(msg: Message) -> list[dict[str, Any]]:
    """One dict per ORC: its RXO or RXE, the TQ1s and RXRs after the give segment, and the
    PRT participants (v2.7+) anywhere in the order group."""
    groups: list[dict[str, Any]] = []
    for seg in msg.segments[1:]:
        if seg.name == "ORC":
            groups.append({"orc": seg, "rxo": None, "rxe": None, "tq1": [], "rxr": [],
                           "nte": [], "prt": []})
        elif not groups:
            continue
        elif seg.name in ("RXO", "RXE"):
            groups[-1][seg.name.lower()] = seg
            groups[-1]["tq1"], groups[-1]["rxr"] = [], []  # RXE's own timing and routes win
        elif seg.name in ("TQ1", "RXR", "NTE", "PRT"):
            groups[-1][seg.name.lower()].append(seg)
    return groups


def _tz(msg: Message, ctx: V2Context) -> tzinfo | None:
    """The zone of the sender's times without an offset, as the lab reads it: the zone
    configured for this sender, else the offset MSH-7 states, else the receiver's or
    the clinic's zone (None: such times are refused, never pinned to UTC)."""
    configured = ctx.zone(msg.msh.get(3), msg.msh.get(4))
    if configured is not None and configured.per_sender:
        return configured.tz
    m = re.search(r"([+-]\d{4})$", msg.msh.get(7))
    if m:
        from mafhir.hl7v2.datatypes import _offset

        return _offset(m.group(1))
    return configured.tz if configured is not None else None


def _number(text: str) -> int | float | None:
    text = text.strip()
    if not _NUM.match(text):
        return None
    return int(text) if "." not in text else float(text)


def _unit(seg: Segment, n: int) -> tuple[str | None, str]:
    """(UCUM code or None, the unit as the sender wrote it) of a CWE unit field."""
    value = seg.v(n)
    if not value:
        return None, ""
    code, system = value.c(1), value.c(3).upper()
    shown = value.c(2) or code
    hint = _UCUM_HINTS.get(code.lower())
    if hint:
        return hint, shown
    if system in _UNIT_SYSTEMS:  # a dose form coded in SNOMED (385055001) is not a unit
        return ucum_code(code), shown
    return None, shown


def _quantity(seg: Segment, amount: int, unit: int) -> JSON | None:
    value = _number(seg.get(amount))
    if value is None:
        return None
    code, text = _unit(seg, unit)
    if code:
        return {**ucum(value, code), "unit": text or code}
    return {"value": value, "unit": text} if text else {"value": value}


def _pid(msg: Message, ctx: V2Context) -> PidPatient:
    """The PID read by the shared rules every v2 plugin follows (mafhir.hl7v2.patient):
    only an identifier whose authority the clinic maps to its MRN system is a match key
    (else held for review, ``business-rule``), SSNs never, NPIs check-digit verified,
    times in the sender's zone."""
    pid = msg.first("PID")
    if pid is None:
        raise InputError([Problem("PID", "the PID segment is missing", "required")])
    if not any(r.c(1) for r in pid.reps(3)):
        raise InputError([Problem("PID-3", "the patient identifier is missing", "required")])
    return patient_from_pid(pid, ctx, msg.sender_name, _tz(msg, ctx))


def _patient(msg: Message, ctx: V2Context) -> tuple[JSON, PatientRef]:
    found = _pid(msg, ctx)
    key = found.resource["identifier"][0]  # the clinic MRN the shared reader matched on
    return found.reference, PatientRef(mrn=key["value"], system=key["system"])


def _patient_entry(msg: Message, ctx: V2Context) -> tuple[JSON, Entry, list[Problem]]:
    """The reference by MRN, and the PID's US Core Patient as a conditional create (what the
    clinic holds is not overwritten), with the gaps it was kept despite."""
    found = _pid(msg, ctx)
    return found.reference, found.entry, list(found.warnings)


def _participant(group: dict[str, Any], codes: tuple[str, ...]) -> Segment | None:
    """The group's first PRT whose participation (PRT-4, table 0912) is one of ``codes``."""
    return next((p for p in group["prt"] if p.get(4).upper() in codes), None)


def _practitioner(xcn: Any) -> JSON | None:
    """An XCN as a Reference: by NPI (``Practitioner?identifier=``) when it has one, else the
    name and the sender's own id as given (a logical reference, nothing invented)."""
    person = xcn_reference(xcn) if xcn else None
    if not person:
        return None
    ident = person.get("identifier") or {}
    if ident.get("system"):
        query = identifier_query(ident["system"], ident["value"])
        return {"reference": f"Practitioner?{query}",
                **({"display": person["display"]} if person.get("display") else {})}
    return person


def _ordering_provider(group: dict[str, Any]) -> tuple[Any, str]:
    """The ordering provider's XCN and where it was read: ORC-12, else a PRT with
    participation OP (v2.7+ moved it there); (None, ORC-12) when the source has none."""
    orc: Segment = group["orc"]
    if orc.get(12) or orc.get(12, 2):
        return orc.v(12), orc.where(12)
    prt = _participant(group, ("OP",))
    if prt is not None and (prt.get(5) or prt.get(5, 2)):
        return prt.v(5), prt.where(5)
    return None, orc.where(12)


def _dosage(give: Segment, tq1s: list[Segment], rxrs: list[Segment]) -> JSON:
    out: JSON = {}
    is_rxe = give.name == "RXE"
    texts = [v.c(2) or v.c(1) for v in give.reps(7)]  # RXE-7 / RXO-7 instructions
    if any(texts):
        out["text"] = " ".join(t for t in texts if t)
    repeat: JSON = {}
    as_needed = False
    for tq1 in tq1s[:1]:
        for rep in tq1.reps(3):
            code = rep.c(1).upper()
            if code == "PRN":
                as_needed = True
            elif code in FREQUENCIES:
                freq, period, unit, when = FREQUENCIES[code]
                repeat.update({"frequency": freq, "period": period, "periodUnit": unit})
                if when:
                    repeat["when"] = [when]
        days = _number(tq1.get(6))
        if days is not None and tq1.get(6, 2).lower() in ("d", "day", "days"):
            repeat["boundsDuration"] = {"value": days, "unit": "days",
                                        "system": systems.UCUM, "code": "d"}
        condition = tq1.get(10)
        if condition and as_needed:
            reason = re.sub(r"^(as needed|prn)\s*(for\s+)?", "", condition, flags=re.I).strip()
            if reason:
                out["asNeededCodeableConcept"] = codeable(text=reason)
    if repeat:
        out["timing"] = {"repeat": repeat}
    if as_needed and "asNeededCodeableConcept" not in out:
        out["asNeededBoolean"] = True
    for rxr in rxrs[:1]:
        route = rxr.v(1)
        if route:
            code = route.c(1)
            known = next((v for v in ROUTES.values() if v[2] == code), None)
            codings = []
            if known:
                codings.append(coding(systems.SNOMED, known[0], known[1]))
            codings.append(coding(V2_0162, code, route.c(2) or (known[3] if known else None)))
            out["route"] = codeable(*codings)
    amount_at, unit_at = (3, 5) if is_rxe else (2, 4)
    dose = _quantity(give, amount_at, unit_at)
    if dose is not None:
        out["doseAndRate"] = [{"doseQuantity": dose}]
    return out


def _medication_request(group: dict[str, Any], k: int, msg: Message, ctx: V2Context,
                        patient: JSON, tz, warnings: list[Problem]) -> JSON:
    orc: Segment = group["orc"]
    give: Segment = group["rxe"] or group["rxo"]
    where = give.where()
    concept = v2_codeable(give.v(2) if give.name == "RXE" else give.v(1))
    if concept is None:
        raise InputError([Problem(f"{where}-{2 if give.name == 'RXE' else 1}",
                                  "the drug (give code) is missing", "required")])
    idents = []
    placer = ei_identifier(orc.v(2), f"{ctx.map.clinic.system}/v2/order/plac", "PLAC") \
        if orc.v(2) else None
    if placer:
        placer["type"] = PLACER_TYPE
        idents.append(placer)
    if give.name == "RXE" and give.get(15):
        idents.append({"system": f"{ctx.map.clinic.system}/v2/rx-number",
                       "value": give.get(15)})
    if not idents:
        idents.append({"system": f"{ctx.map.clinic.system}/v2/prescription",
                       "value": f"{msg.sender_name}|{msg.control_id}|{k}"})
    mr: JSON = {"resourceType": "MedicationRequest", "meta": {"profile": [MR_PROFILE]},
                "identifier": idents,
                "status": "cancelled" if orc.get(1) in ("CA", "DC", "OC") else "active",
                "intent": "order", "medicationCodeableConcept": concept, "subject": patient}
    authored = dtm_to_fhir(orc.get(9), tz)
    if authored:
        mr["authoredOn"] = authored
    xcn, where_from = _ordering_provider(group)
    requester = _practitioner(xcn)
    if requester:
        mr["requester"] = requester
    elif mr["intent"] == "order":  # us-core-21: requester.exists(); the source has none
        mr["requester"] = absent("unknown")
        warnings.append(Problem(where_from, "the ordering provider is absent (no ORC-12, no "
                                            "PRT with participation OP); kept with a "
                                            "data-absent-reason", "incomplete"))
    entering = _participant(group, ("EP",))  # v2.7+: who entered the order
    recorder = _practitioner(entering.v(5)) if entering is not None else None
    if recorder:
        mr["recorder"] = recorder
    if give.name == "RXE":
        reasons = [c for v in give.reps(27) if (c := v2_codeable(v))]
        if reasons:
            mr["reasonCode"] = reasons
    notes = [n.get(3) for n in group["nte"] if n.get(3)]
    if notes:
        mr["note"] = [{"text": "\n".join(notes)}]
    mr["dosageInstruction"] = [_dosage(give, group["tq1"], group["rxr"])]
    amount, unit, refills = (10, 11, 12) if give.name == "RXE" else (11, 12, 13)
    dispense: JSON = {}
    repeats = _number(give.get(refills))
    if isinstance(repeats, int):
        dispense["numberOfRepeatsAllowed"] = repeats
    qty = _quantity(give, amount, unit)
    if qty:
        dispense["quantity"] = qty
    if dispense:
        mr["dispenseRequest"] = dispense
    sub = give.get(9)
    if sub in ("0", "1"):  # table 0167 (RXE-9)
        mr["substitution"] = {"allowedBoolean": sub == "0"}
    elif sub in ("G", "N", "T"):  # table 0161 (RXO-9)
        mr["substitution"] = {"allowedCodeableConcept": codeable(
            coding(systems.THO + "v2-0161", sub))}
    return mr


def rde_o11_to_fhir(msg: Message, ctx: V2Context) -> Converted:
    """RDE^O11 → the PID's US Core Patient and one US Core MedicationRequest per ORC/RXE
    group, with the gaps kept despite (``incomplete`` warnings; ``--strict`` refuses)."""
    patient, patient_entry, warnings = _patient_entry(msg, ctx)
    tz = _tz(msg, ctx)
    groups = [g for g in order_groups(msg) if g["rxe"] is not None or g["rxo"] is not None]
    if not groups:
        raise InputError([Problem("ORC", "the message has no order (ORC with RXE)",
                                  "required")])
    entries: list[Entry] = [patient_entry]
    entries += [create(_medication_request(g, k, msg, ctx, patient, tz, warnings))
                for k, g in enumerate(groups, start=1)]
    return Converted(transaction(entries), tuple(warnings))


def _prescription_id(orc: Segment, give: Segment | None, ctx: V2Context) -> str:
    own = f"{ctx.map.clinic.system}/prescription"
    if orc.v(2):
        ident = ei_identifier(orc.v(2), f"{ctx.map.clinic.system}/v2/order/plac")
        if ident and ident["system"] == own:
            return ident["value"]
        if ident and not orc.get(2, 3):
            return ident["value"]  # a bare placer number: the clinic's own, echoed
    raise InputError([Problem(orc.where(2), "names no prescription of this clinic (placer "
                                            "order number with the clinic's prescription "
                                            "namespace)", "not-found")])


def refill_request_tasks(msg: Message, ctx: V2Context) -> list[RefillRequestTask]:
    """The refill requests of an RDE^O25 / OMP^O09, as refill_request tasks."""
    return refill_requests(msg, ctx)[0]


def refill_requests(msg: Message, ctx: V2Context
                    ) -> tuple[list[RefillRequestTask], list[Problem]]:
    """The refill requests of an RDE^O25 / OMP^O09, and the gaps they were kept despite
    (``incomplete``: no prescriber named anywhere; the worklist item has no owner yet)."""
    _, patient = _patient(msg, ctx)
    tz = _tz(msg, ctx)
    received = dtm_to_fhir(msg.msh.get(7), tz)
    if not received or "T" not in received:
        received = ctx.now.isoformat()
    groups = order_groups(msg)
    if not groups:
        raise InputError([Problem("ORC", "the message has no refill request (ORC)",
                                  "required")])
    out: list[Any] = []
    problems: list[Problem] = []
    warnings: list[Problem] = []
    for k, group in enumerate(groups, start=1):
        orc: Segment = group["orc"]
        give: Segment | None = group["rxe"] or group["rxo"]
        try:
            rx_id = _prescription_id(orc, give, ctx)
        except InputError as exc:
            problems += exc.problems
            continue
        xcn, prescriber_at = _ordering_provider(group)
        pharmacy_field = 40 if give is not None and give.name == "RXE" else 32
        pharmacy = give.v(pharmacy_field) if give is not None else None
        pharmacy_at = give.where(pharmacy_field) if give is not None else orc.where()
        if not pharmacy:  # v2.7+: the dispensing pharmacy as a PRT participant (DP)
            prt = _participant(group, ("DP",))
            if prt is not None and prt.v(8):
                pharmacy, pharmacy_at = prt.v(8), prt.where(8)
        raw: JSON = {
            "task": "refill_request",
            "id": "rr-" + uuid.uuid5(uuid.NAMESPACE_URL,
                                     f"{msg.sender_name}|{msg.control_id}|{k}").hex[:20],
            "patient": patient.model_dump(exclude_none=True, exclude_defaults=True),
            "received": received, "prescription": rx_id,
            "pharmacy": _pharmacy(pharmacy, pharmacy_at[:3] == "PRT"),
            "message_id": msg.control_id,
        }
        if xcn is not None:
            person = xcn_reference(xcn)
            raw["prescriber"] = {
                "npi": ((person or {}).get("identifier") or {}).get("value"),
                "family": xcn.c(2, 1), "given": [g for g in (xcn.c(3),) if g]}
        else:
            warnings.append(Problem(prescriber_at, "the prescriber is absent (no ORC-12, no PRT "
                                                   "with participation OP); kept without an "
                                                   "owner", "incomplete"))
        if give is not None and give.name == "RXE":
            qty = _quantity(give, 10, 11)
            if qty and qty.get("code"):
                raw["requested_quantity"] = {"value": qty["value"], "unit": qty["code"]}
            refills = _number(give.get(12))
            if isinstance(refills, int) and refills <= 11:
                raw["requested_refills"] = refills
        try:
            out.append(RefillRequestTask.model_validate(raw))
        except ValidationError as exc:
            problems += [_locate(err, prescriber_at, pharmacy_at, orc) for err in
                         exc.errors(include_url=False, include_input=False)]
    if problems:
        raise InputError(problems)
    return out, warnings


def _pharmacy(value: Any, xon: bool = False) -> JSON:
    """RXE-40 / RXO-32 (CWE: id ^ name ^ system) or a PRT-8 (XON: name … ^ id in XON-10)
    as a pharmacy: an NCPDP id or NPI when it is one, else the sender's own id in the
    namespace its coding system names (kept, not refused)."""
    if not value:
        return {}
    if xon:
        ident, name, system = value.c(10) or value.c(3), value.c(1), value.c(6).upper()
    else:
        ident, name, system = value.c(1), value.c(2), value.c(3).upper()
    out: JSON = {"name": name or ident}
    if system == "NPI" or (len(ident) == 10 and ident.isdigit() and system != "NCPDP"):
        out["npi"] = ident
    elif system == "NCPDP" or (len(ident) == 7 and ident.isdigit()):
        out["ncpdp_id"] = ident
    elif ident:
        out["local_id"] = ident
        out["local_system"] = system_for(system or "L")
    return out


def _locate(err: ErrorDetails, prescriber_at: str, pharmacy_at: str, orc: Segment) -> Problem:
    """A model error as the segment and field it came from."""
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    head = loc[0] if loc else ""
    if head == "prescriber":
        return Problem(prescriber_at, f"the prescriber (NPI and family name) is invalid: "
                                      f"{msg}", "value")
    if head == "pharmacy":
        return Problem(pharmacy_at, f"the dispensing pharmacy (NCPDP id, NPI or its own id, "
                                    f"and name) is missing or invalid: {msg}",
                       "required" if err.get("type") == "missing" else "value")
    if head == "patient":
        return Problem("PID-3", msg, "value")
    return Problem(orc.where(), f"{'.'.join(loc)}: {msg}", "value")


def refill_requests_to_fhir(msg: Message, ctx: V2Context) -> Converted:
    """RDE^O25 / OMP^O09 → worklist Tasks (+ Communications) for the prescriber, with the
    gaps kept despite (``--strict`` refuses them)."""
    entries: list[Entry] = []
    tasks, warnings = refill_requests(msg, ctx)
    for task in tasks:
        entries += refill_request_to_fhir(task, ctx.map)
    return Converted(transaction(entries), tuple(warnings))
