"""Fixtures for the FHIR REST plugin's tests: the real server (SEKMET), proxies, clients."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from mafhir.testing.proxy import FaultProxy
from mafhir_fhir_rest.client import FhirClient, RetryPolicy


class Sleeps(list):
    """Records the waits a client asked for, and waits nothing (retry tests stay fast)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def system() -> str:
    """An identifier system no other test uses: counts on the shared server stay exact."""
    return f"urn:mafhir:test:{uuid.uuid4()}"


@pytest.fixture
def client(fhir_base_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_base_url) as c:
        yield c


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def proxied(fault_proxy: FaultProxy, sleeps: Sleeps) -> Iterator[FhirClient]:
    """A client through the fault proxy; its retry waits are recorded, not slept."""
    with FhirClient(fault_proxy.base_url, sleep=sleeps, timeout=(2.0, 2.0),
                    retry=RetryPolicy(max_attempts=4, base=0.5, cap=4.0)) as c:
        yield c
