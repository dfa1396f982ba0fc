"""TLS verification is on unless turned off: a loopback HTTPS front (the fault proxy with a
self-signed certificate) before the real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir.testing import FaultProxy, self_signed_certificate
from mafhir_fhir_rest.client import FhirClient
from mafhir_fhir_rest.errors import PermanentHttpError

from .helpers_fhir_rest import bundle, count


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(fhir_base_url: str, certificate: tuple[str, str]) -> Iterator[FaultProxy]:
    with FaultProxy(fhir_base_url, tls=certificate) as proxy:
        yield proxy


def test_untrusted_certificate_is_refused_by_default(https: FaultProxy, client: FhirClient,
                                                     system: str):
    assert https.base_url.startswith("https://")
    with FhirClient(https.base_url) as c, pytest.raises(PermanentHttpError,
                                                        match="TLS verification failed"):
        c.send(bundle(system, 1))
    assert https.seen == []  # nothing got through the handshake
    assert count(client, "Patient", system) == 0


def test_ca_bundle_makes_it_trusted(https: FaultProxy, certificate, client: FhirClient,
                                    system: str):
    with FhirClient(https.base_url, verify=certificate[0]) as c:
        c.send(bundle(system, 1))
    assert count(client, "Observation", system) == 1


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_cli_needs_insecure_to_skip_verification(https: FaultProxy, tmp_path: Path,
                                                 client: FhirClient, system: str):
    (tmp_path / "b.json").write_text(json.dumps(bundle(system, 1)))
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["send", "--to", https.base_url, str(tmp_path / "b.json")])
    assert result.exit_code == 1 and "TLS verification failed" in result.stderr
    assert count(client, "Observation", system) == 0
    result = runner.invoke(build_cli(), ["send", "--to", https.base_url, "--insecure",
                                         str(tmp_path / "b.json")])
    assert result.exit_code == 0, result.stderr
    assert "warning: TLS verification is off" in result.stderr
    assert count(client, "Observation", system) == 1
