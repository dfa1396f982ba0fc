"""The follow_up task kind → one FHIR Task (base R4; US Core has no Task profile).

Task (mapping reference §11): ``identifier`` ``<clinic>/follow-up`` = the task id (a
conditional PUT: each step replaces the last); ``status`` the follow-up's status;
``intent`` order; ``code`` the mafhir code ``follow-up``; ``priority``; ``focus`` what it
is about (by business identifier); ``for`` the patient; ``authoredOn`` = created;
``lastModified`` = ``at`` (else created: inv-1 holds, the model refuses ``at`` before
``created``); ``owner``; ``restriction.period.end`` = due; ``reasonCode``; ``basedOn`` the
phone call's Communication when a call left it; ``output`` the outcome when completed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..bundle import Entry, update
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_datetime, identifier, parse_fhir_datetime, reference
from ..hookspecs import hookimpl
from ..identity import identifier_from_reference, identifier_query
from ..registry import Lifecycle, Mapper
from ..resourceset import ResourceSet
from ..tasks.base import TaskModel
from ..tasks.follow_up import FollowUpTask, follow_up_step
from .appointment import _concept, _concept_from
from .common import patient_refs, practitioner_entry
from .outreach import item_from_reference, item_reference, once, patient_of, practitioner_of

__all__ = ["FOLLOW_UP_CODE", "LIFECYCLE", "OUTCOME", "follow_up_entries", "follow_up_task",
           "from_fhir", "is_follow_up",
           "register_mappers", "to_fhir"]

JSON = dict[str, Any]

FOLLOW_UP_CODE = codeable(coding("urn:mafhir:task-code", "follow-up", "Follow-up call or action"))
#: Task.output[].type of the outcome.
OUTCOME = codeable(coding("urn:mafhir:task-output", "outcome", "Outcome"))


def follow_up_task(task: FollowUpTask, ctx: MapContext, patient: JSON,
                   owner: JSON | None) -> JSON:
    """The FHIR Task of one follow-up (also written for a phone call's follow-up)."""
    res: JSON = {
        "resourceType": "Task",
        "identifier": [identifier(ctx.clinic.task_system("follow-up"), task.id)],
        "status": task.status,
        "intent": "order",
        "priority": task.priority,
        "code": FOLLOW_UP_CODE,
    }
    if task.call:
        res["basedOn"] = [reference("Communication?" + identifier_query(
            ctx.clinic.task_system("phone-call"), task.call))]
    if task.focus is not None:
        res["focus"] = item_reference(task.focus, ctx)
    res["for"] = patient
    res["authoredOn"] = fhir_datetime(task.created)
    res["lastModified"] = fhir_datetime(task.at or task.created)
    if owner is not None:
        res["owner"] = owner
    res["reasonCode"] = _concept(task.reason)
    res["restriction"] = {"period": {"end": fhir_datetime(task.due)}}
    if task.outcome is not None:
        res["output"] = [{"type": OUTCOME, "valueString": task.outcome}]
    return res


def follow_up_entries(task: FollowUpTask, ctx: MapContext, patient: JSON,
                      write: Callable[[JSON], Entry] = update) -> list[Entry]:
    """The owner (when there is one) and the Task, written with ``write`` (a phone call's
    follow-up is a conditional create: resending the call must not undo later steps)."""
    entries: list[Entry] = []
    owner = None
    if task.owner is not None:
        p = practitioner_entry(task.owner)
        entries.extend(p.entries)
        owner = p.ref
    entries.append(write(follow_up_task(task, ctx, patient, owner)))
    return entries


def to_fhir(task: FollowUpTask, ctx: MapContext) -> list[Entry]:
    """The Task, as a conditional PUT on its identifier (plus the people it names)."""
    if not isinstance(task, FollowUpTask):
        raise TypeError(f"not a follow_up task: {type(task).__name__}")
    pat = patient_refs(task.patient, ctx)
    return once([*pat.entries, *follow_up_entries(task, ctx, pat.ref)])


def _read(res: JSON, resources: ResourceSet, where: str) -> FollowUpTask:
    ident = next(i for i in res["identifier"] if str(i.get("system", "")).endswith("/follow-up"))
    data: JSON = {"task": "follow_up", "id": ident["value"], "status": res["status"],
                  "patient": patient_of(res.get("for"), resources),
                  "created": parse_fhir_datetime(res["authoredOn"]),
                  "priority": res.get("priority", "routine")}
    period = (res.get("restriction") or {}).get("period") or {}
    if not period.get("end"):
        raise ValueError(f"{where} has no restriction.period.end (the due date)")
    data["due"] = parse_fhir_datetime(period["end"])
    reason = _concept_from(res.get("reasonCode"))
    if reason is None:
        raise ValueError(f"{where} has no reasonCode")
    data["reason"] = reason
    focus = item_from_reference(res.get("focus"), resources)
    if focus is not None:
        data["focus"] = focus
    owner = practitioner_of(res.get("owner"), resources)
    if owner is not None:
        data["owner"] = owner
    for ref in res.get("basedOn", []):
        call = _call_of(ref, resources)
        if call is not None:
            data["call"] = call
    if res["status"] != "requested" and res.get("lastModified"):
        data["at"] = parse_fhir_datetime(res["lastModified"])
    for out in res.get("output", []):
        if out.get("valueString") is not None:
            data["outcome"] = out["valueString"]
    return FollowUpTask.model_validate(data)


def _call_of(ref: Any, resources: ResourceSet) -> str | None:
    """The phone call a ``basedOn`` names: by identifier, or the Communication in the set."""
    parsed = identifier_from_reference(str((ref or {}).get("reference", "")))
    if parsed is None:
        target = resources.resolve(ref) or {}
        parsed = next((("Communication", str(i.get("system", "")), str(i.get("value")))
                       for i in target.get("identifier", [])
                       if target.get("resourceType") == "Communication"), None)
    if parsed and parsed[0] == "Communication" and parsed[1].endswith("/phone-call"):
        return parsed[2]
    return None


def is_follow_up(res: JSON) -> bool:
    return any(str(i.get("system", "")).endswith("/follow-up") for i in res.get("identifier", []))


def from_fhir(resources: ResourceSet) -> list[TaskModel]:
    """One follow_up per Task with a ``…/follow-up`` identifier in a status of the kind."""
    out: list[TaskModel] = []
    for i, res in enumerate(resources.of_type("Task")):
        if is_follow_up(res) and res.get("status") in ("requested", "in-progress",
                                                        "completed", "cancelled"):
            out.append(_read(res, resources, f"Task[{i}]"))
    return out


def _key(task: TaskModel) -> str:
    return task.id


LIFECYCLE = Lifecycle(key=_key, step=follow_up_step)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("follow_up", FollowUpTask, to_fhir, from_fhir,
                    "a call or action the MA owes (result call-back, referral, prior "
                    "authorization, refill) → Task, requested → in-progress → completed",
                    lifecycle=LIFECYCLE))
