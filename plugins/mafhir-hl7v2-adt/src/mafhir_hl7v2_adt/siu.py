"""SIU^S12–S26 (the EHR's schedule) → one Appointment per message (pure).

Every SIU trigger carries the appointment whole (SIU_S12 structure), so each message
becomes the Appointment's full state: a **conditional update** on the EHR's appointment id
(SCH-2 filler id — which is the clinic's appointment id, see :func:`appointment_key` —
else SCH-1 placer id), so a reschedule or a modification updates the one Appointment and
never adds a second. Which event wins when they arrive out of order is
the listener's job (:mod:`.handler`), not the converter's.

Field by field (v2-to-FHIR IG SCH/AIS/AIG/AIL/AIP[Appointment] maps, mapping reference
§4.3); :data:`NOT_MAPPED` says why each field left out is left out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from mafhir import systems
from mafhir.bundle import Entry, transaction, update
from mafhir.errors import InputError, Problem
from mafhir.fhirtypes import coding, identifier
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.datatypes import codeable, ei_identifier, readable, sender_system
from mafhir.hl7v2.message import Message, Segment, Value
from mafhir_hl7v2_lab.v2in import Reader

__all__ = ["BOOKING", "EVENT_STATUS", "FILLER_STATUS", "MAPPED", "NOT_MAPPED", "TRIGGERS",
           "appointment_key", "siu_to_fhir"]

JSON = dict[str, Any]
V2_0276 = systems.THO + "v2-0276"
#: The SIU triggers this plugin takes (HL7 table 0003): S12 new booking, S13 reschedule,
#: S14 modification, S15 cancel, S16 discontinue, S17 delete, S18–S25 services and
#: resources added, changed, cancelled, discontinued or deleted, S26 no-show.
TRIGGERS = tuple(f"S{n}" for n in range(12, 27))
#: The trigger that books an appointment: the only one accepted for an id not seen yet.
BOOKING = "S12"
#: A trigger that decides the status whatever SCH-25 says (the event is the fact).
EVENT_STATUS = {"S15": "cancelled", "S16": "cancelled", "S17": "entered-in-error",
                "S26": "noshow"}
#: SCH-25 / AIx filler status (HL7 table 0278) → Appointment.status (IG concept map
#: FillerStatus); Blocked, Overbook and Discontinued have no match and fall back to the
#: trigger's default (``booked``).
FILLER_STATUS = {"PENDING": "pending", "WAITLIST": "waitlist", "BOOKED": "booked",
                 "STARTED": "checked-in", "COMPLETE": "fulfilled", "CANCELLED": "cancelled",
                 "DELETED": "entered-in-error", "NOSHOW": "noshow"}
#: Table 0278 → participant status (1..1 in R4): a resource confirmed, tentatively held,
#: or released.
PARTICIPANT_STATUS = {"BOOKED": "accepted", "STARTED": "accepted", "COMPLETE": "accepted",
                      "PENDING": "tentative", "WAITLIST": "tentative",
                      "OVERBOOK": "tentative", "CANCELLED": "declined",
                      "DELETED": "declined", "DISCONTINUED": "declined",
                      "NOSHOW": "declined", "BLOCKED": "declined"}
#: Table 0276 (appointment reason) codes: R4 binds appointmentType to this table.
APPOINTMENT_TYPES = {"CHECKUP": "A routine check-up, such as an annual physical",
                     "EMERGENCY": "Emergency appointment",
                     "FOLLOWUP": "A follow up visit from a previous appointment",
                     "ROUTINE": "Routine appointment - default if not valued",
                     "WALKIN": "A previously unscheduled walk-in visit"}
#: Duration units (SCH-10, AIx duration units) → minutes per unit.
MINUTES_PER = {"MIN": 1.0, "MINUTES": 1.0, "M": 1.0, "S": 1 / 60, "SEC": 1 / 60,
               "SECONDS": 1 / 60, "H": 60.0, "HR": 60.0, "HOURS": 60.0, "D": 1440.0}

#: What each mapped field becomes (the field-accounting test reads this).
MAPPED = {
    "SCH-1": "identifier (placer appointment id, PLAC)",
    "SCH-2": "identifier (filler appointment id, FILL), and the clinic's appointment id "
             "(<clinic>/appointment) — the conditional-update key",
    "SCH-5": "identifier (placer group number)",
    "SCH-6": "comment (the event reason, as sent)",
    "SCH-7": "appointmentType when a table 0276 code, else reasonCode",
    "SCH-9": "minutesDuration (with SCH-10 units)", "SCH-10": "minutesDuration units",
    "SCH-11": "start/end (TQ-4/TQ-5) when no TQ1",
    "SCH-25": "status (table 0278) unless the trigger decides it",
    "SCH-26": "basedOn (placer order, by identifier)",
    "SCH-27": "basedOn (filler order, by identifier)",
    "TQ1-7": "start", "TQ1-8": "end",
    "NTE-3": "comment",
    "PID": "participant (patient); the US Core Patient from PID (mafhir.hl7v2.patient, "
           "field by field in .adt.MAPPED)",
    "DG1-3": "reasonCode",
    "AIS-3": "serviceType", "AIS-4": "start when no TQ1/SCH-11",
    "AIS-7": "end (start + duration) when no TQ1/SCH-11", "AIS-8": "duration units",
    "AIG-3": "participant.actor (Device, by identifier)", "AIG-4": "participant.type",
    "AIL-3": "participant.actor (Location)", "AIL-4": "participant.type",
    "AIP-3": "participant.actor (Practitioner)", "AIP-4": "participant.type",
    "AIG-14": "participant.status", "AIL-12": "participant.status",
    "AIP-12": "participant.status",
}
#: Fields of the SIU left out, and why (nothing silently: the message stays in the store).
NOT_MAPPED = {
    "SCH-3": "occurrence number: the series position has no R4 Appointment element",
    "SCH-4": "placer group number: kept only through SCH-5's group identifier",
    "SCH-8": "appointment type, HL7 table 0277 (Normal/Tentative/Complete): R4 binds "
             "appointmentType to table 0276 instead",
    "SCH-12": "placer contact person: scheduling staff, not a participant of the visit",
    "SCH-13": "placer contact phone", "SCH-14": "placer contact address",
    "SCH-15": "placer contact location",
    "SCH-16": "filler contact person: scheduling staff, not a participant of the visit",
    "SCH-17": "filler contact phone", "SCH-18": "filler contact address",
    "SCH-19": "filler contact location",
    "SCH-20": "entered-by person: who typed it, not who takes part",
    "SCH-21": "entered-by phone", "SCH-22": "entered-by location",
    "SCH-23": "parent placer appointment id: series links are not kept",
    "SCH-24": "parent filler appointment id: series links are not kept",
    "TQ1-1": "set id", "TQ1-9": "priority: SIU scheduling priority has no R4 element",
    "TQ1-2": "quantity", "TQ1-3": "repeat pattern: each SIU is one appointment",
    "NTE-1": "set id", "NTE-2": "source of comment",
    "PV1": "the visit itself comes from the ADT feed (A01/A03/A04 → Encounter)",
    "PV2": "visit details come from the ADT feed",
    "OBX": "observations come from the results feed, not the schedule",
    "DG1": "only DG1-3 (the diagnosis code) is kept, as reasonCode",
    "RGS": "resource group: its resources are kept as participants",
    "AIS-1": "set id", "AIS-2": "segment action code (A/U/D): the whole state is sent",
    "AIS-5": "start offset", "AIS-6": "start offset units",
    "AIS-10": "service filler status: the Appointment's status comes from SCH-25",
    "AIS-11": "placer supplemental service information",
    "AIS-12": "filler supplemental service information",
    "AIG-1": "set id", "AIG-2": "segment action code",
    "AIG-8": "resource start time: the appointment's start is SCH/TQ1's",
    "AIG-11": "resource duration", "AIG-12": "resource duration units",
    "AIL-1": "set id", "AIL-2": "segment action code",
    "AIL-6": "location start time", "AIL-9": "location duration",
    "AIL-10": "location duration units",
    "AIP-1": "set id", "AIP-2": "segment action code",
    "AIP-6": "personnel start time", "AIP-9": "personnel duration",
    "AIP-10": "personnel duration units",
}


def appointment_key(msg: Message, ctx: V2Context) -> tuple[JSON, list[JSON]]:
    """The conditional update's key and every appointment identifier; InputError naming
    SCH-1 when there is no id at all (an appointment nobody can find again must not be
    written).

    One appointment identity: the EHR that sends the schedule fills it, so its filler id
    (SCH-2) **is** the clinic's appointment id — written as ``<clinic>/appointment|SCH-2``
    too, the identifier the appointment and reminder task kinds use, and the key. A
    reminder's reply for appointment ``36996`` therefore moves the Appointment the SIU
    booked, and an SIU for an appointment an ``appointment`` task booked under that id
    updates it instead of adding a second. With no SCH-2 the key is the placer id (SCH-1,
    the id of whoever asked for the appointment, which may collide with the clinic's own
    ids): such an appointment has no clinic appointment id."""
    sch = msg.first("SCH")
    if sch is None:
        raise InputError([Problem("SCH", "the SCH segment is missing", "required")])
    # the clinic's own namespace, not the sender-quoted one: a key's system must survive
    # URL escaping unchanged (``%`` in a system is escaped one way and matched another)
    own = f"{ctx.map.clinic.system}/v2/appointment"
    idents: list[JSON] = []
    for n, kind in ((2, "FILL"), (1, "PLAC")):
        value = sch.v(n)
        if value.c(1):
            ident = ei_identifier(value, f"{own}/{kind.lower()}", kind)
            if ident:
                idents.append(ident)
    if not idents:
        raise InputError([Problem("SCH-1", "the appointment id is missing (SCH-1 placer "
                                           "appointment id or SCH-2 filler appointment id)",
                                  "required")])
    if idents[0]["type"]["coding"][0]["code"] == "FILL":
        idents.insert(0, identifier(ctx.map.clinic.task_system("appointment"),
                                    idents[0]["value"]))
    group = sch.v(5)
    if group.c(1):
        ident = ei_identifier(group, f"{own}/group")
        if ident:
            idents.append(ident)
    return idents[0], idents


def _minutes(amount: str, units: Value, where: str, warnings: list[Problem]) -> int | None:
    if not amount:
        return None
    unit = (units.c(1) or units.c(2) or "min").strip().upper()
    per = MINUTES_PER.get(unit)
    try:
        number = float(amount)
    except ValueError:
        warnings.append(Problem(where, "the duration is not a number; not mapped", "value"))
        return None
    if per is None:
        warnings.append(Problem(where, "the duration unit is not one of minutes, seconds, "
                                       "hours or days; not mapped", "code-invalid"))
        return None
    minutes = number * per
    if minutes < 1 or minutes != int(minutes):
        warnings.append(Problem(where, "the duration is not a whole number of minutes; "
                                       "not mapped", "value"))
        return None
    return int(minutes)


def _status_of(trigger: str, sch: Segment) -> str:
    if trigger in EVENT_STATUS:
        return EVENT_STATUS[trigger]
    return FILLER_STATUS.get(sch.get(25).strip().upper(), "booked")


def _participant(actor: JSON, role: Value, status: Value) -> JSON:
    out: JSON = {}
    kind = codeable(role)
    if kind:
        out["type"] = [kind]
    out["actor"] = actor
    out["required"] = "required"
    out["status"] = PARTICIPANT_STATUS.get(status.c(1).strip().upper(), "accepted")
    return out


def _times(reader: Reader, msg: Message, sch: Segment, warnings: list[Problem]
           ) -> tuple[str | None, str | None]:
    """(start, end): TQ1-7/8, else SCH-11.4/.5, else the first AIS start and duration."""
    tq1 = msg.first("TQ1")
    if tq1 is not None and tq1.get(7):
        return (reader.instant(tq1.get(7), tq1.where(7)),
                reader.instant(tq1.get(8), tq1.where(8)) if tq1.get(8) else None)
    if sch.get(11, 4):
        return (reader.instant(sch.get(11, 4), sch.where(11, 4)),
                reader.instant(sch.get(11, 5), sch.where(11, 5)) if sch.get(11, 5) else None)
    for ais in msg.all("AIS"):
        if ais.get(4):
            start = reader.instant(ais.get(4), ais.where(4))
            minutes = _minutes(ais.get(7), ais.v(8), ais.where(7), warnings)
            if start and minutes:
                end = datetime.fromisoformat(start) + timedelta(minutes=minutes)
                return start, end.isoformat()
            return start, None
    return None, None


def siu_to_fhir(msg: Message, ctx: V2Context) -> JSON | Converted:
    """The transaction Bundle of one SIU: the Patient (conditional create, from PID) and
    the Appointment (conditional update on the EHR's appointment id)."""
    _, idents = appointment_key(msg, ctx)
    reader = Reader(msg, ctx)
    sch = msg.first("SCH")
    assert sch is not None
    trigger = msg.msh.get(9, 2).upper()
    entries: list[Entry] = []
    participants: list[JSON] = []
    if msg.first("PID") is not None:
        patient = reader.patient()
        if reader.patient_entry is not None:
            entries.append(reader.patient_entry)
        participants.append({"actor": patient, "required": "required",
                             "status": "declined" if trigger in ("S15", "S26")
                             else "accepted"})
    warnings: list[Problem] = []
    appt: JSON = {"resourceType": "Appointment", "identifier": idents,
                  "status": _status_of(trigger, sch)}
    reason = sch.v(7)
    reasons: list[JSON] = []
    if reason.c(1).strip().upper() in APPOINTMENT_TYPES:
        code = reason.c(1).strip().upper()
        appt["appointmentType"] = {"coding": [coding(V2_0276, code, APPOINTMENT_TYPES[code])]}
    elif (concept := codeable(reason)) is not None:
        reasons.append(concept)
    for dg1 in msg.all("DG1"):
        if (concept := codeable(dg1.v(3))) is not None:
            reasons.append(concept)
    services = [c for ais in msg.all("AIS") if (c := codeable(ais.v(3))) is not None]
    if services:
        appt["serviceType"] = services
    if reasons:
        appt["reasonCode"] = reasons
    start, end = _times(reader, msg, sch, warnings)
    if start and end:
        appt["start"], appt["end"] = start, end
    elif start or end:  # R4 app-2: both or neither; kept as the period asked for
        appt["requestedPeriod"] = [{k: v for k, v in (("start", start), ("end", end)) if v}]
        warnings.append(Problem(sch.where(11), "the appointment has a start but no end "
                                               "(nor a duration to reach it); kept as "
                                               "requestedPeriod", "incomplete"))
    minutes = _minutes(sch.get(9), sch.v(10), sch.where(9), warnings)
    if minutes:
        appt["minutesDuration"] = minutes
    notes = [n.text(3) for n in msg.all("NTE") if n.text(3)]
    event_reason = readable(sch.v(6))
    comment = "\n".join(([f"Event reason: {event_reason}"] if event_reason else []) + notes)
    if comment:
        appt["comment"] = comment
    own = sender_system(ctx.map.clinic.system, msg.sender_name, "order")
    based = []
    for n, kind in ((26, "PLAC"), (27, "FILL")):
        if sch.get(n):
            ident = ei_identifier(sch.v(n), f"{own}/{kind.lower()}", kind)
            if ident:
                based.append({"type": "ServiceRequest", "identifier": ident})
    if based:
        appt["basedOn"] = based
    resources = sender_system(ctx.map.clinic.system, msg.sender_name, "resource")
    for aig in msg.all("AIG"):
        res = aig.v(3)
        if res.c(1) or res.c(2):
            actor: JSON = {"type": "Device", "display": res.c(2) or res.c(1)}
            if res.c(1):
                actor["identifier"] = {"system": resources, "value": res.c(1)}
            participants.append(_participant(actor, aig.v(4), aig.v(14)))
    for ail in msg.all("AIL"):
        place = ail.v(3)
        if readable(place):
            participants.append(_participant({"type": "Location", "display": readable(place)},
                                             ail.v(4), ail.v(12)))
    for aip in msg.all("AIP"):
        person = reader.clinician(aip.v(3), aip.where(3))
        if person:
            participants.append(_participant({"type": "Practitioner", **person},
                                             aip.v(4), aip.v(12)))
    if not participants:  # R4: 1..*
        reader.problems.append(Problem("AIP", "the appointment names no patient (PID) nor "
                                              "any resource (AIS/AIG/AIL/AIP)", "required"))
    appt["participant"] = participants
    reader.warnings.extend(warnings)
    entries.append(update(appt))
    return reader.finish(transaction(entries))
