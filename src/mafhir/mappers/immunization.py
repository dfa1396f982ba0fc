"""The immunization task kind: one dose → one US Core Immunization (and back).

Choices (see also ``tasks/immunization.py``):

* ``manufacturer`` is a Reference(Organization) in R4, not a code. mafhir writes a
  *contained* Organization (``#mvx``) carrying the MVX code as its identifier (system
  ``http://hl7.org/fhir/sid/mvx``) and the CDC manufacturer name. Contained, because the
  manufacturer is a description of the product given, not an organization the clinic
  manages: no extra server writes, no collisions between tasks, and the Immunization stays
  self-describing. (A separate Organization entry would need a US Core Organization of its
  own for every vaccine maker.)
* ``programEligibility`` codes (V01…V25) use ``http://terminology.hl7.org/CodeSystem/v2-0064``
  (HL7 table 0064, where CDC's VFC codes live); no THO system has been verified for them
  (mapping-reference §3.6), so this is the documented choice. ``fundingSource`` uses CDC
  PHIN VS (``urn:oid:2.16.840.1.114222.4.5.274``).
* ``statusReason`` only with ``not-done``; ``primarySource`` always present (true for doses
  given or declined here, false for historical ones, with ``reportOrigin``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from .. import systems
from ..bundle import Entry, create
from ..codes import cvx, mvx
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_date, fhir_datetime, identifier, parse_fhir_datetime
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.immunization import (
    ELIGIBILITY,
    FUNDING_SOURCES,
    NOT_GIVEN_REASONS,
    REPORT_ORIGINS,
    ROUTES,
    SITES,
    ImmunizationTask,
    VaccineGiven,
    VisDocument,
)
from .common import (
    encounter_ref,
    location_entry,
    location_from_fhir,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_ref,
    visit_from_fhir,
)

__all__ = ["ELIGIBILITY_SYSTEM", "ORIGIN_SYSTEM", "from_fhir", "register_mappers", "to_fhir"]

JSON = dict[str, Any]

PROFILE = systems.profile("us-core-immunization")
ELIGIBILITY_SYSTEM = systems.V2_0064
ORIGIN_SYSTEM = "http://terminology.hl7.org/CodeSystem/immunization-origin"
MANUFACTURER_ID = "mvx"
FUNCTIONS = {"AP": "Administering Provider", "OP": "Ordering Provider"}
STATUS = {"given": "completed", "historical": "completed", "not-given": "not-done"}


def _concept(system: str, code: str, table: dict[str, str]) -> JSON:
    return codeable(coding(system, code, table.get(code)))


def _vaccine_code(vaccine: VaccineGiven) -> JSON:
    row = cvx(vaccine.cvx)
    display = row.short_description if row else None
    codings = [coding(systems.CVX, vaccine.cvx, display)]
    if vaccine.ndc:
        codings.append(coding(systems.NDC, vaccine.ndc))
    return codeable(*codings, text=display)


def _manufacturer(code: str) -> tuple[JSON, JSON]:
    """A contained Organization for an MVX code, and the reference to it."""
    maker = mvx(code)
    name = maker.name if maker else code
    org = {
        "resourceType": "Organization",
        "id": MANUFACTURER_ID,
        "identifier": [identifier(systems.MVX, code.upper())],
        "name": name,
    }
    return org, {"reference": f"#{MANUFACTURER_ID}", "display": name}


def _education(vis: VisDocument) -> JSON:
    out: JSON = {}
    if vis.document or vis.document_type:  # barcode, or the CDC document type's name
        out["documentType"] = vis.document or vis.document_type
    if vis.reference:
        out["reference"] = vis.reference
    if vis.published:
        out["publicationDate"] = fhir_date(vis.published)
    if vis.presented:
        out["presentationDate"] = fhir_date(vis.presented)
    return out


def to_fhir(task: ImmunizationTask, ctx: MapContext) -> list[Entry]:
    """The Immunization for one dose, plus the Patient/Practitioner/Location it needs."""
    patient = patient_refs(task.patient, ctx)
    extra: list[Entry] = list(patient.entries)
    imm: JSON = {"resourceType": "Immunization", "meta": {"profile": [PROFILE]}}
    if task.manufacturer:
        org, manufacturer = _manufacturer(task.manufacturer)
        imm["contained"] = [org]
    imm["identifier"] = [identifier(ctx.clinic.task_system("immunization"), task.id)]
    imm["status"] = STATUS[task.status]
    if task.reason_not_given:
        imm["statusReason"] = _concept(systems.ACT_REASON, task.reason_not_given,
                                       NOT_GIVEN_REASONS)
    imm["vaccineCode"] = _vaccine_code(task.vaccine)
    imm["patient"] = patient.ref
    if task.visit:
        imm["encounter"] = encounter_ref(task.visit, ctx)
    if task.occurred is not None:
        imm["occurrenceDateTime"] = fhir_datetime(task.occurred)
    elif task.occurred_date is not None:
        imm["occurrenceDateTime"] = fhir_date(task.occurred_date)
    else:
        imm["occurrenceString"] = task.occurred_text
    imm["primarySource"] = task.status != "historical"
    if task.report_origin:
        imm["reportOrigin"] = _concept(ORIGIN_SYSTEM, task.report_origin, REPORT_ORIGINS)
    if task.location:
        place = location_entry(task.location, ctx)
        imm["location"] = place.ref
        extra.extend(place.entries)
    if task.manufacturer:
        imm["manufacturer"] = manufacturer
    if task.lot_number:
        imm["lotNumber"] = task.lot_number
    if task.expiration_date:
        imm["expirationDate"] = fhir_date(task.expiration_date)
    if task.site:
        imm["site"] = _concept(systems.ACT_SITE, task.site, SITES)
    if task.route:
        imm["route"] = _concept(systems.ROUTE, task.route, ROUTES)
    if task.dose_ml is not None:
        imm["doseQuantity"] = {"value": task.dose_ml, "unit": "mL", "system": systems.UCUM,
                               "code": "mL"}
    performers = []
    for function, person in (("AP", task.administered_by), ("OP", task.ordered_by)):
        if person is not None:
            who = practitioner_entry(person)
            extra.extend(who.entries)
            performers.append({
                "function": _concept(systems.IMMUNIZATION_FUNCTION, function, FUNCTIONS),
                "actor": who.ref,
            })
    if performers:
        imm["performer"] = performers
    if task.note:
        imm["note"] = [{"text": task.note}]
    if task.vis:
        imm["education"] = [_education(v) for v in task.vis]
    if task.eligibility:
        imm["programEligibility"] = [_concept(ELIGIBILITY_SYSTEM, task.eligibility, ELIGIBILITY)]
    if task.funding_source:
        imm["fundingSource"] = _concept(systems.CDCPHINVS, task.funding_source, FUNDING_SOURCES)
    return [*extra, create(imm)]


# ---------------------------------------------------------------- reverse


def _code(concept: Any, system: str) -> str | None:
    for c in (concept or {}).get("coding", []):
        if c.get("system") == system:
            return c.get("code")
    return None


def _task_id(imm: JSON) -> str | None:
    """The task id behind our identifier ``<clinic>/immunization``, if this is one of ours."""
    for ident in imm.get("identifier", []):
        if str(ident.get("system", "")).endswith("/immunization") and ident.get("value"):
            return ident["value"]
    return None


def _manufacturer_code(imm: JSON, resources: ResourceSet) -> str | None:
    ref = imm.get("manufacturer")
    if not ref:
        return None
    org = None
    target = ref.get("reference", "")
    if target.startswith("#"):
        org = next((c for c in imm.get("contained", []) if c.get("id") == target[1:]), None)
    elif target:
        org = resources.resolve(ref)
    idents = (org or {}).get("identifier", [])
    if ref.get("identifier"):
        idents = [*idents, ref["identifier"]]
    return next((i.get("value") for i in idents if i.get("system") == systems.MVX), None)


def _performers(imm: JSON, resources: ResourceSet) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for perf in imm.get("performer", []):
        function = _code(perf.get("function"), systems.IMMUNIZATION_FUNCTION)
        person = practitioner_from_ref(perf.get("actor"), resources)
        if function in ("AP", "OP") and person is not None:
            out["administered_by" if function == "AP" else "ordered_by"] = person
    return out


def _one(imm: JSON, resources: ResourceSet) -> ImmunizationTask:
    task_id = _task_id(imm)
    patient_ref = imm.get("patient")
    data: dict[str, Any] = {
        "task": "immunization",
        "id": task_id,
        "patient": patient_from_fhir(resources.resolve(patient_ref), patient_ref),
        "vaccine": {"cvx": _code(imm.get("vaccineCode"), systems.CVX),
                    "ndc": _code(imm.get("vaccineCode"), systems.NDC)},
    }
    if imm.get("status") == "not-done":
        data["status"] = "not-given"
        data["reason_not_given"] = _code(imm.get("statusReason"), systems.ACT_REASON)
    elif imm.get("primarySource") is False:
        data["status"] = "historical"
        data["report_origin"] = _code(imm.get("reportOrigin"), ORIGIN_SYSTEM)
    else:
        data["status"] = "given"
    when = imm.get("occurrenceDateTime")
    if when and "T" in when:
        data["occurred"] = parse_fhir_datetime(when)
    elif when and len(when) == 10:
        data["occurred_date"] = date.fromisoformat(when)
    elif when:
        data["occurred_text"] = when  # a year or year-month: keep it as reported
    else:
        data["occurred_text"] = imm.get("occurrenceString")
    if (visit := visit_from_fhir(imm.get("encounter"), resources)) is not None:
        data["visit"] = visit
    place = resources.resolve(imm.get("location"))
    if place is not None:
        data["location"] = location_from_fhir(place)
    data["manufacturer"] = _manufacturer_code(imm, resources)
    data["lot_number"] = imm.get("lotNumber")
    data["expiration_date"] = imm.get("expirationDate")
    data["site"] = _code(imm.get("site"), systems.ACT_SITE)
    data["route"] = _code(imm.get("route"), systems.ROUTE)
    dose = imm.get("doseQuantity")
    if dose and dose.get("code") in ("mL", "ml") and dose.get("value") is not None:
        data["dose_ml"] = dose["value"]
    data.update(_performers(imm, resources))
    if imm.get("note"):
        data["note"] = "\n".join(n.get("text", "") for n in imm["note"])
    data["vis"] = [_vis_from(e) for e in imm.get("education", [])]
    for concept in imm.get("programEligibility", []):
        data["eligibility"] = data.get("eligibility") or _code(concept, ELIGIBILITY_SYSTEM)
    data["funding_source"] = _code(imm.get("fundingSource"), systems.CDCPHINVS)
    return ImmunizationTask.model_validate({k: v for k, v in data.items() if v is not None})


def _vis_from(education: JSON) -> JSON:
    """A VIS read back: 24 digits in ``documentType`` are the barcode, other text the
    CDC document type."""
    doc = education.get("documentType")
    barcode = isinstance(doc, str) and len(doc) == 24 and doc.isdigit()
    out = {"document": doc if barcode else None, "document_type": None if barcode else doc,
           "reference": education.get("reference"),
           "published": education.get("publicationDate"),
           "presented": education.get("presentationDate")}
    return {k: v for k, v in out.items() if v is not None}


def from_fhir(resources: ResourceSet) -> list[ImmunizationTask]:
    """The immunization tasks behind the Immunizations mafhir made (others are skipped)."""
    return [_one(imm, resources) for imm in resources.of_type("Immunization")
            if _task_id(imm) is not None]


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("immunization", ImmunizationTask, to_fhir, from_fhir,
                    "a vaccine dose given, not given or historical → US Core Immunization"))
