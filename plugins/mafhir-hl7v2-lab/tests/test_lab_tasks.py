"""lab_order and specimen_collection: US Core ServiceRequest/Specimen, both ways, bad input,
and the OML^O21 / ORM^O01 written from them (read back with python-hl7)."""

from __future__ import annotations

from datetime import UTC, datetime

import hl7
import pytest
from helpers_hl7v2_lab import (
    NPI,
    clinic,
    ctx_for,
    lab_order,
    registry_fixture,  # noqa: F401 - the fixture
    specimen,
)

from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, from_fhir, parse
from mafhir.pipeline import Failed, Mapped, Pipeline
from mafhir.resourceset import ResourceSet
from mafhir.validation import check_bundle

NOW = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)


def mapped(registry, *tasks, c=None):
    c = c or clinic("https://maple-clinic.example.org/fhir/id")
    results = list(Pipeline(registry, ctx_for(c)).run(enumerate(tasks)))
    bad = [r for r in results if isinstance(r, Failed)]
    assert not bad, bad
    entries = [e for r in results if isinstance(r, Mapped) for e in r.entries]
    bundle = transaction(entries)
    errors = [i for i in check_bundle(bundle, registry.profiles) if i.severity == "error"]
    assert not errors, errors
    return bundle, c


def of(bundle, rtype):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def test_lab_order_is_a_us_core_service_request(registry):
    bundle, _ = mapped(registry, lab_order(), specimen())
    (sr,) = of(bundle, "ServiceRequest")
    assert sr["meta"]["profile"] == [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest"]
    assert sr["identifier"][0]["value"] == "ord-7001"
    assert sr["identifier"][0]["type"]["coding"][0]["code"] == "PLAC"
    assert (sr["status"], sr["intent"], sr["priority"]) == ("active", "order", "routine")
    assert sr["code"]["coding"] == [{"system": "http://loinc.org", "code": "4548-4",
                                     "display": "Hemoglobin A1c/Hemoglobin.total in Blood"}]
    assert sr["category"][0]["coding"][0]["code"] == "108252007"
    assert sr["reasonCode"] == [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                             "code": "E11.9"}]}]
    assert sr["orderDetail"][0]["coding"][0]["code"] == "F"
    assert sr["authoredOn"] == "2026-11-27T09:10:00-05:00"
    (spec,) = of(bundle, "Specimen")
    assert sr["specimen"] == [{"reference": next(e["fullUrl"] for e in bundle["entry"]
                                                 if e["resource"] is spec)}]
    assert spec["type"]["coding"][0] == {"system": "http://snomed.info/sct",
                                         "code": "122555007", "display": "Venous blood specimen"}
    assert spec["type"]["coding"][1]["code"] == "BLDV"
    assert spec["collection"]["method"]["coding"][0]["code"] == "VENIP"
    assert spec["collection"]["collectedDateTime"] == "2026-11-27T09:20:00-05:00"
    assert spec["request"][0]["reference"].startswith("urn:uuid:")


def test_several_tests_are_several_orders_in_one_requisition(registry):
    bundle, _ = mapped(registry, lab_order(tests=[{"name": "cbc"}, {"name": "cmp"},
                                                  {"loinc": "2093-3", "display": "Cholesterol"}],
                                           specimens=[]))
    srs = of(bundle, "ServiceRequest")
    assert [s["identifier"][0]["value"] for s in srs] == ["ord-7001-1", "ord-7001-2",
                                                         "ord-7001-3"]
    assert {s["requisition"]["value"] for s in srs} == {"ord-7001"}
    assert [s["code"]["coding"][0]["code"] for s in srs] == ["58410-2", "24323-8", "2093-3"]


def test_tasks_read_back_from_fhir(registry):
    bundle, _ = mapped(registry, lab_order(), specimen())
    resources = ResourceSet.from_bundle(bundle)
    (order,) = registry.mappers["lab_order"].from_fhir(resources)
    expected = registry.mappers["lab_order"].model.model_validate(lab_order())
    got = order.model_dump(exclude_none=True, mode="json")
    assert got.pop("patient").pop("system") == "https://maple-clinic.example.org/fhir/id/mrn"
    want = expected.model_dump(exclude_none=True, mode="json")
    want.pop("patient")
    assert got == want
    (spec,) = registry.mappers["specimen_collection"].from_fhir(resources)
    assert spec.label == "TUBE-000731" and spec.type == "venous-blood"
    assert spec.order == "ord-7001"


@pytest.mark.parametrize(("change", "where"), [
    ({"tests": []}, "task[0].tests"),
    ({"tests": [{"loinc": "4548"}]}, "task[0].tests[0].loinc"),
    ({"tests": [{"name": "cbc", "loinc": "58410-2"}]}, "task[0].tests[0]"),
    ({"diagnoses": ["diabetes"]}, "task[0].diagnoses[0]"),
    ({"ordered": "2026-11-27T09:10:00"}, "task[0].ordered"),
    ({"priority": "whenever"}, "task[0].priority"),
    ({"requester": {"npi": "1234567890", "family": "X"}}, "task[0].requester.npi"),
])
def test_bad_lab_orders_name_the_field(registry, change, where):
    (result,) = Pipeline(registry).run([(0, lab_order(**change))])
    assert isinstance(result, Failed)
    assert where in [p.location for p in result.problems]


def test_bad_specimen_names_the_field(registry):
    (result,) = Pipeline(registry).run([(0, specimen(type="blood-ish"))])
    assert isinstance(result, Failed) and result.problems[0].location == "task[0].type"


# ------------------------------------------------------------------ orders out
def test_oml_o21_read_back_with_python_hl7(registry):
    bundle, c = mapped(registry, lab_order(), specimen())
    ctx = V2Context(map=ctx_for(c), now=NOW, receiving=("LABSYS", "QUESTLAB"))
    text = from_fhir(registry, "OML^O21", ResourceSet.from_bundle(bundle), ctx)
    m = hl7.parse(text)
    assert str(m.segment("MSH")[9]) == "OML^O21^OML_O21"
    assert str(m.segment("MSH")[12]) == "2.5.1" and str(m.segment("MSH")[7]) == \
        "20261127143000+0000"
    assert [str(s[0]) for s in m] == ["MSH", "PID", "PV1", "ORC", "TQ1", "OBR", "NTE", "DG1",
                                      "SPM"]
    # the name is written escaped and read back intact
    assert m.extract_field("PID", 1, 5, 1, 1) == "O'Brien|Smith"
    assert m.extract_field("PID", 1, 5, 1, 2) == "Ana^María"
    assert m.extract_field("PID", 1, 3, 1, 1) == "MS-10022"
    assert m.extract_field("PID", 1, 7, 1, 1) == "19610402"
    assert m.extract_field("ORC", 1, 1, 1, 1) == "NW"
    assert m.extract_field("ORC", 1, 2, 1, 1) == "ord-7001"
    assert m.extract_field("ORC", 1, 2, 1, 3) == f"{c.system}/lab_order"
    assert m.extract_field("ORC", 1, 12, 1, 1) == NPI
    assert m.extract_field("OBR", 1, 4, 1, 1) == "4548-4"
    assert m.extract_field("OBR", 1, 4, 1, 3) == "LN"
    assert m.extract_field("OBR", 1, 13, 1, 1) == "F"
    assert m.extract_field("DG1", 1, 3, 1, 1) == "E11.9"
    assert m.extract_field("DG1", 1, 3, 1, 3) == "I10C"
    assert m.extract_field("NTE", 1, 3, 1, 1) == "Fasting since 22:00 & no meds"
    assert m.extract_field("SPM", 1, 4, 1, 1) == "122555007"
    assert m.extract_field("SPM", 1, 4, 1, 4) == "BLDV"
    assert m.extract_field("SPM", 1, 7, 1, 1) == "VENIP"
    assert m.extract_field("SPM", 1, 17, 1, 1) == "20261127092000-0500"
    assert m.extract_field("TQ1", 1, 9, 1, 1) == "R"
    # and mafhir's own reader converts it back to the same order number and test
    back = registry.converters["hl7v2:OML^O21"].to_fhir(parse(text), ctx)
    (sr,) = of(back, "ServiceRequest")
    original = of(bundle, "ServiceRequest")[0]["identifier"][0]
    assert (sr["identifier"][0]["system"], sr["identifier"][0]["value"]) == \
        (original["system"], original["value"])
    assert sr["code"]["coding"][0]["code"] == "4548-4"


def test_orm_o01_and_coverage_in_in1(registry):
    coverage = {"task": "coverage", "id": "cov-1", "patient": {"mrn": "MS-10022"},
                "payer": {"id": "60054", "name": "Aetna"}, "member_id": "W123456789",
                "group": {"id": "GRP-77"}, "subscriber": {"relationship": "self"}}
    bundle, c = mapped(registry, lab_order(priority="stat", cancel=True), specimen(), coverage)
    text = from_fhir(registry, "ORM^O01", ResourceSet.from_bundle(bundle),
                     V2Context(map=ctx_for(c), now=NOW))
    m = hl7.parse(text)
    assert str(m.segment("MSH")[9]) == "ORM^O01^ORM_O01"
    assert "SPM" not in [str(s[0]) for s in m]
    assert m.extract_field("ORC", 1, 1, 1, 1) == "CA"  # a cancelled order
    assert m.extract_field("ORC", 1, 7, 1, 6) == "S"
    assert m.extract_field("OBR", 1, 15, 1, 1, 1) == "BLDV"
    assert m.extract_field("IN1", 1, 3, 1, 1) == "60054"
    assert m.extract_field("IN1", 1, 4, 1, 1) == "Aetna"
    assert m.extract_field("IN1", 1, 8, 1, 1) == "GRP-77"
    assert m.extract_field("IN1", 1, 17, 1, 1) == "SEL"
    assert m.extract_field("IN1", 1, 36, 1, 1) == "W123456789"


def test_orders_out_need_a_service_request(registry):
    with pytest.raises(InputError, match="ServiceRequest"):
        from_fhir(registry, "OML^O21", ResourceSet(), V2Context())
    with pytest.raises(InputError, match="no converter"):
        from_fhir(registry, "ORU^R01", ResourceSet(), V2Context())
