"""lab_order ⇄ US Core ServiceRequest, specimen_collection ⇄ US Core Specimen (pure).

One ServiceRequest per ordered test, identified by its placer order number (type PLAC,
the number ORC-2 carries to the lab and the lab echoes in its results); the tests of
one order share a requisition (ORC-4). A task changes an order (a cancel), so it is a
conditional update; a specimen is made once, so it is a conditional create.
"""

from __future__ import annotations

from typing import Any

from mafhir import systems
from mafhir.bundle import Entry, create, update
from mafhir.context import MapContext
from mafhir.fhirtypes import codeable, coding, fhir_datetime, identifier, reference
from mafhir.identity import identifier_query
from mafhir.mappers.common import (
    encounter_ref,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_fhir,
)
from mafhir.resourceset import ResourceSet
from mafhir.tasks import TaskModel

from .codes import (
    BODY_SITES,
    COLLECTION_METHODS,
    FASTING,
    ORDER_TESTS,
    SERVICEREQUEST_CATEGORY_LAB,
    SPECIMEN_TYPES,
    V2_0487,
    V2_0488,
    V2_0916,
)
from .tasks import LabOrder, LabTest, SpecimenCollection

__all__ = [
    "ICD10CM",
    "lab_order_from_fhir",
    "lab_order_to_fhir",
    "placer_system",
    "specimen_from_fhir",
    "specimen_system",
    "specimen_to_fhir",
]

JSON = dict[str, Any]
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
PLAC = codeable(coding(systems.V2_0203, "PLAC", "Placer Identifier"))


def placer_system(ctx: MapContext) -> str:
    """The namespace of the clinic's placer order numbers."""
    return ctx.clinic.task_system("lab_order")


def specimen_system(ctx: MapContext) -> str:
    return ctx.clinic.task_system("specimen_collection")


def lab_order_to_fhir(task: TaskModel, ctx: MapContext) -> list[Entry]:
    assert isinstance(task, LabOrder)
    patient = patient_refs(task.patient, ctx)
    requester = practitioner_entry(task.requester)
    entries: list[Entry] = [*patient.entries, *requester.entries]
    for i, test in enumerate(task.tests):
        code, display = test.code
        sr: JSON = {
            "resourceType": "ServiceRequest",
            "meta": {"profile": [systems.profile("us-core-servicerequest")]},
            "identifier": [identifier(placer_system(ctx), task.placer_number(i), type=PLAC)],
            "requisition": identifier(ctx.clinic.task_system("lab_requisition"), task.id),
            "status": "revoked" if task.cancel else "active",
            "intent": "order",
            "category": [codeable(coding(systems.SNOMED, *SERVICEREQUEST_CATEGORY_LAB))],
            "priority": task.priority,
            "code": codeable(coding(systems.LOINC, code, display or None)),
        }
        if task.fasting is not None:
            sr["orderDetail"] = [codeable(coding(V2_0916, *FASTING[task.fasting]))]
        sr["subject"] = patient.ref
        if task.visit:
            sr["encounter"] = encounter_ref(task.visit, ctx)
        sr["authoredOn"] = fhir_datetime(task.ordered)
        sr["requester"] = requester.ref
        if task.lab:
            sr["performer"] = [{"display": task.lab}]
        if task.diagnoses:
            sr["reasonCode"] = [codeable(coding(ICD10CM, dx)) for dx in task.diagnoses]
        if task.specimens:
            sr["specimen"] = [reference(f"Specimen?{identifier_query(specimen_system(ctx), s)}")
                              for s in task.specimens]
        if task.note:
            sr["note"] = [{"text": task.note}]
        entries.append(update(sr))
    return entries


def specimen_to_fhir(task: TaskModel, ctx: MapContext) -> list[Entry]:
    assert isinstance(task, SpecimenCollection)
    patient = patient_refs(task.patient, ctx)
    entries: list[Entry] = list(patient.entries)
    snomed, snomed_display, v2, v2_display = SPECIMEN_TYPES[task.type]
    idents = [identifier(specimen_system(ctx), task.id)]
    if task.label:
        idents.append(identifier(ctx.clinic.task_system("specimen_label"), task.label))
    spec: JSON = {
        "resourceType": "Specimen",
        "meta": {"profile": [systems.profile("us-core-specimen")]},
        "identifier": idents,
        "status": "available",
        "type": codeable(coding(systems.SNOMED, snomed, snomed_display),
                         coding(V2_0487, v2, v2_display)),
        "subject": patient.ref,
    }
    if task.order:
        spec["request"] = [reference(
            f"ServiceRequest?{identifier_query(placer_system(ctx), task.order)}")]
    collection: JSON = {}
    if task.collector is not None:
        who = practitioner_entry(task.collector)
        entries.extend(who.entries)
        collection["collector"] = who.ref
    collection["collectedDateTime"] = fhir_datetime(task.collected)
    if task.method:
        v2code, v2disp, sct, sct_disp = COLLECTION_METHODS[task.method]
        codings = [coding(V2_0488, v2code, v2disp)]
        if sct:
            codings.append(coding(systems.SNOMED, sct, sct_disp))
        collection["method"] = codeable(*codings)
    if task.body_site:
        collection["bodySite"] = codeable(coding(systems.SNOMED, *BODY_SITES[task.body_site]))
    spec["collection"] = collection
    if task.label:
        spec["container"] = [{"identifier": [identifier(
            ctx.clinic.task_system("specimen_label"), task.label)]}]
    if task.note:
        spec["note"] = [{"text": task.note}]
    entries.append(create(spec))
    return entries


# ------------------------------------------------------------------------------- reverse
def _code(concept: JSON | None, system: str) -> str | None:
    for c in (concept or {}).get("coding", []) or []:
        if c.get("system") == system and c.get("code"):
            return str(c["code"])
    return None


def _ident(resource: JSON, system: str) -> str | None:
    for ident in resource.get("identifier", []) or []:
        if ident.get("system") == system:
            return str(ident["value"])
    return None


def _ref_value(resources: ResourceSet, ref: JSON | None, suffix: str) -> str | None:
    """The business id (in the clinic namespace ending ``suffix``) a reference points at."""
    from mafhir.identity import identifier_from_reference

    text = (ref or {}).get("reference", "")
    parsed = identifier_from_reference(text)
    if parsed is not None:
        return parsed[2]
    target = resources.resolve(ref)
    for ident in (target or {}).get("identifier", []) or []:
        if str(ident.get("system", "")).endswith(suffix):
            return str(ident["value"])
    return None


def lab_order_from_fhir(resources: ResourceSet) -> list[TaskModel]:
    """lab_order tasks from ServiceRequests made by this plugin (grouped by requisition)."""
    by_req: dict[str, list[JSON]] = {}
    for sr in resources.of_type("ServiceRequest"):
        req = (sr.get("requisition") or {}).get("value")
        if req and str((sr.get("requisition") or {}).get("system", "")).endswith(
                "/lab_requisition"):
            by_req.setdefault(str(req), []).append(sr)
    names = {code: name for name, (code, _) in ORDER_TESTS.items()}
    out: list[TaskModel] = []
    for req, srs in by_req.items():
        first = srs[0]
        tests = []
        for sr in srs:
            code = _code(sr.get("code"), systems.LOINC) or ""
            tests.append(LabTest(name=names[code]) if code in names else LabTest(loinc=code))
        fasting = _code((first.get("orderDetail") or [None])[0], V2_0916)
        out.append(LabOrder(
            task="lab_order", id=req,
            patient=patient_from_fhir(resources.resolve(first.get("subject")),
                                      first.get("subject")),
            ordered=first["authoredOn"],
            requester=practitioner_from_fhir(resources.resolve(first["requester"]) or {}),
            tests=tests, priority=first.get("priority", "routine"),
            diagnoses=[c for rc in first.get("reasonCode", [])
                       if (c := _code(rc, ICD10CM)) is not None],
            fasting=None if fasting is None else fasting == "F",
            specimens=[v for r in first.get("specimen", [])
                       if (v := _ref_value(resources, r, "/specimen_collection"))],
            lab=(first.get("performer") or [{}])[0].get("display"),
            note=(first.get("note") or [{}])[0].get("text"),
            cancel=first.get("status") == "revoked",
        ))
    return out


def specimen_from_fhir(resources: ResourceSet) -> list[TaskModel]:
    by_sct = {v[0]: k for k, v in SPECIMEN_TYPES.items()}
    by_method = {v[0]: k for k, v in COLLECTION_METHODS.items()}
    by_site = {v[0]: k for k, v in BODY_SITES.items()}
    out: list[TaskModel] = []
    for spec in resources.of_type("Specimen"):
        ids = [i for i in spec.get("identifier", []) or []
               if str(i.get("system", "")).endswith("/specimen_collection")]
        if not ids:
            continue
        label = next((str(i["value"]) for i in spec.get("identifier", [])
                      if str(i.get("system", "")).endswith("/specimen_label")), None)
        coll = spec.get("collection") or {}
        collector = resources.resolve(coll.get("collector"))
        request = (spec.get("request") or [None])[0]
        out.append(SpecimenCollection(
            task="specimen_collection", id=ids[0]["value"],
            patient=patient_from_fhir(resources.resolve(spec.get("subject")),
                                      spec.get("subject")),
            order=_ref_value(resources, request, "/lab_order"),
            type=by_sct[_code(spec.get("type"), systems.SNOMED) or ""],
            method=by_method.get(_code(coll.get("method"), V2_0488) or ""),
            body_site=by_site.get(_code(coll.get("bodySite"), systems.SNOMED) or ""),
            collected=coll["collectedDateTime"],
            collector=practitioner_from_fhir(collector) if collector else None,
            label=label, note=(spec.get("note") or [{}])[0].get("text"),
        ))
    return out
