"""How the connector proves who it is: none, HTTP Basic, a static bearer token, or SMART
Backend Services (OAuth 2 client credentials with a signed JWT client assertion).

SMART Backend Services is how Epic and Oracle Health let a backend system in: the client
signs a short-lived JWT (RS384 or ES384) with its private key, posts it to the token
endpoint, and gets an access token that it reuses until shortly before it expires.

Secrets come only from environment variables or files (:class:`Secret`), never from
command-line arguments, and nothing here prints them: ``repr`` and ``str`` are redacted.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from requests.auth import AuthBase

from mafhir.errors import InputError, Problem
from mafhir.redact import redact_text, remember_secret

from .errors import PermanentHttpError, TransientHttpError
from .transport import pinned_verify

__all__ = [
    "ASSERTION_TYPE",
    "BasicAuth",
    "BearerAuth",
    "Secret",
    "SigningKey",
    "SmartBackendAuth",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS384", "ES384")


class Secret:
    """A password, token or key that must never be shown; read from env or a file."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "value") -> None:
        self._value = value
        self.source = source
        remember_secret(value)  # an echo of it by a server is blanked before it is kept

    @classmethod
    def from_env(cls, name: str) -> Secret:
        value = os.environ.get(name)
        if not value:
            raise InputError([Problem(name, "environment variable is not set or empty",
                                              "required")])
        return cls(value, f"env:{name}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secret:
        try:
            value = Path(path).read_text().strip()
        except OSError as exc:
            raise InputError([Problem(str(path), f"cannot read secret file ({exc.strerror})",
                                              "not-found")]) \
                from None
        if not value:
            raise InputError([Problem(str(path), "secret file is empty", "required")])
        return cls(value, f"file:{path}")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<{self.source}>)"

    __str__ = __repr__


class BasicAuth(AuthBase):
    """HTTP Basic; the password is a :class:`Secret`."""

    def __init__(self, username: str, password: Secret) -> None:
        self.username = username
        self.password = password
        remember_secret(f"{username}:{password.reveal()}")  # and its base64, the header's form

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = f"{self.username}:{self.password.reveal()}".encode()
        r.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        return r

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=<redacted>)"


class BearerAuth(AuthBase):
    """A static bearer token (issued out of band)."""

    def __init__(self, token: Secret) -> None:
        value = token.reveal()
        # RFC 6750 b64token is printable ASCII: anything else could not be sent as a header
        # (http.client fails deep inside requests); name where it came from, never the value
        if not (value.isascii() and value.isprintable()):
            raise InputError([Problem(token.source, "the bearer token holds characters an "
                                      "HTTP header cannot carry (a token is printable ASCII)",
                                      "value")])
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token.reveal()}"
        return r

    def invalidate(self) -> bool:
        """A static token cannot be renewed: a 401 stays a 401."""
        return False

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


@dataclass(frozen=True)
class SigningKey:
    """A private key for client assertions, its algorithm and key id (``kid``)."""

    key: Any
    algorithm: str
    kid: str | None = None

    def __repr__(self) -> str:
        return f"SigningKey(algorithm={self.algorithm!r}, kid={self.kid!r}, key=<redacted>)"

    @staticmethod
    def _algorithm_for(key: Any, wanted: str | None) -> str:
        if isinstance(key, rsa.RSAPrivateKey):
            alg = "RS384"
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name != "secp384r1":
                raise InputError([Problem("key", "ES384 needs a P-384 (secp384r1) key",
                                                  "not-supported")])
            alg = "ES384"
        else:
            raise InputError([Problem("key", "only RSA and EC P-384 private keys are supported",
                                              "not-supported")])
        if wanted and wanted != alg:
            raise InputError([Problem("algorithm", f"{wanted} does not fit this key ({alg})",
                                              "conflict")])
        return alg

    @classmethod
    def from_pem(cls, pem: bytes, kid: str | None = None, algorithm: str | None = None,
                 password: Secret | None = None) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(
                pem, password=password.reveal().encode() if password else None)
        except (ValueError, TypeError) as exc:
            raise InputError([Problem("key", f"not a usable PEM private key ({exc})",
                                      "value")]) from None
        return cls(key, cls._algorithm_for(key, algorithm), kid)

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str], kid: str | None = None,
                      algorithm: str | None = None) -> SigningKey:
        return cls.from_pem(_read(path), kid, algorithm)

    @classmethod
    def from_jwks(cls, jwks: dict[str, Any], kid: str | None = None,
                  algorithm: str | None = None) -> SigningKey:
        """The private key in a JWK set: the one with ``kid``, else the only usable one."""
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and "d" in k]
        if kid is not None:
            keys = [k for k in keys if k.get("kid") == kid]
        if algorithm:
            keys = [k for k in keys if k.get("alg", algorithm) == algorithm]
        if len(keys) != 1:
            raise InputError([Problem("jwks", f"expected one private key to sign with, found "
                                              f"{len(keys)} (set key_id)", "conflict")])
        try:
            jwk = jwt.PyJWK(keys[0])
        except jwt.PyJWTError as exc:
            raise InputError([Problem("jwks", f"not a usable JWK ({exc})", "value")]) from None
        return cls(jwk.key, cls._algorithm_for(jwk.key, algorithm or keys[0].get("alg")),
                   keys[0].get("kid"))

    @classmethod
    def from_jwks_file(cls, path: str | os.PathLike[str], kid: str | None = None,
                       algorithm: str | None = None) -> SigningKey:
        try:
            data = json.loads(_read(path))
        except ValueError:
            raise InputError([Problem(str(path), "not a JSON JWK set", "structure")]) from None
        return cls.from_jwks(data, kid, algorithm)


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read key file ({exc.strerror})",
                                          "not-found")]) from None


class SmartBackendAuth(AuthBase):
    """SMART Backend Services: a cached access token got with a signed client assertion.

    The token is reused until ``margin`` seconds before it expires (at most a fifth of its
    lifetime), then fetched again; :meth:`invalidate` drops it after a 401 so the next
    request gets a fresh one.
    """

    def __init__(self, token_url: str, client_id: str, key: SigningKey,
                 scope: str = "system/*.read system/*.write", *, margin: float = 60.0,
                 assertion_lifetime: int = 300, timeout: float = 30.0,
                 verify: bool | str = True, clock: Callable[[], float] = time.time,
                 session: requests.Session | None = None) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self.key = key
        self.scope = scope
        self.margin = margin
        self.assertion_lifetime = min(assertion_lifetime, 300)  # SMART: at most five minutes
        self.timeout = timeout
        self.verify = verify
        self.clock = clock
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        #: how many tokens were fetched (for tests and for ``mafhir`` summaries)
        self.fetched = 0

    def __repr__(self) -> str:
        return (f"SmartBackendAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, "
                f"scope={self.scope!r}, key={self.key!r})")

    def assertion(self) -> str:
        """A fresh signed client assertion (new ``jti`` every time)."""
        now = int(time.time())  # wall time: the token endpoint checks exp against its clock
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url,
                  "exp": now + self.assertion_lifetime, "iat": now, "jti": str(uuid.uuid4())}
        headers = {"typ": "JWT", **({"kid": self.key.kid} if self.key.kid else {})}
        return jwt.encode(claims, self.key.key, algorithm=self.key.algorithm, headers=headers)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.clock() >= self._expires:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> bool:
        """Forget the token (after a 401); True: a new one can be fetched."""
        with self._lock:
            self._token = None
        return True

    def _fetch(self) -> None:
        form = {"grant_type": "client_credentials", "scope": self.scope,
                "client_assertion_type": ASSERTION_TYPE, "client_assertion": self.assertion()}
        try:
            r = self._session.post(self.token_url, data=form, timeout=self.timeout,
                                   verify=pinned_verify(self.verify),
                                   headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise TransientHttpError(f"token endpoint unreachable ({type(exc).__name__})",
                                     request="POST token") from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != 200:
            err = body.get("error", "") if isinstance(body, dict) else ""
            err = redact_text(str(err))[:100]  # an endpoint may echo the assertion
            note = f"token request refused: {err}" if err else "token request refused"
            cls = TransientHttpError if r.status_code in (429, 502, 503, 504) else \
                PermanentHttpError
            raise cls(note, r.status_code, request="POST token")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise PermanentHttpError("token endpoint answered without an access_token",
                                     r.status_code, request="POST token")
        lifetime = float(body.get("expires_in") or 300)
        remember_secret(token, expiring=True)
        self._token = token
        self._expires = self.clock() + lifetime - min(self.margin, lifetime / 5)
        self.fetched += 1

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token()}"
        return r
