"""The vitals task kind: one US Core vital-sign Observation per measurement.

Choices (mapping-reference §2):

* Every measurement is an Observation with ``status`` final, category vital-signs, the
  LOINC code its US Core profile fixes, ``effectiveDateTime`` and a UCUM
  ``valueQuantity``; one not obtained has ``dataAbsentReason`` instead (§2.6: status stays
  final, the act is complete and the value absent).
* Blood pressure never has a top-level value; both components are always written, the
  missing one with ``component.dataAbsentReason`` (§2.3). Cuff site goes to ``bodySite``
  and body position to the core R4 extension ``observation-bodyPosition`` (as in the R4
  example ``Observation-map-sitting``), both SNOMED CT: no LOINC qualifier codes are
  invented.
* Temperature site goes to ``bodySite`` (SNOMED CT body structures of the HL7 Vital Signs
  IG value set ``bodyTempMeasBodyLocationPrecoordVS``).
* Pulse oximetry carries both 2708-6 and 59408-5; the inhaled O2 flow is component 3151-8
  in L/min (0 = room air, §2.4).
* BMI is always computed from this visit's height and weight and written as us-core-bmi,
  never under 2 years. An infant's recumbent length is us-core-body-height with 8306-3
  (Body height --lying) beside the fixed 8302-2; weight-for-length and head circumference
  percentiles (given by the EHR's charts) are the US Core pediatric profiles, in %, with
  the chart's name in ``note``.
* Pain has no US Core vital-sign profile (§2.5): it is written as
  us-core-observation-screening-assessment, category survey, LOINC 72514-3, valueInteger.
* An infant weight in lb + oz is written as decimal pounds (``[lb_av]``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import systems
from ..bundle import Entry, create
from ..context import MapContext
from ..fhirtypes import (
    codeable,
    coding,
    data_absent,
    fhir_datetime,
    identifier,
    parse_fhir_datetime,
    quantity,
)
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.vitals import BloodPressure, VitalsTask
from .common import (
    encounter_ref,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_ref,
    read_back,
    visit_from_fhir,
)

__all__ = [
    "BODY_POSITION_URL",
    "DATA_ABSENT_OF",
    "POSITION_CODES",
    "REASON_OF",
    "SITE_CODES",
    "SPECS",
    "VitalSpec",
    "from_fhir",
    "register_mappers",
    "to_fhir",
]

JSON = dict[str, Any]

LOINC = systems.LOINC
SNOMED = systems.SNOMED

#: The core R4 extension for the body position of an Observation.
BODY_POSITION_URL = "http://hl7.org/fhir/StructureDefinition/observation-bodyPosition"

VITAL_SIGNS = codeable(
    coding(systems.OBSERVATION_CATEGORY, "vital-signs", "Vital Signs"), text="Vital Signs"
)
SURVEY = codeable(coding(systems.OBSERVATION_CATEGORY, "survey", "Survey"), text="Survey")

#: The clinic's reason → data-absent-reason code (§2.6); one to one, so it reads back.
DATA_ABSENT_OF = {
    "patient-refused": "asked-declined",
    "unable": "not-performed",
    "equipment": "error",
    "unknown": "unknown",
}
REASON_OF = {code: reason for reason, code in DATA_ABSENT_OF.items()}

#: SNOMED CT body positions: 33586001 in the R4 example Observation-map-sitting;
#: 10904000 and 40199007 in the HL7 Vital Signs IG (heightBodyPositionVS) and the HL7
#: Norway vital-signs body-position value sets.
POSITION_CODES: dict[str, tuple[str, str]] = {
    "sitting": ("33586001", "Sitting position"),
    "standing": ("10904000", "Orthostatic body position"),
    "supine": ("40199007", "Supine body position"),
}

#: SNOMED CT body structures. Cuff sites: 368209003 in the R4 blood-pressure examples;
#: all six in the HL7 Norway blood-pressure body-site value set. Temperature sites: the
#: HL7 Vital Signs IG value set bodyTempMeasBodyLocationPrecoordVS.
SITE_CODES: dict[str, tuple[str, str]] = {
    "left-arm": ("368208006", "Left upper arm structure"),
    "right-arm": ("368209003", "Right upper arm structure"),
    "left-wrist": ("5951000", "Structure of left wrist"),
    "right-wrist": ("9736006", "Structure of right wrist"),
    "left-thigh": ("61396006", "Structure of left thigh"),
    "right-thigh": ("11207009", "Structure of right thigh"),
    "oral": ("74262004", "Oral cavity structure"),
    "tympanic": ("42859004", "Tympanic membrane structure"),
    "axillary": ("422543003", "Structure of axillary fossa"),
    "rectal": ("34402009", "Rectum structure"),
    "forehead": ("52795006", "Forehead structure"),
}
_SITE_OF = {code: name for name, (code, _) in SITE_CODES.items()}
_POSITION_OF = {code: name for name, (code, _) in POSITION_CODES.items()}

#: Human-readable ``valueQuantity.unit`` for each UCUM code written.
UNIT_TEXT = {
    "mm[Hg]": "mmHg", "[degF]": "°F", "Cel": "°C", "%": "%", "L/min": "L/min",
    "[in_i]": "in", "cm": "cm", "[lb_av]": "lb", "kg": "kg", "g": "g", "kg/m2": "kg/m2",
}

SYSTOLIC = coding(LOINC, "8480-6", "Systolic blood pressure")
DIASTOLIC = coding(LOINC, "8462-4", "Diastolic blood pressure")
O2_FLOW = coding(LOINC, "3151-8", "Inhaled oxygen flow rate")


@dataclass(frozen=True)
class VitalSpec:
    """How one measurement is coded: task field, identifier suffix, profile, codes."""

    field: str
    slug: str
    profile: str
    codings: tuple[JSON, ...]
    text: str

    @property
    def code(self) -> str:
        """The LOINC code that identifies the measurement (the profile's fixed code)."""
        return str(self.codings[-1]["code"] if self.slug == "pulse-oximetry"
                   else self.codings[0]["code"])


SPECS: tuple[VitalSpec, ...] = (
    VitalSpec("blood_pressure", "blood-pressure", "us-core-blood-pressure",
              (coding(LOINC, "85354-9", "Blood pressure panel with all children optional"),),
              "Blood pressure systolic and diastolic"),
    VitalSpec("heart_rate", "heart-rate", "us-core-heart-rate",
              (coding(LOINC, "8867-4", "Heart rate"),), "Heart rate"),
    VitalSpec("respiratory_rate", "respiratory-rate", "us-core-respiratory-rate",
              (coding(LOINC, "9279-1", "Respiratory rate"),), "Respiratory rate"),
    VitalSpec("temperature", "body-temperature", "us-core-body-temperature",
              (coding(LOINC, "8310-5", "Body temperature"),), "Body temperature"),
    VitalSpec("spo2", "pulse-oximetry", "us-core-pulse-oximetry",
              (coding(LOINC, "2708-6", "Oxygen saturation in Arterial blood"),
               coding(LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")),
              "Oxygen saturation by pulse oximetry"),
    VitalSpec("height", "body-height", "us-core-body-height",
              (coding(LOINC, "8302-2", "Body height"),), "Body height"),
    VitalSpec("weight", "body-weight", "us-core-body-weight",
              (coding(LOINC, "29463-7", "Body weight"),), "Body weight"),
    VitalSpec("length", "body-length", "us-core-body-height",
              (coding(LOINC, "8302-2", "Body height"), coding(LOINC, "8306-3",
                                                              "Body height --lying")),
              "Body length (recumbent)"),
    VitalSpec("weight_for_length_percentile", "weight-for-length-percentile",
              "pediatric-weight-for-height",
              (coding(LOINC, "77606-2", "Weight-for-length Per age and sex"),),
              "Weight-for-length percentile"),
    VitalSpec("head_circumference_percentile", "head-circumference-percentile",
              "head-occipital-frontal-circumference-percentile",
              (coding(LOINC, "8289-1", "Head Occipital-frontal circumference Percentile"),),
              "Head circumference percentile"),
    VitalSpec("head_circumference", "head-circumference", "us-core-head-circumference",
              (coding(LOINC, "9843-4", "Head Occipital-frontal circumference"),),
              "Head circumference"),
    VitalSpec("pain", "pain-score", "us-core-observation-screening-assessment",
              (coding(LOINC, "72514-3",
                      "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),),
              "Pain severity (0-10)"),
    VitalSpec("bmi", "bmi", "us-core-bmi",
              (coding(LOINC, "39156-5", "Body mass index (BMI) [Ratio]"),), "BMI"),
)
_SPEC = {s.field: s for s in SPECS}
_BY_SLUG = {s.slug: s for s in SPECS}


def _qty(value: float, code: str, unit: str | None = None) -> JSON:
    return quantity(value, code, unit or UNIT_TEXT.get(code, code))


def _site(name: str) -> JSON:
    code, display = SITE_CODES[name]
    return codeable(coding(SNOMED, code, display), text=name.replace("-", " "))


# -- task → FHIR ---------------------------------------------------------------------------


def _observation(spec: VitalSpec, task: VitalsTask, ctx: MapContext, base: JSON) -> JSON:
    """The parts every Observation of this task shares, in FHIR element order."""
    return {
        "resourceType": "Observation",
        "meta": {"profile": [systems.profile(spec.profile)]},
        "identifier": [identifier(ctx.clinic.task_system("observation"), f"{task.id}/{spec.slug}")],
        "status": "final",
        "category": [SURVEY if spec.field == "pain" else VITAL_SIGNS],
        "code": codeable(*spec.codings, text=spec.text),
        **base,
    }


def _value_or_absent(obs: JSON, value: JSON | None, reason: str | None) -> None:
    if value is not None:
        obs["valueQuantity"] = value
    else:
        obs["dataAbsentReason"] = data_absent(DATA_ABSENT_OF[reason or "unknown"])


def _blood_pressure(obs: JSON, bp: BloodPressure) -> None:
    if bp.position:
        code, display = POSITION_CODES[bp.position]
        obs["extension"] = [{"url": BODY_POSITION_URL,
                             "valueCodeableConcept": codeable(coding(SNOMED, code, display),
                                                              text=bp.position)}]
    if bp.cuff_site:
        obs["bodySite"] = _site(bp.cuff_site)
    components = []
    for side, value in ((SYSTOLIC, bp.systolic), (DIASTOLIC, bp.diastolic)):
        comp: JSON = {"code": codeable(side, text=side["display"])}
        if value is not None:
            comp["valueQuantity"] = _qty(value, "mm[Hg]")
        else:
            comp["dataAbsentReason"] = data_absent(DATA_ABSENT_OF[bp.not_obtained or "unknown"])
        components.append(comp)
    obs["component"] = components


def _fill(obs: JSON, field: str, m: Any, task: VitalsTask) -> None:
    """Value (or data-absent reason) and qualifiers of one measurement."""
    if field == "blood_pressure":
        _blood_pressure(obs, m)
    elif field == "heart_rate":
        _value_or_absent(obs, None if m.value is None else _qty(m.value, "/min", "beats/minute"),
                         m.not_obtained)
    elif field == "respiratory_rate":
        _value_or_absent(obs, None if m.value is None
                         else _qty(m.value, "/min", "breaths/minute"), m.not_obtained)
    elif field == "temperature":
        if m.site:
            obs["bodySite"] = _site(m.site)
        _value_or_absent(obs, None if m.value is None else _qty(m.value, m.unit), m.not_obtained)
    elif field == "spo2":
        _value_or_absent(obs, None if m.value is None else _qty(m.value, "%"), m.not_obtained)
        if m.o2_flow is not None:
            obs["component"] = [{"code": codeable(O2_FLOW, text=O2_FLOW["display"]),
                                 "valueQuantity": _qty(m.o2_flow, "L/min")}]
    elif field in ("weight_for_length_percentile", "head_circumference_percentile"):
        _value_or_absent(obs, None if m.value is None else _qty(m.value, "%"), m.not_obtained)
        if m.chart:
            obs["note"] = [{"text": m.chart}]
    elif field in ("height", "length", "head_circumference"):
        _value_or_absent(obs, None if m.value is None else _qty(m.value, m.unit), m.not_obtained)
    elif field == "weight":
        q = m.quantity
        _value_or_absent(obs, None if q is None else _qty(*q), m.not_obtained)
    elif field == "pain":
        if m.score is not None:
            obs["valueInteger"] = m.score
        else:
            obs["dataAbsentReason"] = data_absent(DATA_ABSENT_OF[m.not_obtained or "unknown"])
    elif field == "bmi":
        obs["valueQuantity"] = _qty(task.computed_bmi, "kg/m2")  # type: ignore[arg-type]


def _reorder(obs: JSON) -> JSON:
    """Elements in FHIR order (extension first, value before bodySite before component)."""
    order = ("resourceType", "meta", "extension", "identifier", "status", "category", "code",
             "subject", "encounter", "effectiveDateTime", "performer", "valueQuantity",
             "valueInteger", "dataAbsentReason", "note", "bodySite", "component")
    return {k: obs[k] for k in order if k in obs}


def to_fhir(task: VitalsTask, ctx: MapContext) -> list[Entry]:
    """One Observation per measurement given, plus BMI when height and weight were both
    obtained; Patient and Practitioner entries when the task brings their details."""
    entries: list[Entry] = []
    patient = patient_refs(task.patient, ctx)
    entries.extend(patient.entries)
    base: JSON = {"subject": patient.ref}
    if task.visit:
        base["encounter"] = encounter_ref(task.visit, ctx)
    base["effectiveDateTime"] = fhir_datetime(task.effective)
    if task.performer is not None:
        performer = practitioner_entry(task.performer)
        entries.extend(performer.entries)
        base["performer"] = [performer.ref]
    for spec in SPECS:
        if spec.field == "bmi":
            if task.computed_bmi is None:
                continue
            m: Any = None
        else:
            m = getattr(task, spec.field)
            if m is None:
                continue
        obs = _observation(spec, task, ctx, base)
        _fill(obs, spec.field, m, task)
        entries.append(create(_reorder(obs)))
    return entries


# -- FHIR → task ---------------------------------------------------------------------------


def _has_code(concept: Any, code: str) -> bool:
    return isinstance(concept, dict) and any(
        c.get("system") == LOINC and c.get("code") == code for c in concept.get("coding", []))


def _reason(concept: Any) -> str:
    for c in (concept or {}).get("coding", []):
        if c.get("system") == systems.DATA_ABSENT_REASON and c.get("code") in REASON_OF:
            return REASON_OF[c["code"]]
    return "unknown"


def _snomed(concept: Any, table: dict[str, str]) -> str | None:
    for c in (concept or {}).get("coding", []):
        if c.get("system") == SNOMED and c.get("code") in table:
            return table[c["code"]]
    return None


def _measure(obs: JSON, *, unit: bool) -> JSON:
    """``{"value": …, "unit": …}`` or ``{"not_obtained": …}`` from an Observation."""
    q = obs.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        out: JSON = {"value": q["value"]}
        if unit:
            out["unit"] = q.get("code")
        return out
    return {"not_obtained": _reason(obs.get("dataAbsentReason"))}


def _read_bp(obs: JSON) -> JSON:
    out: JSON = {}
    reason = None
    for comp in obs.get("component", []):
        side = ("systolic" if _has_code(comp.get("code"), "8480-6")
                else "diastolic" if _has_code(comp.get("code"), "8462-4") else None)
        if side is None:
            continue
        q = comp.get("valueQuantity")
        if isinstance(q, dict) and q.get("value") is not None:
            out[side] = q["value"]
        else:
            reason = _reason(comp.get("dataAbsentReason"))
    if reason is not None:
        out["not_obtained"] = reason
    for ext in obs.get("extension", []):
        if ext.get("url") == BODY_POSITION_URL:
            position = _snomed(ext.get("valueCodeableConcept"), _POSITION_OF)
            if position:
                out["position"] = position
    site = _snomed(obs.get("bodySite"), _SITE_OF)
    if site:
        out["cuff_site"] = site
    return out


def _read(field: str, obs: JSON) -> JSON:
    if field == "blood_pressure":
        return _read_bp(obs)
    if field in ("heart_rate", "respiratory_rate"):
        return _measure(obs, unit=False)
    if field == "temperature":
        out = _measure(obs, unit=True)
        site = _snomed(obs.get("bodySite"), _SITE_OF)
        if site:
            out["site"] = site
        return out
    if field == "spo2":
        out = _measure(obs, unit=False)
        for comp in obs.get("component", []):
            q = comp.get("valueQuantity")
            if _has_code(comp.get("code"), "3151-8") and isinstance(q, dict):
                out["o2_flow"] = q.get("value")
        return out
    if field in ("height", "length", "weight", "head_circumference"):
        return _measure(obs, unit=True)
    if field in ("weight_for_length_percentile", "head_circumference_percentile"):
        out = _measure(obs, unit=False)
        notes = [n.get("text") for n in obs.get("note") or [] if n.get("text")]
        if notes:
            out["chart"] = notes[0]
        return out
    if field == "pain":
        if isinstance(obs.get("valueInteger"), int):
            return {"score": obs["valueInteger"]}
        return {"not_obtained": _reason(obs.get("dataAbsentReason"))}
    if field == "bmi":
        return {"value": (obs.get("valueQuantity") or {}).get("value")}
    raise ValueError(f"unknown vital sign field {field}")


def _visit(obs: JSON, resources: ResourceSet) -> str | None:
    return visit_from_fhir(obs.get("encounter"), resources)


def _vitals_observations(resources: ResourceSet) -> dict[str, dict[str, JSON]]:
    """Observations made by this mapper, by task id then task field.

    Recognised by a business identifier ``<task id>/<slug>`` in an ``…/observation``
    system and the LOINC code that slug stands for.
    """
    groups: dict[str, dict[str, JSON]] = {}
    for obs in resources.of_type("Observation"):
        for ident in obs.get("identifier") or []:
            system, value = str(ident.get("system", "")), str(ident.get("value", ""))
            if not system.endswith("/observation") or "/" not in value:
                continue
            task_id, slug = value.rsplit("/", 1)
            spec = _BY_SLUG.get(slug)
            if spec is not None and _has_code(obs.get("code"), spec.code):
                groups.setdefault(task_id, {})[spec.field] = obs
                break
    return groups


def _task_from(task_id: str, found: dict[str, JSON], resources: ResourceSet) -> VitalsTask:
    first = next(iter(found.values()))
    when = first.get("effectiveDateTime")
    if not isinstance(when, str):
        raise ValueError("the Observations carry no effectiveDateTime")
    subject = first.get("subject") or {}
    patient = patient_from_fhir(resources.resolve(subject), subject)
    raw: JSON = {"task": "vitals", "id": task_id, "patient": patient,
                 "effective": parse_fhir_datetime(when)}
    visit = _visit(first, resources)
    if visit:
        raw["visit"] = visit
    performers = first.get("performer") or []
    performer = practitioner_from_ref(performers[0], resources) if performers else None
    if performer is not None:
        raw["performer"] = performer
    for field, obs in found.items():
        raw[field] = _read(field, obs)
    # The BMI is re-checked against height and weight (model validation), then dropped:
    # it is derived data, recomputed whenever the task is mapped again.
    task = VitalsTask.model_validate(raw)
    return task.model_copy(update={"bmi": None})


def from_fhir(resources: ResourceSet) -> list[VitalsTask]:
    """The vitals tasks behind the vital-sign Observations in ``resources``.

    Raises :class:`InputError` naming the task when its Observations do not make a valid
    task (e.g. a BMI that no longer matches the height and weight beside it).
    """
    return [read_back(f"vitals '{task_id}'", partial(_task_from, task_id, found, resources))
            for task_id, found in _vitals_observations(resources).items()]


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("vitals", VitalsTask, to_fhir, from_fhir,
                    "Vital signs taken while rooming: one US Core Observation each"))
