"""FHIR → HL7 v2.5.1: RDE^O11 (a prescription to the pharmacy) and RRE^O26 (the refill answer).

Pure: resources and a :class:`~mafhir.hl7v2.context.V2Context` in, message text out,
built by :func:`mafhir.hl7v2.build_message` (every value escaped). Field choices follow
mapping-reference §10.3 and the V2-to-FHIR IG's RXO/RXR/TQ1 tables read backwards:

=========  ==================================================================
ORC-1      ``NW`` a new order; ``AF`` refill approved, ``DF`` refill denied (RRE^O26)
ORC-2      placer order number: the clinic's prescription id ^ app ^ its system URI ^ URI
ORC-9/12   authored time / prescriber (NPI)
ORC-16     why a refill was denied (RRE^O26)
RXE-2      RxNorm code ^ name ^ RXNORM (^ NDC ^ ^ NDC as the alternate)
RXE-3/5    dose and its unit (UCUM); RXE-7 the sig text
RXE-9      substitution status (table 0167): 0 allowed, 1 not allowed by the prescriber
RXE-10/11  dispense amount and unit; RXE-12 refills; RXE-15 prescription number
RXE-27     indication (ICD-10-CM); RXE-32 original order time; RXE-35 DEA schedule (0477)
RXE-40/41  dispensing pharmacy (NCPDP id or NPI ^ name) and its address
TQ1-3      repeat pattern (table 0335, ``PRN`` added when as needed); TQ1-6 duration in
           days; TQ1-10 the as-needed condition
RXR-1      route: table 0162 code, SNOMED CT as the alternate
=========  ==================================================================

Days supply has no field of its own in RDE^O11 v2.5.1 and is not sent.
"""

from __future__ import annotations

import uuid
from typing import Any

from mafhir import systems
from mafhir.errors import InputError, Problem
from mafhir.hl7v2 import Reps, V2Context, build_message, msh
from mafhir.hl7v2.segments import dtm_of_fhir, pid_segment
from mafhir.identity import identifier_from_reference
from mafhir.resourceset import ResourceSet

from .codes import CONTROLLED_TAG, FREQUENCIES, NCPDP, ROUTES, RXNORM, SCHEDULE_TO_V2

__all__ = ["order_segments", "rde_o11", "rre_o26"]

JSON = dict[str, Any]
def _num(value: Any) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _ident_of_ref(ref: JSON | None) -> tuple[str, str] | None:
    parsed = identifier_from_reference(str((ref or {}).get("reference", "")))
    return None if parsed is None else (parsed[1], parsed[2])


def _first(resource: JSON, suffix: str) -> JSON | None:
    return next((i for i in resource.get("identifier", []) or []
                 if str(i.get("system", "")).endswith(suffix)), None)


def _xcn(resources: ResourceSet, ref: JSON | None) -> tuple | None:
    who = resources.resolve(ref) if ref else None
    if who is None:
        pair = _ident_of_ref(ref)
        if pair and pair[0] == systems.NPI:
            return (pair[1], "", "", "", "", "", "", "", ("NPI", "2.16.840.1.113883.4.6", "ISO"),
                    "L", "", "", "NPI")
        return None
    npi = next((i["value"] for i in who.get("identifier", []) or []
                if i.get("system") == systems.NPI), "")
    name = (who.get("name") or [{}])[0]
    given = name.get("given", [])
    return (npi, name.get("family", ""), given[0] if given else "", " ".join(given[1:]), "",
            "", "", "", ("NPI", "2.16.840.1.113883.4.6", "ISO"), "L", "", "", "NPI")


def _placer(ident: JSON | None, ctx: V2Context) -> tuple | None:
    if not ident:
        return None
    return (ident["value"], ctx.application, ident.get("system", ""), "URI")


def _give_code(concept: JSON) -> tuple:
    rx = next((c for c in concept.get("coding", []) if c.get("system") == RXNORM), None)
    ndc = next((c for c in concept.get("coding", []) if c.get("system") == systems.NDC), None)
    out: list = []
    if rx:
        out += [rx["code"], rx.get("display") or concept.get("text", ""), "RXNORM"]
    if ndc:
        out += ([""] * (3 - len(out))) if not rx else []
        out += [ndc["code"], "", "NDC"]
    if not out:
        return ("", "", "", "", "", "", "", "", concept.get("text", ""))
    return tuple(out)


def _pharmacy(org: JSON | None) -> tuple[tuple | None, tuple | None]:
    if not org:
        return None, None
    idents = {i.get("system"): i.get("value") for i in org.get("identifier", []) or []}
    if idents.get(NCPDP):
        code = (idents[NCPDP], org.get("name", ""), "NCPDP")
    else:
        code = (idents.get(systems.NPI, ""), org.get("name", ""), "NPI")
    addr = (org.get("address") or [None])[0]
    xad = (" ".join(addr.get("line", [])), "", addr.get("city", ""), addr.get("state", ""),
           addr.get("postalCode", ""), addr.get("country", "")) if addr else None
    return code, xad


def _rxe(mr: JSON, resources: ResourceSet, rx_number: str) -> list:
    dosage = (mr.get("dosageInstruction") or [{}])[0]
    dose = ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity") or {}
    dispense = mr.get("dispenseRequest") or {}
    qty = dispense.get("quantity") or {}
    allowed = (mr.get("substitution") or {}).get("allowedBoolean", True)
    schedule = next((t.get("code") for t in (mr.get("meta") or {}).get("tag", [])
                     if t.get("system") == CONTROLLED_TAG), None)
    pharmacy, address = _pharmacy(resources.resolve(dispense.get("performer")))
    indications = Reps((c["code"], "", "I10C") for rc in mr.get("reasonCode", []) or []
                       for c in rc.get("coding", []) if c.get("code"))
    fields: list = [None] * 42
    fields[0] = "RXE"
    fields[2] = _give_code(mr.get("medicationCodeableConcept") or {})
    fields[3] = _num(dose.get("value"))
    unit = dose.get("code") or dose.get("unit")
    fields[5] = (unit, unit, "UCUM") if unit else None
    fields[7] = ("", dosage.get("text", "")) if dosage.get("text") else None
    fields[9] = "0" if allowed else "1"
    fields[10] = _num(qty.get("value"))
    qunit = qty.get("code") or qty.get("unit")
    fields[11] = (qunit, qunit, "UCUM") if qunit else None
    fields[12] = _num(dispense.get("numberOfRepeatsAllowed", 0))
    fields[15] = rx_number
    fields[27] = indications or None
    fields[32] = dtm_of_fhir(mr.get("authoredOn"))
    fields[35] = (SCHEDULE_TO_V2[schedule], "", "HL70477") if schedule in SCHEDULE_TO_V2 \
        else None
    fields[40] = pharmacy
    fields[41] = address
    return fields


def _tq1(mr: JSON) -> list:
    dosage = (mr.get("dosageInstruction") or [{}])[0]
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    key = (repeat.get("frequency"), repeat.get("period"), repeat.get("periodUnit"),
           (repeat.get("when") or [None])[0])
    code = next((c for c, value in FREQUENCIES.items() if value == key), None)
    as_needed = bool(dosage.get("asNeededBoolean") or "asNeededCodeableConcept" in dosage)
    pattern = Reps([c for c in (code, "PRN" if as_needed else None) if c])
    bounds = repeat.get("boundsDuration") or {}
    duration = (_num(bounds["value"]), ("d", "day", "UCUM")) if bounds.get("value") else None
    reason = (dosage.get("asNeededCodeableConcept") or {}).get("text")
    return ["TQ1", "1", None, pattern or None, None, None, duration, None, None, "R",
            f"as needed for {reason}" if reason else ("as needed" if as_needed else None)]


def _rxr(mr: JSON) -> list | None:
    dosage = (mr.get("dosageInstruction") or [{}])[0]
    for c in (dosage.get("route") or {}).get("coding", []):
        for sct, sct_display, v2, v2_display in ROUTES.values():
            if c.get("code") in (sct, v2):
                return ["RXR", (v2, v2_display, "HL70162", sct, sct_display, "SCT")]
    return None


def order_segments(mr: JSON, resources: ResourceSet, ctx: V2Context, control: str,
                   placer: JSON | None = None, reason: tuple | None = None) -> list[list]:
    """ORC, RXE, TQ1, RXR (and NTE) of one MedicationRequest."""
    own = _first(mr, "/prescription") or (mr.get("identifier") or [None])[0]
    placer = placer or own
    orc: list = ["ORC", control, _placer(placer, ctx), None, None, None, None, None, None,
                 dtm_of_fhir(mr.get("authoredOn")), None, None,
                 _xcn(resources, mr.get("requester"))]
    if reason:
        orc += [None, None, None, reason]
    segs = [orc, _rxe(mr, resources, (own or {}).get("value", ""))]
    for note in mr.get("note", []) or []:
        segs.append(["NTE", "1", "P", Reps(note.get("text", "").split("\n"))])
    segs.append(_tq1(mr))
    rxr = _rxr(mr)
    if rxr:
        segs.append(rxr)
    return segs


def _control_id(seed: str, ctx: V2Context) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}|{ctx.now.isoformat()}").hex[:20]


def _header(ctx: V2Context, code: str, trigger: str, control: str) -> list:
    return msh(sending=(ctx.application, ctx.facility or ctx.map.clinic.name),
               receiving=ctx.receiving, at=ctx.now,
               message_type=(code, trigger, f"{code}_{trigger}"), control_id=control,
               processing=ctx.processing_id)


def rde_o11(resources: ResourceSet, ctx: V2Context) -> str:
    """RDE^O11: the patient's new prescriptions, one ORC/RXE/TQ1/RXR group each."""
    orders = [mr for mr in resources.of_type("MedicationRequest")
              if mr.get("intent") in ("order", "original-order") and mr.get("status") == "active"]
    if not orders:
        raise InputError([Problem("MedicationRequest", "there is no active MedicationRequest "
                                                       "(intent order) to send", "required")])
    if len({str(mr.get("subject")) for mr in orders}) > 1:
        raise InputError([Problem("MedicationRequest.subject", "one message carries one "
                                                               "patient's prescriptions; split "
                                                               "them", "invariant")])
    seed = "|".join(f"{i.get('system')}|{i.get('value')}" for mr in orders
                    for i in mr.get("identifier", [])[:1])
    segs: list[list] = [_header(ctx, "RDE", "O11", _control_id(seed, ctx)),
                        pid_segment(resources, orders[0]["subject"], ctx,
                                    "MedicationRequest.subject"),
                        ["PV1", "1", "O"]]
    for mr in orders:
        segs += order_segments(mr, resources, ctx, "NW")
    return build_message(segs)


def rre_o26(resources: ResourceSet, ctx: V2Context) -> str:
    """RRE^O26: the answer to the pharmacy's RDE^O25 — ORC-1 AF with the renewal's RXE, or DF
    with the reason in ORC-16. MSA-2 names the request's MSH-10."""
    tasks = [t for t in resources.of_type("Task") if _first(t, "/refill_request")
             and t.get("status") in ("completed", "rejected")]
    if not tasks:
        raise InputError([Problem("Task", "there is no decided refill request (Task completed "
                                          "or rejected) to answer", "required")])
    if len(tasks) > 1:
        raise InputError([Problem("Task", "one RRE^O26 answers one refill request; convert "
                                          "them one at a time", "invariant")])
    task = tasks[0]
    message = _first(task, "/v2/refill-message")
    if message is None:
        raise InputError([Problem("Task.identifier", "the refill request did not come as an "
                                                     "HL7 v2 message (no MSH-10 to answer)",
                                                     "not-supported")])
    prior = _ident_of_ref(task.get("focus"))
    focus = resources.resolve(task.get("focus"))
    placer = _first(focus, "/prescription") if focus else (
        {"system": prior[0], "value": prior[1]} if prior else None)
    segs: list[list] = [_header(ctx, "RRE", "O26", _control_id(message["value"], ctx)),
                        ["MSA", "AA", message["value"]],
                        pid_segment(resources, task["for"], ctx, "Task.for")]
    decided = task.get("lastModified")
    if task["status"] == "completed":
        output = next((o["valueReference"] for o in task.get("output", []) or []
                       if "valueReference" in o), None)
        renewal = resources.resolve(output)
        if renewal is None:
            raise InputError([Problem("Task.output", "the renewal MedicationRequest is not in "
                                                     "the input", "not-found")])
        groups = order_segments(renewal, resources, ctx, "AF", placer=placer)
        groups[0][9] = dtm_of_fhir(decided)
        segs += groups
    else:
        reason = task.get("statusReason") or {}
        first = (reason.get("coding") or [{}])[0]
        segs.append(["ORC", "DF", _placer(placer, ctx), None, None, None, None, None, None,
                     dtm_of_fhir(decided), None, None, _xcn(resources, task.get("owner")),
                     None, None,
                     None, (first.get("code", ""), reason.get("text") or
                            first.get("display", ""), "L")])
    return build_message(segs)
