"""US Core MedicationRequest rules (6.1.0 and 7.0.0 alike) and the base rules of Task.

From the US Core StructureDefinition (mapping-reference §10.1): status, intent,
medication[x], subject and requester-when-ordered (us-core-21) are required, category
codes come from the medicationrequest-category value set; quantities are UCUM. US Core
has no Task profile: the Task rules are R4's own (status, intent, inv-1) plus what a
refill worklist item needs to be actionable (focus, for, owner; a reason when rejected,
the renewal when completed). They are registered under the core Task canonical, so they
run on every Task; the refill checks only on Tasks with a ``…/refill_request`` identifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from mafhir import systems
from mafhir.registry import Profile
from mafhir.validation.issues import Issue
from mafhir.validation.rules import codings, error, require, select, warning

from .codes import CONTROLLED_TAG, MR_CATEGORY, RXNORM, SCHEDULE_TO_V2
from .fhir import MR_PROFILE, is_absent

__all__ = ["PROFILES", "TASK_CORE", "check_medication_request", "check_task"]

JSON = dict[str, Any]
TASK_CORE = "http://hl7.org/fhir/StructureDefinition/Task"
MR_STATUS = ("active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped",
             "draft", "unknown")
MR_INTENT = ("proposal", "plan", "order", "original-order", "reflex-order", "filler-order",
             "instance-order", "option")
ORDERS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
CATEGORIES = ("inpatient", "outpatient", "community", "discharge")
TASK_STATUS = ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
               "in-progress", "on-hold", "failed", "completed", "entered-in-error")


def _quantity(q: Any, where: str) -> Iterator[Issue]:
    if not isinstance(q, dict):
        return
    if q.get("value") is None:
        yield error(f"{where}.value", "is required")
    if not (q.get("unit") or q.get("code")):
        yield error(f"{where}.unit", "a quantity needs its unit")
    if q.get("code") and q.get("system") != systems.UCUM:
        yield error(f"{where}.system", f"must be {systems.UCUM} when a code is given",
                    code="value")


def check_medication_request(mr: JSON) -> Iterator[Issue]:
    if mr.get("status") not in MR_STATUS:
        yield error("MedicationRequest.status", f"is required, one of {', '.join(MR_STATUS)}",
                    code="required" if "status" not in mr else "code-invalid")
    if mr.get("intent") not in MR_INTENT:
        yield error("MedicationRequest.intent", f"is required, one of {', '.join(MR_INTENT)}",
                    code="required" if "intent" not in mr else "code-invalid")
    concept = mr.get("medicationCodeableConcept")
    if concept is None and not (mr.get("medicationReference") or {}).get("reference"):
        yield error("MedicationRequest.medication[x]", "is required (US Core)")
    elif concept is not None:
        if not (codings(concept) or concept.get("text")):
            yield error("MedicationRequest.medicationCodeableConcept",
                        "needs a coding or text", code="value")
        elif not any(c.get("system") == RXNORM for c in codings(concept)):
            yield warning("MedicationRequest.medicationCodeableConcept",
                          "has no RxNorm coding (US Core binds RxNorm clinical drugs, "
                          "extensible)", code="code-invalid")
    yield from require(mr, "subject.reference", "US Core MedicationRequest.subject")
    requester = mr.get("requester") or {}
    if mr.get("intent") in ORDERS and not (requester.get("reference") or
                                           requester.get("identifier") or
                                           requester.get("display") or is_absent(requester)):
        # us-core-21 is requester.exists(): a received order whose source names no
        # prescriber carries a data-absent-reason (and its converter reports the gap)
        yield error("MedicationRequest.requester",
                    "is required when intent is an order (us-core-21)", code="invariant")
    for where, cat in select(mr, "category", "MedicationRequest"):
        for c in codings(cat):
            if c.get("system") == MR_CATEGORY and c.get("code") not in CATEGORIES:
                yield error(where, f"medicationrequest-category must be one of "
                                   f"{', '.join(CATEGORIES)}", code="code-invalid")
    for where, dose in select(mr, "dosageInstruction.doseAndRate.doseQuantity",
                              "MedicationRequest"):
        yield from _quantity(dose, where)
    dispense = mr.get("dispenseRequest") or {}
    yield from _quantity(dispense.get("quantity"), "MedicationRequest.dispenseRequest.quantity")
    repeats = dispense.get("numberOfRepeatsAllowed")
    if repeats is not None and (not isinstance(repeats, int) or repeats < 0):
        yield error("MedicationRequest.dispenseRequest.numberOfRepeatsAllowed",
                    "must be a whole number ≥ 0 (refills after the first fill)", code="value")
    substitution = mr.get("substitution")
    if isinstance(substitution, dict) and not any(k.startswith("allowed")
                                                  for k in substitution):
        yield error("MedicationRequest.substitution.allowed[x]",
                    "is required when substitution is given")
    for where, tag in select(mr, "meta.tag", "MedicationRequest"):
        if tag.get("system") == CONTROLLED_TAG and tag.get("code") not in SCHEDULE_TO_V2:
            yield error(where, f"a DEA schedule is one of {', '.join(SCHEDULE_TO_V2)}",
                        code="code-invalid")


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def check_task(task: JSON) -> Iterator[Issue]:
    if task.get("status") not in TASK_STATUS:
        yield error("Task.status", f"is required, one of {', '.join(TASK_STATUS)}",
                    code="required" if "status" not in task else "code-invalid")
    if task.get("intent") not in (*MR_INTENT, "unknown"):
        yield error("Task.intent", "is required (task-intent)",
                    code="required" if "intent" not in task else "code-invalid")
    modified, authored = _time(task.get("lastModified")), _time(task.get("authoredOn"))
    if modified and authored and modified.tzinfo and authored.tzinfo and modified < authored:
        yield error("Task.lastModified", "must not be before authoredOn (inv-1)",
                    code="invariant")
    refill = any(str(i.get("system", "")).endswith("/refill_request")
                 for i in task.get("identifier", []) or [])
    if not refill:
        return
    for path, why in (("focus.reference", "the prescription to renew"),
                      ("for.reference", "the patient")):
        yield from require(task, path, why)
    if not is_absent(task.get("owner")):  # a request that named no prescriber is kept, flagged
        yield from require(task, "owner.reference", "the prescriber")
    if task.get("status") == "rejected" and not task.get("statusReason"):
        yield error("Task.statusReason", "a denied refill says why")
    if task.get("status") == "completed" and not task.get("output"):
        yield error("Task.output", "an approved refill points at the renewal it made")


PROFILES = [
    Profile(MR_PROFILE, "MedicationRequest", check_medication_request,
            "US Core MedicationRequest"),
    Profile(TASK_CORE, "Task", check_task, "Task (R4 base rules; refill worklist items)"),
]
