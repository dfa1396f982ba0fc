"""The ekg task kind: a resting 12-lead EKG as Procedure, report and measurements.

Choices (mapping-reference §8):

* The recording is a ``us-core-procedure`` Procedure (SNOMED CT 29303009
  Electrocardiographic procedure, CPT 93000), performed by the MA, status completed.
* The report is a ``us-core-diagnosticreport-note`` (category LOINC LP29708-2 Cardiology,
  code 11524-6 EKG study) with the tracing as ``presentedForm``: ``application/pdf``,
  the base64 ``data``, ``size`` (bytes of the PDF) and ``hash`` (base64 of its SHA-1),
  both computed here as FHIR Attachment requires.
* Each measurement is a ``us-core-observation-clinical-result`` Observation, category
  procedure, ``partOf`` the Procedure: 8867-4 heart rate (/min; also category
  vital-signs, as R4 asks of that code), 8625-6 PR, 8633-0 QRS, 8634-8 QT, 8636-3 QTc
  (ms), 8632-2 QRS axis (deg). A QTc mafhir computed says so in ``method`` (and is not
  read back as the machine's).
* The interpretation is the provider's: until ``signed`` the report and measurements are
  ``preliminary`` and carry no conclusion; signed, they are ``final``, the report has
  ``resultsInterpreter`` and ``conclusion``, and an 8601-7 EKG impression Observation
  holds the provider's words. Writes are conditional updates (PUT on the identifier) so
  that a signed task sent after the unsigned one moves the same resources to final.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

from .. import systems
from ..bundle import Entry, update
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_datetime, identifier, parse_fhir_datetime, quantity
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.ekg import EkgTask
from .common import Refs, encounter_ref, patient_refs, practitioner_entry, practitioner_from_ref
from .results import category, loinc, read_tasks, shared_from

__all__ = ["KIND", "MEASUREMENTS", "attachment", "from_fhir", "register_mappers", "to_fhir"]

JSON = dict[str, Any]

KIND = "ekg"
CPT = "http://www.ama-assn.org/go/cpt"
PROCEDURE_CODE = codeable(coding(systems.SNOMED, "29303009", "Electrocardiographic procedure"),
                          coding(CPT, "93000"), text="12-lead EKG")
REPORT_CATEGORY = codeable(coding(systems.LOINC, "LP29708-2", "Cardiology"))
REPORT_CODE = ("11524-6", "EKG study")
IMPRESSION_CODE = ("8601-7", "EKG impression")

#: Task field → (identifier slug, LOINC code and display, UCUM unit, unit text).
MEASUREMENTS: dict[str, tuple[str, tuple[str, str], str, str]] = {
    "heart_rate": ("heart-rate", ("8867-4", "Heart rate"), "/min", "beats/minute"),
    "pr_ms": ("pr", ("8625-6", "P-R Interval"), "ms", "ms"),
    "qrs_ms": ("qrs", ("8633-0", "QRS duration"), "ms", "ms"),
    "qt_ms": ("qt", ("8634-8", "Q-T interval"), "ms", "ms"),
    "qtc_ms": ("qtc", ("8636-3", "Q-T interval corrected"), "ms", "ms"),
    "axis_deg": ("axis", ("8632-2", "QRS axis"), "deg", "degrees"),
}
_FIELD_OF = {slug: field for field, (slug, *_rest) in MEASUREMENTS.items()}
_COMPUTED = "computed by mafhir from QT and heart rate"
_ORDER = ("resourceType", "meta", "contained", "identifier", "partOf", "status", "category",
          "code", "subject", "encounter", "effectiveDateTime", "performedDateTime", "issued",
          "performer", "resultsInterpreter", "valueQuantity", "valueString", "note", "method",
          "result", "conclusion", "presentedForm")


def attachment(data: bytes, title: str | None, created: str) -> JSON:
    """A PDF Attachment with the ``size`` and SHA-1 ``hash`` FHIR asks for."""
    out: JSON = {"contentType": "application/pdf",
                 "data": base64.b64encode(data).decode("ascii"),
                 "size": len(data),
                 "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")}
    if title:
        out["title"] = title
    out["creation"] = created
    return out


def _ordered(resource: JSON) -> JSON:
    return {k: resource[k] for k in _ORDER if k in resource}


def _ident(task: EkgTask, ctx: MapContext, slug: str) -> list[JSON]:
    return [identifier(ctx.clinic.task_system(KIND), f"{task.id}/{slug}")]


def _common(task: EkgTask, ctx: MapContext, patient: Refs) -> JSON:
    out: JSON = {"subject": patient.ref}
    if task.visit:
        out["encounter"] = encounter_ref(task.visit, ctx)
    return out


def _measurement(task: EkgTask, ctx: MapContext, field: str, value: float, base: JSON,
                 procedure: Entry, status: str) -> Entry:
    slug, code, unit, unit_text = MEASUREMENTS[field]
    categories = [category("procedure")]
    if field == "heart_rate":
        categories.append(category("vital-signs"))
    obs: JSON = {
        "resourceType": "Observation",
        "meta": {"profile": [systems.profile("us-core-observation-clinical-result")]},
        "identifier": _ident(task, ctx, slug),
        "partOf": [{"reference": procedure.full_url}],
        "status": status,
        "category": categories,
        "code": loinc(code),
        **base,
        "valueQuantity": quantity(value, unit, unit_text),
    }
    if field == "qtc_ms":
        how = "as reported by the electrocardiograph" if task.qtc_ms is not None else _COMPUTED
        obs["method"] = {"text": f"{task.qtc_formula.capitalize()} formula, {how}"}
    return update(_ordered(obs))


def to_fhir(task: EkgTask, ctx: MapContext) -> list[Entry]:
    """Procedure, measurement Observations and the report with the tracing; the signed
    impression when the provider has read it."""
    entries: list[Entry] = []
    patient = patient_refs(task.patient, ctx)
    entries.extend(patient.entries)
    ma = None
    if task.performer is not None:
        ma = practitioner_entry(task.performer)
        entries.extend(ma.entries)
    common = _common(task, ctx, patient)
    when = fhir_datetime(task.effective)
    proc: JSON = {"resourceType": "Procedure",
                  "meta": {"profile": [systems.profile("us-core-procedure")]},
                  "identifier": _ident(task, ctx, "procedure"), "status": "completed",
                  "code": PROCEDURE_CODE, **common, "performedDateTime": when}
    if ma is not None:
        proc["performer"] = [{"actor": ma.ref}]
    procedure = update(_ordered(proc))
    entries.append(procedure)

    status = "final" if task.signed is not None else "preliminary"
    base: JSON = {**common, "effectiveDateTime": when}
    if ma is not None:
        base["performer"] = [ma.ref]
    results: list[Entry] = []
    for field in MEASUREMENTS:
        value = task.qtc_value if field == "qtc_ms" else getattr(task, field)
        if value is not None:
            results.append(_measurement(task, ctx, field, value, base, procedure, status))

    report: JSON = {
        "resourceType": "DiagnosticReport",
        "meta": {"profile": [systems.profile("us-core-diagnosticreport-note")]},
        "identifier": _ident(task, ctx, "report"), "status": status,
        "category": [REPORT_CATEGORY], "code": loinc(REPORT_CODE), **common,
        "effectiveDateTime": when,
    }
    signed = task.signed
    if ma is not None:
        report["performer"] = [ma.ref]
    if signed is not None:
        reader = practitioner_entry(signed.by)
        entries.extend(reader.entries)
        impression: JSON = {
            "resourceType": "Observation",
            "meta": {"profile": [systems.profile("us-core-observation-clinical-result")]},
            "identifier": _ident(task, ctx, "impression"),
            "partOf": [{"reference": procedure.full_url}], "status": "final",
            "category": [category("procedure")], "code": loinc(IMPRESSION_CODE), **common,
            "effectiveDateTime": when, "issued": fhir_datetime(signed.at),
            "performer": [reader.ref], "valueString": signed.impression}
        results.append(update(_ordered(impression)))
        report["issued"] = fhir_datetime(signed.at)
        report["resultsInterpreter"] = [reader.ref]
        report["conclusion"] = signed.impression
    else:
        report["issued"] = when
    report["result"] = [{"reference": e.full_url} for e in results]
    report["presentedForm"] = [attachment(task.tracing.data, task.tracing.title, when)]
    entries.extend(results)
    entries.append(update(_ordered(report)))
    return entries


# -- FHIR → task ---------------------------------------------------------------------------


def _task_from(task_id: str, found: dict[str, JSON], resources: ResourceSet) -> EkgTask:
    proc, report = found.get("procedure"), found.get("report")
    if proc is None or report is None:
        raise ValueError("an EKG needs its Procedure and its DiagnosticReport")
    raw: JSON = {"task": "ekg", "id": task_id, **shared_from(proc, resources,
                                                             "performedDateTime")}
    form = (report.get("presentedForm") or [{}])[0]
    raw["tracing"] = {k: v for k, v in (("pdf_base64", form.get("data")),
                                        ("title", form.get("title"))) if v}
    for slug, field in _FIELD_OF.items():
        obs = found.get(slug)
        if obs is None:
            continue
        if field == "qtc_ms":
            method = str((obs.get("method") or {}).get("text", ""))
            raw["qtc_formula"] = "fridericia" if method.startswith("Fridericia") else "bazett"
            if _COMPUTED in method:
                continue  # derived, recomputed whenever the task is mapped again
        raw[field] = (obs.get("valueQuantity") or {}).get("value")
    if report.get("status") == "final":
        interpreters = report.get("resultsInterpreter") or []
        by = practitioner_from_ref(interpreters[0], resources) if interpreters else None
        if by is None or not report.get("issued"):
            raise ValueError("a final EKG report without its interpreter or issued time")
        raw["signed"] = {"by": by, "at": parse_fhir_datetime(report["issued"]),
                         "impression": report.get("conclusion")}
    return EkgTask.model_validate(raw)


def from_fhir(resources: ResourceSet) -> list[EkgTask]:
    """The ekg tasks behind the Procedures and reports this kind wrote."""
    return read_tasks("ekg", resources, ("Procedure", "DiagnosticReport", "Observation"),
                      _task_from)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("ekg", EkgTask, to_fhir, from_fhir,
                    "Resting 12-lead EKG: Procedure, report with the PDF, measurements"))
