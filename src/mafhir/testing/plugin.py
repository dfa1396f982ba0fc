"""pytest fixtures of the kit: a real FHIR server and a fault proxy in front of it.

Load with ``-p mafhir.testing.plugin``, ``pytest_plugins = ["mafhir.testing.plugin"]`` in a
root conftest, or import the fixtures into a conftest. Without the server scripts the
fixtures skip with the reason — except under ``CI=true``, where that is a failure: CI must
prove the integration, not skip it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .proxy import FaultProxy
from .server import FhirServer, ServerUnavailable, fhir_server, start_fhir_server

__all__ = ["fault_proxy", "fhir_base_url", "fresh_fhir_server", "require_fhir_server",
           "skip_or_fail"]


def skip_or_fail(reason: str) -> None:
    """Skip a test whose real part (a server, a database, the public corpus) is missing on
    this machine; under ``CI=true`` fail instead: CI must prove the integration, not skip it."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def require_fhir_server() -> str:
    """The test server's base URL; skip (or fail under CI=true) when there is none."""
    try:
        return fhir_server().base_url
    except ServerUnavailable as exc:
        _unavailable(exc)
        raise


def _unavailable(exc: Exception) -> None:
    skip_or_fail(f"no FHIR test server: {exc}")


@pytest.fixture(scope="module")
def fresh_fhir_server() -> Iterator[FhirServer]:
    """A FHIR server of the test module's own, started empty (about 2 s) and stopped after
    it: for tests that read back fixed identifiers or a whole day, which other tests'
    data on the shared server would change."""
    try:
        server = start_fhir_server()
    except ServerUnavailable as exc:
        _unavailable(exc)
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fhir_base_url() -> str:
    """Base URL of a real FHIR R4 server on loopback (SEKMET), one per test session."""
    return require_fhir_server()


@pytest.fixture
def fault_proxy(fhir_base_url: str) -> Iterator[FaultProxy]:
    """A fresh fault-injecting proxy in front of the test server."""
    with FaultProxy(fhir_base_url) as proxy:
        yield proxy
