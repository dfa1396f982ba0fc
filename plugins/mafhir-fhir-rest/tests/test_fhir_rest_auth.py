"""Auth against a protected real server: Basic, bearer, SMART Backend Services (RS384/ES384)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mafhir.errors import InputError
from mafhir.testing import FaultProxy, TokenServer
from mafhir_fhir_rest.auth import ASSERTION_TYPE, BasicAuth, Secret, SigningKey, SmartBackendAuth
from mafhir_fhir_rest.client import FhirClient
from mafhir_fhir_rest.config import client_for
from mafhir_fhir_rest.errors import PermanentHttpError

from .helpers_fhir_rest import bundle, count

RSA_KEY = rsa.generate_private_key(65537, 2048)
EC_KEY = ec.generate_private_key(ec.SECP384R1())


def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def tokens() -> Iterator[TokenServer]:
    with TokenServer({"clinic-app": public_pem(RSA_KEY), "clinic-ec": public_pem(EC_KEY)}) as t:
        yield t


def test_basic_auth_header(fhir_base_url: str, client: FhirClient, system: str,
                           monkeypatch: pytest.MonkeyPatch):
    expected = "Basic " + base64.b64encode(b"mafhir:s3cret-pw").decode()
    monkeypatch.setenv("EHR_PW", "s3cret-pw")
    with FaultProxy(fhir_base_url, auth_check=lambda h: h.get("Authorization") == expected) as p:
        auth = BasicAuth("mafhir", Secret.from_env("EHR_PW"))
        with FhirClient(p.base_url, auth=auth) as c:
            c.send(bundle(system, 1))
        with FhirClient(p.base_url, auth=BasicAuth("mafhir", Secret("wrong"))) as c, \
                pytest.raises(PermanentHttpError) as info:
            c.capabilities()
    assert info.value.status == 401 and not info.value.transient
    assert count(client, "Observation", system) == 1
    assert "s3cret-pw" not in repr(auth) and "s3cret-pw" not in str(auth.password)


@pytest.mark.parametrize(("client_id", "key"), [("clinic-app", RSA_KEY), ("clinic-ec", EC_KEY)])
def test_smart_backend_services_pem(fhir_base_url: str, client: FhirClient, system: str,
                                    tokens: TokenServer, tmp_path, client_id: str, key):
    (tmp_path / "k.pem").write_bytes(pem(key))
    signing = SigningKey.from_pem_file(tmp_path / "k.pem", kid="k1")
    assert signing.algorithm == ("RS384" if key is RSA_KEY else "ES384")
    with FaultProxy(fhir_base_url, auth_check=tokens.valid) as p:
        auth = SmartBackendAuth(tokens.url, client_id, signing, "system/Observation.c")
        with FhirClient(p.base_url, auth=auth) as c:
            c.send(bundle(system, 1))
            c.send(bundle(system, 1))
            assert auth.fetched == 1  # cached
    assert tokens.refused == [] and tokens.scopes == ["system/Observation.c"]
    assert count(client, "Observation", system) == 1


def test_smart_key_from_jwks(tmp_path, tokens: TokenServer):
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY))
    jwk.update(kid="ec-1", alg="ES384")
    other = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY))
    other.update(kid="rsa-1", alg="RS384")
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [other, jwk]}))
    key = SigningKey.from_jwks_file(tmp_path / "jwks.json", kid="ec-1")
    assert key.algorithm == "ES384" and key.kid == "ec-1"
    auth = SmartBackendAuth(tokens.url, "clinic-ec", key)
    assert auth.token()
    with pytest.raises(InputError, match="expected one private key"):
        SigningKey.from_jwks_file(tmp_path / "jwks.json")  # two keys, no kid: ambiguous


def test_token_refreshed_shortly_before_expiry(tokens: TokenServer):
    now = [1_000_000.0]
    auth = SmartBackendAuth(tokens.url, "clinic-app", SigningKey.from_pem(pem(RSA_KEY)),
                            clock=lambda: now[0], margin=60)
    tokens.lifetime = 300
    first = auth.token()
    now[0] += 239  # 300 s lifetime, 60 s margin: still good
    assert auth.token() == first and auth.fetched == 1
    now[0] += 2  # within the margin: a new one
    assert auth.token() != first and auth.fetched == 2


def _assertion(key, alg: str, **claims) -> str:
    now = int(time.time())
    base = {"iss": "clinic-app", "sub": "clinic-app", "exp": now + 120, "jti": str(now)}
    return jwt.encode({**base, **claims}, key, algorithm=alg)


def _post(tokens: TokenServer, assertion: str) -> requests.Response:
    return requests.post(tokens.url, data={"grant_type": "client_credentials",
                                           "client_assertion_type": ASSERTION_TYPE,
                                           "client_assertion": assertion, "scope": "system/*.rs"},
                         timeout=10)


def test_token_endpoint_verifies_assertions(tokens: TokenServer):
    good = _assertion(RSA_KEY, "RS384", aud=tokens.url, jti="a-1")
    assert _post(tokens, good).status_code == 200
    assert _post(tokens, good).json()["error_description"].endswith("jti replayed")
    wrong_aud = _assertion(RSA_KEY, "RS384", aud="https://elsewhere/token", jti="a-2")
    assert _post(tokens, wrong_aud).status_code == 401
    wrong_key = _assertion(rsa.generate_private_key(65537, 2048), "RS384", aud=tokens.url,
                           jti="a-3")
    assert "Signature" in _post(tokens, wrong_key).json()["error_description"]
    hs256 = jwt.encode({"iss": "clinic-app", "sub": "clinic-app", "aud": tokens.url,
                        "exp": int(time.time()) + 60, "jti": "a-4"}, "k" * 32, algorithm="HS256")
    assert "RS384 or ES384" in _post(tokens, hs256).json()["error_description"]
    expired = _assertion(RSA_KEY, "RS384", aud=tokens.url, jti="a-5", exp=int(time.time()) - 10)
    assert "expired" in _post(tokens, expired).json()["error_description"]
    no_jti = jwt.encode({"iss": "clinic-app", "sub": "clinic-app", "aud": tokens.url,
                         "exp": int(time.time()) + 60}, RSA_KEY, algorithm="RS384")
    assert "jti" in _post(tokens, no_jti).json()["error_description"]


def test_client_assertion_claims(tokens: TokenServer):
    auth = SmartBackendAuth(tokens.url, "clinic-app", SigningKey.from_pem(pem(RSA_KEY), "k9"))
    a, b = auth.assertion(), auth.assertion()
    claims = jwt.decode(a, RSA_KEY.public_key(), algorithms=["RS384"], audience=tokens.url)
    assert claims["iss"] == claims["sub"] == "clinic-app"
    assert 0 < claims["exp"] - time.time() <= 300
    assert jwt.get_unverified_header(a)["kid"] == "k9"
    assert jwt.decode(b, options={"verify_signature": False})["jti"] != claims["jti"]


def test_refused_client_is_a_permanent_error(tokens: TokenServer):
    stranger = SmartBackendAuth(tokens.url, "unknown-app", SigningKey.from_pem(pem(RSA_KEY)))
    with pytest.raises(PermanentHttpError, match="token request refused: invalid_client"):
        stranger.token()


def test_config_secrets_from_env_never_literal(tmp_path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture):
    cfg = tmp_path / "mafhir.toml"
    cfg.write_text('[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n'
                   'auth = "bearer"\ntoken = "tok-literal"\n')
    with pytest.raises(InputError, match="token_env / token_file"):
        client_for("ehr", str(cfg))
    cfg.write_text('[destinations.ehr]\nurl = "https://ehr.example.org/fhir"\n'
                   'auth = "bearer"\ntoken_env = "EHR_TOKEN"\n')
    monkeypatch.setenv("EHR_TOKEN", "tok-from-env-123")
    c = client_for("ehr", str(cfg))
    assert c.verify is True  # TLS verification on unless turned off
    prepared = c.auth(requests.Request("GET", "https://ehr.example.org/fhir").prepare())
    assert prepared.headers["Authorization"] == "Bearer tok-from-env-123"
    assert "tok-from-env-123" not in repr(c)
    monkeypatch.delenv("EHR_TOKEN")
    with pytest.raises(InputError, match="EHR_TOKEN"):
        client_for("ehr", str(cfg))
