"""The client against the real FHIR server (SEKMET): sending, updating, paging, errors."""

from __future__ import annotations

import logging
import tracemalloc

import pytest

from mafhir.errors import PermanentError
from mafhir.testing.proxy import Fault, FaultProxy
from mafhir_fhir_rest.client import FhirClient
from mafhir_fhir_rest.errors import (
    PartialDelivery,
    PreconditionFailed,
    TransactionRejected,
    Unsupported,
)

from .helpers_fhir_rest import FAMILY, MRN_VALUE, bundle, count, heart_rate, patient


def test_metadata_read_once_and_r4(fault_proxy: FaultProxy, proxied: FhirClient, system: str):
    caps = proxied.capabilities()
    assert caps.fhir_version == "4.0.1"  # SEKMET's CapabilityStatement, per its README
    assert caps.send_mode == "transaction"
    proxied.send(bundle(system, 1))
    proxied.send(bundle(system, 1))
    assert len(fault_proxy.requests("GET", "/metadata")) == 1


def test_same_bundle_twice_makes_no_duplicates(client: FhirClient, system: str):
    b = bundle(system, n_obs=3)
    first = client.send(b)
    second = client.send(b)
    assert first.mode == "transaction"
    assert [e.status for e in first.entries] == ["201 Created"] * 4
    assert [e.status for e in second.entries] == ["200 OK"] * 4
    assert [e.location for e in first.entries] == [e.location for e in second.entries]
    assert count(client, "Patient", system) == 1
    assert count(client, "Observation", system) == 3


def test_urn_uuid_references_point_at_the_stored_patient(client: FhirClient, system: str):
    result = client.send(bundle(system, n_obs=1))
    pid = result.entries[0].location
    obs = next(client.search("Observation", {"identifier": f"{system}|hr-0"}))
    assert obs["subject"]["reference"] == pid


def test_conditional_update_creates_then_updates(client: FhirClient, system: str):
    query = f"identifier={system}|{MRN_VALUE}"
    client.conditional_update(patient(system), query)
    changed = {**patient(system), "gender": "other"}
    client.conditional_update(changed, query)
    found = list(client.search("Patient", {"identifier": f"{system}|{MRN_VALUE}"}))
    assert len(found) == 1
    assert found[0]["gender"] == "other"
    assert found[0]["meta"]["versionId"] == "2"


def test_if_match_after_read_then_412_on_stale_version(client: FhirClient, system: str):
    _, pid = client.create(patient(system))
    rtype, rid = pid.split("/")
    resource, etag = client.read(rtype, rid)
    assert etag == 'W/"1"'
    client.update({**resource, "gender": "male"}, if_match=etag)
    with pytest.raises(PreconditionFailed) as info:
        client.update({**resource, "gender": "other"}, if_match=etag)  # stale
    err = info.value
    assert err.status == 412 and not err.transient
    assert [i.code for i in err.issues] == ["conflict"]
    assert "changed since it was read" in str(err)
    now, etag2 = client.read(rtype, rid)
    assert now["gender"] == "male" and etag2 == 'W/"2"'


def test_rejected_transaction_names_the_failing_entry(client: FhirClient, system: str):
    b = bundle(system, n_obs=3, broken_at=1)  # entry[2] is the Observation without status
    with pytest.raises(TransactionRejected) as info:
        client.send(b)
    err = info.value
    assert err.status == 400 and not err.transient
    assert err.entries == (2,)
    assert "entry[2] Observation" in str(err)
    assert "Observation.status" in str(err)
    assert err.outcome["resourceType"] == "OperationOutcome"
    assert count(client, "Patient", system) == 0  # rolled back: nothing stored
    assert count(client, "Observation", system) == 0


def test_stale_if_match_in_a_transaction_is_blamed(client: FhirClient, system: str):
    _, pid = client.create(patient(system))
    res, _ = client.read(*pid.split("/"))
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0c7f6a52-6d3c-4b8e-9a53-5c9d0f0e2a11",
         "resource": heart_rate(system, "x", pid),
         "request": {"method": "POST", "url": "Observation",
                     "ifNoneExist": f"identifier={system}|x"}},
        {"resource": {**res, "gender": "male"},
         "request": {"method": "PUT", "url": pid, "ifMatch": 'W/"7"'}}]}
    with pytest.raises(TransactionRejected) as info:
        client.send(tx)
    assert info.value.status == 412 and info.value.entries == (1,)
    assert count(client, "Observation", system) == 0


def test_paging_streams_one_page_at_a_time(fault_proxy: FaultProxy, proxied: FhirClient,
                                           client: FhirClient, system: str):
    for i in range(7):
        client.create(patient(system, f"m{i}"))
    fault_proxy.clear()
    stream = proxied.search("Patient", {"identifier": f"{system}|"}, count=3)
    first = next(stream)
    assert first["resourceType"] == "Patient"
    assert len(fault_proxy.requests("GET", "/Patient")) == 1  # only page 1 fetched so far
    rest = list(stream)
    values = sorted(r["identifier"][0]["value"] for r in [first, *rest])
    assert values == [f"m{i}" for i in range(7)]
    assert len(fault_proxy.requests("GET", "/Patient")) == 3  # 3 + 3 + 1


def test_paging_memory_does_not_hold_the_result(client: FhirClient, system: str):
    """Consuming a search keeps one page in memory, not the whole result."""
    entries = [{"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
                "resource": heart_rate(system, f"big-{i}", "Patient/none"),
                "request": {"method": "POST", "url": "Observation"}} for i in range(400)]
    client.send({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    tracemalloc.start()
    seen = 0
    held: dict[int, int] = {}
    for i, _ in enumerate(client.search("Observation", {"identifier": f"{system}|"}, count=50)):
        seen += 1
        if i in (60, 390):  # inside page 2, inside page 8
            held[i] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert seen == 400
    # had the pages been kept, page 8 would hold about four times what page 2 holds
    assert held[390] < held[60] * 1.5


def test_batch_fallback_when_no_transactions(fault_proxy: FaultProxy, proxied: FhirClient,
                                             client: FhirClient, system: str):
    fault_proxy.add(Fault.rewrite_json(_without("transaction")), path="/metadata")
    assert proxied.capabilities().send_mode == "batch"
    b = bundle(system, n_obs=2)
    result = proxied.send(b)
    assert result.mode == "batch" and result.requests == 2  # Patient first, then the rest
    posts = [s for s in fault_proxy.requests("POST")]
    assert len(posts) == 2
    again = proxied.send(b)
    assert [e.status for e in again.entries] == ["200 OK"] * 3
    assert count(client, "Patient", system) == 1 and count(client, "Observation", system) == 2
    pid = result.entries[0].location
    obs = next(client.search("Observation", {"identifier": f"{system}|hr-0"}))
    assert obs["subject"]["reference"] == pid  # urn:uuid replaced by the server's id


def test_single_requests_fallback(fault_proxy: FaultProxy, proxied: FhirClient,
                                  client: FhirClient, system: str):
    fault_proxy.add(Fault.rewrite_json(_without("transaction", "batch")), path="/metadata")
    b = bundle(system, n_obs=2)
    result = proxied.send(b)
    assert result.mode == "single" and result.requests == 3
    assert [s.path.split("?")[0].rsplit("/", 1)[-1] for s in fault_proxy.requests("POST")] == \
        ["Patient", "Observation", "Observation"]
    proxied.send(b)
    assert count(client, "Patient", system) == 1 and count(client, "Observation", system) == 2


def test_single_fallback_reports_partial_delivery(fault_proxy: FaultProxy,
                                                  proxied: FhirClient, client: FhirClient,
                                                  system: str):
    fault_proxy.add(Fault.rewrite_json(_without("transaction", "batch")), path="/metadata")
    with pytest.raises(PartialDelivery) as info:
        proxied.send(bundle(system, n_obs=2, broken_at=0))
    assert info.value.accepted == (0, 2) and info.value.failed == (1,)
    assert count(client, "Observation", system) == 1  # exactly what it said was stored


def test_unsupported_fhir_version_refused(fault_proxy: FaultProxy, proxied: FhirClient):
    def r5(cs):
        cs["fhirVersion"] = "5.0.0"
        return cs

    fault_proxy.add(Fault.rewrite_json(r5), path="/metadata")
    with pytest.raises(Unsupported, match=r"FHIR 5\.0\.0"):
        proxied.capabilities()


def test_resource_type_the_server_lacks_is_refused_before_sending(
        fault_proxy: FaultProxy, proxied: FhirClient, system: str):
    def no_observation(cs):
        cs["rest"][0]["resource"] = [r for r in cs["rest"][0]["resource"]
                                     if r["type"] != "Observation"]
        return cs

    fault_proxy.add(Fault.rewrite_json(no_observation), path="/metadata")
    with pytest.raises(Unsupported, match=r"entry\[1\].*create of Observation"):
        proxied.send(bundle(system, 1))
    assert fault_proxy.requests("POST") == []


def test_logs_every_attempt_without_phi(fault_proxy: FaultProxy, proxied: FhirClient,
                                        system: str, caplog: pytest.LogCaptureFixture):
    fault_proxy.add(Fault.status_code(503), method="POST")
    with caplog.at_level(logging.INFO, logger="mafhir_fhir_rest.http"):
        proxied.send(bundle(system, 1))
        list(proxied.search("Patient", {"identifier": f"{system}|{MRN_VALUE}"}))
    lines = [r.getMessage() for r in caplog.records if r.name == "mafhir_fhir_rest.http"]
    assert "POST transaction -> 503 attempt=1" in lines[1]
    assert "POST transaction -> 200 attempt=2" in lines[2]
    assert lines[3].startswith("GET Patient -> 200 attempt=1")
    text = "\n".join(lines) + "\n".join(str(r.__dict__) for r in caplog.records)
    for phi in (MRN_VALUE, FAMILY, system, "1984-07-19", "identifier"):
        assert phi not in text


def test_invalid_bundle_is_refused_locally(client: FhirClient):
    with pytest.raises(PermanentError, match="transaction"):
        client.send({"resourceType": "Bundle", "type": "collection", "entry": []})


def _without(*codes: str):
    def change(cs):
        rest = cs["rest"][0]
        rest["interaction"] = [i for i in rest.get("interaction", []) if i["code"] not in codes]
        return cs

    return change
