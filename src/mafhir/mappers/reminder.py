"""The reminder task kind → CommunicationRequest, its Communication when sent, the reply's
Communication and the Appointment the reply moves (base R4; US Core has no profile for
these).

CommunicationRequest: ``identifier`` ``<clinic>/reminder`` = the task id (conditional
PUT: it goes from active to completed when sent); ``status`` active, completed once sent;
``category`` reminder; ``priority`` routine; ``medium`` v3-ParticipationMode (sms →
SMSWRIT, unverified in the R4 package — mapping reference §11; phone → PHONE; email →
EMAILWRIT; mail → MAILWRIT; portal → ONLINEWRIT); ``subject`` and ``recipient`` the
patient; ``sender`` the clinic; ``occurrenceDateTime`` when it is to go out;
``reasonCode`` the purpose; ``about`` the appointment; ``payload`` the text; the address
in the extension ``urn:mafhir:extension:reminder-address`` (a ContactPoint), and the
appointment's start in ``urn:mafhir:extension:appointment-start`` so the task can be read
back without the Appointment.

The text never carries clinical details: "Reminder from <clinic>: you have an
appointment at <time> on <date>. …" — no service, reason, clinician or place — and a
recall only asks the patient to call and book.

Sent: a Communication (``<clinic>/reminder-sent``) ``basedOn`` the request, ``status``
completed, ``sent``. Reply: a Communication (``<clinic>/reminder-reply``)
``inResponseTo`` the sent one, ``received``, the reply in ``reasonCode``; and the
Appointment as the appointment kind writes it for ``confirm`` / ``cancel`` (reason
``pat-crs``), through the appointment lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .. import systems
from ..bundle import Entry, create, update
from ..context import MapContext
from ..fhirtypes import (
    codeable,
    coding,
    fhir_date,
    fhir_datetime,
    identifier,
    parse_fhir_datetime,
    reference,
)
from ..hookspecs import hookimpl
from ..identity import identifier_from_reference, identifier_query
from ..patch import patch
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.appointment import CANCEL_REASONS
from ..tasks.base import TaskModel
from ..tasks.reminder import APPOINTMENT_PURPOSES, ReminderTask
from . import appointment as appointment_mapper
from .common import organization_entry, patient_refs
from .outreach import (
    COMMUNICATION_CATEGORY,
    COMMUNICATION_TOPIC,
    PARTICIPATION_MODE,
    REMINDER_ADDRESS,
    REMINDER_PURPOSE,
    REMINDER_REPLY,
    once,
    patient_of,
)

__all__ = ["APPOINTMENT_START", "MEDIUM", "from_fhir", "message_text", "register_mappers",
           "to_fhir"]

JSON = dict[str, Any]

APPOINTMENT_START = "urn:mafhir:extension:appointment-start"
#: channel → v3-ParticipationMode (code, display)
MEDIUM = {"sms": ("SMSWRIT", "SMS message"), "phone": ("PHONE", "telephone"),
          "email": ("EMAILWRIT", "email"), "mail": ("MAILWRIT", "mail"),
          "portal": ("ONLINEWRIT", "online written")}
CHANNEL_OF = {code: channel for channel, (code, _) in MEDIUM.items()}
PURPOSE_DISPLAY = {"appointment_confirmation": "Appointment confirmation",
                   "appointment_reminder": "Appointment reminder",
                   "recall_annual_exam": "Recall: annual exam",
                   "recall_vaccine": "Recall: vaccine due", "recall_lab": "Recall: lab due"}
REPLY_DISPLAY = {"confirmed": "Confirmed", "cancel_requested": "Cancel requested"}
REMINDER_CATEGORY = codeable(coding(COMMUNICATION_CATEGORY, "reminder", "Reminder"))
APPOINTMENT_TOPIC = codeable(coding(COMMUNICATION_TOPIC, "appointment-reminder",
                                    "Appointment Reminder"))


def _when(at: datetime) -> tuple[str, str]:
    """("9:30 AM", "Friday, December 4, 2026") in the appointment's own offset."""
    hour = at.hour % 12 or 12
    return (f"{hour}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}",
            f"{at.strftime('%A, %B')} {at.day}, {at.year}")


def message_text(task: ReminderTask, ctx: MapContext) -> str:
    """The text the patient gets: when and who, never what for."""
    clinic = ctx.clinic.name
    call = f" Call {ctx.clinic.phone}" if ctx.clinic.phone else " Call us"
    if task.appointment is not None:
        time, day = _when(task.appointment.start)
        ask = (" Reply C to confirm or X to cancel." if task.purpose ==
               "appointment_confirmation" else f"{call} to change it.")
        return f"Reminder from {clinic}: you have an appointment at {time} on {day}.{ask}"
    return f"{clinic}: it is time to schedule a visit.{call} to book."


def _ids(ctx: MapContext, task: ReminderTask, what: str) -> JSON:
    return identifier(ctx.clinic.task_system(what), task.id)


def _ref(ctx: MapContext, rtype: str, what: str, task_id: str) -> JSON:
    return reference(f"{rtype}?{identifier_query(ctx.clinic.task_system(what), task_id)}")


def _address(task: ReminderTask) -> JSON | None:
    if task.to is None:
        return None
    system = "email" if task.channel == "email" else "phone"
    return {"url": REMINDER_ADDRESS, "valueContactPoint": {"system": system, "value": task.to}}


def to_fhir(task: ReminderTask, ctx: MapContext) -> list[Entry]:
    """The request (conditional PUT), its sent Communication and the reply (conditional
    creates), and the Appointment a reply changes."""
    if not isinstance(task, ReminderTask):
        raise TypeError(f"not a reminder task: {type(task).__name__}")
    pat = patient_refs(task.patient, ctx)
    org = organization_entry(ctx.clinic)
    entries: list[Entry] = [*pat.entries, *org.entries]
    appt_ref = None
    if task.appointment is not None:
        appt_ref = _ref(ctx, "Appointment", "appointment", task.appointment.id)
    code, display = MEDIUM[task.channel]
    medium = [codeable(coding(PARTICIPATION_MODE, code, display))]
    text = message_text(task, ctx)
    extension = [x for x in (_address(task),) if x is not None]
    if task.appointment is not None:
        extension.append({"url": APPOINTMENT_START,
                          "valueDateTime": fhir_datetime(task.appointment.start)})
    request: JSON = {"resourceType": "CommunicationRequest"}
    if extension:
        request["extension"] = extension
    request.update({
        "identifier": [_ids(ctx, task, "reminder")],
        "status": "completed" if task.sent else "active",
        "category": [REMINDER_CATEGORY],
        "priority": "routine",
        "medium": medium,
        "subject": pat.ref,
        "payload": [{"contentString": text}],
        "occurrenceDateTime": fhir_datetime(task.scheduled),
        "recipient": [pat.ref],
        "sender": org.ref,
        "reasonCode": [codeable(coding(REMINDER_PURPOSE, task.purpose,
                                       PURPOSE_DISPLAY[task.purpose]))],
    })
    if task.due is not None:
        request["note"] = [{"text": f"due {fhir_date(task.due)}"}]
    if appt_ref is not None:
        request["about"] = [appt_ref]
    entries.append(update(request))
    if task.sent is not None:
        sent: JSON = {"resourceType": "Communication",
                      "identifier": [_ids(ctx, task, "reminder-sent")],
                      "basedOn": [_ref(ctx, "CommunicationRequest", "reminder", task.id)],
                      "status": "completed", "category": [REMINDER_CATEGORY],
                      "medium": medium, "subject": pat.ref}
        if appt_ref is not None:
            sent["topic"] = APPOINTMENT_TOPIC
            sent["about"] = [appt_ref]
        sent.update({"sent": fhir_datetime(task.sent), "recipient": [pat.ref],
                     "sender": org.ref, "payload": [{"contentString": text}]})
        entries.append(create(sent))
    if task.reply is not None and task.replied_at is not None:
        reply: JSON = {"resourceType": "Communication",
                       "identifier": [_ids(ctx, task, "reminder-reply")],
                       "inResponseTo": [_ref(ctx, "Communication", "reminder-sent", task.id)],
                       "status": "completed", "medium": medium, "subject": pat.ref,
                       "about": [appt_ref], "received": fhir_datetime(task.replied_at),
                       "recipient": [org.ref], "sender": pat.ref,
                       "reasonCode": [codeable(coding(REMINDER_REPLY, task.reply,
                                                      REPLY_DISPLAY[task.reply]))]}
        entries.append(create(reply))
        assert task.appointment is not None
        entries.append(_status_change(task, ctx, task.appointment.id))
    return once(entries)


def _status_change(task: ReminderTask, ctx: MapContext, appointment_id: str) -> Entry:
    """The reply's change to the Appointment, and nothing else: a JSON Patch of its status
    (and cancelationReason ``pat-crs``) on the one with the clinic's appointment id —
    the Appointment the schedule (SIU) or an appointment task wrote keeps its
    participants, times, reason, slot and comments. ``test`` the status the reminder
    says it had, when it says (else the run's own state machine vouched for it)."""
    change = task.appointment_change()
    assert change is not None
    ops: list[JSON] = []
    if task.appointment is not None and task.appointment.status is not None:
        ops.append({"op": "test", "path": "/status", "value": task.appointment.status})
    ops.append({"op": "replace", "path": "/status",
                "value": appointment_mapper.STATUS[change.action]})
    if change.cancel_reason:
        ops.append({"op": "add", "path": "/cancelationReason", "value": codeable(coding(
            systems.APPOINTMENT_CANCEL_REASON, change.cancel_reason,
            CANCEL_REASONS[change.cancel_reason]))})
    return patch("Appointment", ctx.clinic.task_system("appointment"), appointment_id, ops)


# ------------------------------------------------------------------------------ reverse

def _ident(res: JSON, suffix: str) -> str | None:
    for i in res.get("identifier", []):
        if str(i.get("system", "")).endswith("/" + suffix) and i.get("value"):
            return str(i["value"])
    return None


def _ext(res: JSON, url: str) -> Any:
    return next((x for x in res.get("extension", []) if x.get("url") == url), None)


def _by_ident(resources: ResourceSet, rtype: str, suffix: str) -> dict[str, JSON]:
    return {v: r for r in resources.of_type(rtype) if (v := _ident(r, suffix)) is not None}


def _appointment(req: JSON, resources: ResourceSet, where: str) -> JSON | None:
    """The appointment as the task gives it: from the Appointment in the set when there,
    else its id and start (all a reminder without a reply writes)."""
    ref = (req.get("about") or [None])[0]
    if ref is None:
        return None
    target = resources.resolve(ref)
    parsed = identifier_from_reference(str(ref.get("reference", "")))
    if target is not None and target.get("resourceType") == "Appointment":
        try:
            a = appointment_mapper._task_from(target, resources, where + ".about")
        except ValueError:  # not readable as a task: its identifier and start will do
            a = None
        if a is not None and a.action in ("book", "confirm", "reschedule", "cancel"):
            out = a.model_dump(include={"start", "minutes", "end", "practitioner", "location",
                                        "service_type", "appointment_type", "reason"},
                               exclude_none=True)
            return {"id": a.appointment_id, **out}
        ident = next((i for i in target.get("identifier", [])
                      if str(i.get("system", "")).endswith("/appointment")), None)
        if ident is not None:
            parsed = ("Appointment", str(ident.get("system", "")), str(ident["value"]))
    start = _ext(req, APPOINTMENT_START)
    if parsed is None or start is None:
        raise ValueError(f"{where}: the appointment it is about is neither in the set nor "
                         "named by identifier with its start")
    return {"id": parsed[2], "start": start["valueDateTime"]}


def _read(req: JSON, resources: ResourceSet, sent: dict[str, JSON], replies: dict[str, JSON],
          where: str) -> ReminderTask:
    task_id = _ident(req, "reminder")
    assert task_id is not None
    purpose = next((c.get("code") for rc in req.get("reasonCode", [])
                    for c in rc.get("coding", []) if c.get("system") == REMINDER_PURPOSE), None)
    medium = next((c.get("code") for m in req.get("medium", []) for c in m.get("coding", [])
                   if c.get("system") == PARTICIPATION_MODE), None)
    if purpose is None or medium not in CHANNEL_OF:
        raise ValueError(f"{where}: no mafhir reminder purpose (reasonCode) or medium")
    data: JSON = {"task": "reminder", "id": task_id, "purpose": purpose,
                  "channel": CHANNEL_OF[str(medium)],
                  "patient": patient_of(req.get("subject"), resources),
                  "scheduled": parse_fhir_datetime(req["occurrenceDateTime"])}
    address = _ext(req, REMINDER_ADDRESS)
    if address is not None:
        data["to"] = address["valueContactPoint"]["value"]
    for note in req.get("note", []):
        if str(note.get("text", "")).startswith("due "):
            data["due"] = note["text"][4:]
    if purpose in APPOINTMENT_PURPOSES:
        data["appointment"] = _appointment(req, resources, where)
    s = sent.get(task_id)
    if s is not None:
        data["sent"] = parse_fhir_datetime(s["sent"])
    r = replies.get(task_id)
    if r is not None:
        data["reply"] = next(c.get("code") for rc in r.get("reasonCode", [])
                             for c in rc.get("coding", []) if c.get("system") == REMINDER_REPLY)
        data["replied_at"] = parse_fhir_datetime(r["received"])
        appt = data.get("appointment")
        if appt is not None:
            # the reply moved it from booked (confirm and cancel both start there when the
            # reminder went out); the Appointment keeps only the status it moved to
            data["appointment"] = {**appt, "status": "booked"}
    return ReminderTask.model_validate(data)


def from_fhir(resources: ResourceSet) -> list[TaskModel]:
    """One reminder per CommunicationRequest with a ``…/reminder`` identifier, with its
    sent Communication and reply when they are in the set."""
    sent = _by_ident(resources, "Communication", "reminder-sent")
    replies = _by_ident(resources, "Communication", "reminder-reply")
    out: list[TaskModel] = []
    for i, req in enumerate(resources.of_type("CommunicationRequest")):
        if _ident(req, "reminder") is not None:
            out.append(_read(req, resources, sent, replies, f"CommunicationRequest[{i}]"))
    return out


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("reminder", ReminderTask, to_fhir, from_fhir,
                    "appointment confirmations/reminders and recalls → CommunicationRequest, "
                    "its Communication when sent, the reply (moves the Appointment)",
                    lifecycle=appointment_mapper.LIFECYCLE))
