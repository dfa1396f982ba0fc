"""Pieces that need no server: backoff arithmetic, Retry-After, redaction, ordering."""

from __future__ import annotations

import random

import pytest

from mafhir.errors import PermanentError, TransientError
from mafhir_fhir_rest.client import Capabilities, FhirClient, RetryPolicy, parse_retry_after
from mafhir_fhir_rest.errors import http_error, redact


def test_backoff_bounds_and_limit():
    policy = RetryPolicy(max_attempts=4, base=0.5, cap=1.5)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 1.5)]:
        waits = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # full jitter spreads over the range
    assert policy.delay(4, None, rng) is None  # max_attempts reached
    assert 10 <= policy.delay(1, 10, rng) <= 10.5
    assert policy.delay(1, 121, rng) is None  # beyond max_retry_after


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412450.0) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_classification_and_redaction():
    assert isinstance(http_error(429, None, "GET Patient"), TransientError)
    assert isinstance(http_error(500, None, "GET Patient"), PermanentError)
    oo = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "expression": ["Patient.birthDate"],
         "diagnostics": "Invalid date '1984-13-40' for Quillfeather"}]}
    err = http_error(400, oo, "POST Patient")
    assert "1984-13-40" not in str(err) and "Patient.birthDate" in str(err)
    assert err.outcome == oo  # a copy, with credentials (none here) taken out
    assert redact('If-Match W/"1"') == "If-Match W/'…'"


def test_capabilities_choose_the_mode():
    cs = {"fhirVersion": "4.0.1", "rest": [{"mode": "server", "interaction": [
        {"code": "batch"}], "resource": [{"type": "Patient", "interaction": [
            {"code": "create"}]}]}]}
    caps = Capabilities.parse(cs)
    assert caps.send_mode == "batch"
    assert caps.supports("Patient", "create") and not caps.supports("Observation", "create")
    assert Capabilities.parse({"fhirVersion": "4.0.1", "rest": [{}]}).send_mode == "single"


def test_dependency_layers_and_cycles():
    c = FhirClient("http://127.0.0.1:9/fhir")
    a = {"fullUrl": "urn:uuid:a", "resource": {"resourceType": "Patient"}}
    b = {"fullUrl": "urn:uuid:b", "resource": {"resourceType": "Observation",
                                               "subject": {"reference": "urn:uuid:a"}}}
    e = {"fullUrl": "urn:uuid:e", "resource": {"resourceType": "Encounter",
                                               "subject": {"reference": "urn:uuid:a"},
                                               "x": [{"reference": "urn:uuid:b"}]}}
    assert c._layers([e, b, a]) == [[2], [1], [0]]
    a2 = {**a, "resource": {"resourceType": "Patient", "link": [{"other": {
        "reference": "urn:uuid:b"}}]}}
    with pytest.raises(PermanentError, match="cycle"):
        c._layers([a2, b])
