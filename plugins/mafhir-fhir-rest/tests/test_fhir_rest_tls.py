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


# --------------------------------------------------- the environment does not decide trust
def test_requests_ca_bundle_does_not_replace_verify_true(https: FaultProxy, certificate,
                                                         client: FhirClient, system: str,
                                                         monkeypatch: pytest.MonkeyPatch):
    """requests swaps ``verify=True`` for $REQUESTS_CA_BUNDLE: a bundle holding the proxy's
    self-signed certificate would make it trusted behind the configuration's back."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
    monkeypatch.setenv("CURL_CA_BUNDLE", certificate[0])
    with FhirClient(https.base_url) as c, pytest.raises(PermanentHttpError,
                                                        match="TLS verification failed"):
        c.send(bundle(system, 1))
    assert https.seen == []
    assert count(client, "Patient", system) == 0


def test_a_configured_ca_bundle_wins_over_the_environment(https: FaultProxy, certificate,
                                                          client: FhirClient, system: str,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    with FhirClient(https.base_url, verify=certificate[0]) as c:
        c.send(bundle(system, 1))
    assert count(client, "Observation", system) == 1
    (tmp_path / "other").mkdir()
    other = self_signed_certificate(tmp_path / "other")  # a CA that did not sign the proxy
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
    with FhirClient(https.base_url, verify=other[0]) as c, \
            pytest.raises(PermanentHttpError, match="TLS verification failed"):
        c.send(bundle(system, 2))
    assert count(client, "Observation", system) == 1


@pytest.mark.parametrize("empty", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_an_empty_ca_bundle_variable_never_turns_verification_off(
        https: FaultProxy, client: FhirClient, system: str, empty: str,
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(empty, "")
    with FhirClient(https.base_url) as c, pytest.raises(PermanentHttpError,
                                                        match="TLS verification failed"):
        c.send(bundle(system, 1))
    assert count(client, "Patient", system) == 0


def test_the_token_endpoint_is_verified_the_same_way(monkeypatch: pytest.MonkeyPatch):
    """SMART's token request is pinned as the FHIR requests are: requests' default bundle
    (certifi's file) for verify=True, whatever $REQUESTS_CA_BUNDLE says."""
    import certifi
    import requests
    from cryptography.hazmat.primitives.asymmetric import ec

    from mafhir_fhir_rest.auth import SigningKey, SmartBackendAuth
    from mafhir_fhir_rest.errors import TransientHttpError

    seen: list[object] = []

    class Session(requests.Session):
        def post(self, url, data=None, json=None, **kw):  # type: ignore[override]
            seen.append(kw.get("verify"))
            raise requests.ConnectionError("not sent")

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/env/chosen.pem")
    key = SigningKey(ec.generate_private_key(ec.SECP256R1()), "ES256")
    for verify, expected in ((True, certifi.where()), ("/configured.pem", "/configured.pem")):
        auth = SmartBackendAuth("https://127.0.0.1:9/token", "client", key, verify=verify,
                                session=Session())
        with pytest.raises(TransientHttpError):
            auth.token()
        assert seen.pop() == expected
