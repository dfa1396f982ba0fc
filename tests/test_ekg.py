"""The ekg task: Procedure, report with the PDF tracing, and the machine's measurements.

QTc values are computed by hand in the comments (Bazett QT/√RR, Fridericia QT/∛RR, RR =
60/HR s); the attachment's size and SHA-1 are computed here with hashlib; codes are from
mapping-reference §8; every resource is checked against both US Core releases.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest

import uscore
from conftest import CLINIC, CTX, assert_valid_bundle
from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.mappers.ekg import from_fhir
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PDF = b"%PDF-1.4\n% a one-page EKG tracing, synthetic\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
WHEN = "2026-03-04T09:15:00-05:00"
MA = {"npi": "1234567893", "family": "Rivera"}
SIGNED = {"by": {"npi": "1245319599", "family": "Okafor", "prefix": "Dr."},
          "at": "2026-03-04T11:40:00-05:00", "impression": "Normal sinus rhythm. Normal EKG."}


def ekg(**over: Any) -> dict[str, Any]:
    raw = {"task": "ekg", "id": "ekg-1", "patient": {"mrn": "MRN-3",
                                                      "system": CLINIC.mrn_namespace},
           "effective": WHEN, "performer": MA,
           "tracing": {"pdf_base64": base64.b64encode(PDF).decode(), "title": "12-lead EKG"},
           "heart_rate": 75, "pr_ms": 160, "qrs_ms": 92, "qt_ms": 380, "axis_deg": 45}
    raw.update(over)
    return {k: v for k, v in raw.items() if v is not None}


@pytest.fixture(scope="module")
def pipeline(registry) -> Pipeline:
    return Pipeline(registry, CTX)


def mapped(pipeline: Pipeline, raw: dict[str, Any]):
    return pipeline.map_task(0, pipeline.parse(0, raw))


def of_type(m, rtype: str) -> list[dict[str, Any]]:
    return [e.resource for e in m.entries if e.resource["resourceType"] == rtype]


def by_loinc(m) -> dict[str, dict[str, Any]]:
    return {c["code"]: o for o in of_type(m, "Observation") for c in o["code"]["coding"]
            if c["system"] == LOINC}


def problems(pipeline: Pipeline, raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as info:
        mapped(pipeline, raw)
    return [(p.location, p.message) for p in info.value.problems]


def test_a_qtc_not_given_is_computed_by_bazett(pipeline):
    # HR 75 → RR 0.8 s; √0.8 = 0.894427; 380 / 0.894427 = 424.85 → 425 ms
    qtc = by_loinc(mapped(pipeline, ekg()))["8636-3"]
    assert qtc["valueQuantity"] == {"value": 425, "unit": "ms", "system": UCUM, "code": "ms"}
    assert "computed" in qtc["method"]["text"] and "Bazett" in qtc["method"]["text"]


def test_a_given_qtc_that_agrees_with_bazett_is_kept_as_the_machine_s(pipeline):
    qtc = by_loinc(mapped(pipeline, ekg(qtc_ms=427)))["8636-3"]  # within 10 ms of 425
    assert qtc["valueQuantity"]["value"] == 427
    assert "electrocardiograph" in qtc["method"]["text"]


def test_a_given_qtc_that_does_not_match_is_refused_naming_it(pipeline):
    found = problems(pipeline, ekg(qtc_ms=460))
    assert [loc for loc, _ in found] == ["task[0].qtc_ms"]
    assert "bazett gives 425 ms" in found[0][1]


def test_a_fridericia_qtc_is_checked_with_fridericia(pipeline):
    # HR 100 → RR 0.6 s; ∛0.6 = 0.843433 → 340 / 0.843433 = 403.1 → 403 ms
    # (Bazett would give 340 / √0.6 = 340 / 0.774597 = 438.9 → 439 ms)
    raw = ekg(heart_rate=100, qt_ms=340, qtc_ms=403, qtc_formula="fridericia")
    assert by_loinc(mapped(pipeline, raw))["8636-3"]["valueQuantity"]["value"] == 403
    found = problems(pipeline, ekg(heart_rate=100, qt_ms=340, qtc_ms=403))
    assert "bazett gives 439 ms" in found[0][1]


def test_measurements_are_loinc_and_ucum(pipeline):
    obs = by_loinc(mapped(pipeline, ekg()))
    expected = {"8867-4": (75, "/min"), "8625-6": (160, "ms"), "8633-0": (92, "ms"),
                "8634-8": (380, "ms"), "8636-3": (425, "ms"), "8632-2": (45, "deg")}
    assert {code: (o["valueQuantity"]["value"], o["valueQuantity"]["code"])
            for code, o in obs.items()} == expected
    for o in obs.values():
        assert o["valueQuantity"]["system"] == UCUM
        assert o["category"][0]["coding"][0]["code"] == "procedure"


def test_the_tracing_is_the_report_s_pdf_with_size_and_sha1(pipeline):
    (report,) = of_type(mapped(pipeline, ekg()), "DiagnosticReport")
    (form,) = report["presentedForm"]
    assert form["contentType"] == "application/pdf"
    assert base64.b64decode(form["data"]) == PDF
    assert form["size"] == len(PDF) == 81
    assert form["hash"] == base64.b64encode(hashlib.sha1(PDF).digest()).decode()


def test_unsigned_it_is_preliminary_with_no_interpretation(pipeline, registry, corpus):
    m = mapped(pipeline, ekg())
    assert_valid_bundle(m.entries, registry)
    (report,) = of_type(m, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert "conclusion" not in report and "resultsInterpreter" not in report
    assert {o["status"] for o in of_type(m, "Observation")} == {"preliminary"}
    assert "8601-7" not in by_loinc(m)
    assert report["code"]["coding"][0]["code"] == "11524-6"
    assert report["category"][0]["coding"][0]["code"] == "LP29708-2"
    (proc,) = of_type(m, "Procedure")
    assert {c["code"] for c in proc["code"]["coding"]} == {"29303009", "93000"}
    assert proc["status"] == "completed" and proc["performedDateTime"] == WHEN
    for e in m.entries:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(e.resource, corpus, version) == []


def test_signed_by_the_provider_it_is_final_with_the_impression(pipeline, registry, corpus):
    m = mapped(pipeline, ekg(signed=SIGNED))
    assert_valid_bundle(m.entries, registry)
    (report,) = of_type(m, "DiagnosticReport")
    assert report["status"] == "final" and report["conclusion"] == SIGNED["impression"]
    assert report["issued"] == SIGNED["at"]
    assert {o["status"] for o in of_type(m, "Observation")} == {"final"}
    impression = by_loinc(m)["8601-7"]
    assert impression["valueString"] == SIGNED["impression"]
    for e in m.entries:
        for version in ("6.1.0", "7.0.0"):
            assert uscore.check(e.resource, corpus, version) == []


def test_signing_later_updates_the_same_resources(pipeline):
    unsigned = mapped(pipeline, ekg())
    signed = mapped(pipeline, ekg(signed=SIGNED))
    urls = {e.full_url: e.url for e in unsigned.entries if e.method == "PUT"}
    assert urls and all(e.url == urls[e.full_url] for e in signed.entries
                        if e.full_url in urls)  # conditional PUTs on the same identifiers


@pytest.mark.parametrize("over, location", [
    ({"tracing": {"pdf_base64": base64.b64encode(b"GIF89a....").decode()}},
     "task[0].tracing.pdf_base64"),
    ({"tracing": {"pdf_base64": "not base64 at all!"}}, "task[0].tracing.pdf_base64"),
    ({"heart_rate": 0}, "task[0].heart_rate"),
    ({"qt_ms": 3800}, "task[0].qt_ms"),
    ({"qrs_ms": 400, "qt_ms": 380}, "task[0].qrs_ms"),
    ({"signed": {**SIGNED, "at": "2026-03-04T08:00:00-05:00"}}, "task[0].signed.at"),
    ({"signed": {**SIGNED, "impression": ""}}, "task[0].signed.impression"),
])
def test_impossible_input_is_refused_naming_the_field(pipeline, over, location):
    assert location in [loc for loc, _ in problems(pipeline, ekg(**over))]


@pytest.mark.parametrize("raw", [
    ekg(),
    ekg(signed=SIGNED, visit="appt-5"),
    ekg(qtc_ms=427, performer={"npi": "1234567893"}),
    ekg(heart_rate=100, qt_ms=340, qtc_ms=403, qtc_formula="fridericia", pr_ms=None,
        axis_deg=-30),
    ekg(qt_ms=None, qrs_ms=None),
], ids=["unsigned", "signed", "given-qtc", "fridericia", "rate-only"])
def test_task_to_fhir_to_task_is_equal(pipeline, raw):
    m = mapped(pipeline, raw)
    (back,) = from_fhir(ResourceSet.from_bundle(transaction(m.entries)))
    assert back == pipeline.parse(0, raw)
