"""What the result-making kinds share (point-of-care tests, EKG, skin tests): the parts of
an Observation or DiagnosticReport every one of them carries, interpretation codes, and
finding their own resources again when reading FHIR back.

Pure functions, like every mapper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from .. import systems
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_datetime, parse_fhir_datetime
from ..resourceset import ResourceSet
from ..tasks.common import ClinicianRef, PatientRef
from .common import (
    Refs,
    encounter_ref,
    patient_from_fhir,
    practitioner_from_ref,
    read_back,
    visit_from_fhir,
)

__all__ = [
    "INTERPRETATION",
    "INTERPRETATION_SYSTEM",
    "V2_0074",
    "by_task",
    "category",
    "interpretation",
    "interpretation_of",
    "loinc",
    "loinc_codes",
    "read_tasks",
    "shared_from",
    "subject_parts",
]

JSON = dict[str, Any]

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
#: v3-ObservationInterpretation codes written (mapping-reference §7.3).
INTERPRETATION = {"H": "High", "L": "Low", "N": "Normal", "A": "Abnormal", "POS": "Positive",
                  "NEG": "Negative"}

_CATEGORY_DISPLAY = {"laboratory": "Laboratory", "procedure": "Procedure",
                     "vital-signs": "Vital Signs", "exam": "Exam"}


def category(code: str) -> JSON:
    """An observation-category CodeableConcept (laboratory, procedure…)."""
    return codeable(coding(systems.OBSERVATION_CATEGORY, code, _CATEGORY_DISPLAY[code]))


def loinc(code: tuple[str, str], text: str | None = None) -> JSON:
    """A LOINC CodeableConcept from a ``(code, display)`` pair."""
    return codeable(coding(systems.LOINC, code[0], code[1]), text=text or code[1])


def interpretation(code: str) -> list[JSON]:
    """``Observation.interpretation`` with one v3 code."""
    return [codeable(coding(INTERPRETATION_SYSTEM, code, INTERPRETATION[code]))]


def interpretation_of(resource: JSON) -> str | None:
    """The v3 interpretation code an Observation carries, or None."""
    for concept in resource.get("interpretation") or []:
        for c in concept.get("coding", []):
            if c.get("system") == INTERPRETATION_SYSTEM:
                return str(c.get("code"))
    return None


def loinc_codes(concept: Any) -> set[str]:
    """The LOINC codes of a CodeableConcept."""
    if not isinstance(concept, dict):
        return set()
    return {str(c.get("code")) for c in concept.get("coding", [])
            if c.get("system") == systems.LOINC}


def subject_parts(patient: Refs, performer: Refs | None, visit: str | None, effective: Any,
                  ctx: MapContext, *, effective_key: str = "effectiveDateTime") -> JSON:
    """``subject``, ``encounter``, the effective time and ``performer``, in FHIR order."""
    out: JSON = {"subject": patient.ref}
    if visit:
        out["encounter"] = encounter_ref(visit, ctx)
    out[effective_key] = fhir_datetime(effective)
    if performer is not None:
        out["performer"] = [performer.ref]
    return out


def by_task(resources: ResourceSet, rtype: str, kind: str) -> dict[str, dict[str, JSON]]:
    """Resources of ``rtype`` a mapper of ``kind`` made, by task id then slug.

    Recognised by a business identifier ``<task id>/<slug>`` in the clinic's ``…/<kind>``
    system (:meth:`Clinic.task_system`), so kinds never read each other's resources.
    """
    out: dict[str, dict[str, JSON]] = {}
    suffix = f"/{kind}"
    for resource in resources.of_type(rtype):
        for ident in resource.get("identifier") or []:
            system, value = str(ident.get("system", "")), str(ident.get("value", ""))
            if system.endswith(suffix) and "/" in value:
                task_id, slug = value.rsplit("/", 1)
                out.setdefault(task_id, {})[slug] = resource
                break
    return out


T = TypeVar("T")


def read_tasks(kind: str, resources: ResourceSet, rtypes: tuple[str, ...],
               read: Callable[[str, dict[str, JSON], ResourceSet], T]) -> list[T]:
    """The tasks of ``kind`` behind ``resources``: each task's resources (of ``rtypes``,
    found by :func:`by_task`) read by ``read(task_id, parts, resources)``.

    Raises :class:`InputError` naming the task (``poc_test 'p-1'``) and the field when its
    resources do not make a valid task.
    """
    found: dict[str, dict[str, JSON]] = {}
    for rtype in rtypes:
        for task_id, parts in by_task(resources, rtype, kind.replace("_", "-")).items():
            found.setdefault(task_id, {}).update(parts)
    return [read_back(f"{kind} '{task_id}'", partial(read, task_id, parts, resources))
            for task_id, parts in found.items()]


def shared_from(resource: JSON, resources: ResourceSet,
                effective_key: str = "effectiveDateTime") -> JSON:
    """The task fields every result kind reads back the same way: patient, visit, time,
    performer (a Practitioner, or an NPI reference)."""
    subject = resource.get("subject") or resource.get("patient") or {}
    when = resource.get(effective_key)
    if not isinstance(when, str):
        raise ValueError(f"the {resource.get('resourceType')} carries no {effective_key}")
    out: JSON = {"patient": _patient(subject, resources), "effective": parse_fhir_datetime(when)}
    visit = visit_from_fhir(resource.get("encounter"), resources)
    if visit:
        out["visit"] = visit
    for ref in _performer_refs(resource.get("performer")):
        person: ClinicianRef | None = practitioner_from_ref(ref, resources)
        if person is not None:
            out["performer"] = person
            break
    return out


def _patient(subject: JSON, resources: ResourceSet) -> PatientRef:
    return patient_from_fhir(resources.resolve(subject), subject)


def _performer_refs(performers: Any) -> Iterable[JSON]:
    for p in performers or []:
        if isinstance(p, dict):
            yield p.get("actor", p)  # Procedure.performer.actor, Observation.performer
