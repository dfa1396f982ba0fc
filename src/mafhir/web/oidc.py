"""Sign-in through the clinic's identity provider (OpenID Connect, authorization code flow
with PKCE), beside the local users.

Configured from the environment (secrets never on a command line):

* ``MAFHIR_OIDC_ISSUER`` — the provider's issuer URL (https; http only on loopback);
* ``MAFHIR_OIDC_CLIENT_ID`` and ``MAFHIR_OIDC_CLIENT_SECRET``;
* ``MAFHIR_OIDC_ROLES`` — which group gives which role, e.g.
  ``admin=it-admins,operator=front-desk-leads,viewer=front-desk`` (the highest wins; a
  user in none of them is refused);
* ``MAFHIR_OIDC_GROUPS_CLAIM`` — the ID token's claim listing the user's groups (default
  ``groups``).

The ID token is verified with PyJWT against the provider's published keys (JWKS):
signature (RS256/ES256 and their 384/512 kin), issuer, audience (our client id), expiry,
and the nonce of this very sign-in. The ``state`` ties the callback to the browser that
started it; the PKCE verifier to the code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError, Problem
from .security import is_loopback
from .webstore import ROLES, User

__all__ = ["ALGORITHMS", "OidcConfig", "OidcFlow", "Provider"]

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"]
_TIMEOUT = 10.0


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    #: group → role
    roles: dict[str, str]
    groups_claim: str = "groups"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OidcConfig | None:
        """The configuration in ``env``; None when ``MAFHIR_OIDC_ISSUER`` is unset; an
        InputError naming every variable that is missing or wrong."""
        issuer = env.get("MAFHIR_OIDC_ISSUER", "").rstrip("/")
        if not issuer:
            return None
        problems = []
        parts = urlsplit(issuer)
        if parts.scheme != "https" and not (parts.scheme == "http" and
                                             is_loopback(parts.hostname or "")):
            problems.append(Problem("MAFHIR_OIDC_ISSUER", "must be https (http only on "
                                                          "loopback, for tests)", "security"))
        for var in ("MAFHIR_OIDC_CLIENT_ID", "MAFHIR_OIDC_CLIENT_SECRET", "MAFHIR_OIDC_ROLES"):
            if not env.get(var):
                problems.append(Problem(var, "required with MAFHIR_OIDC_ISSUER", "required"))
        roles: dict[str, str] = {}
        for pair in filter(None, (p.strip() for p in env.get("MAFHIR_OIDC_ROLES", "")
                                  .split(","))):
            role, sep, group = pair.partition("=")
            if not sep or role.strip() not in ROLES or not group.strip():
                problems.append(Problem("MAFHIR_OIDC_ROLES", f"expected ROLE=GROUP with ROLE "
                                                             f"one of {', '.join(ROLES)}, got "
                                                             f"{pair!r}", "value"))
                continue
            roles[group.strip()] = role.strip()
        if problems:
            raise InputError(problems)
        return cls(issuer, env["MAFHIR_OIDC_CLIENT_ID"], env["MAFHIR_OIDC_CLIENT_SECRET"],
                   roles, env.get("MAFHIR_OIDC_GROUPS_CLAIM") or "groups")

    def role_of(self, claims: Mapping[str, Any]) -> str | None:
        """The highest role any of the user's groups gives (None: no role)."""
        groups = claims.get(self.groups_claim)
        if isinstance(groups, str):
            groups = [groups]
        given = [self.roles[g] for g in groups or [] if isinstance(g, str) and g in self.roles]
        return max(given, key=ROLES.index) if given else None


def _get_json(url: str, data: dict[str, str] | None = None) -> Any:
    """GET (or POST a form to) ``url`` and read JSON; TLS verified (urllib's default)."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=_TIMEOUT) as answer:
        return json.loads(answer.read())


class Provider:
    """The provider's endpoints (from its discovery document) and its signing keys."""

    def __init__(self, config: OidcConfig) -> None:
        import jwt

        self.config = config
        meta = _get_json(f"{config.issuer}/.well-known/openid-configuration")
        if meta.get("issuer", "").rstrip("/") != config.issuer:
            raise InputError([Problem("MAFHIR_OIDC_ISSUER", "the provider's discovery "
                                                            "document names another issuer",
                                      "security")])
        self.authorization_endpoint = str(meta["authorization_endpoint"])
        self.token_endpoint = str(meta["token_endpoint"])
        self.keys = jwt.PyJWKClient(str(meta["jwks_uri"]), timeout=int(_TIMEOUT))


@dataclass(frozen=True)
class OidcFlow:
    """One sign-in in progress: kept in the (signed) session between the two requests."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def start(cls) -> OidcFlow:
        return cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24),
                   secrets.token_urlsafe(48))

    def authorization_url(self, provider: Provider, redirect_uri: str) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()
                                             ).rstrip(b"=").decode()
        query = {"response_type": "code", "client_id": provider.config.client_id,
                 "redirect_uri": redirect_uri, "scope": "openid profile", "state": self.state,
                 "nonce": self.nonce, "code_challenge": challenge,
                 "code_challenge_method": "S256"}
        sep = "&" if "?" in provider.authorization_endpoint else "?"
        return f"{provider.authorization_endpoint}{sep}{urllib.parse.urlencode(query)}"

    def finish(self, provider: Provider, redirect_uri: str, state: str, code: str) -> User:
        """Exchange the code, verify the ID token; the signed-in user, or an InputError
        saying what was wrong (never the token)."""
        import jwt

        if not secrets.compare_digest(state.encode(), self.state.encode()):
            raise InputError([Problem("state", "does not match this browser's sign-in",
                                      "security")])
        config = provider.config
        try:
            tokens = _get_json(provider.token_endpoint, {
                "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": config.client_id, "client_secret": config.client_secret,
                "code_verifier": self.verifier})
        except OSError as exc:
            raise InputError([Problem("code", f"the provider refused the code "
                                              f"({type(exc).__name__})", "login")]) from None
        raw = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(raw, str):
            raise InputError([Problem("id_token", "missing from the provider's answer",
                                      "login")])
        try:
            key = provider.keys.get_signing_key_from_jwt(raw)
            claims = jwt.decode(raw, key.key, algorithms=ALGORITHMS, audience=config.client_id,
                                issuer=config.issuer, options={"require": ["exp", "iat",
                                                                           "sub", "nonce"]})
        except jwt.PyJWTError as exc:
            raise InputError([Problem("id_token", f"not accepted: {type(exc).__name__}",
                                      "security")]) from None
        if not secrets.compare_digest(str(claims["nonce"]).encode(), self.nonce.encode()):
            raise InputError([Problem("id_token", "its nonce is not this sign-in's",
                                      "security")])
        role = config.role_of(claims)
        if role is None:
            raise InputError([Problem("groups", "none of this user's groups is given a role "
                                                "(MAFHIR_OIDC_ROLES)", "forbidden")])
        name = str(claims.get("preferred_username") or claims["sub"])[:56]
        return User(f"oidc:{name}", role)
