"""The intake task: the history an MA gathers while rooming a patient, in the clinic's words.

Any subset of six parts may be given (mapping-reference §6; docs/intake.md):

* ``allergies`` — each allergy the clinic keeps (its own ``id``, so that a later intake
  updates it or marks it entered-in-error), or ``no_known_allergies`` /
  ``no_known_drug_allergies`` (the SNOMED negation codes, never an empty list);
* ``medications`` — what the patient says they take (a US Core MedicationRequest with
  ``intent=plan`` and ``reported``); a medication known by name only is kept as text;
* ``problems`` — problem-list items and health concerns (US Core Condition);
* ``smoking``, ``pregnancy_status``, ``pregnancy_intent`` — one answer each;
* ``screenings`` — PHQ-2, PHQ-9, GAD-7, Hunger Vital Sign: the item answers in
  questionnaire order, scored here; a total the clinic gives is checked against them.

Cross-field rules raise at the field they are about (``screenings[0].answers[3]``,
``allergies[1].substance``), in the clinic's words, never quoting the patient's data.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ..errors import Problem
from .base import FieldError, TaskId, TaskModel, refuse_at
from .common import PatientRef, PractitionerRef
from .screening import HVS_ANSWERS, INSTRUMENTS, total_of
from .text import Identifier, Name

__all__ = ["PREGNANCY_INTENT", "PREGNANCY_STATUS", "SMOKING", "Allergy", "Coded",
           "IntakeTask", "ProblemItem", "Reaction", "ReportedMedication", "Screening"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

#: Smoking status answers → SNOMED CT (US Core smoking status comprehensive value set;
#: 428041000124106 as in the US Core example Observation-some-day-smoker).
SMOKING: dict[str, tuple[str, str]] = {
    "every-day": ("449868002", "Smokes tobacco daily"),
    "some-day": ("428041000124106", "Occasional tobacco smoker"),
    "former": ("8517006", "Ex-smoker"),
    "never": ("266919005", "Never smoked tobacco"),
    "current-unknown-frequency": ("77176002", "Smoker"),
    "heavy": ("428071000124103", "Heavy tobacco smoker"),
    "light": ("428061000124105", "Light tobacco smoker"),
    "unknown": ("266927001", "Tobacco smoking consumption unknown"),
}
#: Pregnancy status → SNOMED CT (77386006 as in the US Core example); ``unknown`` is the
#: v3 NullFlavor UNK the US Core value set adds.
PREGNANCY_STATUS: dict[str, tuple[str, str]] = {
    "pregnant": ("77386006", "Pregnant"),
    "not-pregnant": ("60001007", "Not pregnant"),
    "unknown": ("UNK", "Unknown"),
}
#: Pregnancy intent in the next year → SNOMED CT (US extension), UNK for unknown.
#: Displays are left out: public sources disagree on them (docs/intake.md).
PREGNANCY_INTENT: dict[str, tuple[str, str]] = {
    "wants": ("454381000124105", ""),
    "does-not-want": ("454391000124108", ""),
    "unknown": ("UNK", "Unknown"),
}

ItemId = Annotated[Identifier, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
                                     description="the clinic's id of this list entry")]


class Coded(BaseModel):
    """A code from a named system, with its display; or text alone when nothing is coded."""

    model_config = _MODEL

    system: Literal["rxnorm", "snomed", "unii", "icd-10-cm", "ndc"] | None = None
    code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$")
    display: Name | None = Field(default=None, min_length=1, max_length=200)
    text: Name | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _code_or_text(self) -> Coded:
        if (self.system is None) != (self.code is None):
            raise ValueError("'system' and 'code' go together")
        if self.code is None and self.text is None:
            raise ValueError("needs 'system' and 'code', or 'text' when nothing is coded")
        return self


class Reaction(BaseModel):
    """One reaction to an allergen: what happened (SNOMED or text) and how bad."""

    model_config = _MODEL

    manifestation: Coded
    severity: Literal["mild", "moderate", "severe"] | None = None


class Allergy(BaseModel):
    """One entry of the patient's allergy list."""

    model_config = _MODEL

    id: ItemId
    substance: Coded | None = Field(default=None, description="RxNorm, SNOMED CT or UNII")
    category: Literal["food", "medication", "environment", "biologic"] | None = None
    type: Literal["allergy", "intolerance"] | None = None
    criticality: Literal["low", "high", "unable-to-assess"] | None = None
    status: Literal["active", "inactive", "resolved", "entered-in-error"] = "active"
    verification: Literal["unconfirmed", "confirmed", "refuted"] = "confirmed"
    onset: date | None = None
    reactions: list[Reaction] = Field(default_factory=list, max_length=20)
    note: str | None = Field(default=None, min_length=1, max_length=2000)


class ReportedMedication(BaseModel):
    """A medication the patient says they take (the med list as reported at intake)."""

    model_config = _MODEL

    id: ItemId
    medication: Coded = Field(description="RxNorm when known; else the name as text")
    status: Literal["active", "stopped", "completed", "unknown", "entered-in-error"] = "active"
    dosage: str | None = Field(default=None, min_length=1, max_length=500,
                               description="as the patient says it ('1 tab daily')")
    self_prescribed: bool = Field(default=False,
                                  description="over the counter / not prescribed")


class ProblemItem(BaseModel):
    """A problem-list item or a health concern."""

    model_config = _MODEL

    id: ItemId
    code: Coded = Field(description="SNOMED CT or ICD-10-CM; text when not coded")
    category: Literal["problem", "health-concern"] = "problem"
    status: Literal["active", "recurrence", "relapse", "inactive", "remission", "resolved",
                    "entered-in-error"] = "active"
    verification: Literal["unconfirmed", "provisional", "differential", "confirmed",
                          "refuted"] = "confirmed"
    onset: date | None = None
    abatement: date | None = None


class Screening(BaseModel):
    """One screening instrument administered: the answers in questionnaire order.

    PHQ-2/PHQ-9/GAD-7 answers are item scores 0-3; Hunger Vital Sign answers are
    ``often true`` / ``sometimes true`` / ``never true`` / ``don't know``.
    """

    model_config = _MODEL

    instrument: Literal["phq-2", "phq-9", "gad-7", "hunger-vital-sign"]
    answers: list[Annotated[int, Field(strict=True)] | str] = Field(min_length=1, max_length=20)
    total: Annotated[int, Field(strict=True)] | None = Field(
        default=None, description="the total the clinic's form shows; checked, never trusted")
    difficulty: Literal["not difficult at all", "somewhat difficult", "very difficult",
                        "extremely difficult"] | None = Field(
        default=None, description="PHQ-9 only: how difficult the problems made daily life "
                                  "(not scored)")

    @property
    def scores(self) -> list[int]:
        return [a for a in self.answers if isinstance(a, int)]

    @property
    def computed_total(self) -> int | None:
        """The total of a scored instrument, from the answers; None for the HVS."""
        if INSTRUMENTS[self.instrument].total is None:
            return None
        return total_of(self.scores)


_PARTS = ("allergies", "no_known_allergies", "no_known_drug_allergies", "medications",
          "problems", "smoking", "pregnancy_status", "pregnancy_intent", "screenings",
          "falls_past_year")


class IntakeTask(TaskModel):
    """The history gathered at one rooming: allergies, meds, problems, social history,
    screenings."""

    kind: ClassVar[str] = "intake"

    task: Literal["intake"]
    id: TaskId
    patient: PatientRef
    recorded: AwareDatetime = Field(description="when the MA took the history (with offset)")
    visit: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
                              description="appointment id of the visit (encounter)")
    recorder: PractitionerRef | None = Field(default=None, description="the MA")

    allergies: list[Allergy] = Field(default_factory=list, max_length=100)
    no_known_allergies: bool = False
    no_known_drug_allergies: bool = False
    medications: list[ReportedMedication] = Field(default_factory=list, max_length=100)
    problems: list[ProblemItem] = Field(default_factory=list, max_length=100)
    smoking: Literal["every-day", "some-day", "former", "never", "current-unknown-frequency",
                     "heavy", "light", "unknown"] | None = None
    pregnancy_status: Literal["pregnant", "not-pregnant", "unknown"] | None = None
    pregnancy_intent: Literal["wants", "does-not-want", "unknown"] | None = None
    screenings: list[Screening] = Field(default_factory=list, max_length=20)
    falls_past_year: Annotated[int, Field(strict=True, ge=0, le=365)] | None = Field(
        default=None, description="fall-risk screening: how many times the patient fell in the "
                                  "past 12 months, as they report it (LOINC 75856-5; one or "
                                  "more screens positive, as in CDC STEADI)")

    @model_validator(mode="after")
    def _consistent(self) -> IntakeTask:
        errors: list[FieldError] = []
        if not any(getattr(self, p) for p in _PARTS):
            errors.append(((), "records nothing: give at least one of " + ", ".join(_PARTS)))
        errors.extend(self._allergy_errors())
        errors.extend(_unique(self.allergies, "allergies"))
        errors.extend(_unique(self.medications, "medications"))
        errors.extend(_unique(self.problems, "problems"))
        for i, problem in enumerate(self.problems):
            if (problem.abatement is not None
                    and problem.status not in ("inactive", "resolved", "remission")):
                errors.append((("problems", i, "abatement"),
                               "goes with status inactive, resolved or remission (con-4)"))
            if problem.code.system not in (None, "snomed", "icd-10-cm"):
                errors.append((("problems", i, "code", "system"),
                               "a problem is coded in snomed or icd-10-cm"))
        for i, med in enumerate(self.medications):
            if med.medication.system not in (None, "rxnorm"):
                errors.append((("medications", i, "medication", "system"),
                               "a reported medication is coded in rxnorm (or given as text)"))
        seen: set[str] = set()
        for i, screening in enumerate(self.screenings):
            if screening.instrument in seen:
                errors.append((("screenings", i, "instrument"),
                               "is given twice in one intake"))
            seen.add(screening.instrument)
            errors.extend(_screening_errors(screening, ("screenings", i)))
        refuse_at("IntakeTask", errors)
        return self

    def _allergy_errors(self) -> list[FieldError]:
        errors: list[FieldError] = []
        if self.no_known_allergies and self.no_known_drug_allergies:
            errors.append((("no_known_drug_allergies",),
                           "goes without no_known_allergies (no known allergies covers drugs)"))
        for i, allergy in enumerate(self.allergies):
            if allergy.substance is None:
                errors.append((("allergies", i, "substance"),
                               "is required: an allergy names what the patient reacts to "
                               "(for none, use no_known_allergies)"))
            elif allergy.substance.system not in (None, "rxnorm", "snomed", "unii"):
                errors.append((("allergies", i, "substance", "system"),
                               "an allergy substance is coded in rxnorm, snomed or unii"))
            if allergy.status == "entered-in-error":
                continue
            if self.no_known_allergies and allergy.status == "active":
                errors.append((("no_known_allergies",),
                               f"contradicts the active allergy at allergies[{i}]"))
            if self.no_known_drug_allergies and allergy.status == "active" \
                    and allergy.category == "medication":
                errors.append((("no_known_drug_allergies",),
                               f"contradicts the active drug allergy at allergies[{i}]"))
        return errors

    def warnings(self) -> list[Problem]:
        out = []
        for i, screening in enumerate(self.screenings):
            if (screening.instrument == "phq-9" and len(screening.answers) == 9
                    and isinstance(screening.answers[8], int) and screening.answers[8] > 0):
                out.append(Problem(f"screenings[{i}].answers[8]",
                                   "PHQ-9 item 9 (thoughts of self-harm) is positive: tell the "
                                   "provider before the patient leaves", "value"))
        if self.pregnancy_status is not None and self.patient.gender == "male":
            out.append(Problem("pregnancy_status", "recorded for a patient whose gender is "
                                                   "male; please confirm", "value"))
        return out


def _unique(items: list[Any], where: str) -> list[FieldError]:
    seen: set[str] = set()
    out: list[FieldError] = []
    for i, item in enumerate(items):
        if item.id in seen:
            out.append(((where, i, "id"), "is used twice in this list"))
        seen.add(item.id)
    return out


def _screening_errors(screening: Screening,
                      at: tuple[str | int, ...]) -> list[FieldError]:
    instrument = INSTRUMENTS[screening.instrument]
    out: list[FieldError] = []
    if len(screening.answers) != len(instrument.items):
        return [((*at, "answers"), f"{instrument.title} has {len(instrument.items)} items; "
                                   f"{len(screening.answers)} answers were given")]
    for j, answer in enumerate(screening.answers):
        if instrument.total is None:
            if not isinstance(answer, str) or answer not in HVS_ANSWERS:
                out.append(((*at, "answers", j), f"{instrument.title} answers are one of: "
                                                 + ", ".join(HVS_ANSWERS)))
        elif not isinstance(answer, int) or not 0 <= answer <= instrument.max_score:
            out.append(((*at, "answers", j),
                        f"{instrument.title} answers are scored 0 (not at all) to "
                        f"{instrument.max_score} (nearly every day); got "
                        f"{answer if isinstance(answer, int) else 'text'}"))
    if out:
        return out
    if screening.difficulty is not None and instrument.name != "phq-9":
        out.append(((*at, "difficulty"), "is a PHQ-9 question only"))
    if instrument.total is None and screening.total is not None:
        out.append(((*at, "total"), f"{instrument.title} has no total score"))
    computed = screening.computed_total
    if screening.total is not None and computed is not None and screening.total != computed:
        out.append(((*at, "total"), f"is {screening.total} but the {len(screening.answers)} "
                                    f"answers add up to {computed}"))
    return out
