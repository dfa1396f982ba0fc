"""The screening instruments an MA administers, and how each is scored.

Each instrument is its LOINC panel, its items in questionnaire order, its answer list (the
score of an answer is its position), the LOINC code of its total and the bands a total
falls in. Codes and displays: PHQ-9 items, answers and total from the US Core 7.0.0
``Questionnaire-phq-9-example`` and PHQ-9 examples; Hunger Vital Sign from the US Core
``Questionnaire-hunger-vital-sign-example``; PHQ-2 (55757-9, total 55758-7) and GAD-7
(69737-5, total 70274-6, items as in the HL7 PHR format IG's GAD-7 example) are LOINC
codes not in the corpus (docs/intake.md lists what was verified where). Bands: PHQ-9 and
GAD-7 from their authors (Kroenke 2001, Spitzer 2006); PHQ-2 is positive at 3 or more.

Scoring is a pure function of the answers: a total the clinic gives is only compared with
it, never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DIFFICULTY", "DIFFICULTY_ITEM", "FREQUENCY", "HVS_ANSWERS", "INSTRUMENTS",
           "Instrument", "band", "food_insecure", "total_of"]

#: PHQ/GAD frequency answers, LOINC answer codes, scored 0-3 by position.
FREQUENCY: tuple[tuple[str, str], ...] = (
    ("LA6568-5", "Not at all"),
    ("LA6569-3", "Several days"),
    ("LA6570-1", "More than half the days"),
    ("LA6571-9", "Nearly every day"),
)
#: Hunger Vital Sign answers (LOINC), in the clinic's words → (code, display).
HVS_ANSWERS: dict[str, tuple[str, str]] = {
    "often true": ("LA28397-0", "Often true"),
    "sometimes true": ("LA6729-3", "Sometimes true"),
    "never true": ("LA28398-8", "Never true"),
    "don't know": ("LA15775-2", "Don't know/refused"),
}
#: The PHQ-9's last question (not scored): how difficult the problems made daily life.
#: Codes and displays from the US Core PHQ-9 Questionnaire and example 69722-7.
DIFFICULTY_ITEM = ("69722-7", "How difficult have these problems made it for you to do your "
                              "work, take care of things at home, or get along with other "
                              "people?")
DIFFICULTY: dict[str, tuple[str, str]] = {
    "not difficult at all": ("LA6572-7", "Not difficult at all"),
    "somewhat difficult": ("LA6573-5", "Somewhat difficult"),
    "very difficult": ("LA6575-0", "Very difficult"),
    "extremely difficult": ("LA6574-3", "Extremely difficult"),
}
#: The HVS result item and its two answers.
HVS_RISK = ("88124-3", "Food insecurity risk [HVS]")
HVS_AT_RISK = ("LA19952-3", "At risk")
HVS_NO_RISK = ("LA19983-8", "No risk")

_PHQ_ITEMS = {
    "44250-9": "Little interest or pleasure in doing things in last 2 weeks",
    "44255-8": "Feeling down, depressed, or hopeless in last 2 weeks",
    "44259-0": "Trouble falling or staying asleep, or sleeping too much",
    "44254-1": "Feeling tired or having little energy",
    "44251-7": "Poor appetite or overeating",
    "44258-2": "Feeling bad about yourself-or that you are a failure or have let yourself "
               "or your family down",
    "44252-5": "Trouble concentrating on things, such as reading the newspaper or watching "
               "television",
    "44253-3": "Moving or speaking so slowly that other people could have noticed. Or the "
               "opposite-being so fidgety or restless that you have been moving around a lot "
               "more than usual",
    "44260-8": "Thoughts that you would be better off dead, or of hurting yourself in some way",
}


@dataclass(frozen=True)
class Instrument:
    """One screening instrument: codes, items, answers, total and bands."""

    name: str
    title: str
    panel: tuple[str, str]
    items: tuple[tuple[str, str], ...]
    answers: tuple[tuple[str, str], ...]
    total: tuple[str, str] | None
    #: (lowest total of the band, its label), ascending.
    bands: tuple[tuple[int, str], ...] = ()
    #: Extra US Core screening-assessment category (us-core-category), if any.
    category: tuple[str, str] | None = None

    @property
    def max_score(self) -> int:
        return len(self.answers) - 1


INSTRUMENTS: dict[str, Instrument] = {i.name: i for i in (
    Instrument(
        "phq-9", "PHQ-9", ("44249-1", "PHQ-9 quick depression assessment panel [Reported.PHQ]"),
        tuple(_PHQ_ITEMS.items()), FREQUENCY,
        ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
        ((0, "None-minimal depression"), (5, "Mild depression"), (10, "Moderate depression"),
         (15, "Moderately severe depression"), (20, "Severe depression"))),
    Instrument(
        "phq-2", "PHQ-2", ("55757-9", "Patient Health Questionnaire 2 item (PHQ-2) [Reported]"),
        (("44250-9", _PHQ_ITEMS["44250-9"]), ("44255-8", _PHQ_ITEMS["44255-8"])), FREQUENCY,
        ("55758-7", "Patient Health Questionnaire 2 item (PHQ-2) total score [Reported]"),
        ((0, "Negative depression screen"), (3, "Positive depression screen"))),
    Instrument(
        "gad-7", "GAD-7", ("69737-5", "Generalized anxiety disorder 7 item (GAD-7)"),
        (("69725-0", "Feeling nervous, anxious or on edge"),
         ("68509-9", "Not being able to stop or control worrying"),
         ("69733-4", "Worrying too much about different things"),
         ("69734-2", "Trouble relaxing"),
         ("69735-9", "Being so restless that it is hard to sit still"),
         ("69689-8", "Becoming easily annoyed or irritable"),
         ("69736-7", "Feeling afraid as if something awful might happen")), FREQUENCY,
        ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"),
        ((0, "Minimal anxiety"), (5, "Mild anxiety"), (10, "Moderate anxiety"),
         (15, "Severe anxiety"))),
    Instrument(
        "hunger-vital-sign", "Hunger Vital Sign", ("88121-9", "Hunger Vital Sign [HVS]"),
        (("88122-7", "(I/We) worried whether (my/our) food would run out before (I/we) got "
                     "money to buy more."),
         ("88123-5", "The food that (I/we) bought just didn't last, and (I/we) didn't have "
                     "money to get more.")),
        tuple(HVS_ANSWERS.values()), None, category=("sdoh", "SDOH")),
)}


def total_of(scores: list[int]) -> int:
    """The total score of a scored instrument: the sum of its item scores."""
    return sum(scores)


def band(instrument: Instrument, total: int) -> str | None:
    """The label of the band ``total`` falls in, or None for an unbanded instrument."""
    label = None
    for low, name in instrument.bands:
        if total >= low:
            label = name
    return label


def food_insecure(answers: list[str]) -> bool | None:
    """Hunger Vital Sign: at risk when either statement is often or sometimes true; unknown
    (None) when neither is and one was not known or refused — never "no risk" by default."""
    if any(a in ("often true", "sometimes true") for a in answers):
        return True
    return None if "don't know" in answers else False
