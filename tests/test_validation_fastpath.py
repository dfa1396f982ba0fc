"""The compiled acceptance check (``validation/fastpath.py``) never says yes where the R4B
models say no, and says yes to what mafhir writes.

Its verdict is compared with building the model itself on three kinds of input: the
official FHIR R4 examples and US Core examples of the corpus (JSON we did not write, with
``_field`` siblings, contained resources, every data type), the resources mafhir makes from
the corpus's ORU/OML/ORM messages and from the clinic day, and broken variants of those —
every element in turn deleted, replaced by a value of the wrong kind or a malformed one,
wrapped in or taken out of a list, joined by a second choice element or an unknown one.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hl7
import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from mafhir.context import Clinic, MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import to_fhir
from mafhir.pipeline import Pipeline
from mafhir.validation.fastpath import accepts
from mafhir.validation.structure import check_structure

ROOT = Path(__file__).resolve().parents[1]
CLINIC = Clinic(name="Maple Street Family Clinic", system="https://maple.example/id")

JSON = dict[str, Any]


def models_accept(resource: JSON) -> bool:
    """The reference verdict: the R4B model of the resource's type built from it."""
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError:
        return False
    except Exception:  # they crash on some junk (an int as a URL): not a yes
        return False
    return True


def resources_of(doc: Any) -> Iterator[JSON]:
    """A resource, and each entry's resource when it is a Bundle (the Bundle itself with
    its entries emptied, as ``check_bundle`` checks it)."""
    if not isinstance(doc, dict) or "resourceType" not in doc:
        return
    if doc["resourceType"] == "Bundle":
        for entry in doc.get("entry", []) or []:
            yield from resources_of(entry.get("resource"))
        doc = {**doc, "entry": []}
    yield doc


def examples(corpus: Path) -> list[JSON]:
    """The official R4 examples and the US Core examples (JSON only)."""
    files = sorted((corpus / "fhir-r4-examples").glob("*/*.json"))
    files += sorted((corpus / "us-core").glob("7.0.0/**/*.json"))
    out = []
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        if isinstance(doc, dict) and doc.get("resourceType") not in (None, "StructureDefinition",
                                                                     "ValueSet", "CodeSystem",
                                                                     "SearchParameter",
                                                                     "CapabilityStatement",
                                                                     "ImplementationGuide"):
            out.extend(resources_of(doc))
    return out


def mr_authorities(text: str) -> set[str]:
    """PID-3 assigning authorities typed MR, read with python-hl7 (not mafhir)."""
    lines = "\r".join(line for line in text.replace("\r\n", "\r").replace("\n", "\r")
                      .split("\r") if line)
    msg = hl7.parse(lines)
    out = set()
    for seg in msg:
        if str(seg[0]) != "PID" or len(seg) <= 3:
            continue
        for rep in str(seg[3]).split("~"):
            comps = rep.split("^")
            if len(comps) > 4 and comps[4] == "MR":
                hd = [*comps[3].split("&"), ""]
                out.add(hd[0] or hd[1])
    return out - {""}


def written(corpus: Path, registry) -> list[JSON]:
    """What mafhir writes: the corpus's lab messages converted, and the clinic day mapped."""
    out: list[JSON] = []
    for kind in ("oru", "oml", "orm"):
        for path in sorted((corpus / "hl7v2" / kind).glob("*/*.hl7")):
            raw = path.read_bytes()
            ctx = V2Context(map=MapContext(clinic=CLINIC), tz=_zone(),
                            namespaces={a: CLINIC.mrn_namespace
                                        for a in mr_authorities(raw.decode("utf-8-sig",
                                                                           "replace"))})
            try:
                out.extend(resources_of(to_fhir(registry, parse(raw), ctx)))
            except InputError:
                continue
    pipeline = Pipeline(registry, MapContext(clinic=CLINIC))
    day = (ROOT / "fixtures" / "clinic-day" / "day.ndjson").read_text().splitlines()
    for i, line in enumerate(day):
        try:
            mapped = pipeline.map_task(i, pipeline.parse(i, json.loads(line)))
        except InputError:
            continue
        out.extend(e.resource for e in mapped.entries)
    return out


def _zone():
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/Chicago")


#: Replacement values: wrong JSON kinds, malformed primitives, nulls, empties.
BAD_VALUES: list[Any] = [None, "", " ", "a b", "x\u00a0", 7, -1, 2.5, True, [], {}, [None],
                         "2026-13-45", "2026-02-30T10:00:00", "2026-01-01T10:00", "urn:uuid:x",
                         {"bogus": 1}, {"resourceType": "Patient"}, "9" * 400]


def _nodes(doc: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, (*path, i))


def _at(doc: Any, path: tuple) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def variants(resource: JSON) -> Iterator[JSON]:
    """Broken (or merely odd) copies of ``resource``, one change each (four of the bad
    values per element, in turn, so every bad value meets every kind of element)."""
    for n, (path, value) in enumerate(list(_nodes(resource))):
        if not path or path == ("resourceType",):
            if isinstance(value, dict):
                changed = copy.deepcopy(resource)
                changed["bogusElement"] = "x"
                yield changed
            continue
        parent_path, key = path[:-1], path[-1]
        if isinstance(key, str):
            changed = copy.deepcopy(resource)
            del _at(changed, parent_path)[key]
            yield changed
            if key[:1].islower() and any(key.startswith(p) for p in ("value", "effective",
                                                                       "deceased", "onset",
                                                                       "occurrence", "multiple")):
                changed = copy.deepcopy(resource)
                _at(changed, parent_path)[_choice_twin(key)] = "x"
                yield changed
            changed = copy.deepcopy(resource)
            _at(changed, parent_path)[f"_{key}"] = {"extension": []}
            yield changed
        for bad in (BAD_VALUES[(4 * n + k) % len(BAD_VALUES)] for k in range(4)):
            changed = copy.deepcopy(resource)
            _at(changed, parent_path)[key] = copy.deepcopy(bad)
            yield changed
        changed = copy.deepcopy(resource)
        _at(changed, parent_path)[key] = [copy.deepcopy(value)] if not isinstance(value, list) \
            else (copy.deepcopy(value[0]) if value else None)
        yield changed
        if isinstance(value, dict):
            changed = copy.deepcopy(resource)
            _at(changed, path)["bogusElement"] = "x"
            yield changed


def _choice_twin(key: str) -> str:
    """Another type of the same choice element (valueQuantity → valueString)."""
    for prefix in ("value", "effective", "deceased", "onset", "occurrence", "multipleBirth"):
        if key.startswith(prefix):
            return prefix + ("String" if not key.endswith("String") else "Boolean")
    return key


def _kind(resources: list[JSON]) -> list[JSON]:
    """The richest resource (most JSON) of each type: the variety, not the volume."""
    seen: dict[str, JSON] = {}
    for r in sorted(resources, key=lambda r: -len(json.dumps(r, default=str))):
        seen.setdefault(r["resourceType"], r)
    return list(seen.values())


@pytest.fixture(scope="module")
def mafhir_written(corpus, registry) -> list[JSON]:
    found = written(corpus, registry)
    assert len(found) > 100  # the corpus messages and the clinic day, not a handful
    return found


@pytest.mark.corpus
def test_the_fast_check_says_yes_to_everything_mafhir_writes(mafhir_written):
    types = {r["resourceType"] for r in mafhir_written}
    assert {"Patient", "Observation", "DiagnosticReport", "ServiceRequest", "Immunization",
            "Coverage", "Bundle"} <= types
    for resource in mafhir_written:
        assert models_accept(resource), resource["resourceType"]
        assert accepts(resource), f"not taken by the fast path: {resource['resourceType']}"


@pytest.mark.corpus
def test_the_fast_check_agrees_with_the_models_on_the_official_examples(corpus):
    found = examples(corpus)
    assert len(found) > 300
    yes = both = 0
    for resource in found:
        fast = accepts(resource)
        if fast:
            yes += 1
            assert models_accept(resource), json.dumps(resource)[:300]
            both += 1
    assert yes > 100  # the examples use it: it is not a check that always defers


@pytest.mark.corpus
def test_broken_variants_the_models_refuse_are_never_accepted(mafhir_written, corpus):
    # every variant of what mafhir writes; every 8th of the richest example of each type
    chosen = [variant for resource in _kind(mafhir_written) for variant in variants(resource)]
    chosen += itertools.islice((variant for resource in _kind(examples(corpus))
                                for variant in variants(resource)), 0, None, 8)
    refused = accepted = 0
    for variant in chosen:
        fast = accepts(variant)
        model = models_accept(variant)
        if fast:
            accepted += 1
            assert model, json.dumps(variant)[:400]
        if not model:
            refused += 1
    assert refused > 5000 and accepted > 500  # both verdicts seen in number


def test_a_refused_resource_keeps_the_models_messages():
    obs = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2"}]},
           "valueQuantity": {"value": "many"}, "valueString": "x", "bogus": 1}
    assert not accepts(obs)
    found = {(i.code, i.expression) for i in check_structure(obs)}
    assert ("structure", "Observation.bogus") in found
    assert ("structure", "Observation.valueQuantity.value") in found


@pytest.mark.parametrize("junk", [
    {"contained": [{"resourceType": "NotAType"}]},  # KeyError in the models' type lookup
    {"_status": "9999"},  # a JSON text parsed where the extension object belongs
], ids=["contained-unknown-type", "primitive-extension-as-text"])
def test_junk_the_models_fail_on_is_a_structure_issue_not_a_crash(junk):
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **junk}
    assert not accepts(obs)
    issues = check_structure(obs)
    assert [(i.severity, i.code, i.expression) for i in issues] == [
        ("error", "structure", "Observation")]


def test_a_value_the_cache_cannot_hold_defers_to_the_models():
    from decimal import Decimal

    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
           "valueQuantity": {"value": Decimal("sNaN")}}  # unhashable: no cache key
    assert accepts(obs) is False
    for text in ("1.00", "1.0", "1E+2", "100"):  # equal keys, different texts: each checked
        obs["valueQuantity"]["value"] = Decimal(text)
        assert accepts(obs) == models_accept(obs) is True
