"""The stand-in IIS's forecast: a small, documented schedule — **not a clinical forecaster**.

Real registries run the CDC's CDSi logic (hundreds of rules: grace periods, live-vaccine
spacing, catch-up tables, contraindications). The stand-in only needs answers a test can
compute by hand, so each vaccine group here is a list of doses, each with

- ``age``: the recommended age (months; years as 12·n months) — the due date is
  ``birth + age`` or, when later, ``previous dose + interval``;
- ``min_age`` (months) and ``interval`` (days): the earliest date is the later of
  ``birth + min_age`` and ``previous dose + interval``;

and the group's ``max_age`` (months, optional) gives the latest date (``birth + max_age``).
A dose is overdue one month after it is due (``overdue = due + 1 month``). A dose given
counts (is valid) when it was given no earlier than its earliest date minus the ACIP's
4-day grace; a dose given too early is evaluated ``N`` and does not count. Vaccines
count for every group their CVX belongs to (combination vaccines: 110 counts for
DTaP, hep B and polio). Statuses: ``complete`` (every dose counted), ``overdue`` (the
overdue date has come), ``due`` otherwise, with the dates said.

Months are calendar months (31 January + 1 month = 28/29 February), so a date is easy to
compute by hand.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

__all__ = ["SCHEDULE", "Dose", "Evaluation", "Group", "Recommendation", "add_months",
           "evaluate", "forecast"]

GRACE_DAYS = 4


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months (the last day of a shorter month when needed)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Dose:
    """One dose of a series: recommended age, minimum age (months), minimum interval
    from the previous dose (days)."""

    age: int
    min_age: int
    interval: int = 0


@dataclass(frozen=True)
class Group:
    """A vaccine group: its CVX ("NOS" code, OBX 30956-7), name, the CVX codes that
    count for it, its doses and the oldest age it is given at (months)."""

    cvx: str
    name: str
    members: frozenset[str]
    doses: tuple[Dose, ...]
    max_age: int | None = None


#: The stand-in's schedule (simplified from the ACIP childhood schedule; see module doc).
SCHEDULE: tuple[Group, ...] = (
    Group("45", "Hep B", frozenset({"08", "42", "43", "44", "45", "51", "102", "104",
                                    "110", "132", "146", "189"}),
          (Dose(0, 0), Dose(1, 1, 28), Dose(6, 6, 56))),
    Group("107", "DTaP", frozenset({"01", "20", "22", "50", "102", "106", "107", "110",
                                    "120", "130", "132", "146"}),
          (Dose(2, 1, 0), Dose(4, 2, 28), Dose(6, 3, 28), Dose(15, 12, 182),
           Dose(48, 48, 182)), max_age=84),
    Group("89", "Polio", frozenset({"02", "10", "89", "110", "120", "130", "132", "146"}),
          (Dose(2, 1, 0), Dose(4, 2, 28), Dose(6, 3, 28), Dose(48, 48, 182)), max_age=216),
    Group("17", "Hib", frozenset({"17", "46", "47", "48", "49", "50", "51", "120", "132",
                                  "146", "148"}),
          (Dose(2, 1, 0), Dose(4, 2, 28), Dose(12, 12, 56)), max_age=60),
    Group("03", "MMR", frozenset({"03", "94"}), (Dose(12, 12, 0), Dose(48, 13, 28))),
    Group("21", "Varicella", frozenset({"21", "94"}), (Dose(12, 12, 0), Dose(48, 15, 84))),
    Group("85", "Hep A", frozenset({"31", "52", "83", "84", "85", "104"}),
          (Dose(12, 12, 0), Dose(18, 18, 182))),
)


@dataclass(frozen=True)
class Evaluation:
    """One dose given, evaluated for one group: dose number (when it counts), valid."""

    index: int  # position of the dose in the history given to :func:`evaluate`
    group: Group
    dose_number: int
    valid: bool


@dataclass(frozen=True)
class Recommendation:
    """The next dose of one group: dates (None when not applicable) and status."""

    group: Group
    dose_number: int
    status: str  # due | overdue | complete
    due: date | None = None
    earliest: date | None = None
    latest: date | None = None
    overdue: date | None = None


def _earliest(group: Group, n: int, birth: date, last: date | None) -> date:
    dose = group.doses[n]
    out = add_months(birth, dose.min_age)
    if last is not None and dose.interval:
        out = max(out, last + timedelta(days=dose.interval))
    return out


def evaluate(birth: date, history: list[tuple[str, date]]
             ) -> tuple[list[Evaluation], dict[str, tuple[int, date | None]]]:
    """Each dose of ``history`` ((CVX, date), oldest first) evaluated per group, and per
    group the number of doses that count and the date of the last one."""
    evaluations: list[Evaluation] = []
    state: dict[str, tuple[int, date | None]] = {g.cvx: (0, None) for g in SCHEDULE}
    for index, (cvx, given) in enumerate(history):
        for group in SCHEDULE:
            if cvx not in group.members:
                continue
            counted, last = state[group.cvx]
            if counted >= len(group.doses):
                evaluations.append(Evaluation(index, group, counted, False))
                continue
            ok = given >= _earliest(group, counted, birth, last) - timedelta(days=GRACE_DAYS)
            evaluations.append(Evaluation(index, group, counted + 1, ok))
            if ok:
                state[group.cvx] = (counted + 1, given)
    return evaluations, state


def forecast(birth: date, history: list[tuple[str, date]], today: date
             ) -> list[Recommendation]:
    """The next dose of every group of :data:`SCHEDULE` the patient is not too old for."""
    _, state = evaluate(birth, history)
    out = []
    for group in SCHEDULE:
        counted, last = state[group.cvx]
        latest = add_months(birth, group.max_age) if group.max_age is not None else None
        if counted >= len(group.doses):
            out.append(Recommendation(group, counted, "complete"))
            continue
        if latest is not None and today > latest:
            continue  # past the group's age limit: nothing to recommend
        dose = group.doses[counted]
        earliest = _earliest(group, counted, birth, last)
        due = max(add_months(birth, dose.age), earliest)
        overdue = add_months(due, 1)
        status = "overdue" if today >= overdue else "due"
        out.append(Recommendation(group, counted + 1, status, due, earliest, latest, overdue))
    return out
