"""The appointment task kind: Appointment (base R4) and, from check-in on, US Core Encounter.

Both resources are written with a conditional PUT on their business identifier (system
``<clinic>/appointment`` resp. ``<clinic>/encounter``, value = the appointment id), so
each task replaces the earlier state and posting a Bundle twice changes nothing.

Appointment.status by action (mapping reference §4.1): book / confirm / reschedule →
``booked``; cancel → ``cancelled`` (+ cancelationReason); no_show → ``noshow`` (never a
cancelationReason: app-4, pitfall C4); check_in and start → ``checked-in``; complete →
``fulfilled``. Encounter.status: check_in → ``arrived`` (period.start = check-in),
start → ``in-progress``, complete → ``finished`` (period.end). Earlier Encounter states
are kept in ``statusHistory`` when their times are known.

Participants: the patient (``declined`` when the patient cancelled, i.e. a ``pat*``
reason), the practitioner (type ATND; ``declined`` on a ``prov*`` reason) and the
location; everyone else ``accepted``. The task's own id travels in ``meta.tag``
(system ``<clinic>/task``): tags relate a resource to the workflow that wrote it.

Reverse (``from_fhir``), Appointment.status → action: booked → book, arrived and
checked-in → check_in (start when the Encounter is ``in-progress``), fulfilled →
complete, cancelled → cancel, noshow → no_show. proposed, pending, waitlist and
entered-in-error have no action and are skipped. check_in / start / complete need the
Encounter that points at the Appointment (``Encounter.appointment``) in the set.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .. import systems
from ..bundle import Entry, update
from ..context import MapContext
from ..errors import InputError, Problem, TransitionError
from ..fhirtypes import codeable, coding, fhir_datetime, identifier, parse_fhir_datetime, reference
from ..hookspecs import hookimpl
from ..identity import identifier_query
from ..registry import Lifecycle, Mapper
from ..resourceset import ResourceSet
from ..tasks.appointment import (
    APPOINTMENT_TYPES,
    CANCEL_REASONS,
    AppointmentTask,
    CodedText,
    step,
)
from ..tasks.base import TaskModel
from ..tasks.common import PatientRef
from .common import (
    location_entry,
    location_from_fhir,
    organization_entry,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_ref,
)

__all__ = [
    "ACTION_BY_STATUS",
    "DEFAULT_ENCOUNTER_TYPE",
    "ENCOUNTER_STATUS",
    "LIFECYCLE",
    "STATUS",
    "from_fhir",
    "register_mappers",
    "to_fhir",
]

JSON = dict[str, Any]

#: action → Appointment.status
STATUS = {
    "book": "booked", "confirm": "booked", "reschedule": "booked", "cancel": "cancelled",
    "no_show": "noshow", "check_in": "checked-in", "start": "checked-in", "complete": "fulfilled",
}
#: action → Encounter.status (only the actions that write the Encounter)
ENCOUNTER_STATUS = {"check_in": "arrived", "start": "in-progress", "complete": "finished"}
#: Appointment.status → action, for reading back
ACTION_BY_STATUS = {
    "booked": "book", "arrived": "check_in", "checked-in": "check_in", "fulfilled": "complete",
    "cancelled": "cancel", "noshow": "no_show",
}

AMBULATORY = coding(systems.ACT_CODE, "AMB", "ambulatory")
ATTENDER = codeable(coding(systems.V3_PARTICIPATION_TYPE, "ATND", "attender"))
#: Encounter.type when the task gives none: the root of us-core-encounter-type
#: (SNOMED is-a 308335008), not an E/M level, which is only known after the visit.
DEFAULT_ENCOUNTER_TYPE = CodedText(system=systems.SNOMED, code="308335008",
                                   display="Patient encounter procedure", text="Office Visit")


def _concept(c: CodedText) -> JSON:
    if c.code:
        out: JSON = {"code": c.code}
        if c.system:
            out = {"system": c.system, **out}
        if c.display:
            out["display"] = c.display
        return codeable(out, text=c.text)
    return codeable(text=c.text)


def _concept_from(concept: Any) -> CodedText | None:
    if not isinstance(concept, dict):
        return None
    first = (concept.get("coding") or [{}])[0]
    if not (first.get("code") or concept.get("text")):
        return None
    return CodedText(system=first.get("system") if first.get("code") else None,
                     code=first.get("code"), display=first.get("display") if first.get("code")
                     else None, text=concept.get("text"))


def _participant(actor: JSON, status: str, type_: JSON | None = None) -> JSON:
    out: JSON = {}
    if type_:
        out["type"] = [type_]
    out.update({"actor": actor, "required": "required", "status": status})
    return out


def _appointment(task: AppointmentTask, ctx: MapContext, patient: JSON,
                 practitioner: JSON | None, location: JSON | None) -> JSON:
    reason_by = (task.cancel_reason or "").split("-")[0]
    res: JSON = {
        "resourceType": "Appointment",
        "meta": {"tag": [coding(ctx.clinic.task_system("task"), task.id)]},
        "identifier": [identifier(ctx.clinic.task_system("appointment"), task.appointment_id)],
        "status": STATUS[task.action],
    }
    if task.cancel_reason:
        res["cancelationReason"] = codeable(coding(systems.APPOINTMENT_CANCEL_REASON,
                                                   task.cancel_reason,
                                                   CANCEL_REASONS[task.cancel_reason]))
    if task.service_type:
        res["serviceType"] = [_concept(task.service_type)]
    if task.appointment_type:
        res["appointmentType"] = codeable(coding(systems.V2_0276, task.appointment_type,
                                                 APPOINTMENT_TYPES[task.appointment_type]))
    if task.reason:
        res["reasonCode"] = [_concept(task.reason)]
    end = task.end_time
    if task.start is not None and end is not None:
        res["start"] = fhir_datetime(task.start)
        res["end"] = fhir_datetime(end)
    if task.minutes is not None:
        res["minutesDuration"] = task.minutes
    if task.slot:
        res["slot"] = [reference(f"Slot/{task.slot}")]
    participants = [_participant(patient, "declined" if reason_by == "pat" else "accepted")]
    if practitioner is not None:
        participants.append(_participant(practitioner,
                                         "declined" if reason_by == "prov" else "accepted",
                                         ATTENDER))
    if location is not None:
        participants.append(_participant(location, "accepted"))
    res["participant"] = participants
    return res


def _encounter(task: AppointmentTask, ctx: MapContext, patient: JSON, practitioner: JSON | None,
               location: JSON | None, organization: JSON) -> JSON:
    assert task.at is not None
    status = ENCOUNTER_STATUS[task.action]
    checked_in = task.at if task.action == "check_in" else task.checked_in_at
    assert checked_in is not None
    started = task.at if task.action == "start" else task.started_at
    res: JSON = {
        "resourceType": "Encounter",
        "meta": {"profile": [systems.profile("us-core-encounter")]},
        "identifier": [identifier(ctx.clinic.task_system("encounter"), task.appointment_id)],
        "status": status,
    }
    history: list[JSON] = []
    if started is not None:
        history.append({"status": "arrived", "period": {"start": fhir_datetime(checked_in),
                                                        "end": fhir_datetime(started)}})
        if task.action == "complete":
            history.append({"status": "in-progress",
                            "period": {"start": fhir_datetime(started),
                                       "end": fhir_datetime(task.at)}})
    if history:
        res["statusHistory"] = history
    res["class"] = dict(AMBULATORY)
    res["type"] = [_concept(task.encounter_type or DEFAULT_ENCOUNTER_TYPE)]
    res["subject"] = patient
    if practitioner is not None:
        res["participant"] = [{"type": [ATTENDER], "individual": practitioner}]
    res["appointment"] = [reference("Appointment?" + identifier_query(
        ctx.clinic.task_system("appointment"), task.appointment_id))]
    period = {"start": fhir_datetime(checked_in)}
    if task.action == "complete":
        period["end"] = fhir_datetime(task.at)
    res["period"] = period
    if task.reason:
        res["reasonCode"] = [_concept(task.reason)]
    if location is not None:
        res["location"] = [{"location": location}]
    res["serviceProvider"] = organization
    return res


def to_fhir(task: TaskModel, ctx: MapContext) -> list[Entry]:
    """The Appointment (and the Encounter from check-in on), both as conditional PUTs."""
    if not isinstance(task, AppointmentTask):
        raise TypeError(f"not an appointment task: {type(task).__name__}")
    pat = patient_refs(task.patient, ctx)
    entries: list[Entry] = list(pat.entries)
    prac = loc = None
    if task.practitioner is not None:
        p = practitioner_entry(task.practitioner)
        entries.extend(p.entries)
        prac = p.ref
    if task.location is not None:
        lo = location_entry(task.location, ctx)
        entries.extend(lo.entries)
        loc = lo.ref
    entries.append(update(_appointment(task, ctx, pat.ref, prac, loc)))
    if task.action in ENCOUNTER_STATUS:
        org = organization_entry(ctx.clinic)
        entries.extend(org.entries)
        entries.append(update(_encounter(task, ctx, pat.ref, prac, loc, org.ref)))
    return entries


# ------------------------------------------------------------------------------ reverse

_TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")


def _appointment_id(appt: JSON) -> str | None:
    idents = [i for i in appt.get("identifier", []) if i.get("value")]
    ours = [i for i in idents if str(i.get("system", "")).endswith("/appointment")]
    chosen = (ours or idents or [{}])[0].get("value") or appt.get("id")
    return str(chosen) if chosen else None


def _task_id(appt: JSON, appointment_id: str, action: str) -> str:
    """The tag mafhir left, else a readable id made from the appointment id and action."""
    tags = [t.get("code") for t in appt.get("meta", {}).get("tag", [])
            if str(t.get("system", "")).endswith("/task")]
    if len(tags) == 1 and isinstance(tags[0], str) and _TASK_ID.match(tags[0]):
        return tags[0]
    suffix = f".{action}"
    base = re.sub(r"[^A-Za-z0-9._:\-]", "-", appointment_id)
    if not base[0].isalnum():
        base = "a" + base
    return base[: 64 - len(suffix)] + suffix


def _actor_type(ref: Any, target: JSON | None) -> str:
    if target is not None:
        return str(target.get("resourceType", ""))
    if isinstance(ref, dict) and isinstance(ref.get("type"), str) and "reference" not in ref:
        return str(ref["type"])  # a reference by identifier (a practitioner's NPI)
    text = ref.get("reference", "") if isinstance(ref, dict) else ""
    match = re.match(r"^(?:.*/)?([A-Z][A-Za-z]+)(?:/[^/]+|\?.*)$", text)
    return match.group(1) if match else ""


def _encounter_of(appt: JSON, resources: ResourceSet) -> JSON | None:
    for enc in resources.of_type("Encounter"):
        for ref in enc.get("appointment", []):
            if resources.resolve(ref) is appt:
                return enc
    return None


def _history(enc: JSON, status: str, edge: str) -> str | None:
    for h in enc.get("statusHistory", []):
        if h.get("status") == status and h.get("period", {}).get(edge):
            return str(h["period"][edge])
    return None


def _started(enc: JSON) -> str | None:
    return _history(enc, "in-progress", "start") or _history(enc, "arrived", "end")


def _patient(target: JSON | None, ref: Any) -> PatientRef:
    """The patient from the Patient resource, else from the identifier reference.

    A Patient whose demographics do not make a complete new patient (no gender, a foreign
    address) is referred to by its MRN alone, as for any known patient.
    """
    if target is None:
        return patient_from_fhir(None, ref)
    try:
        return patient_from_fhir(target)
    except ValueError:
        idents = [i for i in target.get("identifier", []) if i.get("value")]
        mrn = next((i for i in idents if any(c.get("code") == "MR" for c in
                                             i.get("type", {}).get("coding", []))), None)
        chosen = mrn or (idents[0] if idents else None)
        if chosen is None:
            raise ValueError("the patient has no identifier (MRN) to refer to") from None
        return PatientRef(mrn=chosen["value"], system=chosen.get("system"))


def _optional(read: Callable[[JSON], Any], resource: JSON) -> Any:
    """A practitioner or place read back, or None when the resource lacks what a task
    needs (an NPI and family name; an identifier and name): they are optional in a task.
    """
    try:
        return read(resource)
    except (LookupError, StopIteration, ValueError, TypeError):
        return None


def _task_from(appt: JSON, resources: ResourceSet, where: str) -> AppointmentTask | None:
    status = appt.get("status")
    action = ACTION_BY_STATUS.get(str(status))
    if action is None:
        return None
    appointment_id = _appointment_id(appt)
    if appointment_id is None:
        raise ValueError(f"{where} has neither an identifier nor an id")
    enc = _encounter_of(appt, resources)
    if action == "check_in" and enc is not None and enc.get("status") == "in-progress":
        action = "start"
    data: JSON = {"task": "appointment", "id": _task_id(appt, appointment_id, action),
                  "appointment_id": appointment_id, "action": action}
    patient = practitioner = location = None
    for part in appt.get("participant", []):
        ref = part.get("actor")
        target = resources.resolve(ref)
        kind = _actor_type(ref, target)
        if kind == "Patient" and patient is None:
            patient = _patient(target, ref)
        elif kind == "Practitioner" and practitioner is None:
            practitioner = _optional(lambda r: practitioner_from_ref(r, resources), ref)
        elif kind == "Location" and target is not None and location is None:
            location = _optional(location_from_fhir, target)
    if patient is None:
        raise ValueError(f"{where}: no patient participant with a Patient in the set or an "
                         "identifier reference")
    data["patient"] = patient
    if practitioner is not None:
        data["practitioner"] = practitioner
    if location is not None:
        data["location"] = location
    if appt.get("start"):
        start = parse_fhir_datetime(appt["start"])
        data["start"] = start
        minutes = appt.get("minutesDuration")
        end = parse_fhir_datetime(appt["end"]) if appt.get("end") else None
        if minutes and (end is None or end == start + timedelta(minutes=minutes)):
            data["minutes"] = minutes
        elif end is not None:
            data["end"] = end
    for key, field in (("serviceType", "service_type"), ("reasonCode", "reason")):
        concept = _concept_from((appt.get(key) or [None])[0])
        if concept is not None:
            data[field] = concept
    for c in appt.get("appointmentType", {}).get("coding", []):
        if c.get("system") == systems.V2_0276 and c.get("code") in APPOINTMENT_TYPES:
            data["appointment_type"] = c["code"]
    for c in appt.get("cancelationReason", {}).get("coding", []):
        if c.get("system") == systems.APPOINTMENT_CANCEL_REASON and c.get("code") in \
                CANCEL_REASONS and action == "cancel":
            data["cancel_reason"] = c["code"]
    for ref in appt.get("slot", []):
        text = str(ref.get("reference", ""))
        parts = text.rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == "Slot":
            data["slot"] = parts[-1]
            break
    if action in ENCOUNTER_STATUS:
        if enc is None:
            raise ValueError(f"{where} is '{status}' but no Encounter in the set refers to it "
                             "(include Encounters by their appointment)")
        _encounter_fields(enc, appt, action, data)
    return AppointmentTask.model_validate(data)


def _encounter_fields(enc: JSON, appt: JSON, action: str, data: JSON) -> None:
    """at / checked_in_at / started_at / encounter_type from the Encounter.

    mafhir always writes the times it needs; for an Encounter from elsewhere that lacks
    them, the visit start falls back to the check-in time and the completion time to
    the appointment's end.
    """
    checked_in = enc.get("period", {}).get("start")
    if action == "check_in":
        data["at"] = checked_in
    elif action == "start":
        data["checked_in_at"] = checked_in
        data["at"] = _started(enc) or checked_in
    else:
        data["checked_in_at"] = checked_in
        data["at"] = enc.get("period", {}).get("end") or appt.get("end") or checked_in
        started = _started(enc)
        if started:
            data["started_at"] = started
    etype = _concept_from((enc.get("type") or [None])[0])
    if etype is not None and etype != DEFAULT_ENCOUNTER_TYPE:
        data["encounter_type"] = etype


def from_fhir(resources: ResourceSet) -> list[TaskModel]:
    """One task per Appointment whose status is the result of an action (see module doc)."""
    out: list[TaskModel] = []
    for i, appt in enumerate(resources.of_type("Appointment")):
        task = _task_from(appt, resources, f"Appointment[{i}]")
        if task is not None:
            out.append(task)
    return out


def _as_appointment(task: TaskModel) -> AppointmentTask | None:
    """The appointment step a task stands for: itself, or what another kind's task does to
    an appointment (a reminder's reply: ``appointment_change()``), or None."""
    if isinstance(task, AppointmentTask):
        return task
    change = getattr(task, "appointment_change", None)
    found = change() if callable(change) else None
    return found if isinstance(found, AppointmentTask) else None


def _key(task: TaskModel) -> str:
    appt = _as_appointment(task)
    # a task that does not move an appointment keeps a state of its own (a space cannot
    # be in an appointment id, so the keys never meet)
    return appt.appointment_id if appt is not None else f"{task.task} {task.id}"


def _step(task: TaskModel, known: str | None) -> str:
    appt = _as_appointment(task)
    if appt is None:
        return "unchanged"
    if appt is task:
        return step(task, known)
    try:
        return step(appt, known)
    except TransitionError as exc:  # named as the other kind's fields
        raise TransitionError("reply", exc.current, exc.requested) from None
    except InputError as exc:
        raise InputError([Problem("appointment.status" if p.location == "current_status"
                                  else p.location, p.message, p.code)
                          for p in exc.problems]) from None


#: The appointment lifecycle, shared with the kinds whose tasks move appointments (a
#: reminder's reply): the pipeline keys states by lifecycle, so they see one state.
LIFECYCLE = Lifecycle(key=_key, step=_step)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("appointment", AppointmentTask, to_fhir, from_fhir,
                    "book, confirm, reschedule, cancel, no-show, check-in (Encounter), start, "
                    "complete",
                    lifecycle=LIFECYCLE))
