"""OIDC sign-in (authorization code + PKCE) against a small identity provider on loopback
that really signs ID tokens (RSA, PyJWT) and checks the PKCE verifier: the dashboard reads
its discovery document and keys over HTTP, exchanges the code and verifies the token. The
provider is a test double of an IdP; everything on the dashboard's side is the real code."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")
jwt = pytest.importorskip("jwt")

from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from mafhir.errors import InputError  # noqa: E402
from mafhir.web.app import WebConfig, create_app  # noqa: E402
from mafhir.web.oidc import OidcConfig  # noqa: E402
from mafhir.web.webstore import WebStore  # noqa: E402

CLIENT, SECRET = "mafhir-dashboard", "s3cret-from-the-env"


class IdP:
    """Discovery, JWKS, an authorization 'page' (the test plays the user) and a token
    endpoint that checks client secret, redirect URI and the PKCE verifier."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict] = {}
        self.claims: dict = {}
        self.sign_with = self.key
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.issuer = f"http://127.0.0.1:{self.httpd.server_address[1]}/realm"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def authorize(self, url: str) -> dict:
        """What the provider does when the user signs in: a code for these parameters."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        code = secrets.token_urlsafe(16)
        self.codes[code] = query
        return {"code": code, "state": query["state"]}

    def handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def reply(self, status: int, doc: dict) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/realm/.well-known/openid-configuration":
                    base = idp.issuer
                    self.reply(200, {"issuer": base, "jwks_uri": f"{base}/jwks",
                                     "authorization_endpoint": f"{base}/auth",
                                     "token_endpoint": f"{base}/token"})
                elif self.path == "/realm/jwks":
                    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp.key.public_key()))
                    self.reply(200, {"keys": [{**jwk, "kid": "k1", "use": "sig",
                                               "alg": "RS256"}]})
                else:
                    self.reply(404, {})

            def do_POST(self) -> None:
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(
                    int(self.headers["Content-Length"])).decode()).items()}
                asked = idp.codes.pop(form.get("code", ""), None)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(
                    form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if asked is None or form.get("client_secret") != SECRET or \
                        form.get("redirect_uri") != asked["redirect_uri"] or \
                        challenge != asked["code_challenge"]:
                    self.reply(400, {"error": "invalid_grant"})
                    return
                now = int(time.time())
                claims = {"iss": idp.issuer, "aud": CLIENT, "sub": "u-123", "iat": now,
                          "exp": now + 300, "nonce": asked["nonce"],
                          "preferred_username": "nina", "groups": ["front-desk-leads"],
                          **idp.claims}
                token = jwt.encode(claims, idp.sign_with, algorithm="RS256",
                                   headers={"kid": "k1"})
                self.reply(200, {"id_token": token, "access_token": "x",
                                 "token_type": "Bearer"})

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()


@pytest.fixture
def idp(monkeypatch):
    provider = IdP()
    monkeypatch.setenv("MAFHIR_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("MAFHIR_OIDC_CLIENT_ID", CLIENT)
    monkeypatch.setenv("MAFHIR_OIDC_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("MAFHIR_OIDC_ROLES", "viewer=front-desk,operator=front-desk-leads")
    yield provider
    provider.close()


@pytest.fixture
def client(idp, tmp_path):
    app = create_app(WebConfig(db=str(tmp_path / "o.db")))
    yield TestClient(app, base_url="http://127.0.0.1"), app
    app.state.dashboard.close()


def start(client) -> str:
    page = client.get("/login")
    assert 'id="oidc"' in page.text
    answer = client.get("/login/oidc", follow_redirects=False)
    assert answer.status_code == 303
    return answer.headers["location"]


def test_sign_in_through_the_identity_provider(idp, client):
    client, app = client
    url = start(client)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{idp.issuer}/auth?")
    assert (query["client_id"], query["code_challenge_method"]) == ([CLIENT], ["S256"])
    assert query["redirect_uri"] == ["http://127.0.0.1/login/oidc/callback"]
    answer = client.get("/login/oidc/callback", params=idp.authorize(url))
    assert answer.status_code == 200 and 'id="who">oidc:nina (operator)' in answer.text
    users = WebStore(app.state.dashboard.config.db)
    (event,) = [e for e in users.events() if e["subtype"][0]["code"] == "login"]
    assert (event["agent"][0]["who"]["display"], event["outcome"]) == ("oidc:nina", "0")
    users.close()


@pytest.mark.parametrize("tamper", ["state", "signature", "nonce", "no-role", "audience"])
def test_a_sign_in_that_does_not_verify_is_refused(idp, client, tamper):
    client, _ = client
    url = start(client)
    params = idp.authorize(url)
    if tamper == "state":
        params["state"] = "forged"
    elif tamper == "signature":
        idp.sign_with = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif tamper == "nonce":
        idp.claims = {"nonce": "another-sign-in"}
    elif tamper == "no-role":
        idp.claims = {"groups": ["billing"]}
    elif tamper == "audience":
        idp.claims = {"aud": "some-other-app"}
    answer = client.get("/login/oidc/callback", params=params)
    assert answer.status_code == 401 and "Sign-in with the identity provider failed" in \
        answer.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still signed out
    # the flow is single-use: the same callback again finds no sign-in started
    assert client.get("/login/oidc/callback", params=params).status_code == 400


def test_the_oidc_configuration_names_what_is_missing_or_unsafe():
    assert OidcConfig.from_env({}) is None
    with pytest.raises(InputError) as err:
        OidcConfig.from_env({"MAFHIR_OIDC_ISSUER": "http://idp.example.org/realm",
                             "MAFHIR_OIDC_ROLES": "boss=it"})
    assert [p.location for p in err.value.problems] == [
        "MAFHIR_OIDC_ISSUER", "MAFHIR_OIDC_CLIENT_ID", "MAFHIR_OIDC_CLIENT_SECRET",
        "MAFHIR_OIDC_ROLES"]
    config = OidcConfig.from_env({"MAFHIR_OIDC_ISSUER": "https://idp.example.org/realm/",
                                  "MAFHIR_OIDC_CLIENT_ID": "c", "MAFHIR_OIDC_CLIENT_SECRET": "s",
                                  "MAFHIR_OIDC_ROLES": "viewer=all, admin=it,operator=ops",
                                  "MAFHIR_OIDC_GROUPS_CLAIM": "roles"})
    assert config.issuer == "https://idp.example.org/realm"
    assert config.role_of({"roles": ["all", "it"]}) == "admin"
    assert config.role_of({"roles": "ops"}) == "operator"
    assert config.role_of({"roles": ["guests"]}) is None
    assert config.role_of({"groups": ["it"]}) is None  # another claim than configured
