"""Free-text sigs ("Take 1 tablet by mouth twice daily for 10 days") read into structure.

Pure and deliberately small: it recognises the dose, route, frequency, as-needed reason
and duration that primary-care sigs are written with, in English and in the usual Latin
abbreviations (``1 tab po bid prn pain``). What it cannot read it does not guess: the
missing parts are named so the MA can give them as fields or rewrite the sig.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .codes import FREQUENCIES

__all__ = ["DOSE_UNITS", "ParsedSig", "parse_sig"]

#: dose unit words → UCUM (annotations for countable forms, as US Core's examples do)
DOSE_UNITS = {
    "tablet": "{tbl}", "tablets": "{tbl}", "tab": "{tbl}", "tabs": "{tbl}",
    "capsule": "{cap}", "capsules": "{cap}", "cap": "{cap}", "caps": "{cap}",
    "puff": "{puff}", "puffs": "{puff}", "drop": "{drop}", "drops": "{drop}",
    "spray": "{spray}", "sprays": "{spray}", "patch": "{patch}", "patches": "{patch}",
    "mg": "mg", "g": "g", "ml": "mL", "mcg": "ug", "unit": "[iU]", "units": "[iU]",
}
_WORDS = {"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "half": 0.5, "1/2": 0.5}
_DOSE = re.compile(r"\b(\d+(?:\.\d+)?|one|two|three|four|half|1/2)\s*(?:of\s+an?\s+)?("
                   + "|".join(sorted(DOSE_UNITS, key=len, reverse=True)) + r")\b")
_ROUTES = [
    ("sublingual", r"\bsublingual(?:ly)?\b|\bunder the tongue\b|\bsl\b"),
    ("oral", r"\bby mouth\b|\borally\b|\bpo\b|\boral\b"),
    ("inhaled", r"\binhal(?:e|ed|ation)\b"),
    ("subcutaneous", r"\bsubcutaneous(?:ly)?\b|\bsub-?q\b|\bsc\b"),
    ("intramuscular", r"\bintramuscular(?:ly)?\b|\bim\b"),
    ("ophthalmic", r"\b(?:in(?:to)? (?:each|both|the (?:left|right)|the affected) eyes?)\b|"
                   r"\bophthalmic\b"),
    ("otic", r"\b(?:in(?:to)? (?:each|both|the (?:left|right)|the affected) ears?)\b|\botic\b"),
    ("nasal", r"\bnostrils?\b|\b(?:intra)?nasal(?:ly)?\b"),
    ("rectal", r"\brectal(?:ly)?\b|\bpr\b"),
    ("vaginal", r"\bvaginal(?:ly)?\b"),
    ("transdermal", r"\btransdermal\b"),
    ("topical", r"\btopical(?:ly)?\b|\bapply\b|\baffected area\b"),
]
_FREQ = [
    ("QHS", r"\bat bedtime\b|\bqhs\b|\bnightly\b"),
    ("QAM", r"\bevery morning\b|\bqam\b"),
    ("QOD", r"\bevery other day\b|\bqod\b"),
    ("QWK", r"\bonce (?:a|per) week\b|\bweekly\b"),
    ("QID", r"\bfour times (?:a |per )?day\b|\bfour times daily\b|\bqid\b"),
    ("TID", r"\bthree times (?:a |per )?day\b|\bthree times daily\b|\btid\b"),
    ("BID", r"\btwice (?:a |per )?day\b|\btwice daily\b|\btwo times (?:a |per )?day\b|\bbid\b"),
    ("QD", r"\bonce (?:a |per )?day\b|\bonce daily\b|\bdaily\b|\bevery day\b|\bqd\b"),
]
_EVERY = re.compile(r"\bevery (\d+) hours?\b|\bq(\d+)h\b")
_PRN = re.compile(r"\b(?:as needed|prn)\b(?:\s+(?:for\s+)?([a-z][a-z ]*?))?(?=$|[.,;]|\s+for\s+\d)")
_DURATION = re.compile(r"\b(?:for|x)\s*(\d+)\s*days?\b")


@dataclass(frozen=True, slots=True)
class ParsedSig:
    """What was read; ``missing`` names what was not (empty when fully structured)."""

    dose_value: float | None
    dose_unit: str | None
    route: str | None
    frequency: str | None
    as_needed: bool
    as_needed_reason: str | None
    duration_days: int | None

    @property
    def missing(self) -> list[str]:
        out = []
        if self.route is None:
            out.append("route")
        if self.frequency is None and not self.as_needed:
            out.append("frequency")
        return out


def parse_sig(text: str) -> ParsedSig:
    """Read a free-text sig; never raises (see :attr:`ParsedSig.missing`)."""
    low = " ".join(text.lower().replace("q.d.", "qd").replace("b.i.d.", "bid")
                   .replace("t.i.d.", "tid").replace("q.i.d.", "qid").replace("p.o.", "po")
                   .replace("p.r.n.", "prn").split())
    dose_value = dose_unit = None
    m = _DOSE.search(low)
    if m:
        amount = m.group(1)
        dose_value = _WORDS.get(amount) or float(amount)
        dose_unit = DOSE_UNITS[m.group(2)]
    route = next((name for name, pattern in _ROUTES if re.search(pattern, low)), None)
    frequency = next((code for code, pattern in _FREQ if re.search(pattern, low)), None)
    every = _EVERY.search(low)
    if every:
        code = f"Q{every.group(1) or every.group(2)}H"
        frequency = code if code in FREQUENCIES else frequency
    prn = _PRN.search(low)
    reason = prn.group(1).strip() if prn and prn.group(1) else None
    duration = _DURATION.search(low)
    return ParsedSig(dose_value, dose_unit, route, frequency, prn is not None, reason or None,
                     int(duration.group(1)) if duration else None)
