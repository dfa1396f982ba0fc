"""The kit's generated tests do fail for connectors that break their promises."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from mafhir.errors import PermanentError
from mafhir.testing import connector_suite
from mafhir.testing.proxy import FaultProxy


class NaiveConnector:
    """Posts each Bundle as is, but drops ifNoneExist and never retries."""

    def __init__(self, base_url: str, keep_conditions: bool = False) -> None:
        self.base_url = base_url
        self.keep = keep_conditions
        self.session = requests.Session()

    def send(self, bundle: dict[str, Any]) -> dict[str, Any]:
        if not self.keep:
            for e in bundle["entry"]:
                e["request"].pop("ifNoneExist", None)
        r = self.session.post(self.base_url, json=bundle,
                              headers={"Content-Type": "application/fhir+json"})
        if r.status_code >= 400:
            raise PermanentError(f"HTTP {r.status_code}")
        return r.json()

    def close(self) -> None:
        self.session.close()


def test_duplicating_connector_fails_idempotence(fhir_base_url: str):
    suite = connector_suite(NaiveConnector)()
    conn = NaiveConnector(fhir_base_url)
    with pytest.raises(AssertionError):
        suite.test_idempotent_create(conn, fhir_base_url, f"urn:mafhir:kit:{uuid.uuid4()}")


def test_connector_without_retries_fails_retry_test(fhir_base_url: str):
    suite = connector_suite(lambda url: NaiveConnector(url, keep_conditions=True))()
    with FaultProxy(fhir_base_url) as proxy, pytest.raises(PermanentError):
        suite.test_retry_honours_retry_after(proxy, f"urn:mafhir:kit:{uuid.uuid4()}",
                                             fhir_base_url, 429)


def test_connector_without_outcome_fails_error_mapping(fhir_base_url: str):
    suite = connector_suite(lambda url: NaiveConnector(url, keep_conditions=True))()
    conn = NaiveConnector(fhir_base_url, keep_conditions=True)
    with pytest.raises(AssertionError):
        suite.test_rejected_bundle_is_permanent_with_outcome(
            conn, fhir_base_url, f"urn:mafhir:kit:{uuid.uuid4()}")


class QueueingConnector(NaiveConnector):
    """Queues Bundles and delivers them on close, newest first (a LIFO outbox)."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, keep_conditions=True)
        self.queue: list[dict[str, Any]] = []

    def send(self, bundle: dict[str, Any]) -> dict[str, Any]:
        self.queue.append(bundle)
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": []}

    def deliver(self, bundle: dict[str, Any]) -> None:
        for _ in range(3):  # it does retry a 503
            r = self.session.post(self.base_url, json=bundle,
                                  headers={"Content-Type": "application/fhir+json"})
            if r.status_code != 503:
                break
        r.raise_for_status()

    def close(self) -> None:
        while self.queue:
            self.deliver(self.queue.pop())
        super().close()


def test_reordering_connector_fails_ordering(fhir_base_url: str):
    suite = connector_suite(QueueingConnector)()
    with FaultProxy(fhir_base_url) as proxy, pytest.raises(AssertionError):
        suite.test_ordering(proxy, f"urn:mafhir:kit:{uuid.uuid4()}", fhir_base_url)


def test_in_order_connector_passes_ordering(fhir_base_url: str):
    """The same check passes for a plain connector that sends at once (and retries)."""

    class InOrder(QueueingConnector):
        def send(self, bundle: dict[str, Any]) -> dict[str, Any]:
            self.deliver(bundle)  # at once, in the order given
            return {}

    suite = connector_suite(InOrder)()
    with FaultProxy(fhir_base_url) as proxy:
        suite.test_ordering(proxy, f"urn:mafhir:kit:{uuid.uuid4()}", fhir_base_url)
