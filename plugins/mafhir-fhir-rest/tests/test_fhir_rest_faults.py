"""Faults the real server cannot produce on demand, injected by a loopback proxy before it."""

from __future__ import annotations

import email.utils
import time

import pytest

from mafhir.errors import PermanentError, TransientError
from mafhir.testing.proxy import Fault, FaultProxy, strip_next_link
from mafhir_fhir_rest.client import FhirClient, RetryPolicy
from mafhir_fhir_rest.errors import PermanentHttpError, ProtocolError, TransientHttpError

from .helpers_fhir_rest import bundle, count, patient


def test_429_retry_after_is_honoured(fault_proxy: FaultProxy, proxied: FhirClient, sleeps,
                                     client: FhirClient, system: str):
    fault_proxy.add(Fault.status_code(429, retry_after="7"), method="POST")
    result = proxied.send(bundle(system, 1))
    assert [s.status for s in fault_proxy.requests("POST")] == [429, 200]
    assert len(sleeps) == 1 and 7.0 <= sleeps[0] <= 7.5  # Retry-After + at most `base` jitter
    assert [e.status for e in result.entries] == ["201 Created"] * 2
    assert count(client, "Observation", system) == 1


def test_retry_after_as_http_date(fault_proxy: FaultProxy, proxied: FhirClient, sleeps,
                                  system: str):
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    fault_proxy.add(Fault.status_code(503, retry_after=when), method="POST")
    proxied.send(bundle(system, 1))
    assert len(sleeps) == 1 and 17.0 <= sleeps[0] <= 21.0


def test_retry_after_beyond_the_limit_is_not_waited(fault_proxy: FaultProxy, proxied, sleeps,
                                                    client: FhirClient, system: str):
    fault_proxy.add(Fault.status_code(429, retry_after="3600"), method="POST")
    with pytest.raises(TransientHttpError) as info:
        proxied.send(bundle(system, 1))
    assert info.value.status == 429 and info.value.retry_after == 3600.0
    assert sleeps == [] and count(client, "Observation", system) == 0


def test_503_backoff_grows_and_gives_up(fault_proxy: FaultProxy, proxied: FhirClient, sleeps,
                                        client: FhirClient, system: str):
    fault_proxy.add(Fault.status_code(503), method="POST", times=100)
    with pytest.raises(TransientError) as info:
        proxied.send(bundle(system, 1))
    assert info.value.status == 503
    assert len(fault_proxy.requests("POST")) == 4  # max_attempts
    # full jitter within min(cap, base·2^(n-1)): 0.5, 1, 2
    assert len(sleeps) == 3 and all(0 <= s <= lim for s, lim in zip(sleeps, [0.5, 1, 2],
                                                                      strict=True))
    assert count(client, "Observation", system) == 0


def test_dropped_connection_is_retried(fault_proxy: FaultProxy, proxied: FhirClient, sleeps,
                                       client: FhirClient, system: str):
    fault_proxy.add(Fault.drop(), method="POST")
    proxied.send(bundle(system, 1))
    assert [s.fault for s in fault_proxy.requests("POST")] == ["drop", None]
    assert len(sleeps) == 1
    assert count(client, "Patient", system) == 1 and count(client, "Observation", system) == 1


def test_dropped_connection_not_retried_for_non_idempotent_post(fault_proxy: FaultProxy,
                                                                proxied: FhirClient, system):
    fault_proxy.add(Fault.drop(), method="POST")
    with pytest.raises(TransientHttpError, match="network failure"):
        proxied.create(patient(system))  # plain create: a retry could duplicate it
    assert len(fault_proxy.requests("POST")) == 1


def test_slow_answer_times_out_then_retries(fault_proxy: FaultProxy, client: FhirClient,
                                            sleeps, system: str):
    with FhirClient(fault_proxy.base_url, timeout=(2.0, 0.5), sleep=sleeps,
                    retry=RetryPolicy(max_attempts=3)) as c:
        c.capabilities()
        fault_proxy.add(Fault.slow(1.5), method="POST")
        c.send(bundle(system, 1))
    time.sleep(1.2)  # let the slow attempt finish upstream
    assert [s.fault for s in fault_proxy.requests("POST")] == ["slow", None]
    # the slow attempt was processed by the server too: conditional creates keep it single
    assert count(client, "Patient", system) == 1 and count(client, "Observation", system) == 1


def test_slow_answer_within_timeout_succeeds(fault_proxy: FaultProxy, proxied: FhirClient,
                                             sleeps, system: str):
    fault_proxy.add(Fault.slow(0.3), method="POST")
    proxied.send(bundle(system, 1))
    assert sleeps == [] and len(fault_proxy.requests("POST")) == 1


def test_html_answer_is_a_clear_error(fault_proxy: FaultProxy, proxied: FhirClient):
    fault_proxy.add(Fault.html(), path="/Patient")
    with pytest.raises(ProtocolError, match="expected FHIR JSON, the server answered HTML"):
        list(proxied.search("Patient", {"family": "x"}))


def test_html_error_page_keeps_the_status_class(fault_proxy: FaultProxy, proxied: FhirClient,
                                                sleeps):
    fault_proxy.add(Fault.html(502), path="/Patient", times=10)
    with pytest.raises(TransientHttpError, match="answered HTML, not an OperationOutcome"):
        list(proxied.search("Patient", {"family": "x"}))
    assert len(sleeps) == 3


def test_wrong_content_type_is_a_clear_error(fault_proxy: FaultProxy, proxied: FhirClient):
    fault_proxy.add(Fault.content_type("application/xml"), path="/Patient")
    with pytest.raises(ProtocolError, match="application/xml"):
        list(proxied.search("Patient", {"family": "x"}))


def test_not_a_searchset_is_a_clear_error(fault_proxy: FaultProxy, proxied: FhirClient):
    fault_proxy.add(Fault.rewrite_json(lambda b: {**b, "type": "collection"}), path="/Patient")
    with pytest.raises(ProtocolError, match="searchset"):
        list(proxied.search("Patient", {"family": "x"}))


def test_incomplete_page_without_next_link(fault_proxy: FaultProxy, proxied: FhirClient,
                                           client: FhirClient, system: str):
    for i in range(5):
        client.create(patient(system, f"q{i}"))
    fault_proxy.add(Fault.rewrite_json(strip_next_link), path="/Patient")
    got = []
    with pytest.raises(ProtocolError, match="stopped after 2 of 5 matches"):
        for r in proxied.search("Patient", {"identifier": f"{system}|"}, count=2):
            got.append(r)
    assert len(got) == 2  # what came is delivered, then the gap is reported


def test_next_link_to_another_host_is_refused(fault_proxy: FaultProxy, proxied: FhirClient,
                                              client: FhirClient, system: str):
    for i in range(3):
        client.create(patient(system, f"h{i}"))

    def elsewhere(page):
        for link in page["link"]:
            if link["relation"] == "next":
                link["url"] = "https://attacker.example/fhir/Patient?_offset=2"
        return page

    fault_proxy.add(Fault.rewrite_json(elsewhere), path="/Patient")
    with pytest.raises(ProtocolError, match="outside the server"):
        list(proxied.search("Patient", {"identifier": f"{system}|"}, count=2))


@pytest.mark.parametrize(("status", "cls"), [(400, PermanentHttpError), (404, PermanentHttpError),
                                             (409, PermanentHttpError), (422, PermanentHttpError),
                                             (410, PermanentHttpError), (403, PermanentHttpError),
                                             (504, TransientHttpError), (502, TransientHttpError)])
def test_status_classes(fault_proxy: FaultProxy, proxied: FhirClient, status: int, cls: type):
    fault_proxy.add(Fault.status_code(status), path="/Patient", times=10)
    with pytest.raises(cls) as info:
        list(proxied.search("Patient", {"family": "x"}))
    err = info.value
    assert err.status == status
    assert isinstance(err, TransientError if cls is TransientHttpError else PermanentError)
    assert err.issues and err.issues[0].diagnostics == f"injected {status}"
    retried = len(fault_proxy.requests("GET", "/Patient"))
    assert retried == (4 if cls is TransientHttpError else 1)
