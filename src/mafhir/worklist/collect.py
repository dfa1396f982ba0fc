"""Open items read from FHIR resources (the local store's, or an EHR's search results).

* a Task ``requested`` / ``in-progress`` → ``follow_up`` (``result_call`` when its focus
  is a DiagnosticReport, ``refill`` when it is a MedicationRequest), due at
  ``restriction.period.end``;
* an Appointment ``noshow`` → ``no_show`` (call to reschedule), due at once;
* an Appointment ``cancelled`` that has not started yet → ``slot`` (a slot to refill),
  due at its start;
* a CommunicationRequest ``active`` with a recall purpose → ``recall``; one from the EHR
  without mafhir's purpose → ``outreach``; mafhir's appointment reminders are not the MA's
  work (the messaging destination sends them) and are left out.

An item is closed by a follow-up Task (completed or cancelled) whose ``focus`` is the
appointment or request: that is what ``mafhir worklist done`` writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..fhirtypes import parse_fhir_datetime
from ..identity import identifier_from_reference, identifier_query
from .item import WorklistItem

__all__ = ["closed_focus", "done_task_id", "open_items", "patient_key"]

JSON = dict[str, Any]
RECALLS = {"recall_annual_exam": "Recall: annual exam", "recall_vaccine": "Recall: vaccine due",
           "recall_lab": "Recall: lab due"}
PURPOSE = "urn:mafhir:reminder-purpose"


def _time(text: Any) -> datetime | None:
    try:
        return parse_fhir_datetime(str(text)) if text else None
    except ValueError:
        return None


def _ours(res: JSON, suffix: str) -> JSON | None:
    return next((i for i in res.get("identifier", [])
                 if str(i.get("system", "")).endswith("/" + suffix) and i.get("value")), None)


def _keys(res: JSON) -> set[str]:
    """Every way a reference may name ``res``: ``Type/id`` and its identifier queries."""
    rtype = res.get("resourceType", "")
    keys = {f"{rtype}/{res['id']}"} if res.get("id") else set()
    for i in res.get("identifier", []):
        if i.get("value"):
            keys.add(f"{rtype}?{identifier_query(str(i.get('system', '')), str(i['value']))}")
    return keys


def closed_focus(resources: Iterable[JSON]) -> set[str]:
    """The references that closed follow-ups point at."""
    return {str((t.get("focus") or {}).get("reference", "")) for t in resources
            if t.get("resourceType") == "Task" and _ours(t, "follow-up") is not None
            and t.get("status") in ("completed", "cancelled")}


def patient_key(ref: Any, patients: dict[str, JSON]) -> tuple[str, str]:
    """(MRN, its system) of a patient reference; the reference itself when no MRN is
    known (an EHR's ``Patient/123`` not in hand)."""
    text = str((ref or {}).get("reference", ""))
    parsed = identifier_from_reference(text)
    if parsed is not None:
        return parsed[2], parsed[1]
    patient = patients.get(text)
    if patient is not None:
        mrn = next((i for i in patient.get("identifier", [])
                    if any(c.get("code") == "MR" for c in i.get("type", {}).get("coding", []))),
                   (patient.get("identifier") or [None])[0])
        if mrn and mrn.get("value"):
            return str(mrn["value"]), str(mrn.get("system", ""))
    return text, ""


def _text(concept: Any) -> str:
    if not isinstance(concept, dict):
        return ""
    first = (concept.get("coding") or [{}])[0]
    return str(concept.get("text") or first.get("display") or first.get("code") or "")


def _task_item(t: JSON, source: str, patients: dict[str, JSON]) -> WorklistItem:
    ours = _ours(t, "follow-up")
    focus = str((t.get("focus") or {}).get("reference", ""))
    kind = "follow_up"
    if focus.startswith("DiagnosticReport"):
        kind = "result_call"
    elif focus.startswith("MedicationRequest"):
        kind = "refill"
    mrn, system = patient_key(t.get("for"), patients)
    due = _time(((t.get("restriction") or {}).get("period") or {}).get("end"))
    summary = _text(t.get("reasonCode")) or _text(t.get("code")) or "Task"
    return WorklistItem(id=str(ours["value"]) if ours else f"Task/{t.get('id')}", kind=kind,
                        patient=mrn, patient_system=system, summary=summary, due=due,
                        priority=str(t.get("priority", "routine")), status=str(t["status"]),
                        source=source, ref=focus)


def _appointment_item(a: JSON, source: str, patients: dict[str, JSON],
                      now: datetime) -> WorklistItem | None:
    start = _time(a.get("start"))
    if a.get("status") == "noshow":
        kind, due, what = "no_show", start, "No-show: call to reschedule"
    elif a.get("status") == "cancelled" and start is not None and start > now:
        kind, due, what = "slot", start, "Cancelled: a slot to refill"
    else:
        return None
    ident = _ours(a, "appointment") or (a.get("identifier") or [{}])[0]
    value = str(ident.get("value") or a.get("id"))
    patient = next((p.get("actor") for p in a.get("participant", [])
                    if "Patient" in str((p.get("actor") or {}).get("reference", ""))), None)
    mrn, system = patient_key(patient, patients)
    when = f" ({start.isoformat(timespec='minutes')})" if start else ""
    return WorklistItem(id=f"{kind}:{value}", kind=kind, patient=mrn, patient_system=system,
                        summary=what + when, due=due, source=source,
                        ref=f"Appointment?{identifier_query(str(ident.get('system', '')), value)}")


def _request_item(r: JSON, source: str, patients: dict[str, JSON]) -> WorklistItem | None:
    purposes = [c.get("code") for rc in r.get("reasonCode", []) for c in rc.get("coding", [])
                if c.get("system") == PURPOSE]
    if purposes and purposes[0] not in RECALLS:
        return None  # an appointment reminder: the messaging destination's work
    ours = _ours(r, "reminder")
    kind = "recall" if purposes else "outreach"
    mrn, system = patient_key(r.get("subject"), patients)
    ident = ours or (r.get("identifier") or [{}])[0]
    value = str(ident.get("value") or r.get("id"))
    summary = RECALLS.get(str(purposes[0]), "") if purposes else \
        (_text((r.get("reasonCode") or [None])[0]) or "Outreach")
    for note in r.get("note", []):
        summary += f", {note.get('text')}"
    return WorklistItem(id=f"{kind}:{value}", kind=kind, patient=mrn, patient_system=system,
                        summary=summary, due=_time(r.get("occurrenceDateTime")),
                        priority=str(r.get("priority", "routine")), source=source,
                        ref=f"CommunicationRequest?"
                            f"{identifier_query(str(ident.get('system', '')), value)}")


def open_items(resources: Iterable[JSON], source: str, now: datetime,
               patients: dict[str, JSON] | None = None) -> list[WorklistItem]:
    """The open items among ``resources`` (see the module doc)."""
    resources = list(resources)
    patients = {**(patients or {}), **{f"Patient/{p['id']}": p for p in resources
                                       if p.get("resourceType") == "Patient" and p.get("id")}}
    closed = closed_focus(resources)
    out: list[WorklistItem] = []
    for res in resources:
        rtype = res.get("resourceType")
        item: WorklistItem | None = None
        if rtype == "Task" and res.get("status") in ("requested", "received", "accepted",
                                                     "ready", "in-progress"):
            item = _task_item(res, source, patients)
        elif rtype == "Appointment" and not (_keys(res) & closed):
            item = _appointment_item(res, source, patients, now)
        elif rtype == "CommunicationRequest" and res.get("status") == "active" and \
                not (_keys(res) & closed):
            item = _request_item(res, source, patients)
        if item is not None:
            out.append(item)
    return out


def done_task_id(item_id: str) -> str:
    """The follow_up task id that closes a non-Task item (``done.<kind>.<id>``)."""
    text = re.sub(r"[^A-Za-z0-9._:\-]", "-", f"done.{item_id}")
    return text[:64]
