"""A coverage task's check still to run: only the request is written, and read back as such.

The ``x12`` destination (plugins/mafhir-x12-eligibility) answers it with the payer's 271;
the MA no longer has to type an answer before the payer gave one.
"""

from __future__ import annotations

import pytest

from mafhir.errors import InputError
from mafhir.pipeline import Pipeline
from mafhir.resourceset import ResourceSet
from test_coverage import ELIG, card, mapped, of_type, one


def test_a_check_to_run_writes_the_request_alone(registry, ctx):
    task, bundle = mapped(registry, ctx, card(eligibility={"checked_at": ELIG["checked_at"],
                                                           "service_type": "98"}))
    assert task.eligibility is not None and task.eligibility.pending
    request = one(bundle, "CoverageEligibilityRequest")
    assert request["item"][0]["category"]["coding"][0]["code"] == "98"
    assert of_type(bundle, "CoverageEligibilityResponse") == []
    (back,) = registry.mapper("coverage").from_fhir(ResourceSet.from_bundle(bundle))
    assert back.eligibility == task.eligibility  # still pending after the round trip


def test_values_without_an_answer_are_still_refused(registry, ctx):
    raw = card(eligibility={"checked_at": ELIG["checked_at"], "copay": 25})
    with pytest.raises(InputError) as err:
        Pipeline(registry, ctx).parse(0, raw)
    assert any(p.location == "task[0].eligibility.active" and "required" in p.message
               for p in err.value.problems)
