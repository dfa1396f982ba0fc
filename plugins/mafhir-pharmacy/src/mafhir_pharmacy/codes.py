"""Code tables of the pharmacy plugin: the known drugs, routes, frequencies, denial reasons.

The drug list (``data/drugs.csv``) is a small curated set, not RxNorm: each code was seen
in the public source named in its ``source`` column, and a code outside it is refused as
unknown (the MA gets a clear error, not a guessed drug). ``schedule`` is the DEA
schedule (CII–CV) when the drug is a controlled substance. Extend the file, or pass your
own table to :func:`load_drugs`, to prescribe more.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mafhir import systems

__all__ = [
    "CONTROLLED_TAG",
    "DENIAL_REASONS",
    "FREQUENCIES",
    "MR_CATEGORY",
    "NCPDP",
    "ROUTES",
    "RXNORM",
    "SCHEDULE_TO_V2",
    "SUBSTITUTION",
    "TASK_CODE",
    "V2_0119",
    "V2_0162",
    "V2_0335",
    "Drug",
    "known_drug",
    "load_drugs",
]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
#: NCPDP Provider Identification Number (the pharmacy id) — terminology.hl7.org NamingSystem.
NCPDP = "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber"
MR_CATEGORY = systems.THO + "medicationrequest-category"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
SUBSTITUTION = systems.THO + "v3-substanceAdminSubstitution"
V2_0119 = systems.THO + "v2-0119"
V2_0162 = systems.THO + "v2-0162"
V2_0335 = systems.THO + "v2-0335"
#: meta.tag system that marks a controlled substance (no FHIR R4 element carries the schedule).
CONTROLLED_TAG = "urn:mafhir:dea-schedule"
#: DEA schedule → v2 table 0477 (RXE-35 Controlled Substance Schedule).
SCHEDULE_TO_V2 = {"CII": "II", "CIII": "III", "CIV": "IV", "CV": "V"}

#: route → (SNOMED CT route, display, v2 table 0162 code, its display)
ROUTES: dict[str, tuple[str, str, str, str]] = {
    "oral": ("26643006", "Oral route", "PO", "Oral"),
    "sublingual": ("37839007", "Sublingual route", "SL", "Sublingual"),
    "topical": ("6064005", "Topical route", "TP", "Topical"),
    "inhaled": ("447694001", "Respiratory tract route", "IH", "Inhalation"),
    "subcutaneous": ("34206005", "Subcutaneous route", "SC", "Subcutaneous"),
    "intramuscular": ("78421000", "Intramuscular route", "IM", "Intramuscular"),
    "ophthalmic": ("54485002", "Ophthalmic route", "OP", "Ophthalmic"),
    "otic": ("10547007", "Otic route", "OT", "Otic"),
    "nasal": ("46713006", "Nasal route", "NS", "Nasal"),
    "rectal": ("37161004", "Rectal route", "PR", "Rectal"),
    "vaginal": ("16857009", "Vaginal route", "VA", "Vaginal"),
    "transdermal": ("45890007", "Transdermal route", "TD", "Transdermal"),
}

#: frequency (v2 table 0335 code) → FHIR Timing.repeat (frequency, period, periodUnit, when)
FREQUENCIES: dict[str, tuple[int, float, str, str | None]] = {
    "QD": (1, 1, "d", None),
    "BID": (2, 1, "d", None),
    "TID": (3, 1, "d", None),
    "QID": (4, 1, "d", None),
    "Q4H": (1, 4, "h", None),
    "Q6H": (1, 6, "h", None),
    "Q8H": (1, 8, "h", None),
    "Q12H": (1, 12, "h", None),
    "QOD": (1, 2, "d", None),
    "QHS": (1, 1, "d", "HS"),
    "QAM": (1, 1, "d", "MORN"),
    "QWK": (1, 1, "wk", None),
}

#: why a refill was denied → the text the pharmacy and the Task carry
DENIAL_REASONS = {
    "needs-appointment": "Patient needs an appointment before a renewal",
    "discontinued": "Medication discontinued by the prescriber",
    "wrong-patient": "Request is for a patient not matching the prescription",
    "not-our-patient": "Patient unknown to this prescriber",
    "too-soon": "Refill requested too soon",
    "changed-therapy": "Therapy changed; a new prescription follows",
    "other": "Denied by the prescriber",
}


@dataclass(frozen=True, slots=True)
class Drug:
    rxnorm: str
    display: str
    schedule: str | None
    source: str


def load_drugs(path: Path | None = None) -> dict[str, Drug]:
    """The drug table (RxNorm code → :class:`Drug`)."""
    path = path or Path(__file__).with_name("data") / "drugs.csv"
    with path.open(newline="", encoding="utf-8") as f:
        return {row["rxnorm"]: Drug(row["rxnorm"], row["display"], row["schedule"] or None,
                                    row["source"]) for row in csv.DictReader(f)}


@lru_cache(maxsize=1)
def _drugs() -> dict[str, Drug]:
    return load_drugs()


def known_drug(rxnorm: str) -> Drug | None:
    return _drugs().get(rxnorm)
