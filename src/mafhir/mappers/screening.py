"""Screenings of an intake → US Core Observation Screening Assessment (and back).

One panel Observation per instrument (the LOINC panel code, no value) whose ``hasMember``
are one Observation per item (the LOINC answer as ``valueCodeableConcept``) and the total
(``valueInteger``, computed here from the items, its band in ``interpretation.text``). The
Hunger Vital Sign has no total: its third member is the food insecurity risk item
(88124-3), At risk / No risk, computed from the two answers (unknown, as a
``dataAbsentReason``, when neither is true and one was not known). Category ``survey`` (plus
``sdoh`` for the HVS, as in the US Core examples).
"""

from __future__ import annotations

from typing import Any

from .. import systems
from ..bundle import Entry, create
from ..fhirtypes import codeable, coding, data_absent, identifier, reference
from ..resourceset import ResourceSet
from ..tasks.intake import Screening
from ..tasks.screening import (
    DIFFICULTY,
    DIFFICULTY_ITEM,
    HVS_ANSWERS,
    HVS_AT_RISK,
    HVS_NO_RISK,
    HVS_RISK,
    INSTRUMENTS,
    Instrument,
    band,
    food_insecure,
)

__all__ = ["PROFILE", "SURVEY", "US_CORE_CATEGORY", "screening_entries", "screening_from_fhir"]

JSON = dict[str, Any]

PROFILE = systems.profile("us-core-observation-screening-assessment")
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
SURVEY = codeable(coding(systems.OBSERVATION_CATEGORY, "survey", "Survey"))
_HVS_OF = {code: name for name, (code, _) in HVS_ANSWERS.items()}
_DIFFICULTY_OF = {code: name for name, (code, _) in DIFFICULTY.items()}


def _categories(instrument: Instrument) -> list[JSON]:
    out = [SURVEY]
    if instrument.category:
        out.append(codeable(coding(US_CORE_CATEGORY, *instrument.category)))
    return out


def _observation(instrument: Instrument, slug: str, code: tuple[str, str],
                 common: JSON) -> JSON:
    """An Observation of this instrument; ``common`` carries identifier, subject, time."""
    obs: JSON = {
        "resourceType": "Observation",
        "meta": {"profile": [PROFILE]},
        "identifier": [identifier(common["system"], f"{common['task']}/{slug}"),
                       *common["identifiers"]],
        "status": "final",
        "category": _categories(instrument),
        "code": codeable(coding(systems.LOINC, *code), text=code[1]),
        **common["base"],
    }
    return obs


def screening_entries(screening: Screening, common: JSON) -> list[Entry]:
    """The item, total and panel Observations of one screening (panel last)."""
    instrument = INSTRUMENTS[screening.instrument]
    name = instrument.name
    members: list[Entry] = []
    for (code, display), answer in zip(instrument.items, screening.answers, strict=True):
        obs = _observation(instrument, f"{name}/{code}", (code, display), common)
        value = instrument.answers[answer] if isinstance(answer, int) else HVS_ANSWERS[answer]
        obs["valueCodeableConcept"] = codeable(coding(systems.LOINC, *value), text=value[1])
        members.append(create(obs))
    if screening.difficulty is not None:
        obs = _observation(instrument, f"{name}/{DIFFICULTY_ITEM[0]}", DIFFICULTY_ITEM, common)
        value = DIFFICULTY[screening.difficulty]
        obs["valueCodeableConcept"] = codeable(coding(systems.LOINC, *value), text=value[1])
        members.append(create(obs))
    if instrument.total is not None:
        total = screening.computed_total or 0
        obs = _observation(instrument, f"{name}/total", instrument.total, common)
        obs["valueInteger"] = total
        label = band(instrument, total)
        if label:
            obs["interpretation"] = [{"text": label}]
        members.append(create(obs))
    else:
        insecure = food_insecure([str(a) for a in screening.answers])
        obs = _observation(instrument, f"{name}/{HVS_RISK[0]}", HVS_RISK, common)
        if insecure is None:
            obs["dataAbsentReason"] = data_absent("asked-unknown")
        else:
            risk = HVS_AT_RISK if insecure else HVS_NO_RISK
            obs["valueCodeableConcept"] = codeable(coding(systems.LOINC, *risk), text=risk[1])
        members.append(create(obs))
    panel = _observation(instrument, name, instrument.panel, common)
    panel["hasMember"] = [reference(m.full_url) for m in members]
    return [*members, create(panel)]


def _code(concept: Any) -> str | None:
    for c in (concept or {}).get("coding", []):
        if c.get("system") == systems.LOINC:
            return c.get("code")
    return None


def screening_from_fhir(panel: JSON, resources: ResourceSet) -> JSON | None:
    """The screening (as task JSON) behind a panel Observation, or None if not one of ours."""
    code = _code(panel.get("code"))
    instrument = next((i for i in INSTRUMENTS.values() if i.panel[0] == code), None)
    if instrument is None:
        return None
    by_code: dict[str, JSON] = {}
    for ref in panel.get("hasMember", []):
        member = resources.resolve(ref)
        if member is not None and (c := _code(member.get("code"))):
            by_code[c] = member
    answers: list[int | str] = []
    scores = [c for c, _ in instrument.answers]
    for item, _ in instrument.items:
        value = _code((by_code.get(item) or {}).get("valueCodeableConcept"))
        if instrument.total is None:
            answers.append(_HVS_OF.get(value or "", value or ""))
        else:
            answers.append(scores.index(value) if value in scores else -1)
    out: JSON = {"instrument": instrument.name, "answers": answers}
    if DIFFICULTY_ITEM[0] in by_code:
        value = _code(by_code[DIFFICULTY_ITEM[0]].get("valueCodeableConcept"))
        out["difficulty"] = _DIFFICULTY_OF.get(value or "", value)
    if instrument.total is not None:
        total = (by_code.get(instrument.total[0]) or {}).get("valueInteger")
        if total is not None:
            out["total"] = total  # checked against the items when the task is rebuilt
    return out
