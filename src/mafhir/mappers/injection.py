"""The injection task kind: one in-office injection → MedicationAdministration (and back).

Choices (mapping-reference §9; see also ``tasks/injection.py``):

* MedicationAdministration has no US Core profile (US Core profiles the medication list
  as MedicationRequest only), so it claims none: base R4, with US Core references.
* The product is a *contained* Medication when a lot or expiry is known (R4
  MedicationAdministration has no lot element; ``Medication.batch`` has), with the RxNorm
  code and the NDC of the vial as codings; else ``medicationCodeableConcept``.
* The provider's order is a US Core MedicationRequest (``intent=order``, requester = the
  ordering provider; us-core-21), written as a conditional create under the EHR's order
  id when given (an order the EHR already has is left as it is), else under the task id.
  ``request`` points at it. The MA is ``performer`` with function ``performer``.
* Route is SNOMED CT (§9 route-codes); site is v3-ActSite as for vaccines (§9 allows it;
  the SNOMED body-structure codes for injection sites are not verified in the corpus).
* ``category`` is ``outpatient``; ``statusReason`` only with ``not-done``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import systems
from ..bundle import Entry, create
from ..context import MapContext
from ..fhirtypes import (
    codeable,
    coding,
    fhir_date,
    fhir_datetime,
    identifier,
    parse_fhir_datetime,
    quantity,
    reference,
)
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.injection import (
    DOSE_UNITS,
    INJECTION_NOT_GIVEN,
    INJECTION_ROUTES,
    INJECTION_SITES,
    InjectionTask,
    MedicationGiven,
)
from .common import (
    code_in,
    encounter_ref,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_fhir,
    visit_from_fhir,
)

__all__ = ["ADMIN_CATEGORY", "PERFORM_FUNCTION", "RXNORM", "from_fhir", "register_mappers",
           "to_fhir"]

JSON = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ADMIN_CATEGORY = systems.THO + "medication-admin-category"
PERFORM_FUNCTION = systems.THO + "med-admin-perform-function"
REQUEST_CATEGORY = systems.THO + "medicationrequest-category"
MEDICATION_ID = "med"
STATUS = {"given": "completed", "not-given": "not-done"}
_ROUTE_OF = {code: name for name, (code, _) in INJECTION_ROUTES.items()}


def _medication_code(med: MedicationGiven) -> JSON:
    codings = []
    if med.rxnorm:
        codings.append(coding(RXNORM, med.rxnorm))
    if med.ndc:
        codings.append(coding(systems.NDC, med.ndc))
    return codeable(*codings, text=med.name)


def _order(task: InjectionTask, ctx: MapContext, patient: JSON, requester: JSON) -> Entry:
    """The provider's order the injection fulfils (US Core MedicationRequest)."""
    order: JSON = {
        "resourceType": "MedicationRequest",
        "meta": {"profile": [systems.profile("us-core-medicationrequest")]},
        "identifier": [identifier(ctx.clinic.task_system("medication-order"),
                                  task.order_id or task.id)],
        "status": "completed" if task.status == "given" else "active",
        "intent": "order",
        "category": [codeable(coding(REQUEST_CATEGORY, "outpatient", "Outpatient"))],
        "medicationCodeableConcept": _medication_code(task.medication),
        "subject": patient,
    }
    if task.visit:
        order["encounter"] = encounter_ref(task.visit, ctx)
    order["requester"] = requester
    return create(order)


def to_fhir(task: InjectionTask, ctx: MapContext) -> list[Entry]:
    """The MedicationAdministration, its order, and the people and place it refers to."""
    patient = patient_refs(task.patient, ctx)
    entries: list[Entry] = list(patient.entries)
    prescriber = practitioner_entry(task.ordered_by)
    entries.extend(prescriber.entries)
    order = _order(task, ctx, patient.ref, prescriber.ref)
    entries.append(order)
    admin: JSON = {"resourceType": "MedicationAdministration"}
    if task.lot_number or task.expiration_date:
        med: JSON = {"resourceType": "Medication", "id": MEDICATION_ID,
                     "code": _medication_code(task.medication), "batch": {}}
        if task.lot_number:
            med["batch"]["lotNumber"] = task.lot_number
        if task.expiration_date:
            med["batch"]["expirationDate"] = fhir_date(task.expiration_date)
        admin["contained"] = [med]
    admin["identifier"] = [identifier(ctx.clinic.task_system("injection"), task.id)]
    admin["status"] = STATUS[task.status]
    if task.reason_not_given:
        admin["statusReason"] = [codeable(coding(
            systems.ACT_REASON, task.reason_not_given,
            INJECTION_NOT_GIVEN[task.reason_not_given]))]
    admin["category"] = codeable(coding(ADMIN_CATEGORY, "outpatient", "Outpatient"))
    if "contained" in admin:
        admin["medicationReference"] = reference(f"#{MEDICATION_ID}", task.medication.name)
    else:
        admin["medicationCodeableConcept"] = _medication_code(task.medication)
    admin["subject"] = patient.ref
    if task.visit:
        admin["context"] = encounter_ref(task.visit, ctx)
    admin["effectiveDateTime"] = fhir_datetime(task.occurred)
    if task.administered_by is not None:
        nurse = practitioner_entry(task.administered_by)
        entries.extend(nurse.entries)
        admin["performer"] = [{
            "function": codeable(coding(PERFORM_FUNCTION, "performer", "Performer")),
            "actor": nurse.ref,
        }]
    admin["request"] = reference(order.full_url)
    if task.note:
        admin["note"] = [{"text": task.note}]
    dosage: JSON = {}
    if task.site:
        dosage["site"] = codeable(coding(systems.ACT_SITE, task.site,
                                         INJECTION_SITES[task.site]))
    if task.route:
        code, display = INJECTION_ROUTES[task.route]
        dosage["route"] = codeable(coding(systems.SNOMED, code, display))
    if task.dose is not None:
        dosage["dose"] = quantity(task.dose.value, task.dose.unit, DOSE_UNITS[task.dose.unit])
    if dosage:
        admin["dosage"] = dosage
    entries.append(create(admin))
    return entries


# ---------------------------------------------------------------- reverse


def _task_id(admin: JSON) -> str | None:
    for ident in admin.get("identifier", []):
        if str(ident.get("system", "")).endswith("/injection") and ident.get("value"):
            return ident["value"]
    return None


def _medication(admin: JSON) -> tuple[JSON, JSON]:
    """(the medication's CodeableConcept, its batch) of an administration."""
    ref = admin.get("medicationReference")
    if ref and str(ref.get("reference", "")).startswith("#"):
        med: JSON = next((c for c in admin.get("contained", [])
                    if c.get("id") == ref["reference"][1:]), {})
        return med.get("code") or {}, med.get("batch") or {}
    return admin.get("medicationCodeableConcept") or {}, {}


def _one(admin: JSON, resources: ResourceSet) -> InjectionTask:
    task_id = _task_id(admin)
    concept, batch = _medication(admin)
    subject = admin.get("subject")
    data: JSON = {
        "task": "injection", "id": task_id,
        "patient": patient_from_fhir(resources.resolve(subject), subject),
        "status": "not-given" if admin.get("status") == "not-done" else "given",
        "medication": {"rxnorm": code_in(concept, RXNORM), "ndc": code_in(concept, systems.NDC),
                       "name": concept.get("text")},
        "occurred": parse_fhir_datetime(admin["effectiveDateTime"]),
        "lot_number": batch.get("lotNumber"),
        "expiration_date": batch.get("expirationDate"),
    }
    for reason in admin.get("statusReason", []):
        data["reason_not_given"] = code_in(reason, systems.ACT_REASON)
    dosage = admin.get("dosage") or {}
    data["site"] = code_in(dosage.get("site"), systems.ACT_SITE)
    data["route"] = _ROUTE_OF.get(code_in(dosage.get("route"), systems.SNOMED) or "")
    dose = dosage.get("dose")
    if dose:
        data["dose"] = {"value": dose.get("value"), "unit": dose.get("code")}
    for perf in admin.get("performer", []):
        actor = resources.resolve(perf.get("actor"))
        if actor and actor.get("resourceType") == "Practitioner":
            data["administered_by"] = practitioner_from_fhir(actor)
    order = resources.resolve(admin.get("request"))
    if order is not None:
        requester = resources.resolve(order.get("requester"))
        if requester is not None:
            data["ordered_by"] = practitioner_from_fhir(requester)
        order_id = next((i.get("value") for i in order.get("identifier", [])
                         if str(i.get("system", "")).endswith("/medication-order")), None)
        if order_id != task_id:
            data["order_id"] = order_id
    if (visit := visit_from_fhir(admin.get("context"), resources)) is not None:
        data["visit"] = visit
    if admin.get("note"):
        data["note"] = "\n".join(n.get("text", "") for n in admin["note"])
    return InjectionTask.model_validate({k: v for k, v in data.items() if v is not None})


def from_fhir(resources: ResourceSet) -> list[InjectionTask]:
    """The injection tasks behind the MedicationAdministrations mafhir made."""
    return [_one(a, resources) for a in resources.of_type("MedicationAdministration")
            if _task_id(a) is not None]


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("injection", InjectionTask, to_fhir, from_fhir,
                    "an in-office injection (not a vaccine) → MedicationAdministration + its "
                    "order (US Core MedicationRequest)"))
