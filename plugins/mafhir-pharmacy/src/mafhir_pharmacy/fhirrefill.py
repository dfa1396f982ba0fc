"""Refill requests a pharmacy writes on its FHIR server, polled onto the worklist, answered there.

**Representation: a ``Task``**, not a ``MedicationRequest`` with intent ``proposal``. A
pharmacy asking the prescriber to renew asks someone *else* to act on an existing order,
and wants an answer that may be "no, because …". In FHIR R4 that is what Task is for
(R4 task.html: a Task asks a performer to act on its ``focus`` — here the prior
MedicationRequest, with ``Task.code`` ``fulfill`` "Fulfill the focal request" from the
task-code CodeSystem, ``requester`` the pharmacy, ``owner`` the prescriber), and the Task
state machine carries both answers: ``completed`` with ``output`` → the renewal
MedicationRequest, or ``rejected`` with ``statusReason``. A proposal
MedicationRequest (medicationrequest-intent ``proposal``: "a suggestion … without providing
an authorization to act") can be *withdrawn* but has no place for a denial reason, and
would need a second resource for the reply. It is also the project's own pattern
(mapping-reference §10.2), so the polled request and a v2 RDE^O25 end up as the same
worklist task.

What is polled: ``Task?code=…task-code|fulfill&status=requested&_lastUpdated=ge<cursor>``,
sorted by ``_lastUpdated``; the cursor is the server's own ``meta.lastUpdated`` of the
last Task taken (no clock skew), kept in the worklist per server. Instants are compared as
instants, never as text (``…:00.5Z`` is after ``…:00Z``; ``06:00:01-05:00`` is after
``10:00:00Z``). ``ge`` re-reads the boundary Task; the worklist keys requests on the
server's Task id, so it is taken once. A Task that cannot be read as a refill request is
recorded on the worklist as *unreadable* (its id and why, never its values) and reported,
so it is neither lost nor able to hold the cursor back; if the pharmacy corrects it, its
``lastUpdated`` moves and the next poll reads it again.

The answer (:func:`fhir_answer`, pure) is one transaction: the renewal MedicationRequest
(``priorPrescription`` → the prior order on that server) and the pharmacy's own Task
``PUT`` back with its new status, guarded by ``ifMatch`` on the version read just before,
so an answer never overwrites a Task the pharmacy changed (cancelled) meanwhile.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from mafhir.bundle import transaction
from mafhir.context import MapContext
from mafhir.errors import MafhirError, Problem
from mafhir.fhirtypes import identifier
from mafhir.mappers.common import patient_from_fhir, practitioner_from_fhir
from mafhir.resourceset import ResourceSet

from .codes import RXNORM, TASK_CODE
from .mappers import pharmacy_from_fhir, refill_decision_to_fhir
from .tasks import RefillDecisionTask, RefillRequestTask

__all__ = ["OPEN", "PollResult", "fhir_answer", "later", "pharmacy_task_to_request",
           "poll_refill_requests", "request_id_for"]

JSON = dict[str, Any]
OPEN = ("requested", "received", "accepted")


def request_id_for(task: JSON) -> str:
    """The worklist id of a pharmacy's Task: its server id, which never changes."""
    return f"fhir-{task['id']}"


def _ref_id(ref: JSON | None, rtype: str) -> str | None:
    text = str((ref or {}).get("reference", ""))
    head, _, rid = text.rpartition("/")
    return rid if head.endswith(rtype) and rid and "?" not in text else None


def _ident(resource: JSON, system: str) -> str | None:
    return next((i.get("value") for i in resource.get("identifier", []) or []
                 if i.get("system") == system), None)


def pharmacy_task_to_request(task: JSON, resources: ResourceSet,
                             clinic_system: str) -> RefillRequestTask:
    """The worklist's ``refill_request`` for a pharmacy's Task (pure).

    ``resources`` holds what the Task references, read from the same server. A focus that
    is not one of the clinic's prescriptions is kept as ``MedicationRequest:<id>`` so the
    worklist holds it for review rather than dropping it. Raises ``ValueError`` (field
    named) when the Task cannot say who asks, for whom, or when.
    """
    focus = resources.resolve(task.get("focus"))
    prior_id = _ref_id(task.get("focus"), "MedicationRequest")
    rx = _ident(focus, f"{clinic_system}/prescription") if focus else None
    if rx is None:
        if prior_id is None:
            raise ValueError("Task.focus: names no MedicationRequest")
        rx = f"MedicationRequest:{prior_id}"
    patient_ref = task.get("for") or (focus or {}).get("subject")
    if not patient_ref:
        raise ValueError("Task.for: the patient is missing")
    owner = resources.resolve(task.get("owner")) or \
        resources.resolve((focus or {}).get("requester"))
    if owner is None:
        raise ValueError("Task.owner: no prescriber (nor the prior order's requester)")
    requester = resources.resolve(task.get("requester"))
    if requester is None or requester.get("resourceType") != "Organization":
        raise ValueError("Task.requester: the pharmacy Organization is missing")
    received = task.get("authoredOn") or (task.get("meta") or {}).get("lastUpdated")
    if not received:
        raise ValueError("Task.authoredOn: when it was asked is missing")
    inputs = {((i.get("type") or {}).get("text") or "").lower(): i
              for i in task.get("input", []) or []}
    qty = (inputs.get("requested quantity") or {}).get("valueQuantity")
    refills = (inputs.get("requested refills") or {}).get("valueUnsignedInt")
    med = (focus or {}).get("medicationCodeableConcept") or {}
    rxnorm = next((c.get("code") for c in med.get("coding", []) if c.get("system") == RXNORM),
                  None)
    raw: JSON = {
        "task": "refill_request", "id": request_id_for(task),
        "patient": patient_from_fhir(resources.resolve(patient_ref), patient_ref)
        .model_dump(mode="json", exclude_none=True),
        "received": received, "prescription": rx,
        "prescriber": practitioner_from_fhir(owner).model_dump(mode="json", exclude_none=True),
        "pharmacy": pharmacy_from_fhir(requester).model_dump(mode="json", exclude_none=True),
        "requested_quantity": {"value": qty["value"], "unit": qty.get("code") or qty.get("unit")}
        if qty else None,
        "requested_refills": refills,
        "note": (task.get("description") or None),
    }
    if rxnorm:
        raw["medication"] = {"rxnorm": rxnorm}
    try:
        return RefillRequestTask.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValueError:
        raw.pop("medication", None)  # a drug outside the known list does not block review
        return RefillRequestTask.model_validate({k: v for k, v in raw.items() if v is not None})


def fhir_answer(decision: RefillDecisionTask, pharmacy_task: JSON, prior_ref: str,
                ctx: MapContext) -> JSON:
    """The transaction that answers a pharmacy's Task on its own server (pure).

    The decision is mapped as usual (renewal MedicationRequest, the Task's new state);
    then the Task entry becomes a ``PUT Task/<their id>`` of *their* Task with the new
    status (``ifMatch`` its version), and the renewal's ``priorPrescription`` names the
    prior order by its id on that server.
    """
    bundle = transaction(refill_decision_to_fhir(decision, ctx))
    ours = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Task")
    answer = copy.deepcopy(pharmacy_task)
    answer.pop("meta", None)
    for key in ("status", "businessStatus", "statusReason", "output", "executionPeriod",
                "lastModified"):
        if key in ours["resource"]:
            answer[key] = ours["resource"][key]
    clinic_ident = identifier(ctx.clinic.task_system("refill_request"), decision.request)
    if clinic_ident not in answer.get("identifier", []):
        answer["identifier"] = [*answer.get("identifier", []), clinic_ident]
    ours["resource"] = answer
    ours["request"] = {"method": "PUT", "url": f"Task/{pharmacy_task['id']}"}
    version = (pharmacy_task.get("meta") or {}).get("versionId")
    if version:
        ours["request"]["ifMatch"] = f'W/"{version}"'
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "MedicationRequest" and "priorPrescription" in res:
            res["priorPrescription"] = {"reference": prior_ref}
    return bundle


@dataclass
class PollResult:
    """What one poll took: new requests by state, and Tasks that could not be read
    (``unreadable``: their worklist ids; ``problems``: why, by Task)."""

    requested: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    seen_again: int = 0
    problems: list[Problem] = field(default_factory=list)
    cursor: str | None = None
    unreadable: list[str] = field(default_factory=list)


def _instant(value: str | None) -> datetime | None:
    """A FHIR instant as an aware datetime; None when absent or not an instant."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def later(a: str | None, b: str | None) -> str | None:
    """The later of two server timestamps, compared as instants (text order is wrong for
    fractions of a second and for offsets); one that is not an instant never wins."""
    ta, tb = _instant(a), _instant(b)
    if ta is None:
        return b if tb is not None else a
    if tb is None:
        return a
    return b if tb > ta else a


def _reason(exc: Exception) -> str:
    """Why a Task could not be read, by field, without the values it held."""
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'Task'}: {e['msg']}"
                         for e in exc.errors(include_url=False, include_input=False))
    if isinstance(exc, (ValueError, MafhirError)):  # the mappers name the field
        return str(exc).splitlines()[0]
    return f"Task: could not be read ({type(exc).__name__})"


def _read_refs(client: Any, task: JSON) -> ResourceSet:
    out = [task]
    seen: set[str] = set()
    pending = [task.get(k) for k in ("focus", "for", "owner", "requester")]
    focus_id = _ref_id(task.get("focus"), "MedicationRequest")
    while pending:
        ref = pending.pop(0)
        text = str((ref or {}).get("reference", ""))
        if "/" not in text or "?" in text or text in seen:
            continue
        seen.add(text)
        rtype, rid = text.split("/")[-2:]
        try:
            resource = client.read(rtype, rid)[0]
        except MafhirError:
            continue  # unresolved: the mapping names what is missing
        out.append(resource)
        if rtype == "MedicationRequest" and rid == focus_id:
            pending += [resource.get("subject"), resource.get("requester")]
    return ResourceSet.of(out)


def poll_refill_requests(client: Any, worklist: Any, clinic_system: str, source: str
                         ) -> PollResult:
    """Put the pharmacy server's new refill-request Tasks on the worklist, once each.

    A Task that cannot be mapped is recorded as unreadable (and reported in
    ``problems``) rather than left to pin the cursor: it would fail the same way on
    every poll. The same version of it is not reported again.
    """
    from .worklist import UnknownPrescription

    result = PollResult()
    cursor = worklist.cursor(source)
    params = [("code", f"{TASK_CODE}|fulfill"), ("status", "requested"),
              ("_sort", "_lastUpdated")]
    if cursor:
        params.append(("_lastUpdated", f"ge{cursor}"))
    newest = cursor
    own = f"{clinic_system}/refill_request"
    for task in client.search("Task", params):
        updated = (task.get("meta") or {}).get("lastUpdated")
        if _ident(task, own) is not None:  # the clinic's own mirror of a request
            newest = later(newest, updated)
            continue
        rid = request_id_for(task)
        if worklist.state(rid) is not None or (
                updated and worklist.unreadable_version(rid) == updated):
            result.seen_again += 1
            newest = later(newest, updated)
            continue
        try:
            request = pharmacy_task_to_request(task, _read_refs(client, task), clinic_system)
        except Exception as exc:
            if isinstance(exc, MafhirError) and exc.transient:
                raise  # the server, not the Task: the poll stops and the cursor stays
            reason = _reason(exc)
            code = exc.code if isinstance(exc, MafhirError) else "processing"
            result.problems.append(Problem(f"Task/{task['id']}", reason, code))
            result.unreadable.append(rid)
            worklist.add_unreadable(rid, f"pharmacy-fhir:{source}", f"Task/{task['id']}",
                                    reason, updated)
            newest = later(newest, updated)
            continue
        worklist.clear_unreadable(rid)  # corrected by the pharmacy since
        prior = _ref_id(task.get("focus"), "MedicationRequest")
        worklist.add_source(rid, f"pharmacy-fhir:{source}", f"Task/{task['id']}",
                            f"MedicationRequest/{prior}" if prior else None)
        try:
            worklist.add_request(request)
            result.requested.append(rid)
        except UnknownPrescription:
            result.review.append(rid)
        newest = later(newest, updated)
    result.cursor = newest
    if result.cursor and result.cursor != cursor:
        worklist.set_cursor(source, result.cursor)
    return result
