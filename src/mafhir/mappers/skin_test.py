"""The skin_test task kind: a tuberculin skin test's placement and reading.

Choices:

* The placement is a ``us-core-procedure`` Procedure: status completed, CPT 86580
  (tuberculosis skin test, intradermal), ``performedDateTime`` the placement time,
  ``bodySite`` the forearm (v3-ActSite LLFA/RLFA, HL7 table 0163 as for vaccines) and the
  PPD with its lot and expiry as a contained ``Medication`` (``batch``) in
  ``usedReference``: R4 Procedure has no lot of its own.
* The reading is a ``us-core-observation-lab`` Observation (LOINC 1648-5, a
  laboratory-class term, so it satisfies the lab code binding): the induration as a UCUM
  ``mm`` quantity, interpretation POS/NEG against the risk group's cut-off, which is also
  written as the reference range's text; ``partOf`` points at the placement Procedure.
* Identifiers are ``<task id>/placement`` and ``<task id>/reading`` in the clinic's
  ``…/skin-test`` system; both are conditional creates, so sending the task again with
  its reading adds the reading and leaves the placement as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import systems
from ..bundle import Entry, create
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_date, fhir_datetime, identifier, quantity
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.skin_test import Placement, Reading, SkinTestTask
from .common import Refs, encounter_ref, patient_refs, practitioner_entry
from .results import (
    category,
    interpretation,
    interpretation_of,
    loinc,
    read_tasks,
    shared_from,
)

__all__ = ["CPT", "KIND", "from_fhir", "register_mappers", "to_fhir"]

JSON = dict[str, Any]

KIND = "skin-test"
CPT = "http://www.ama-assn.org/go/cpt"
PLACEMENT_CODE = codeable(coding(CPT, "86580", "Tuberculosis skin test, intradermal"),
                          text="Tuberculin skin test (Mantoux) placed")
#: LOINC 1648-5 (LOINC short name "TB Wheal 3D p 5 TU Diam"): the 5 TU Mantoux reading.
READING_CODE = ("1648-5", "Tuberculosis reaction wheal [Diameter] --3 days post 5 TU "
                          "intradermal")
SITES = {"left-forearm": ("LLFA", "left lower forearm"),
         "right-forearm": ("RLFA", "right lower forearm")}
_SITE_OF = {code: name for name, (code, _) in SITES.items()}
PPD_ID = "ppd"


def _ppd(p: Placement) -> JSON | None:
    if not (p.product or p.lot or p.expiration_date):
        return None
    med: JSON = {"resourceType": "Medication", "id": PPD_ID,
                 "code": {"text": p.product or "Tuberculin purified protein derivative"}}
    batch: JSON = {}
    if p.lot:
        batch["lotNumber"] = p.lot
    if p.expiration_date:
        batch["expirationDate"] = fhir_date(p.expiration_date)
    if batch:
        med["batch"] = batch
    return med


def _placement(task: SkinTestTask, patient: Refs, who: Refs | None, ctx: MapContext) -> JSON:
    p = task.placement
    proc: JSON = {"resourceType": "Procedure",
                  "meta": {"profile": [systems.profile("us-core-procedure")]}}
    if (ppd := _ppd(p)) is not None:
        proc["contained"] = [ppd]
    proc.update({
        "identifier": [identifier(ctx.clinic.task_system(KIND), f"{task.id}/placement")],
        "status": "completed",
        "code": PLACEMENT_CODE,
        "subject": patient.ref,
    })
    if p.visit:
        proc["encounter"] = encounter_ref(p.visit, ctx)
    proc["performedDateTime"] = fhir_datetime(p.placed)
    if who is not None:
        proc["performer"] = [{"actor": who.ref}]
    code, display = SITES[p.site]
    proc["bodySite"] = [codeable(coding(systems.ACT_SITE, code, display), text=p.site)]
    if task.note:
        proc["note"] = [{"text": task.note}]
    if ppd is not None:
        proc["usedReference"] = [{"reference": f"#{PPD_ID}"}]
    return proc


def _reading(task: SkinTestTask, r: Reading, patient: Refs, reader: Refs | None,
             placement: Entry, ctx: MapContext) -> JSON:
    obs: JSON = {
        "resourceType": "Observation",
        "meta": {"profile": [systems.profile("us-core-observation-lab")]},
        "identifier": [identifier(ctx.clinic.task_system(KIND), f"{task.id}/reading")],
        "partOf": [{"reference": placement.full_url}],
        "status": "final",
        "category": [category("laboratory")],
        "code": loinc(READING_CODE, "Tuberculin skin test reading (induration)"),
        "subject": patient.ref,
    }
    if r.visit:
        obs["encounter"] = encounter_ref(r.visit, ctx)
    obs["effectiveDateTime"] = fhir_datetime(r.read)
    if reader is not None:
        obs["performer"] = [reader.ref]
    obs["valueQuantity"] = quantity(r.induration_mm, "mm", "mm")
    obs["interpretation"] = interpretation("POS" if r.positive else "NEG")
    obs["referenceRange"] = [{"text": f"positive at {r.positive_from_mm} mm or more "
                                      "(risk group cut-off)"}]
    return obs


def to_fhir(task: SkinTestTask, ctx: MapContext) -> list[Entry]:
    """The placement Procedure, and the reading Observation once the test is read."""
    entries: list[Entry] = []
    patient = patient_refs(task.patient, ctx)
    entries.extend(patient.entries)
    placer = None
    if task.placement.performer is not None:
        placer = practitioner_entry(task.placement.performer)
        entries.extend(placer.entries)
    placement = create(_placement(task, patient, placer, ctx))
    entries.append(placement)
    r = task.reading
    if r is not None:
        reader = None
        if r.reader is not None:
            reader = practitioner_entry(r.reader)
            entries.extend(reader.entries)  # the same clinician twice: one entry in the Bundle
        entries.append(create(_reading(task, r, patient, reader, placement, ctx)))
    return entries


# -- FHIR → task ---------------------------------------------------------------------------


def _cut_off(obs: JSON) -> int:
    text = str((obs.get("referenceRange") or [{}])[0].get("text", ""))
    for mm in (5, 10, 15):
        if text.startswith(f"positive at {mm} mm"):
            return mm
    raise ValueError("the reading does not say its risk group cut-off (referenceRange.text)")


def _task_from(task_id: str, found: dict[str, JSON], resources: ResourceSet) -> SkinTestTask:
    proc = found.get("placement")
    if proc is None:
        raise ValueError("a reading without its placement Procedure")
    shared = shared_from(proc, resources, "performedDateTime")
    site = next((_SITE_OF[c.get("code")] for b in proc.get("bodySite", [])
                 for c in b.get("coding", []) if c.get("code") in _SITE_OF), None)
    placement: JSON = {"placed": shared["effective"], "site": site,
                       "performer": shared.get("performer"), "visit": shared.get("visit")}
    for med in proc.get("contained", []):
        if med.get("id") == PPD_ID:
            text = (med.get("code") or {}).get("text")
            placement["product"] = None if text == "Tuberculin purified protein derivative" \
                else text
            placement["lot"] = (med.get("batch") or {}).get("lotNumber")
            placement["expiration_date"] = (med.get("batch") or {}).get("expirationDate")
    raw: JSON = {"task": "skin_test", "id": task_id, "patient": shared["patient"],
                 "placement": {k: v for k, v in placement.items() if v is not None}}
    notes = [n.get("text") for n in proc.get("note") or [] if n.get("text")]
    if notes:
        raw["note"] = notes[0]
    obs = found.get("reading")
    if obs is not None:
        read = shared_from(obs, resources)
        reading = {"read": read["effective"],
                   "induration_mm": (obs.get("valueQuantity") or {}).get("value"),
                   "positive_from_mm": _cut_off(obs), "reader": read.get("performer"),
                   "visit": read.get("visit")}
        raw["reading"] = {k: v for k, v in reading.items() if v is not None}
    task = SkinTestTask.model_validate(raw)
    if obs is not None and task.reading is not None:
        written = interpretation_of(obs)
        expected = "POS" if task.reading.positive else "NEG"
        if written is not None and written != expected:
            raise ValueError(f"the reading's interpretation {written} does not match its "
                             f"induration and cut-off ({expected})")
    return task


def from_fhir(resources: ResourceSet) -> list[SkinTestTask]:
    """The skin_test tasks behind the Procedures (and readings) this kind wrote."""
    return read_tasks("skin_test", resources, ("Procedure", "Observation"), _task_from)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("skin_test", SkinTestTask, to_fhir, from_fhir,
                    "TB skin test: placement Procedure and its reading Observation"))
