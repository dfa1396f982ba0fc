"""A Bundle's urn:uuid references that no entry has are reported at their exact paths.

``check_bundle`` looks for them in each resource's JSON first and walks the resource only
when one may dangle; these tests hold it to an independent walk written here: every
reference of a converted corpus ORU^R01 made to dangle in turn, and the odd cases (a
reference in a contained resource or an extension, a value with an escaped quote whose
start is a real fullUrl, a ``reference`` that is not a string).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import to_fhir
from mafhir.validation import check_bundle

CLINIC = Clinic(name="Maple Street Family Clinic", system="https://maple.example/id")
ORU = "hl7v2/oru/hl7-v2-to-fhir-ig/ORU_R01.hl7"


def reference_paths(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(FHIR path of the Reference, its value) of every ``reference`` element: the
    independent walk."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference":
                yield path, value
            else:
                yield from reference_paths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from reference_paths(value, f"{path}[{i}]")


def dangling(issues) -> set[str]:
    return {i.expression for i in issues if i.code == "not-found"}


def _set(bundle: dict, path: str, value: str) -> None:
    """Set the value at a path such as ``Bundle.entry[0].resource.subject.reference``."""
    node: Any = bundle
    parts = path.replace("[", ".[").split(".")[1:]
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    node[parts[-1]] = value


@pytest.fixture
def oru_bundle(corpus: Path, registry) -> dict:
    from zoneinfo import ZoneInfo

    raw = (corpus / ORU).read_bytes()
    ctx = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("America/Chicago"),
                    namespaces={"OrdOrg": CLINIC.mrn_namespace})
    return to_fhir(registry, parse(raw), ctx)


@pytest.mark.corpus
def test_each_reference_made_to_dangle_is_reported_at_its_path(oru_bundle, registry):
    assert dangling(check_bundle(oru_bundle, registry.profiles)) == set()
    refs = [(p, v) for i, e in enumerate(oru_bundle["entry"])
            for p, v in reference_paths(e["resource"], f"Bundle.entry[{i}].resource")
            if isinstance(v, str) and v.startswith("urn:uuid:")]
    assert len(refs) > 10
    for path, _ in refs:
        changed = copy.deepcopy(oru_bundle)
        _set(changed, f"{path}.reference", "urn:uuid:00000000-0000-0000-0000-000000000000")
        assert dangling(check_bundle(changed, registry.profiles)) == {path}


def _bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": f"urn:uuid:{n}", "resource": r,
         "request": {"method": "POST", "url": r["resourceType"]}}
        for n, r in enumerate(resources)]}


def test_odd_references_are_found_or_left_as_the_walk_finds_them(registry):
    patient = {"resourceType": "Patient", "name": [{"family": "Doe"}]}
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "subject": {"reference": "urn:uuid:0"},
           "contained": [{"resourceType": "Specimen", "subject": {"reference": "urn:uuid:9"}}],
           "extension": [{"url": "http://x.example", "valueReference":
                          {"reference": 'urn:uuid:0"1'}}],
           "focus": [{"reference": "urn:uuid:0\\"}],
           "performer": [{"reference": "urn:uuid:1"}]}
    found = dangling(check_bundle(_bundle(patient, obs), registry.profiles))
    assert found == {"Bundle.entry[1].resource.contained[0].subject",
                     "Bundle.entry[1].resource.extension[0].valueReference",
                     "Bundle.entry[1].resource.focus[0]"}
