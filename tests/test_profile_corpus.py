"""The corpus's official FHIR R4 examples and its Synthea bundles against base R4 (and the
profiles they claim): the true errors found in them, listed with the reason for each, and
no error on any other file.

The expected list was made by reading each reported file against the R4 specification, not
by copying the engine's output: an entry says what the specification requires and what the
file has. A file whose report differs from its entry (more, fewer or other errors) fails.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mafhir.profiles import Validator
from profile_validators import validator as shared_validator

JSON = dict[str, Any]

#: file -> {(rule, expression prefix): count} of true errors, each with its reason.
TRUE_ERRORS: dict[str, dict[tuple[str, str], int]] = {
    # R4 MedicationRequest.dispenseRequest.performer is Reference(Organization); the example
    # points it at Practitioner/f001.
    "fhir-r4-examples/MedicationRequest/MedicationRequest-medrx0301.json": {
        ("reference", "MedicationRequest.dispenseRequest.performer"): 1},
    # R4 Observation.performer allows Practitioner, PractitionerRole, Organization, CareTeam,
    # Patient, RelatedPerson; the example's performer is Encounter/example.
    "fhir-r4-examples/Observation/Observation-clinical-gender.json": {
        ("reference", "Observation.performer[0]"): 1},
    # R4 Questionnaire.item.linkId is 1..1; 32 nested items of this example have none.
    "fhir-r4-examples/Questionnaire/Questionnaire-qs1.json": {
        ("cardinality", "Questionnaire.item"): 32},
}

FOLDERS = ("fhir-r4-examples/*/*.json", "synthea/*.json")


@pytest.fixture(scope="module")
def validator() -> Validator:
    return shared_validator()


def _files(corpus: Path) -> list[str]:
    return sorted(str(p.relative_to(corpus)) for pattern in FOLDERS for p in corpus.glob(pattern))


def _groups(corpus: Path) -> dict[str, list[str]]:
    """The files in two groups: those with true errors, and the rest."""
    files = _files(corpus)
    return {"true": [f for f in files if f in TRUE_ERRORS],
            "clean": [f for f in files if f not in TRUE_ERRORS]}


def _errors(validator: Validator, corpus: Path, name: str) -> list[Any]:
    resource = json.loads((corpus / name).read_text(encoding="utf-8"))
    return [i for i in validator.validate(resource) if i.severity in ("error", "fatal")]


def _shape(errors: list[Any], expected: dict[tuple[str, str], int]) -> Counter[tuple[str, str]]:
    """Errors counted under the expected (rule, expression prefix) they fall in."""
    out: Counter[tuple[str, str]] = Counter()
    for e in errors:
        key = next(((rule, prefix) for rule, prefix in expected
                    if e.rule == rule and e.expression.startswith(prefix)),
                   (e.rule, e.expression))
        out[key] += 1
    return out


def test_the_corpus_is_there_and_large(corpus):
    groups = _groups(corpus)
    assert len(groups["clean"]) + len(groups["true"]) >= 390
    assert set(TRUE_ERRORS) <= set(groups["true"])
    assert sum(1 for f in groups["clean"] if f.startswith("synthea/")) >= 10


@pytest.mark.parametrize("folder", ["fhir-r4-examples/", "synthea/"])
def test_no_error_on_every_other_file(corpus, validator, folder):
    bad = {}
    for name in (n for n in _groups(corpus)["clean"] if n.startswith(folder)):
        errors = _errors(validator, corpus, name)
        if errors:
            bad[name] = [str(e) for e in errors[:3]]
    assert not bad, json.dumps(bad, indent=1)


@pytest.mark.parametrize("name", sorted(TRUE_ERRORS))
def test_the_true_errors_are_found_and_only_them(corpus, validator, name):
    if not (corpus / name).exists():
        pytest.fail(f"{name} is not in the corpus")
    expected = TRUE_ERRORS[name]
    assert _shape(_errors(validator, corpus, name), expected) == Counter(expected)
