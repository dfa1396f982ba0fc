"""``check_bundle(..., errors_only=True)`` finds exactly the errors of the full check.

The cheap road (the compiled walk for a clean entry, reference targets judged by the walk
and by the verdicts of entries already found clean) must report the same errors, in the
same order, as the interpreting engine does on the full road with warnings filtered out
afterwards. Held on the corpus ORU^R01 messages as converted, and on broken variants of
them whose errors are known by construction: a result pointing at an Observation that
does not conform (a code outside its required value set, a required element removed), a
result pointing at a resource of the wrong type, a bad code in the report itself, every
top-level element of every entry deleted in turn, the entries in reverse order, and a
Patient whose fullUrl names another type (conforming within the Bundle, not without it:
a verdict remembered from the entry's own check must not be reused for a reference).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import hl7
import pytest

from mafhir.context import Clinic, MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import to_fhir
from mafhir.profiles import Validator
from mafhir.validation import check_bundle, check_resource

CLINIC = Clinic(name="Maple Street Family Clinic", system="https://maple.example/id")
JSON = dict[str, Any]
ERRORS = ("error", "fatal")

pytestmark = pytest.mark.corpus


def mr_authorities(raw: bytes) -> set[str]:
    """PID-3 assigning authorities typed MR, read with python-hl7 (not mafhir)."""
    text = raw.decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
    msg = hl7.parse("\r".join(s for s in text.split("\r") if s))
    pid = msg.segment("PID")
    out = set()
    for rep in str(pid[3]).split("~"):
        comps = rep.split("^")
        if len(comps) > 4 and comps[4] == "MR":
            subs = [*comps[3].split("&"), ""]
            out.add(subs[0] or subs[1])  # the namespace id, else the universal id
    return out - {""}


@pytest.fixture(scope="module")
def oru_bundles(corpus: Path, registry) -> list[JSON]:
    """The corpus ORU^R01 messages that convert with their sender's MRN authority mapped."""
    from zoneinfo import ZoneInfo

    out = []
    for path in sorted((corpus / "hl7v2" / "oru").glob("*/*.hl7")):
        raw = path.read_bytes()
        ctx = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("America/Chicago"),
                        namespaces={a: CLINIC.mrn_namespace for a in mr_authorities(raw)})
        try:
            out.append(to_fhir(registry, parse(raw), ctx))
        except InputError:
            continue  # held for review: nothing to check
    assert len(out) >= 3
    return out


@pytest.fixture(scope="module")
def engine() -> Validator:
    """A validator of this module's own: the compiled walk's memory (on its definitions)
    holds only what these checks put there, not what other tests' direct calls of the
    walk (with no Bundle, as no product path makes them) left in the shared one."""
    return Validator.default()


def both(bundle: JSON, registry, engine: Validator) -> tuple[list[Any], list[Any]]:
    """(errors of the full check, the errors_only check), each on its own copy."""
    full = [i for i in check_bundle(copy.deepcopy(bundle), registry.profiles, engine=engine)
            if i.severity in ERRORS]
    cheap = check_bundle(copy.deepcopy(bundle), registry.profiles, engine=engine,
                         errors_only=True)
    return full, cheap


def assert_same(bundle: JSON, registry, engine: Validator) -> list[Any]:
    full, cheap = both(bundle, registry, engine)
    assert cheap == full
    return full


def entries_of(bundle: JSON, rtype: str) -> list[int]:
    return [i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == rtype]


def report_with_results(bundle: JSON) -> tuple[int, int]:
    """(index of the DiagnosticReport, index of the first Observation it lists)."""
    for d in entries_of(bundle, "DiagnosticReport"):
        results = bundle["entry"][d]["resource"].get("result") or []
        if results:
            urls = {e["fullUrl"]: i for i, e in enumerate(bundle["entry"])}
            return d, urls[results[0]["reference"]]
    raise AssertionError("no DiagnosticReport with results")


def test_corpus_orus_same_errors(oru_bundles, registry, engine):
    for bundle in oru_bundles:
        assert assert_same(bundle, registry, engine) == []  # the converter's output is valid


def test_result_to_observation_with_a_bad_status(oru_bundles, registry, engine):
    bundle = copy.deepcopy(oru_bundles[0])
    d, o = report_with_results(bundle)
    bundle["entry"][o]["resource"]["status"] = "finalised"  # not in the required value set
    errors = assert_same(bundle, registry, engine)
    where = {i.expression for i in errors}
    assert f"Bundle.entry[{o}].resource.status" in where
    assert f"Bundle.entry[{d}].resource.result[0].reference" in where


def test_result_to_observation_without_its_category(oru_bundles, registry, engine):
    bundle = copy.deepcopy(oru_bundles[0])
    d, o = report_with_results(bundle)
    del bundle["entry"][o]["resource"]["category"]  # US Core Lab: category is required
    errors = assert_same(bundle, registry, engine)
    assert f"Bundle.entry[{d}].resource.result[0].reference" in {i.expression for i in errors}


def test_result_to_the_patient(oru_bundles, registry, engine):
    bundle = copy.deepcopy(oru_bundles[0])
    d, _ = report_with_results(bundle)
    p = entries_of(bundle, "Patient")[0]
    bundle["entry"][d]["resource"]["result"][0]["reference"] = bundle["entry"][p]["fullUrl"]
    errors = assert_same(bundle, registry, engine)
    assert any(i.expression == f"Bundle.entry[{d}].resource.result[0].reference"
               and "refers to Patient" in i.diagnostics for i in errors)


def test_report_with_a_bad_status(oru_bundles, registry, engine):
    bundle = copy.deepcopy(oru_bundles[0])
    d, _ = report_with_results(bundle)
    bundle["entry"][d]["resource"]["status"] = "done"
    errors = assert_same(bundle, registry, engine)
    assert f"Bundle.entry[{d}].resource.status" in {i.expression for i in errors}


def renamed_patient(source: JSON) -> JSON:
    """``source`` with its Patient's fullUrl (and every reference to it) naming a
    Medication: each resource referring to the Patient conforms within the Bundle (the
    entry is a Patient) and not without it (its text names a Medication)."""
    bundle = copy.deepcopy(source)
    p = entries_of(bundle, "Patient")[0]
    old, new = bundle["entry"][p]["fullUrl"], "https://maple.example/fhir/Medication/p1"
    bundle["entry"][p]["fullUrl"] = new

    def relink(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("reference") == old:
                node["reference"] = new
            for value in node.values():
                relink(value)
        elif isinstance(node, list):
            for value in node:
                relink(value)

    relink(bundle["entry"])
    return bundle


def test_patient_whose_full_url_names_another_type(oru_bundles, registry, engine):
    """Every result is an Observation whose subject names a Medication when checked as a
    reference's target (without the Bundle): the full road says so at every result. The
    Observations lose their basedOn (the ServiceRequest's subject names a Medication
    too), so that each is clean within the Bundle, checked before the report."""
    bundle = renamed_patient(oru_bundles[0])
    d, _ = report_with_results(bundle)
    for o in entries_of(bundle, "Observation"):
        bundle["entry"][o]["resource"].pop("basedOn", None)
        assert o < d
    errors = assert_same(bundle, registry, engine)
    results = len(bundle["entry"][d]["resource"]["result"])
    assert {f"Bundle.entry[{d}].resource.result[{k}].reference"
            for k in range(results)} <= {i.expression for i in errors}
    assert not {i.expression for i in errors if i.expression.startswith(
        tuple(f"Bundle.entry[{o}]" for o in entries_of(bundle, "Observation")))}


def test_a_resource_checked_alone_first(oru_bundles, registry, engine):
    """The task pipeline checks each resource alone (errors_only) before its Bundle is
    checked: a reference found clean there (nothing to resolve) must not stand for the
    same reference within a Bundle, where its target (a ServiceRequest whose subject
    names a Medication) is checked too."""
    original = oru_bundles[0]
    bundle = renamed_patient(original)
    o = entries_of(original, "Observation")[0]
    assert check_resource(copy.deepcopy(original["entry"][o]["resource"]), registry.profiles,
                          engine=engine, errors_only=True) == []
    errors = assert_same(bundle, registry, engine)
    assert f"Bundle.entry[{o}].resource.basedOn[0].reference" in {i.expression for i in errors}


def test_entries_in_reverse_order(oru_bundles, registry, engine):
    bundle = copy.deepcopy(oru_bundles[0])
    _, o = report_with_results(bundle)
    bundle["entry"][o]["resource"]["status"] = "finalised"
    bundle["entry"].reverse()
    assert len(assert_same(bundle, registry, engine)) >= 2


def test_each_element_of_each_entry_deleted(oru_bundles, registry, engine):
    """Every top-level element of every entry of one message deleted in turn."""
    bundle = oru_bundles[0]
    cases = [(i, key) for i, e in enumerate(bundle["entry"])
             for key in e["resource"] if key != "resourceType"]
    assert len(cases) > 30
    with_errors = 0
    for i, key in itertools.islice(cases, None):
        changed = copy.deepcopy(bundle)
        del changed["entry"][i]["resource"][key]
        with_errors += bool(assert_same(changed, registry, engine))
    assert with_errors > 5  # some deletions break a rule (status, code, subject…)
