"""The pure mappers of the three pharmacy task kinds, both ways, and the refill lifecycle.

* ``prescription`` → US Core MedicationRequest (intent order, category community), the
  prescriber (US Core Practitioner), the pharmacy (US Core Organization), the patient.
* ``refill_request`` → a ``Task`` (requested, code ``fulfill``, focus the prior
  MedicationRequest, for the patient, owner the prescriber, requester the pharmacy) and
  the ``Communication`` it came as (topic prescription-refill-request), per
  mapping-reference §10.2. The Task is a conditional update so the decision replaces it.
* ``refill_decision`` → approved: a new MedicationRequest with ``priorPrescription`` and
  the Task ``completed`` with the new order as its ``output``; denied: the Task
  ``rejected`` with ``statusReason``.

The lifecycle (one state per refill request): requested → approved | denied. Deciding a
request this run has not seen (and that the decision does not state as open), or
answering one twice, raises an error naming the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mafhir import systems
from mafhir.bundle import Entry, create, update
from mafhir.context import MapContext
from mafhir.errors import InputError, Problem, TransitionError
from mafhir.fhirtypes import codeable, coding, fhir_datetime, identifier, reference
from mafhir.identity import identifier_from_reference
from mafhir.mappers.common import (
    Refs,
    address_from_json,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_fhir,
    visit_from_fhir,
)
from mafhir.registry import Lifecycle, Mapper
from mafhir.resourceset import ResourceSet
from mafhir.tasks.base import TaskModel

from .codes import CONTROLLED_TAG, DENIAL_REASONS, FREQUENCIES, NCPDP, ROUTES, RXNORM, TASK_CODE
from .fhir import absent, is_absent, medication_request, pharmacy_entry, prescription_ref
from .tasks import (
    Medication,
    Pharmacy,
    PrescriptionTask,
    Quantity,
    RefillDecisionTask,
    RefillRequestTask,
    Renewal,
    ReportedPharmacy,
    Sig,
)

__all__ = [
    "MAPPERS",
    "REFILL_LIFECYCLE",
    "AlreadyAnswered",
    "prescription_from_fhir",
    "prescription_to_fhir",
    "refill_decision_from_fhir",
    "refill_decision_to_fhir",
    "refill_request_from_fhir",
    "refill_request_to_fhir",
    "refill_step",
]

JSON = dict[str, Any]
COMM_CATEGORY = systems.THO + "communication-category"
COMM_TOPIC = systems.THO + "communication-topic"
FULFILL = codeable(coding(TASK_CODE, "fulfill", "Fulfill the focal request"),
                   text="Prescription renewal request")


class AlreadyAnswered(TransitionError):
    """A refill request answered a second time."""

    def __init__(self, request: str, current: str, requested: str) -> None:
        InputError.__init__(self, [Problem("request", f"refill request '{request}' was already "
                                                      f"answered ('{current}'); a request is "
                                                      "answered once", "duplicate")])
        self.current, self.requested = current, requested


# ---------------------------------------------------------------- prescription
def prescription_to_fhir(task: PrescriptionTask, ctx: MapContext) -> list[Entry]:
    patient = patient_refs(task.patient, ctx)
    prescriber = practitioner_entry(task.prescriber)
    pharmacy = pharmacy_entry(task.pharmacy)
    mr = medication_request(
        rx_id=task.id, ctx=ctx, patient=patient.ref, requester=prescriber.ref,
        pharmacy=pharmacy.ref, medication=task.medication, sig=task.sig, quantity=task.quantity,
        days_supply=task.days_supply, refills=task.refills,
        substitution_allowed=task.substitution_allowed, authored=task.written,
        schedule=task.schedule, diagnoses=task.diagnoses, visit=task.visit, note=task.note)
    return [*patient.entries, *prescriber.entries, *pharmacy.entries, mr]


def _ident(resource: JSON, suffix: str) -> str | None:
    for ident in resource.get("identifier", []) or []:
        if str(ident.get("system", "")).endswith(suffix):
            return ident.get("value")
    return None


def pharmacy_from_fhir(org: JSON) -> Pharmacy:
    idents = {i.get("system"): i.get("value") for i in org.get("identifier", []) or []}
    addr = (org.get("address") or [None])[0]
    phone = next((t.get("value") for t in org.get("telecom", []) or []
                  if t.get("system") == "phone"), None)
    return Pharmacy(ncpdp_id=idents.get(NCPDP), npi=idents.get(systems.NPI), name=org["name"],
                    address=address_from_json(addr) if addr else None, phone=phone)


def reported_pharmacy_from_fhir(org: JSON) -> ReportedPharmacy:
    """The requesting pharmacy of a refill Task: national ids, else its own id (kept)."""
    idents = [(i.get("system"), i.get("value")) for i in org.get("identifier", []) or []]
    national = {s for s, _ in idents if s in (NCPDP, systems.NPI)}
    own = next(((s, v) for s, v in idents if s not in (NCPDP, systems.NPI)), None)
    addr = (org.get("address") or [None])[0]
    phone = next((t.get("value") for t in org.get("telecom", []) or []
                  if t.get("system") == "phone"), None)
    return ReportedPharmacy(
        ncpdp_id=dict(idents).get(NCPDP), npi=dict(idents).get(systems.NPI),
        local_id=own[1] if own and not national else None,
        local_system=own[0] if own and not national else None, name=org["name"],
        address=address_from_json(addr) if addr else None, phone=phone)


def _sig(dosage: JSON) -> JSON:
    out: JSON = {"text": dosage.get("text", "")}
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    key = (repeat.get("frequency"), repeat.get("period"), repeat.get("periodUnit"),
           (repeat.get("when") or [None])[0])
    out["frequency"] = next((code for code, value in FREQUENCIES.items() if value == key), None)
    bounds = repeat.get("boundsDuration")
    if bounds:
        out["duration_days"] = bounds.get("value")
    for c in (dosage.get("route") or {}).get("coding", []):
        route = next((name for name, value in ROUTES.items() if value[0] == c.get("code")), None)
        if route:
            out["route"] = route
            break
    if "asNeededCodeableConcept" in dosage:
        out["as_needed"] = True
        out["as_needed_reason"] = dosage["asNeededCodeableConcept"].get("text")
    elif dosage.get("asNeededBoolean"):
        out["as_needed"] = True
    dose = ((dosage.get("doseAndRate") or [{}])[0]).get("doseQuantity")
    if dose:
        out["dose"] = {"value": dose["value"], "unit": dose.get("code") or dose.get("unit")}
    return {k: v for k, v in out.items() if v is not None}


def _medication(concept: JSON) -> JSON:
    out: JSON = {}
    for c in concept.get("coding", []) or []:
        if c.get("system") == RXNORM:
            out["rxnorm"] = c["code"]
        elif c.get("system") == systems.NDC:
            out["ndc"] = c["code"]
    return out


def _quantity(q: JSON) -> JSON:
    return {"value": q["value"], "unit": q.get("code") or q.get("unit")}


def prescription_from_fhir(resources: ResourceSet) -> list[TaskModel]:
    out: list[TaskModel] = []
    for mr in resources.of_type("MedicationRequest"):
        rx_id = _ident(mr, "/prescription")
        if rx_id is None or mr.get("intent") != "order" or mr.get("priorPrescription"):
            continue  # not the clinic's original prescription (renewals read as decisions)
        where = f"MedicationRequest/{mr.get('id') or rx_id}"
        requester = resources.resolve(mr.get("requester"))
        dispense = mr.get("dispenseRequest") or {}
        pharmacy = resources.resolve(dispense.get("performer"))
        if requester is None or pharmacy is None:
            raise InputError([Problem(where, "needs its requester Practitioner and its "
                                             "dispenseRequest.performer pharmacy in the set",
                                             "required")])
        schedule = next((t.get("code") for t in (mr.get("meta") or {}).get("tag", [])
                         if t.get("system") == CONTROLLED_TAG), None)
        out.append(PrescriptionTask(
            task="prescription", id=rx_id,
            patient=patient_from_fhir(resources.resolve(mr["subject"]), mr["subject"]),
            written=mr["authoredOn"], prescriber=practitioner_from_fhir(requester),
            medication=Medication.model_validate(_medication(mr["medicationCodeableConcept"])),
            sig=Sig.model_validate(_sig((mr.get("dosageInstruction") or [{}])[0])),
            quantity=Quantity.model_validate(_quantity(dispense["quantity"])),
            days_supply=(dispense.get("expectedSupplyDuration") or {}).get("value", 1),
            refills=dispense.get("numberOfRepeatsAllowed", 0),
            substitution_allowed=(mr.get("substitution") or {}).get("allowedBoolean", True),
            pharmacy=pharmacy_from_fhir(pharmacy),
            diagnoses=[c["code"] for rc in mr.get("reasonCode", []) or []
                       for c in rc.get("coding", []) if c.get("code")],
            controlled=schedule if schedule and schedule != _table_schedule(mr) else None,
            visit=visit_from_fhir(mr.get("encounter"), resources),
            note=((mr.get("note") or [{}])[0]).get("text"),
        ))
    return out


def _table_schedule(mr: JSON) -> str | None:
    from .codes import known_drug

    rx = _medication(mr.get("medicationCodeableConcept") or {}).get("rxnorm")
    drug = known_drug(rx) if rx else None
    return drug.schedule if drug else None


# ---------------------------------------------------------------- refill request
def _task(task_id: str, ctx: MapContext, *, status: str, patient: JSON, focus: JSON,
          owner: JSON, requester: JSON, message_id: str | None) -> JSON:
    idents = [identifier(ctx.clinic.task_system("refill_request"), task_id)]
    if message_id:
        idents.append(identifier(f"{ctx.clinic.system}/v2/refill-message", message_id))
    return {
        "resourceType": "Task",
        "identifier": idents,
        "status": status,
        "intent": "order",
        "priority": "routine",
        "code": FULFILL,
        "description": "Pharmacy asks to renew a prescription",
        "focus": focus,
        "for": patient,
        "requester": requester,
        "owner": owner,
    }


def refill_request_to_fhir(task: RefillRequestTask, ctx: MapContext) -> list[Entry]:
    patient = patient_refs(task.patient, ctx)
    # a request naming no prescriber is kept: no owner yet, said so by data-absent-reason
    prescriber = practitioner_entry(task.prescriber) if task.prescriber else Refs(absent())
    pharmacy = pharmacy_entry(task.pharmacy)
    prior = prescription_ref(task.prescription, ctx)
    received = fhir_datetime(task.received)
    text = "Refill request" + (f" for {task.medication.name}" if task.medication else "")
    if task.note:
        text += f": {task.note}"
    comm: JSON = {
        "resourceType": "Communication",
        "identifier": [identifier(ctx.clinic.task_system("refill_request"), task.id)],
        "status": "completed",
        "category": [codeable(coding(COMM_CATEGORY, "notification", "Notification"))],
        "subject": patient.ref,
        "topic": codeable(coding(COMM_TOPIC, "prescription-refill-request",
                                 "Prescription Refill Request")),
        "about": [prior],
        "received": received,
        **({"recipient": [prescriber.ref]} if task.prescriber else {}),
        "sender": pharmacy.ref,
        "payload": [{"contentString": text}],
    }
    comm_entry = create(comm)
    resource = _task(task.id, ctx, status="requested", patient=patient.ref, focus=prior,
                     owner=prescriber.ref, requester=pharmacy.ref, message_id=task.message_id)
    resource["basedOn"] = [reference(comm_entry.full_url)]
    resource["authoredOn"] = received
    resource["lastModified"] = received
    inputs: list[JSON] = []
    if task.requested_quantity:
        q = task.requested_quantity
        inputs.append({"type": codeable(text="requested quantity"),
                       "valueQuantity": {"value": q.value, "unit": q.unit,
                                         "system": systems.UCUM, "code": q.unit}})
    if task.requested_refills is not None:
        inputs.append({"type": codeable(text="requested refills"),
                       "valueUnsignedInt": task.requested_refills})
    if task.medication:
        inputs.append({"type": codeable(text="medication"),
                       "valueCodeableConcept": codeable(coding(RXNORM, task.medication.rxnorm,
                                                               task.medication.name))})
    if inputs:
        resource["input"] = inputs
    return [*patient.entries, *prescriber.entries, *pharmacy.entries, comm_entry,
            update(resource)]


def _refill_tasks(resources: ResourceSet, status: tuple[str, ...]) -> list[tuple[str, JSON]]:
    out = []
    for t in resources.of_type("Task"):
        task_id = _ident(t, "/refill_request")
        if task_id and t.get("status") in status:
            out.append((task_id, t))
    return out


def _prescription_id(focus: JSON | None, resources: ResourceSet) -> str:
    mr = resources.resolve(focus)
    if mr is not None:
        found = _ident(mr, "/prescription")
        if found:
            return found
    parsed = identifier_from_reference(str((focus or {}).get("reference", "")))
    if parsed is None:
        raise ValueError("the Task's focus names no prescription")
    return parsed[2]


def _input(t: JSON, label: str) -> JSON | None:
    return next((i for i in t.get("input", []) or []
                 if (i.get("type") or {}).get("text") == label), None)


def refill_request_from_fhir(resources: ResourceSet) -> list[TaskModel]:
    out: list[TaskModel] = []
    for task_id, t in _refill_tasks(resources, ("requested", "received", "accepted")):
        qty = _input(t, "requested quantity")
        refills = _input(t, "requested refills")
        med = _input(t, "medication")
        out.append(RefillRequestTask(
            task="refill_request", id=task_id,
            patient=patient_from_fhir(resources.resolve(t["for"]), t["for"]),
            received=t.get("authoredOn") or t["lastModified"],
            prescription=_prescription_id(t.get("focus"), resources),
            prescriber=None if is_absent(t.get("owner")) else
            practitioner_from_fhir(resources.resolve(t["owner"]) or {}),
            pharmacy=reported_pharmacy_from_fhir(resources.resolve(t["requester"]) or {}),
            medication=(Medication.model_validate(_medication(med["valueCodeableConcept"]))
                        if med else None),
            requested_quantity=(Quantity.model_validate(_quantity(qty["valueQuantity"]))
                                if qty else None),
            requested_refills=refills["valueUnsignedInt"] if refills else None,
            message_id=_ident(t, "/v2/refill-message"),
        ))
    return out


# ---------------------------------------------------------------- refill decision
def refill_decision_to_fhir(task: RefillDecisionTask, ctx: MapContext) -> list[Entry]:
    patient = patient_refs(task.patient, ctx)
    prescriber = practitioner_entry(task.prescriber)
    pharmacy = pharmacy_entry(task.pharmacy)
    prior = prescription_ref(task.prescription, ctx)
    entries: list[Entry] = [*patient.entries, *prescriber.entries, *pharmacy.entries]
    status = "completed" if task.decision == "approved" else "rejected"
    resource = _task(task.request, ctx, status=status, patient=patient.ref, focus=prior,
                     owner=prescriber.ref, requester=pharmacy.ref, message_id=task.message_id)
    resource["businessStatus"] = codeable(text=task.decision)
    if task.decision == "denied":
        assert task.reason is not None
        resource["statusReason"] = codeable(
            coding(f"{ctx.clinic.system}/refill-denial-reason", task.reason,
                   DENIAL_REASONS[task.reason]),
            text=task.reason_text or DENIAL_REASONS[task.reason])
    if task.received is not None:
        resource["authoredOn"] = fhir_datetime(task.received)
    decided = fhir_datetime(task.decided)
    resource["executionPeriod"] = {"end": decided}
    resource["lastModified"] = decided
    if task.renewal is not None:
        r = task.renewal
        mr = medication_request(
            rx_id=task.id, ctx=ctx, patient=patient.ref, requester=prescriber.ref,
            pharmacy=pharmacy.ref, medication=r.medication, sig=r.sig, quantity=r.quantity,
            days_supply=r.days_supply, refills=r.refills,
            substitution_allowed=r.substitution_allowed, authored=task.decided, prior=prior)
        entries.append(mr)
        resource["output"] = [{"type": codeable(text="renewal"),
                               "valueReference": reference(mr.full_url)}]
    entries.append(update(resource))
    return entries


def refill_decision_from_fhir(resources: ResourceSet) -> list[TaskModel]:
    out: list[TaskModel] = []
    for request_id, t in _refill_tasks(resources, ("completed", "rejected")):
        renewal: Renewal | None = None
        decision_id = f"{request_id}-decision"
        output = next((o for o in t.get("output", []) or [] if "valueReference" in o), None)
        if output is not None:
            mr = resources.resolve(output["valueReference"])
            if mr is None:
                raise ValueError("the renewal MedicationRequest is not in the set")
            decision_id = _ident(mr, "/prescription") or decision_id
            dispense = mr.get("dispenseRequest") or {}
            renewal = Renewal.model_validate({
                "medication": _medication(mr["medicationCodeableConcept"]),
                "sig": _sig((mr.get("dosageInstruction") or [{}])[0]),
                "quantity": _quantity(dispense["quantity"]),
                "days_supply": (dispense.get("expectedSupplyDuration") or {}).get("value", 1),
                "refills": dispense.get("numberOfRepeatsAllowed", 0),
                "substitution_allowed": (mr.get("substitution") or {}).get("allowedBoolean",
                                                                          True),
                "pharmacy": pharmacy_from_fhir(resources.resolve(dispense.get("performer"))
                                               or {}),
            })
        reason = next((c.get("code") for c in (t.get("statusReason") or {}).get("coding", [])
                       if c.get("code") in DENIAL_REASONS), None)
        # a FHIR dateTime string, or None when the Task has neither: the model parses it
        # (a missing one fails its validation, as before)
        decided: Any = t.get("lastModified") or (t.get("executionPeriod") or {}).get("end")
        out.append(RefillDecisionTask(
            task="refill_decision", id=decision_id, request=request_id,
            request_status="requested", received=t.get("authoredOn"),
            decided=decided,
            decision="approved" if t["status"] == "completed" else "denied",
            reason=reason, reason_text=(t.get("statusReason") or {}).get("text"),
            patient=patient_from_fhir(resources.resolve(t["for"]), t["for"]),
            prescription=_prescription_id(t.get("focus"), resources),
            prescriber=practitioner_from_fhir(resources.resolve(t["owner"]) or {}),
            pharmacy=reported_pharmacy_from_fhir(resources.resolve(t["requester"]) or {}),
            renewal=renewal, message_id=_ident(t, "/v2/refill-message"),
        ))
    return out


# ---------------------------------------------------------------- lifecycle
def _key(task: TaskModel) -> str:
    if isinstance(task, RefillDecisionTask):
        return task.request
    return task.id


def refill_step(task: TaskModel, known: str | None) -> str:
    """requested → approved | denied; a request is answered once, and only when known."""
    if isinstance(task, RefillRequestTask):
        if known in (None, "requested"):
            return "requested"
        raise AlreadyAnswered(task.id, known, "requested")
    if not isinstance(task, RefillDecisionTask):
        raise TypeError(f"not a refill task: {type(task).__name__}")
    current = known or task.request_status
    if current is None:
        raise InputError([Problem("request", f"no refill request '{task.request}' is known: it "
                                             "was not received in this run and request_status "
                                             "does not say it is open (decide through the "
                                             "worklist: mafhir pharmacy decide)", "not-found")])
    if current != "requested":
        raise AlreadyAnswered(task.request, current, task.decision)
    return task.decision


REFILL_LIFECYCLE = Lifecycle(key=_key, step=refill_step)

MAPPERS: list[tuple[str, type[TaskModel], Callable[..., list[Entry]],
                    Callable[[ResourceSet], list[TaskModel]], str]] = [
    ("prescription", PrescriptionTask, prescription_to_fhir, prescription_from_fhir,
     "a prescription relayed to the patient's pharmacy (US Core MedicationRequest)"),
    ("refill_request", RefillRequestTask, refill_request_to_fhir, refill_request_from_fhir,
     "a pharmacy's refill request on the prescriber's worklist (Task + Communication)"),
    ("refill_decision", RefillDecisionTask, refill_decision_to_fhir, refill_decision_from_fhir,
     "the prescriber's answer: a renewal MedicationRequest, or the request rejected"),
]


def mappers() -> list[Mapper]:
    """The three kinds; both refill kinds share the refill lifecycle (keyed on the request)."""
    return [Mapper(kind, model, to, back, text,
                   lifecycle=REFILL_LIFECYCLE if kind != "prescription" else None)
            for kind, model, to, back, text in MAPPERS]
