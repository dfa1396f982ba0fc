"""The compiled walk (``profiles/fastwalk.py``) is the same check as the interpretive engine.

The pipeline asks for errors only, and then a resource the compiled walk finds clean costs
no interpretation; anything else goes to the engine, which says what is wrong. So the walk
must never call clean what the engine rejects. Judged on inputs neither was written from:

- the mutation corpus of ``test_profile_mutations`` (the US Core 6.1.0 and 7.0.0 examples and
  the R4 examples, broken one rule class at a time: cardinality, fixed, pattern, binding,
  slices, invariants, types) and the unbroken originals, against the profiles they claim;
- every resource type mafhir writes (the corpus's lab messages converted, the clinic day
  mapped) and their broken variants (each element deleted, of a wrong kind, malformed, put
  in or out of a list, joined by an unknown one), where the whole fast road — the structure
  table (``validation/fastpath.accepts``) and the compiled walk — is held against the
  fhir.resources models and the interpretive engine together.

Both verdicts are seen in number, so neither side is a check that always defers.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import test_profile_mutations as mutations
from mafhir.profiles import Validator, fastwalk
from mafhir.profiles.run import Run
from mafhir.validation.fastpath import accepts
from mafhir.validation.validator import _engine, check_resource
from profile_validators import validator as shared_validator
from test_validation_fastpath import _kind, models_accept, variants, written

JSON = dict[str, Any]


def engine_errors(validator: Validator, resource: JSON, profiles: list[str]) -> list[str]:
    """The interpretive engine's errors (the full run, notes and warnings dropped after)."""
    return sorted(str(i) for i in validator.validate(resource, profiles=profiles)
                  if i.severity in ("error", "fatal"))


def walk_clean(validator: Validator, resource: JSON, profiles: list[str]) -> bool:
    explicit = [s for s in (validator.defs.structure(u) for u in profiles) if s is not None]
    run = Run(validator.defs, evaluate=validator._evaluate)
    return fastwalk.clean(resource, run, explicit)


@pytest.mark.corpus
@pytest.mark.parametrize("release", mutations.RELEASES)
def test_the_walk_never_calls_a_mutant_clean_and_gives_the_engines_errors(corpus, release):
    validator = shared_validator(None if release == "r4" else f"us-core@{release}")
    cases = [(m.cls, m.resource, [m.profile]) for m in mutations.mutants(corpus, release)]
    originals = [("original", r, []) for _name, r in mutations._examples(corpus, release)]
    seen: Counter[tuple[str, str]] = Counter()
    for cls, resource, profiles in cases + originals:
        errors = engine_errors(validator, resource, profiles)
        clean = walk_clean(validator, resource, profiles)
        if clean:
            assert not errors, f"{cls}: the walk said clean, the engine: {errors}"
        # the errors-only road (walk, then the engine when it is not clean) says the same
        quick = sorted(str(i) for i in validator.validate(resource, profiles=profiles,
                                                          errors_only=True))
        assert quick == errors, cls
        seen[(cls, "clean" if clean else "not clean")] += 1
        seen[(cls, "engine clean" if not errors else "engine errors")] += 1
    assert seen[("original", "clean")] >= 0.9 * len(originals)  # the walk is used
    rejected = sum(n for (cls, verdict), n in seen.items()
                   if cls != "original" and verdict == "not clean")
    assert rejected >= 0.9 * len(cases)


@pytest.fixture(scope="module")
def mafhir_written(corpus, registry) -> list[JSON]:
    found = written(corpus, registry)
    assert len(found) > 100
    return found


@pytest.mark.corpus
def test_the_fast_road_says_yes_to_what_mafhir_writes(mafhir_written, registry):
    types = {r["resourceType"] for r in mafhir_written}
    assert {"Patient", "Practitioner", "Organization", "Location", "Observation",
            "DiagnosticReport", "ServiceRequest", "Specimen", "Immunization", "Coverage",
            "Appointment", "Encounter", "Procedure"} <= types
    engine = _engine()
    for resource in mafhir_written:
        assert accepts(resource), resource["resourceType"]
        assert walk_clean(engine, resource, []), f"the walk defers: {resource['resourceType']}"


@pytest.mark.corpus
def test_broken_variants_get_the_same_verdict_and_errors_both_roads(mafhir_written, registry):
    engine = _engine()
    both_yes = both_no = 0
    for variant in (v for r in _kind(mafhir_written) for v in variants(r)):
        # the reference: the fhir.resources models, then the interpretive engine
        reference = models_accept(variant) and not engine_errors(engine, variant, [])
        fast = accepts(variant) and walk_clean(engine, variant, [])
        if fast:
            assert reference, json.dumps(variant, default=str)[:400]
        both_yes += fast and reference
        both_no += not fast and not reference
        # what the pipeline reports: the same errors by the quick road as by the full one
        full = outcome(variant, registry, errors_only=False)
        assert outcome(variant, registry, errors_only=True) == full
    assert both_yes > 300 and both_no > 2000


def outcome(resource: JSON, registry: Any, errors_only: bool) -> Any:
    """The errors ``check_resource`` reports, or the name of its exception: some
    hand-written rules (run first, by both roads alike) fail on a JSON null the models
    take as absent."""
    try:
        found = check_resource(resource, registry.profiles, errors_only=errors_only)
    except (AttributeError, TypeError) as exc:
        return type(exc).__name__
    return [i for i in found if i.severity in ("error", "fatal")]
