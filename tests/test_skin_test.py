"""The skin_test task: a TB skin test's placement and reading.

Expectations by hand from the CDC reading rules (48–72 h; positive at the risk group's
5/10/15 mm cut-off) and FHIR R4 (Observation.partOf → Procedure); both US Core releases
checked by tests/uscore.py.
"""

from __future__ import annotations

from typing import Any

import pytest

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle
from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.mappers.skin_test import from_fhir
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet

MRN = {"mrn": "MRN-9", "system": CLINIC.mrn_namespace}
MA = {"npi": "1234567893", "family": "Rivera", "given": ["Ana"]}
PLACED = "2026-03-02T10:00:00-05:00"
PLACEMENT = {"placed": PLACED, "site": "left-forearm", "product": "Tubersol",
             "lot": "C5566AA", "expiration_date": "2027-01-31", "performer": MA}


def tst(read: str | None = None, mm: int = 0, cut: int = 10, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"task": "skin_test", "id": "tst-1", "patient": MRN,
                           "placement": dict(PLACEMENT)}
    if read is not None:
        raw["reading"] = {"read": read, "induration_mm": mm, "positive_from_mm": cut,
                          "reader": MA}
    raw.update(over)
    return raw


@pytest.fixture(scope="module")
def pipeline(registry) -> Pipeline:
    return Pipeline(registry, CTX)


def mapped(pipeline: Pipeline, raw: dict[str, Any]):
    return pipeline.map_task(0, pipeline.parse(0, raw))


def of_type(m, rtype: str) -> list[dict[str, Any]]:
    return [e.resource for e in m.entries if e.resource["resourceType"] == rtype]


def problems(pipeline: Pipeline, raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        mapped(pipeline, raw)
    return [(p.location, p.message) for p in info.value.problems]


def test_placement_alone_is_a_procedure_with_lot_site_and_time(pipeline, registry, corpus):
    m = mapped(pipeline, tst())
    assert_valid_bundle(m.entries, registry)
    (proc,) = of_type(m, "Procedure")
    assert of_type(m, "Observation") == []
    assert proc["status"] == "completed" and proc["performedDateTime"] == PLACED
    assert proc["code"]["coding"][0]["code"] == "86580"
    assert proc["bodySite"][0]["coding"][0]["code"] == "LLFA"
    (ppd,) = proc["contained"]
    assert ppd["batch"] == {"lotNumber": "C5566AA", "expirationDate": "2027-01-31"}
    assert proc["usedReference"] == [{"reference": "#ppd"}]
    for version in ("6.1.0", "7.0.0"):
        assert uscore.check(proc, corpus, version) == []


@pytest.mark.parametrize("mm, cut, expected", [
    (4, 5, "NEG"), (5, 5, "POS"), (9, 10, "NEG"), (10, 10, "POS"), (14, 15, "NEG"),
    (15, 15, "POS"), (0, 5, "NEG"),
])
def test_the_reading_is_interpreted_by_the_risk_group_cut_off(pipeline, mm, cut, expected):
    m = mapped(pipeline, tst("2026-03-04T10:00:00-05:00", mm, cut))  # 48 h: in the window
    (obs,) = of_type(m, "Observation")
    assert obs["valueQuantity"]["value"] == mm and obs["valueQuantity"]["code"] == "mm"
    assert obs["interpretation"][0]["coding"][0]["code"] == expected
    assert m.warnings == ()


def test_the_reading_is_part_of_its_placement(pipeline, registry, corpus):
    m = mapped(pipeline, tst("2026-03-05T09:00:00-05:00", 12))  # 71 h
    bundle = assert_valid_bundle(m.entries, registry)
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (obs,) = of_type(m, "Observation")
    (part,) = obs["partOf"]
    assert by_url[part["reference"]]["resourceType"] == "Procedure"
    assert obs["code"]["coding"][0] == {
        "system": "http://loinc.org", "code": "1648-5",
        "display": "Tuberculosis reaction wheal [Diameter] --3 days post 5 TU intradermal"}
    for e in m.entries:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(e.resource, corpus, version) == []


@pytest.mark.parametrize("read, hours", [("2026-03-03T10:00:00-05:00", 24),
                                         ("2026-03-06T10:00:00-05:00", 96)])
def test_a_reading_outside_48_to_72_hours_is_kept_and_flagged(pipeline, read, hours):
    m = mapped(pipeline, tst(read, 3))
    assert len(of_type(m, "Observation")) == 1
    (warning,) = [w for w in m.warnings if w.location.endswith("reading.read")]
    assert f"{hours} hours" in warning.message and "48–72" in warning.message


def test_a_reading_ten_days_after_placement_is_refused(pipeline):
    found = problems(pipeline, tst("2026-03-12T10:00:00-05:00", 3))
    assert [loc for loc, _ in found] == ["task[0].reading.read"]
    assert "10 days" in found[0][1]


def test_a_reading_before_the_placement_is_refused(pipeline):
    found = problems(pipeline, tst("2026-03-01T10:00:00-05:00", 3))
    assert [loc for loc, _ in found] == ["task[0].reading.read"]


def test_an_induration_of_minus_3_mm_is_refused_naming_it(pipeline):
    found = problems(pipeline, tst("2026-03-04T10:00:00-05:00", -3))
    assert found == [("task[0].reading.induration_mm",
                      "an induration cannot be negative (0 mm means none)")]


@pytest.mark.parametrize("reading, location", [
    ({"induration_mm": 5.5}, "task[0].reading.induration_mm"),
    ({"positive_from_mm": 8}, "task[0].reading.positive_from_mm"),
])
def test_other_impossible_readings_are_refused(pipeline, reading, location):
    raw = tst("2026-03-04T10:00:00-05:00", 3)
    raw["reading"].update(reading)
    assert location in [loc for loc, _ in problems(pipeline, raw)]


def test_an_expired_ppd_lot_is_refused(pipeline):
    raw = tst()
    raw["placement"]["expiration_date"] = "2026-03-01"
    assert [loc for loc, _ in problems(pipeline, raw)] == ["task[0].placement.expiration_date"]


def test_placing_then_reading_writes_the_placement_once(pipeline):
    first = mapped(pipeline, tst())
    second = mapped(pipeline, tst("2026-03-04T10:00:00-05:00", 2))
    (p1,) = [e for e in first.entries if e.resource_type == "Procedure"]
    (p2,) = [e for e in second.entries if e.resource_type == "Procedure"]
    assert p1 == p2 and p1.if_none_exist  # the same conditional create, a no-op the 2nd time


@pytest.mark.parametrize("raw", [
    tst(),
    tst("2026-03-04T10:00:00-05:00", 12, 10, note="left forearm, volar"),
    tst("2026-03-05T09:30:00-05:00", 0, 5),
])
def test_task_to_fhir_to_task_is_equal(pipeline, raw):
    m = mapped(pipeline, raw)
    (back,) = from_fhir(ResourceSet.from_bundle(transaction(m.entries)))
    assert back == pipeline.parse(0, raw)


def test_an_npi_only_placer_round_trips(pipeline):
    raw = tst()
    raw["placement"]["performer"] = {"npi": "1234567893"}
    m = mapped(pipeline, raw)
    assert of_type(m, "Practitioner") == []
    (back,) = from_fhir(ResourceSet.from_bundle(transaction(m.entries)))
    assert back == pipeline.parse(0, raw)
