"""The poc_test task kind: US Core Laboratory Result Observations for a CLIA-waived test.

Choices (mapping-reference §8, §7.3):

* Every result is a ``us-core-observation-lab`` Observation: status final, category
  laboratory, the test's LOINC (:mod:`mafhir.codes.poc`), the time the result was read,
  and the clinic (the CLIA-certified Organization) as performer beside the MA.
* Quantitative results are UCUM ``valueQuantity`` (a meter's HI/LO as ``comparator``),
  with ``referenceRange`` and a v3 interpretation H/L/N; qualitative ones are SNOMED CT
  Positive 10828004 / Negative 260385009 with POS/NEG. An invalid run (control failed) has
  no value and ``dataAbsentReason`` ``error``: it happened, and it gave no result.
* The kit or meter is a base R4 ``Device`` (US Core has no profile for one) with
  ``lotNumber`` and ``expirationDate``, referenced from ``Observation.device``.
* The urine dipstick is a panel Observation (24357-6) whose ``hasMember`` are one
  Observation per pad read, plus a ``us-core-diagnosticreport-lab`` listing the pads; a
  pad read as a number uses its [Mass/volume] LOINC, one read as a word its [Presence]
  LOINC with the SNOMED ordinal. Influenza A/B is two results under a report (80381-7).
* Identifiers are ``<task id>/<slug>`` in the clinic's ``…/poc-test`` system; writes are
  conditional creates, so a re-run never duplicates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import systems
from ..bundle import Entry, create
from ..codes.poc import (
    DIPSTICK,
    DIPSTICK_PANEL,
    HEMOGLOBIN_BY_SEX,
    INFLUENZA,
    INFLUENZA_PANEL,
    ORDINALS,
    QUALITATIVE_TESTS,
    QUANTITATIVE,
)
from ..context import MapContext
from ..fhirtypes import codeable, coding, data_absent, fhir_date, fhir_datetime, identifier
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.poc_test import DEFAULT_UNITS, Kit, PocTestTask, flag
from .common import Refs, organization_entry, patient_refs, practitioner_entry
from .results import (
    V2_0074,
    category,
    interpretation,
    interpretation_of,
    loinc,
    loinc_codes,
    read_tasks,
    shared_from,
    subject_parts,
)

__all__ = ["KIND", "from_fhir", "register_mappers", "to_fhir"]

JSON = dict[str, Any]

#: The identifier system suffix of everything this kind writes.
KIND = "poc-test"
LAB_OBSERVATION = systems.profile("us-core-observation-lab")
LAB_REPORT = systems.profile("us-core-diagnosticreport-lab")

_ANSWER_OF = {code: word for word, (code, _) in ORDINALS.items()}
_UNIT_TEXT = {"1": "1", "[pH]": "pH", "ug/dL": "µg/dL", "{INR}": "INR"}
_ORDER = ("resourceType", "meta", "identifier", "status", "category", "code", "subject",
          "encounter", "effectiveDateTime", "issued", "performer", "valueQuantity",
          "valueCodeableConcept", "dataAbsentReason", "interpretation", "note", "device",
          "referenceRange", "hasMember", "result")


def _slug(name: str) -> str:
    return name.replace("_", "-")


def _quantity(value: float, unit: str, comparator: str | None = None) -> JSON:
    out: JSON = {"value": value}
    if comparator:
        out["comparator"] = comparator
    out.update({"unit": _UNIT_TEXT.get(unit, unit), "system": systems.UCUM, "code": unit})
    return out


def _range(low: float | None, high: float | None, unit: str) -> list[JSON]:
    rr: JSON = {}
    if low is not None:
        rr["low"] = _quantity(low, unit)
    if high is not None:
        rr["high"] = _quantity(high, unit)
    return [rr] if rr else []


def _answer(obs: JSON, word: str, ordinal: bool = False) -> None:
    """A qualitative or ordinal result (or an invalid run) on ``obs``."""
    if word == "invalid":
        obs["dataAbsentReason"] = data_absent("error")
        return
    code, display = ORDINALS[word]
    obs["valueCodeableConcept"] = codeable(coding(systems.SNOMED, code, display), text=word)
    if ordinal:
        obs["interpretation"] = interpretation("N" if word == "negative" else "A")
    else:
        obs["interpretation"] = interpretation("POS" if word == "positive" else "NEG")


def _answering(word: str, ordinal: bool = False) -> Callable[[JSON], None]:
    return lambda obs: _answer(obs, word, ordinal)


def _ordered(resource: JSON) -> JSON:
    return {k: resource[k] for k in _ORDER if k in resource}


def _device(kit: Kit, task: PocTestTask, ctx: MapContext) -> Entry:
    device: JSON = {
        "resourceType": "Device",
        "identifier": [identifier(ctx.clinic.task_system(KIND), f"{task.id}/kit")],
        "status": "active",
    }
    if kit.manufacturer:
        device["manufacturer"] = kit.manufacturer
    if kit.expiration_date:
        device["expirationDate"] = fhir_date(kit.expiration_date)
    if kit.lot:
        device["lotNumber"] = kit.lot
    device["deviceName"] = [{"name": kit.name, "type": "user-friendly-name"}]
    if kit.model:
        device["modelNumber"] = kit.model
    return create(device)


class _Builder:
    """Makes this task's Observations, all sharing subject, time, performers and device."""

    def __init__(self, task: PocTestTask, ctx: MapContext, parts: JSON, device: JSON | None):
        self.task, self.ctx, self.parts, self.device = task, ctx, parts, device
        self.entries: list[Entry] = []

    def observation(self, slug: str, code: JSON, fill: Callable[[JSON], None]) -> Entry:
        obs: JSON = {
            "resourceType": "Observation",
            "meta": {"profile": [LAB_OBSERVATION]},
            "identifier": [identifier(self.ctx.clinic.task_system(KIND),
                                      f"{self.task.id}/{slug}")],
            "status": "final",
            "category": [category("laboratory")],
            "code": code,
            **self.parts,
        }
        fill(obs)
        if self.task.note and slug != "dipstick":
            obs["note"] = [{"text": self.task.note}]
        if self.device is not None:
            obs["device"] = self.device
        entry = create(_ordered(obs))
        self.entries.append(entry)
        return entry

    def report(self, panel: tuple[str, str], results: list[Entry]) -> None:
        task = self.task
        report: JSON = {
            "resourceType": "DiagnosticReport",
            "meta": {"profile": [LAB_REPORT]},
            "identifier": [identifier(self.ctx.clinic.task_system(KIND), f"{task.id}/report")],
            "status": "final",
            "category": [codeable(coding(V2_0074, "LAB", "Laboratory"))],
            "code": loinc(panel),
            **{k: v for k, v in self.parts.items() if k != "performer"},
            "issued": fhir_datetime(task.effective),
            "performer": self.parts["performer"],
            "result": [{"reference": e.full_url} for e in results],
        }
        self.entries.append(create(_ordered(report)))


def _quantitative(b: _Builder) -> None:
    task = b.task
    spec = task.spec
    assert spec is not None and task.value is not None  # the task model guarantees both

    def fill(obs: JSON) -> None:
        obs["valueQuantity"] = _quantity(task.value, spec.unit, task.comparator)  # type: ignore[arg-type]
        if (code := task.interpretation) is not None:
            obs["interpretation"] = interpretation(code)
        if rr := _range(*task.range, spec.unit):
            obs["referenceRange"] = rr

    b.observation(_slug(task.test), loinc(spec.loinc), fill)


def _pad(name: str, value: float | str) -> tuple[JSON, Callable[[JSON], None]]:
    pad = DIPSTICK[name]
    if isinstance(value, str):
        assert pad.presence is not None  # the task refuses words on number-only pads
        return loinc(pad.presence), _answering(value, ordinal=True)
    assert pad.quantity is not None
    code, display, unit = pad.quantity

    def fill(obs: JSON) -> None:
        obs["valueQuantity"] = _quantity(value, unit)
        if (found := flag(value, None, pad.low, pad.high)) is not None:
            obs["interpretation"] = interpretation(found)
        if rr := _range(pad.low, pad.high, unit):
            obs["referenceRange"] = rr

    return loinc((code, display)), fill


def _dipstick(b: _Builder) -> None:
    assert b.task.dipstick is not None
    members = []
    for name, value in b.task.dipstick.read().items():
        code, fill = _pad(name, value)
        members.append(b.observation(f"dipstick-{_slug(name)}", code, fill))

    def panel(obs: JSON) -> None:
        obs["hasMember"] = [{"reference": e.full_url} for e in members]

    b.observation("dipstick", loinc(DIPSTICK_PANEL), panel)
    b.report(DIPSTICK_PANEL, members)


def _influenza(b: _Builder) -> None:
    results = []
    for name, code in INFLUENZA.items():
        word = getattr(b.task, name)
        if word is not None:
            results.append(b.observation(_slug(name), loinc(code), _answering(word)))
    b.report(INFLUENZA_PANEL, results)


def to_fhir(task: PocTestTask, ctx: MapContext) -> list[Entry]:
    """The result Observations (and the report of a panel), with the Patient, the MA, the
    clinic and the kit they refer to."""
    entries: list[Entry] = []
    patient = patient_refs(task.patient, ctx)
    entries.extend(patient.entries)
    clinic = organization_entry(ctx.clinic)
    entries.extend(clinic.entries)
    performer: Refs | None = None
    if task.performer is not None:
        performer = practitioner_entry(task.performer)
        entries.extend(performer.entries)
    parts = subject_parts(patient, performer, task.visit, task.effective, ctx)
    parts["performer"] = [*parts.get("performer", []), clinic.ref]
    device = None
    if task.kit is not None:
        kit = _device(task.kit, task, ctx)
        entries.append(kit)
        device = {"reference": kit.full_url}
    b = _Builder(task, ctx, parts, device)
    if task.test == "urine_dipstick":
        _dipstick(b)
    elif task.test == "influenza":
        _influenza(b)
    elif task.test in QUALITATIVE_TESTS:
        b.observation(_slug(task.test), loinc(QUALITATIVE_TESTS[task.test]),
                      _answering(task.result or "invalid"))
    else:
        _quantitative(b)
    return entries + b.entries


# -- FHIR → task ---------------------------------------------------------------------------

_QUANT_SLUGS = {_slug(t): t for t in DEFAULT_UNITS}
_QUAL_SLUGS = {_slug(t): t for t in QUALITATIVE_TESTS}
_FASTING = {spec.loinc[0] for spec in QUANTITATIVE["glucose_fasting"].values()}


def _word(obs: JSON) -> str:
    if obs.get("dataAbsentReason"):
        return "invalid"
    for c in (obs.get("valueCodeableConcept") or {}).get("coding", []):
        if c.get("system") == systems.SNOMED and c.get("code") in _ANSWER_OF:
            return _ANSWER_OF[c["code"]]
    raise ValueError("a qualitative result without a SNOMED answer or a data-absent reason")


def _number(obs: JSON) -> tuple[float, str | None, str | None]:
    q = obs.get("valueQuantity") or {}
    if q.get("value") is None:
        raise ValueError("a quantitative result without a value")
    return q["value"], q.get("code"), q.get("comparator")


def _kit(obs: JSON, resources: ResourceSet) -> Kit | None:
    device = resources.resolve(obs.get("device"))
    if device is None:
        return None
    names = device.get("deviceName") or [{}]
    return Kit(name=names[0].get("name"), manufacturer=device.get("manufacturer"),
               model=device.get("modelNumber"), lot=device.get("lotNumber"),
               expiration_date=device.get("expirationDate"))


def _read_range(obs: JSON) -> tuple[float | None, float | None]:
    """The range's bounds as numbers to compare (a server's JSON may be read as Decimal:
    Decimal("5.6") is not the float 5.6 the catalog holds)."""
    rr = (obs.get("referenceRange") or [{}])[0]
    low, high = (rr.get("low") or {}).get("value"), (rr.get("high") or {}).get("value")
    return (None if low is None else float(low)), (None if high is None else float(high))


def _catalog_ranges(task: PocTestTask) -> set[tuple[float | None, float | None]]:
    """The ranges the catalog may have written for this result: a hemoglobin's depends on
    the sex the patient had in the task, which a server's Patient may add."""
    spec = task.spec
    out = set() if spec is None else {(spec.low, spec.high)}
    if task.test == "hemoglobin":
        out |= set(HEMOGLOBIN_BY_SEX.values())
    return out


def _task_from(task_id: str, found: dict[str, JSON], resources: ResourceSet) -> PocTestTask:
    first = next(o for s, o in found.items() if s != "dipstick") if len(found) > 1 \
        else next(iter(found.values()))
    raw: JSON = {"task": "poc_test", "id": task_id, **shared_from(first, resources)}
    kit = _kit(first, resources)
    if kit is not None:
        raw["kit"] = kit
    notes = [n.get("text") for n in first.get("note") or [] if n.get("text")]
    if notes:
        raw["note"] = notes[0]
    range_read: tuple[float | None, float | None] | None = None
    if "dipstick" in found or any(s.startswith("dipstick-") for s in found):
        raw["test"] = "urine_dipstick"
        pads: JSON = {}
        for name in DIPSTICK:
            obs = found.get(f"dipstick-{_slug(name)}")
            if obs is not None:
                pads[name] = _number(obs)[0] if "valueQuantity" in obs else _word(obs)
        raw["dipstick"] = pads
    elif any(_slug(name) in found for name in INFLUENZA):
        raw["test"] = "influenza"
        for name in INFLUENZA:
            if (obs := found.get(_slug(name))) is not None:
                raw[name] = _word(obs)
    elif (slug := next((s for s in found if s in _QUAL_SLUGS), None)) is not None:
        raw["test"] = _QUAL_SLUGS[slug]
        raw["result"] = _word(found[slug])
    elif (slug := next((s for s in found if s in _QUANT_SLUGS), None)) is not None:
        obs = found[slug]
        raw["test"] = _QUANT_SLUGS[slug]
        raw["value"], raw["unit"], comparator = _number(obs)
        if comparator:
            raw["comparator"] = comparator
        if raw["test"] == "glucose":
            raw["fasting"] = bool(loinc_codes(obs.get("code")) & _FASTING) or None
        range_read = _read_range(obs)
    else:
        raise ValueError("no point-of-care result this kind writes")
    raw = {k: v for k, v in raw.items() if v is not None}
    task = PocTestTask.model_validate(raw)
    if range_read is not None and range_read != task.range and \
            range_read not in _catalog_ranges(task):  # the kit insert's own range
        low, high = range_read
        task = PocTestTask.model_validate(
            {**raw, "reference_range": {k: v for k, v in (("low", low), ("high", high))
                                        if v is not None}})
    if task.interpretation is not None and range_read is not None:
        written = interpretation_of(found[_slug(task.test)])
        if written is not None and written != task.interpretation:
            raise ValueError(f"the interpretation {written} does not match the value and "
                             f"its range ({task.interpretation})")
    return task


def from_fhir(resources: ResourceSet) -> list[PocTestTask]:
    """The poc_test tasks behind the Observations this kind wrote in ``resources``."""
    return read_tasks("poc_test", resources, ("Observation",), _task_from)


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("poc_test", PocTestTask, to_fhir, from_fhir,
                    "Point-of-care tests: US Core Laboratory Observations, kit and lot"))
