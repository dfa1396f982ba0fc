"""The stand-in's schedule (mafhir_iis.forecast): dates worked out by hand from its
documented rules, and its vaccine groups checked against the CDC's own CVX → vaccine
group table (code-sets/cdc/vac2vg.xml), read here without mafhir."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

import pytest
from helpers_iis_in import corpus_dir
from mafhir_iis.forecast import SCHEDULE, add_months, evaluate, forecast

BIRTH = date(2026, 1, 31)


def test_calendar_months_end_on_the_last_day_of_a_short_month():
    assert add_months(BIRTH, 1) == date(2026, 2, 28)
    assert add_months(date(2027, 12, 15), 2) == date(2028, 2, 15)


def test_a_dose_given_too_early_is_not_valid_and_does_not_count():
    """Hep B dose 2 needs 1 month of age (2026-02-28) and 28 days after dose 1
    (2026-02-28): given 2026-02-20 is 8 days early, more than the 4-day grace."""
    evaluations, state = evaluate(BIRTH, [("08", BIRTH), ("08", date(2026, 2, 20))])
    assert [(e.group.cvx, e.dose_number, e.valid) for e in evaluations] == [
        ("45", 1, True), ("45", 2, False)]
    assert state["45"] == (1, BIRTH)


def test_the_four_day_grace_counts_a_dose_given_just_early():
    evaluations, _ = evaluate(BIRTH, [("08", BIRTH), ("08", date(2026, 2, 24))])
    assert evaluations[1].valid


def test_a_finished_series_is_complete_and_an_aged_out_one_is_left_out():
    """MMR twice (12 months, 4 years) is complete; at 6 years Hib (max 5 years) is not
    recommended any more."""
    history = [("03", date(2027, 1, 31)), ("03", date(2030, 1, 31))]
    recs = {r.group.cvx: r for r in forecast(BIRTH, history, date(2032, 3, 1))}
    assert recs["03"].status == "complete" and recs["03"].due is None
    assert "17" not in recs
    # DTaP never given, 6 years old: dose 1 due at 2 months, long overdue
    assert (recs["107"].due, recs["107"].status) == (date(2026, 3, 31), "overdue")


@pytest.mark.corpus
def test_every_vaccine_counts_for_the_groups_the_cdc_says():
    root = ET.parse(corpus_dir() / "code-sets" / "cdc" / "vac2vg.xml").getroot()
    pairs = set()
    for info in root:
        values = [v.text.strip() if v.text else "" for v in info.findall("Value")]
        names = [n.text for n in info.findall("Name")]
        row = dict(zip(names, values, strict=False))
        pairs.add((row["CVXCode"], row["CVX for Vaccine Group"]))
    for group in SCHEDULE:
        for member in group.members:
            assert (member, group.cvx) in pairs, (member, group.name)
