"""The intake task kind: the rooming history → US Core resources (and back).

Choices (mapping-reference §6, §12; docs/intake.md):

* Allergies → US Core AllergyIntolerance; problems and health concerns → US Core Condition
  Problems and Health Concerns; reported medications → US Core MedicationRequest with
  ``intent=plan``, ``reportedBoolean`` and, for over-the-counter ones, the Patient as
  requester (§6.3: not MedicationStatement). These are list entries the clinic keeps under
  its own ids: a *conditional update* (``PUT Type?identifier=<clinic>/<list>|<id>``) so a
  later intake updates the entry, or marks it entered-in-error, instead of adding another.
* "No known allergies" is AllergyIntolerance SNOMED 716186003 (409137002 for no known
  drug allergies), verificationStatus confirmed, clinicalStatus active (§6.2). A later
  allergy of the patient closes it where the patient's allergies are kept (the local
  store: :mod:`mafhir.allergies`).
* Smoking status, pregnancy status and intent → US Core smokingstatus,
  observation-pregnancystatus and observation-pregnancyintent (category social-history);
  screenings → ``mappers/screening.py``. Observations are conditional creates under
  ``<clinic>/observation|<task id>/<slug>``, as vitals are.
* Every resource also carries ``<clinic>/intake|<task id>``: which intake recorded it,
  so that ``mafhir pull --tasks`` gives the intake back whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from .. import systems
from ..allergies import NO_KNOWN_ALLERGY, NO_KNOWN_DRUG_ALLERGY
from ..bundle import Entry, create, update
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_date, fhir_datetime, identifier, parse_fhir_datetime
from ..hl7v2.terminology import ICD10CM, RXNORM
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.intake import (
    PREGNANCY_INTENT,
    PREGNANCY_STATUS,
    SMOKING,
    Allergy,
    Coded,
    IntakeTask,
    ProblemItem,
    ReportedMedication,
)
from .common import (
    code_in,
    encounter_ref,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_fhir,
    read_back,
    visit_from_fhir,
)
from .screening import PROFILE as SCREENING_PROFILE
from .screening import SURVEY, screening_entries, screening_from_fhir

__all__ = ["CODE_SYSTEMS", "NO_KNOWN", "SOCIAL", "from_fhir", "register_mappers", "to_fhir"]

JSON = dict[str, Any]

#: The clinic's name of a code system → its FHIR URI (mapping-reference §1).
CODE_SYSTEMS = {"rxnorm": RXNORM, "snomed": systems.SNOMED, "unii": "http://fdasis.nlm.nih.gov",
                "icd-10-cm": ICD10CM, "ndc": systems.NDC}
_SYSTEM_NAME = {uri: name for name, uri in CODE_SYSTEMS.items()}
NULL_FLAVOR = systems.THO + "v3-NullFlavor"
ALLERGY_CLINICAL = systems.THO + "allergyintolerance-clinical"
ALLERGY_VERIFICATION = systems.THO + "allergyintolerance-verification"
CONDITION_CLINICAL = systems.THO + "condition-clinical"
CONDITION_VERIFICATION = systems.THO + "condition-ver-status"
PROBLEM_LIST = coding(systems.THO + "condition-category", "problem-list-item",
                      "Problem List Item")
HEALTH_CONCERN = coding("http://hl7.org/fhir/us/core/CodeSystem/condition-category",
                        "health-concern", "Health Concern")
REQUEST_CATEGORY = systems.THO + "medicationrequest-category"
SOCIAL_HISTORY = codeable(coding(systems.OBSERVATION_CATEGORY, "social-history",
                                 "Social History"), text="Social History")

#: The negation codes (SNOMED CT situations, mapping-reference §6.2), by task field.
NO_KNOWN: dict[str, tuple[str, str]] = {
    "no_known_allergies": (NO_KNOWN_ALLERGY, "No known allergy (situation)"),
    "no_known_drug_allergies": (NO_KNOWN_DRUG_ALLERGY, "No known drug allergy (situation)"),
}
#: Social-history observations: task field → (slug, profile, LOINC code, display, answers).
SOCIAL: dict[str, tuple[str, str, str, str, dict[str, tuple[str, str]]]] = {
    "smoking": ("smoking-status", "us-core-smokingstatus", "72166-2",
                "Tobacco smoking status", SMOKING),
    "pregnancy_status": ("pregnancy-status", "us-core-observation-pregnancystatus", "82810-3",
                         "Pregnancy status", PREGNANCY_STATUS),
    "pregnancy_intent": ("pregnancy-intent", "us-core-observation-pregnancyintent", "86645-9",
                         "Pregnancy intention in the next year - Reported", PREGNANCY_INTENT),
}


def _concept(value: Coded) -> JSON:
    if value.system is None or value.code is None:
        return codeable(text=value.text)
    return codeable(coding(CODE_SYSTEMS[value.system], value.code, value.display),
                    text=value.text)


def _answer(code: str, display: str) -> JSON:
    system = NULL_FLAVOR if code == "UNK" else systems.SNOMED
    return codeable(coding(system, code, display or None), text=display or None)


class _Context:
    """What every resource of one intake shares."""

    def __init__(self, task: IntakeTask, ctx: MapContext) -> None:
        self.task = task
        self.ctx = ctx
        patient = patient_refs(task.patient, ctx)
        self.patient = patient.ref
        self.entries: list[Entry] = list(patient.entries)
        self.recorder: JSON | None = None
        if task.recorder is not None:
            who = practitioner_entry(task.recorder)
            self.entries.extend(who.entries)
            self.recorder = who.ref
        self.encounter = encounter_ref(task.visit, ctx) if task.visit else None
        self.intake = identifier(ctx.clinic.task_system("intake"), task.id)
        self.when = fhir_datetime(task.recorded)

    def identifiers(self, kind: str, value: str) -> list[JSON]:
        return [identifier(self.ctx.clinic.task_system(kind), value), self.intake]

    def observation_base(self) -> JSON:
        base: JSON = {"subject": self.patient}
        if self.encounter:
            base["encounter"] = self.encounter
        base["effectiveDateTime"] = self.when
        if self.recorder:
            base["performer"] = [self.recorder]
        return base


def _list_entry(rtype: str, profile: str, kind: str, item: Allergy | ProblemItem, c: _Context,
                clinical: str, verification: str) -> JSON:
    """The head of an allergy or problem-list entry: identity and both statuses. An entry
    entered in error has no clinicalStatus (ait-2, con-5) and says so in verificationStatus."""
    res: JSON = {
        "resourceType": rtype,
        "meta": {"profile": [systems.profile(profile)]},
        "identifier": c.identifiers(kind, item.id),
    }
    wrong = item.status == "entered-in-error"
    if not wrong:
        res["clinicalStatus"] = codeable(coding(clinical, item.status))
    res["verificationStatus"] = codeable(coding(
        verification, "entered-in-error" if wrong else item.verification))
    return res


def _allergy(item: Allergy, c: _Context) -> JSON:
    res = _list_entry("AllergyIntolerance", "us-core-allergyintolerance", "allergy", item, c,
                      ALLERGY_CLINICAL, ALLERGY_VERIFICATION)
    if item.type:
        res["type"] = item.type
    if item.category:
        res["category"] = [item.category]
    if item.criticality:
        res["criticality"] = item.criticality
    res["code"] = _concept(item.substance)  # type: ignore[arg-type]  # checked by the task
    res["patient"] = c.patient
    if c.encounter:
        res["encounter"] = c.encounter
    if item.onset:
        res["onsetDateTime"] = fhir_date(item.onset)
    res["recordedDate"] = c.when
    if c.recorder:
        res["recorder"] = c.recorder
    if item.note:
        res["note"] = [{"text": item.note}]
    if item.reactions:
        res["reaction"] = [
            {"manifestation": [_concept(r.manifestation)],
             **({"severity": r.severity} if r.severity else {})}
            for r in item.reactions
        ]
    return res


def _no_known(field: str, c: _Context) -> JSON:
    code, display = NO_KNOWN[field]
    res: JSON = {
        "resourceType": "AllergyIntolerance",
        "meta": {"profile": [systems.profile("us-core-allergyintolerance")]},
        "identifier": c.identifiers("allergy", f"{c.task.id}/{field.replace('_', '-')}"),
        "clinicalStatus": codeable(coding(ALLERGY_CLINICAL, "active")),
        "verificationStatus": codeable(coding(ALLERGY_VERIFICATION, "confirmed")),
        "code": codeable(coding(systems.SNOMED, code, display), text=display),
        "patient": c.patient,
    }
    if c.encounter:
        res["encounter"] = c.encounter
    res["recordedDate"] = c.when
    if c.recorder:
        res["recorder"] = c.recorder
    return res


def _medication(item: ReportedMedication, c: _Context) -> JSON:
    res: JSON = {
        "resourceType": "MedicationRequest",
        "meta": {"profile": [systems.profile("us-core-medicationrequest")]},
        "identifier": c.identifiers("medication-list", item.id),
        "status": item.status,
        "intent": "plan",
        "category": [codeable(coding(REQUEST_CATEGORY, "community", "Community"))],
        "reportedBoolean": True,
        "medicationCodeableConcept": _concept(item.medication),
        "subject": c.patient,
    }
    if c.encounter:
        res["encounter"] = c.encounter
    res["authoredOn"] = c.when
    if item.self_prescribed:
        res["requester"] = c.patient
    if c.recorder:
        res["recorder"] = c.recorder
    if item.dosage:
        res["dosageInstruction"] = [{"text": item.dosage}]
    return res


def _condition(item: ProblemItem, c: _Context) -> JSON:
    res = _list_entry("Condition", "us-core-condition-problems-health-concerns", "condition",
                      item, c, CONDITION_CLINICAL, CONDITION_VERIFICATION)
    res["category"] = [codeable(PROBLEM_LIST if item.category == "problem" else HEALTH_CONCERN)]
    res["code"] = _concept(item.code)
    res["subject"] = c.patient
    if c.encounter:
        res["encounter"] = c.encounter
    if item.onset:
        res["onsetDateTime"] = fhir_date(item.onset)
    if item.abatement:
        res["abatementDateTime"] = fhir_date(item.abatement)
    res["recordedDate"] = c.when
    if c.recorder:
        res["recorder"] = c.recorder
    return res


def _social(field: str, answer: str, c: _Context) -> JSON:
    slug, profile, code, display, answers = SOCIAL[field]
    return {
        "resourceType": "Observation",
        "meta": {"profile": [systems.profile(profile)]},
        "identifier": c.identifiers("observation", f"{c.task.id}/{slug}"),
        "status": "final",
        "category": [SOCIAL_HISTORY],
        "code": codeable(coding(systems.LOINC, code, display), text=display),
        **c.observation_base(),
        "valueCodeableConcept": _answer(*answers[answer]),
    }


#: Fall-risk screening: falls in the past 12 months as the patient reports them (LOINC
#: 75856-5, a count per year, UCUM ``/a``); any fall screens positive (CDC STEADI: a fall in
#: the past year is a positive screen, whatever the questionnaire's score).
FALLS = ("75856-5", "Number of falls in the past 12 months")
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _falls(count: int, c: _Context) -> JSON:
    positive = count > 0
    return {
        "resourceType": "Observation",
        "meta": {"profile": [SCREENING_PROFILE]},
        "identifier": c.identifiers("observation", f"{c.task.id}/falls-past-year"),
        "status": "final",
        "category": [SURVEY],
        "code": codeable(coding(systems.LOINC, *FALLS), text=FALLS[1]),
        **c.observation_base(),
        "valueQuantity": {"value": count, "unit": "per year", "system": systems.UCUM,
                          "code": "/a"},
        "interpretation": [codeable(coding(INTERPRETATION, "POS" if positive else "NEG",
                                           "Positive" if positive else "Negative"),
                                    text="at risk of falling: a fall in the past year"
                                    if positive else "no fall in the past year")],
    }


def to_fhir(task: IntakeTask, ctx: MapContext) -> list[Entry]:
    """Every resource the intake records, with the Patient/Practitioner it refers to."""
    c = _Context(task, ctx)
    entries = c.entries
    for field in NO_KNOWN:
        if getattr(task, field):
            entries.append(create(_no_known(field, c)))
    entries.extend(update(_allergy(a, c)) for a in task.allergies)
    entries.extend(update(_medication(m, c)) for m in task.medications)
    entries.extend(update(_condition(p, c)) for p in task.problems)
    for field in SOCIAL:
        if (answer := getattr(task, field)) is not None:
            entries.append(create(_social(field, answer, c)))
    common = {"system": ctx.clinic.task_system("observation"), "task": task.id,
              "identifiers": [c.intake], "base": c.observation_base()}
    for screening in task.screenings:
        entries.extend(screening_entries(screening, common))
    if task.falls_past_year is not None:
        entries.append(create(_falls(task.falls_past_year, c)))
    return entries


# ---------------------------------------------------------------- reverse


def _intake_id(resource: JSON) -> str | None:
    for ident in resource.get("identifier") or []:
        if str(ident.get("system", "")).endswith("/intake") and ident.get("value"):
            return str(ident["value"])
    return None


def _own_id(resource: JSON, kind: str) -> str | None:
    return next((i.get("value") for i in resource.get("identifier") or []
                 if str(i.get("system", "")).endswith(f"/{kind}")), None)


def _coded(concept: Any) -> JSON:
    out: JSON = {"text": (concept or {}).get("text")}
    for c in (concept or {}).get("coding", []):
        name = _SYSTEM_NAME.get(c.get("system"))
        if name:
            out.update(system=name, code=c.get("code"), display=c.get("display"))
            break
    return {k: v for k, v in out.items() if v is not None}


def _read_allergy(res: JSON) -> JSON:
    status = code_in(res.get("clinicalStatus"), ALLERGY_CLINICAL)
    verification = code_in(res.get("verificationStatus"), ALLERGY_VERIFICATION)
    out: JSON = {"id": _own_id(res, "allergy"), "substance": _coded(res.get("code")),
                 "type": res.get("type"), "criticality": res.get("criticality"),
                 "onset": res.get("onsetDateTime")}
    if verification == "entered-in-error":
        out["status"] = "entered-in-error"
    else:
        out["status"] = status
        out["verification"] = verification
    if res.get("category"):
        out["category"] = res["category"][0]
    if res.get("note"):
        out["note"] = "\n".join(n.get("text", "") for n in res["note"])
    out["reactions"] = [
        {"manifestation": _coded((r.get("manifestation") or [{}])[0]),
         "severity": r.get("severity")}
        for r in res.get("reaction", [])
    ]
    return out


def _read_medication(res: JSON) -> JSON:
    requester = (res.get("requester") or {}).get("reference")
    out: JSON = {"id": _own_id(res, "medication-list"), "status": res.get("status"),
                 "medication": _coded(res.get("medicationCodeableConcept")),
                 "self_prescribed": requester is not None
                 and requester == (res.get("subject") or {}).get("reference")}
    dosage = res.get("dosageInstruction") or []
    if dosage and dosage[0].get("text"):
        out["dosage"] = dosage[0]["text"]
    return out


def _read_condition(res: JSON) -> JSON:
    verification = code_in(res.get("verificationStatus"), CONDITION_VERIFICATION)
    concern = any(c.get("code") == "health-concern"
                  for cat in res.get("category", []) for c in cat.get("coding", []))
    out: JSON = {"id": _own_id(res, "condition"), "code": _coded(res.get("code")),
                 "category": "health-concern" if concern else "problem",
                 "onset": res.get("onsetDateTime"), "abatement": res.get("abatementDateTime")}
    if verification == "entered-in-error":
        out["status"] = "entered-in-error"
    else:
        out["status"] = code_in(res.get("clinicalStatus"), CONDITION_CLINICAL)
        out["verification"] = verification
    return out


def _read_social(res: JSON, data: JSON) -> bool:
    code = code_in(res.get("code"), systems.LOINC)
    for field, (_, _, loinc, _, answers) in SOCIAL.items():
        if code == loinc:
            value = res.get("valueCodeableConcept") or {}
            given = code_in(value, systems.SNOMED) or code_in(value, NULL_FLAVOR)
            data[field] = next((k for k, (c, _) in answers.items() if c == given), given)
            return True
    return False


def _when(res: JSON) -> str | None:
    for key in ("recordedDate", "authoredOn", "effectiveDateTime"):
        if isinstance(res.get(key), str):
            return str(res[key])
    return None


def _task_from(task_id: str, found: list[JSON], resources: ResourceSet) -> IntakeTask:
    first = found[0]
    subject = first.get("patient") or first.get("subject") or {}
    data: JSON = {"task": "intake", "id": task_id,
                  "patient": patient_from_fhir(resources.resolve(subject), subject),
                  "allergies": [], "medications": [], "problems": [], "screenings": []}
    when: datetime | None = None
    for res in found:
        text = _when(res)
        if when is None and text and "T" in text:
            when = parse_fhir_datetime(text)
        rtype = res.get("resourceType")
        encounter = res.get("encounter")
        if "visit" not in data and (visit := visit_from_fhir(encounter, resources)):
            data["visit"] = visit
        who = res.get("recorder") or (res.get("performer") or [None])[0]
        if "recorder" not in data and (person := resources.resolve(who)) is not None \
                and person.get("resourceType") == "Practitioner":
            data["recorder"] = practitioner_from_fhir(person)
        if rtype == "AllergyIntolerance":
            code = code_in(res.get("code"), systems.SNOMED)
            negation = next((f for f, (c, _) in NO_KNOWN.items() if c == code), None)
            if negation:
                data[negation] = True
            else:
                data["allergies"].append(_read_allergy(res))
        elif rtype == "MedicationRequest":
            data["medications"].append(_read_medication(res))
        elif rtype == "Condition":
            data["problems"].append(_read_condition(res))
        elif rtype == "Observation" and code_in(res.get("code"), systems.LOINC) == FALLS[0]:
            data["falls_past_year"] = (res.get("valueQuantity") or {}).get("value")
        elif rtype == "Observation" and not _read_social(res, data) and res.get("hasMember"):
            screening = screening_from_fhir(res, resources)
            if screening is not None:
                data["screenings"].append(screening)
    if when is None:
        raise ValueError("no recorded time with an offset on the intake's resources")
    data["recorded"] = when
    # Totals read back are checked against their items (model validation), then dropped:
    # derived data, recomputed whenever the task is mapped again (as vitals do with BMI).
    task = IntakeTask.model_validate(_drop_none(data))
    return task.model_copy(update={"screenings": [
        s.model_copy(update={"total": None}) for s in task.screenings]})


def _drop_none(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_none(v) for v in node]
    return node


_TYPES = ("AllergyIntolerance", "MedicationRequest", "Condition", "Observation")


def from_fhir(resources: ResourceSet) -> list[IntakeTask]:
    """The intake tasks behind the resources an intake wrote (grouped by its identifier).

    Raises :class:`InputError` naming the intake when what is read back is not a valid
    intake (a total that no longer matches its items, an answer outside the scale).
    """
    groups: dict[str, list[JSON]] = {}
    for rtype in _TYPES:
        for res in resources.of_type(rtype):
            if (task_id := _intake_id(res)) is not None:
                groups.setdefault(task_id, []).append(res)
    return [read_back(f"intake '{task_id}'", partial(_task_from, task_id, found, resources))
            for task_id, found in groups.items()]


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper("intake", IntakeTask, to_fhir, from_fhir,
                    "the rooming history: allergies, reported meds, problems, smoking, "
                    "pregnancy, screenings → US Core resources"))
