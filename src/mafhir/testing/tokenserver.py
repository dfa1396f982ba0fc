"""A SMART Backend Services token endpoint on loopback that really checks client assertions.

It verifies the JWT with PyJWT against the client's registered public key: signature
(RS384 or ES384 only), ``iss`` = ``sub`` = client id, ``aud`` = this endpoint's URL, ``exp``
present and at most five minutes ahead, ``jti`` present and never seen before (a replayed
assertion is refused). It issues random access tokens with a chosen lifetime, and
:meth:`TokenServer.valid` tells a protected server (see ``FaultProxy(auth_check=...)``)
whether a bearer token is good. Needs PyJWT and cryptography (a connector's test extras).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

__all__ = ["TokenServer"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class TokenServer:
    """Token endpoint for registered clients: ``{client_id: public key (PEM bytes or JWK)}``."""

    clients: dict[str, Any]
    lifetime: int = 300
    issued: dict[str, float] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    _jtis: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/oauth2/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def valid(self, headers: dict[str, str]) -> bool:
        """Whether ``headers`` carry an issued, unexpired bearer token."""
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not auth.startswith("Bearer "):
            return False
        with self._lock:
            expires = self.issued.get(auth[len("Bearer "):])
        return expires is not None and time.time() < expires

    def expire_all(self) -> None:
        """Make every issued token invalid (as a server restart or revocation would)."""
        with self._lock:
            self.issued.clear()

    def _verify(self, form: dict[str, str]) -> str:
        """The client id of a good request; raises ValueError naming what is wrong."""
        import jwt

        if form.get("grant_type") != "client_credentials":
            raise ValueError("unsupported_grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise ValueError("invalid_request: client_assertion_type")
        assertion = form.get("client_assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise ValueError(f"invalid_client: not a JWT ({exc})") from None
        client = unverified.get("iss")
        if client not in self.clients:
            raise ValueError("invalid_client: unknown iss")
        key = self.clients[client]
        if isinstance(key, dict):
            key = jwt.PyJWK(key).key
        if header.get("alg") not in ("RS384", "ES384"):
            raise ValueError("invalid_client: alg must be RS384 or ES384")
        try:
            claims = jwt.decode(assertion, key, algorithms=["RS384", "ES384"], audience=self.url,
                                issuer=client, options={"require": ["exp", "iss", "sub", "aud",
                                                                    "jti"]})
        except jwt.PyJWTError as exc:
            raise ValueError(f"invalid_client: {exc}") from None
        if claims["sub"] != client:
            raise ValueError("invalid_client: sub must equal iss")
        if claims["exp"] > time.time() + 300 + 5:
            raise ValueError("invalid_client: exp more than five minutes ahead")
        with self._lock:
            if claims["jti"] in self._jtis:
                raise ValueError("invalid_client: jti replayed")
            self._jtis.add(claims["jti"])
        return client

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _json(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                try:
                    server._verify(form)
                except ValueError as exc:
                    with server._lock:
                        server.refused.append(str(exc))
                    code = str(exc).split(":")[0]
                    self._json(400 if code != "invalid_client" else 401,
                               {"error": code, "error_description": str(exc)})
                    return
                token = secrets.token_urlsafe(24)
                with server._lock:
                    server.issued[token] = time.time() + server.lifetime
                    server.scopes.append(form.get("scope", ""))
                self._json(200, {"access_token": token, "token_type": "bearer",
                                 "expires_in": server.lifetime, "scope": form.get("scope", "")})

        return Handler
