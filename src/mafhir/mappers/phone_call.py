"""The phone_call task kind → a Communication (base R4), and a follow-up Task when the call
leaves one.

Communication: ``identifier`` ``<clinic>/phone-call`` = the task id (conditional create:
a call happened once); ``status`` completed (reached, voicemail left) or not-done (no
answer, wrong number), the outcome in ``statusReason``; ``category`` who the other party
was; ``medium`` v3-ParticipationMode PHONE; ``topic`` mafhir's topic, with the
communication-topic code where one fits (result → report-labs, refill →
prescription-refill-request, triage → phone-consult); ``about`` the appointment / result /
order by identifier; ``sent`` (outbound) or ``received`` (inbound) = the call time;
``sender``/``recipient`` the clinic side (the MA, else the clinic) and the other party
(the Patient, or a RelatedPerson/Organization by name); ``payload`` what was said. A
voicemail's payload is only a call-back request with the clinic's name and phone: no
clinical details.

The follow-up is the follow_up kind's Task (id ``<call id>.follow-up``, ``basedOn`` this
Communication), written with a conditional *create*: sending the call again must not undo
a later step of the follow-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..bundle import Entry, create
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_datetime, identifier, parse_fhir_datetime
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.base import TaskModel
from ..tasks.follow_up import FollowUpTask
from ..tasks.phone_call import CallFollowUp, PhoneCallTask
from .follow_up import follow_up_entries
from .follow_up import from_fhir as follow_ups_from_fhir
from .outreach import (
    CALL_OUTCOME,
    CALL_PARTY,
    CALL_TOPIC,
    COMMUNICATION_TOPIC,
    PARTICIPATION_MODE,
    item_from_reference,
    item_reference,
    once,
    patient_of,
    practitioner_of,
)

__all__ = ["follow_up_of", "from_fhir", "register_mappers", "to_fhir", "voicemail_text"]

JSON = dict[str, Any]

PHONE = codeable(coding(PARTICIPATION_MODE, "PHONE", "telephone"))
TOPIC_DISPLAY = {"appointment": "Appointment", "refill": "Prescription refill",
                 "result": "Test result", "billing": "Billing", "triage": "Symptom triage"}
STANDARD_TOPIC = {"result": ("report-labs", "Report Labs"),
                  "refill": ("prescription-refill-request", "Prescription Refill Request"),
                  "triage": ("phone-consult", "Phone Consult")}
OUTCOME_DISPLAY = {"reached": "Reached", "voicemail": "Voicemail left",
                   "no_answer": "No answer", "wrong_number": "Wrong number"}
PARTY_DISPLAY = {"patient": "Patient", "guardian": "Guardian", "pharmacy": "Pharmacy",
                 "lab": "Laboratory", "payer": "Payer"}
PARTY_TYPE = {"guardian": "RelatedPerson", "pharmacy": "Organization", "lab": "Organization",
              "payer": "Organization"}


def voicemail_text(ctx: MapContext) -> str:
    """What a voicemail says: who called and the number to call back, nothing clinical."""
    phone = f" at {ctx.clinic.phone}" if ctx.clinic.phone else ""
    return f"This is {ctx.clinic.name}. Please call us back{phone}."


def follow_up_of(task: PhoneCallTask) -> FollowUpTask | None:
    """The follow_up the call leaves, as the follow_up kind would take it."""
    f = task.follow_up
    if f is None:
        return None
    return FollowUpTask(task="follow_up", id=f"{task.id[:54]}.follow-up", patient=task.patient,
                        created=task.at, due=f.due, reason=f.reason, owner=f.owner,
                        priority=f.priority, call=task.id,
                        focus=task.about[0] if task.about else None)


def _party(task: PhoneCallTask, patient: JSON) -> JSON:
    if task.party == "patient":
        return patient
    return {"type": PARTY_TYPE[task.party], "display": task.party_name or
            PARTY_DISPLAY[task.party]}


def to_fhir(task: PhoneCallTask, ctx: MapContext) -> list[Entry]:
    """The Communication (conditional create), the people it names, the follow-up Task."""
    if not isinstance(task, PhoneCallTask):
        raise TypeError(f"not a phone_call task: {type(task).__name__}")
    from .common import organization_entry, patient_refs, practitioner_entry

    pat = patient_refs(task.patient, ctx)
    entries: list[Entry] = list(pat.entries)
    by = practitioner_entry(task.by) if task.by is not None else organization_entry(ctx.clinic)
    entries.extend(by.entries)
    topic = [coding(CALL_TOPIC, task.topic, TOPIC_DISPLAY[task.topic])]
    if task.topic in STANDARD_TOPIC:
        topic.append(coding(COMMUNICATION_TOPIC, *STANDARD_TOPIC[task.topic]))
    done = task.outcome in ("reached", "voicemail")
    res: JSON = {
        "resourceType": "Communication",
        "identifier": [identifier(ctx.clinic.task_system("phone-call"), task.id)],
        "status": "completed" if done else "not-done",
        "statusReason": codeable(coding(CALL_OUTCOME, task.outcome,
                                        OUTCOME_DISPLAY[task.outcome])),
        "category": [codeable(coding(CALL_PARTY, task.party, PARTY_DISPLAY[task.party]))],
        "medium": [PHONE],
        "subject": pat.ref,
        "topic": codeable(*topic),
    }
    if task.about:
        res["about"] = [item_reference(a, ctx) for a in task.about]
    other = _party(task, pat.ref)
    if task.direction == "outbound":
        res["sent"] = fhir_datetime(task.at)
        res["recipient"], res["sender"] = [other], by.ref
    else:
        res["received"] = fhir_datetime(task.at)
        res["recipient"], res["sender"] = [by.ref], other
    if task.outcome == "voicemail":
        res["payload"] = [{"contentString": voicemail_text(ctx)}]
    elif task.message is not None:
        res["payload"] = [{"contentString": task.message}]
    entries.append(create(res))
    follow = follow_up_of(task)
    if follow is not None:
        entries.extend(follow_up_entries(follow, ctx, pat.ref, create))
    return once(entries)


def _code(concept: Any, system: str) -> str | None:
    for c in (concept or {}).get("coding", []):
        if c.get("system") == system:
            return str(c.get("code"))
    return None


def _read(res: JSON, resources: ResourceSet, follow: dict[str, FollowUpTask],
          where: str) -> PhoneCallTask:
    ident = next(i for i in res["identifier"]
                 if str(i.get("system", "")).endswith("/phone-call"))
    outbound = bool(res.get("sent"))
    party = _code((res.get("category") or [None])[0], CALL_PARTY) or "patient"
    outcome = _code(res.get("statusReason"), CALL_OUTCOME)
    topic = _code(res.get("topic"), CALL_TOPIC)
    if outcome is None or topic is None:
        raise ValueError(f"{where}: no mafhir call outcome (statusReason) or topic")
    other = (res.get("recipient") or [None])[0] if outbound else res.get("sender")
    ours = res.get("sender") if outbound else (res.get("recipient") or [None])[0]
    data: JSON = {"task": "phone_call", "id": ident["value"],
                  "patient": patient_of(res.get("subject"), resources),
                  "direction": "outbound" if outbound else "inbound", "party": party,
                  "topic": topic, "outcome": outcome,
                  "at": parse_fhir_datetime(res["sent"] if outbound else res["received"])}
    if party != "patient" and isinstance(other, dict) and \
            other.get("display") not in (None, PARTY_DISPLAY.get(party)):
        data["party_name"] = other["display"]
    about = [item_from_reference(a, resources) for a in res.get("about", [])]
    if any(a is None for a in about):
        raise ValueError(f"{where}: an 'about' reference names no appointment, result, "
                         "order, referral, prior authorization or prescription")
    data["about"] = about
    by = practitioner_of(ours, resources)
    if by is not None:
        data["by"] = by
    if outcome != "voicemail":
        for p in res.get("payload", []):
            if p.get("contentString"):
                data["message"] = p["contentString"]
    f = follow.get(ident["value"])
    if f is not None:
        data["follow_up"] = CallFollowUp(due=f.due, reason=f.reason, owner=f.owner,
                                         priority=f.priority)
    return PhoneCallTask.model_validate(data)


def from_fhir(resources: ResourceSet) -> list[TaskModel]:
    """One phone_call per Communication with a ``…/phone-call`` identifier (its follow-up
    read from the Task based on it, when that is in the set)."""
    follow: dict[str, FollowUpTask] = {}
    for f in follow_ups_from_fhir(resources):
        if isinstance(f, FollowUpTask) and f.call is not None and f.status == "requested":
            follow[f.call] = f
    out: list[TaskModel] = []
    for i, res in enumerate(resources.of_type("Communication")):
        if any(str(x.get("system", "")).endswith("/phone-call")
               for x in res.get("identifier", [])):
            out.append(_read(res, resources, follow, f"Communication[{i}]"))
    return out


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("phone_call", PhoneCallTask, to_fhir, from_fhir,
                    "a call made or taken (with whom, about what, outcome) → Communication, "
                    "+ a follow-up Task when one is needed"))
