"""One place that takes credentials out of text, JSON and URLs before they are kept or shown.

Servers echo what they were sent (a 401 quoting the ``Authorization`` header, a token
endpoint repeating the assertion), and URLs can carry ``user:password@``. Whatever a
server returns passes through :func:`redact_text` / :func:`redact_json` before it reaches
the outbox, a log line or the screen. Two nets, because neither alone is enough:

* shapes: ``Authorization: …``, ``Bearer …``/``Basic …``, JWTs, ``password=…``/
  ``"access_token": "…"`` and URL userinfo;
* values: every secret this process holds (:func:`remember_secret`, called by the
  connectors' ``Secret`` and token caches) is replaced wherever it appears, whatever
  shape the server wrapped it in.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import quote, unquote

__all__ = [
    "CREDENTIALS_IN_URL",
    "REDACTED",
    "SECRET_KEY",
    "carries_credentials",
    "has_userinfo",
    "redact_json",
    "redact_text",
    "remember_secret",
    "without_password",
]

REDACTED = "<redacted>"

#: Why a URL with ``user:password@`` is refused, and where credentials go instead.
CREDENTIALS_IN_URL = ("credentials in a URL (user:password@, ?access_token=) are refused "
                      "(they would be kept in shell history, process lists and the "
                      "outbox); name the destination in mafhir.toml: "
                      "[destinations.NAME] with username and password = \"${ENV_VAR}\"")

#: A key whose value is a credential (JSON keys, TOML keys, form fields, headers).
SECRET_KEY = re.compile(
    r"(?i)^(?:(?:proxy-)?authorization|cookie|set-cookie|password|passwd|pwd|pass|secret"
    r"|client_secret|(?:access|refresh|id)_token|token|api[_-]?key|apikey|private_key"
    r"|client_assertion|credentials?)$")

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # a header line or JSON member: Authorization: <anything up to the end of the value>
    (re.compile(r"(?i)(\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+"),
     r"\1" + REDACTED),
    # an auth scheme and its credentials, as the header carries them
    # (a credential has a digit, a symbol or mixed case: "Basic authentication" is a word)
    (re.compile(r"\b(Bearer|Basic|Digest|Negotiate|BEARER|BASIC)\s+"
                r"(?=[A-Za-z]*[0-9\-._~+/=]|[A-Za-z]*[a-z][A-Z])[A-Za-z0-9\-._~+/]{6,}=*"),
     r"\1 " + REDACTED),
    # a JWT (header.payload.signature, base64url; the header always starts with '{"')
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value, key: value, "key": "value" for credential keys
    (re.compile(r"(?i)([\"']?\b(?:access_token|refresh_token|id_token|token|password|passwd"
                r"|pwd|client_secret|client_assertion|api[_-]?key|apikey|secret)\b[\"']?"
                r"\s*[:=]\s*[\"']?)[^\s\"'&,;}]+"), r"\1" + REDACTED),
    # userinfo of a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@\"']+@"), r"\1" + REDACTED + "@"),
)

_known: set[str] = set()  # configured secrets: for the life of the process
_expiring: dict[str, None] = {}  # issued tokens, an ordered set: the oldest go past _MAX_EXPIRING
_known_lock = threading.Lock()
_longest_first: tuple[str, ...] = ()  # both, longest first (a value inside another waits)
_MIN_SECRET = 6  # shorter values would blank ordinary words
_MAX_EXPIRING = 1024  # a worker that runs for months renews its SMART token every few minutes


def remember_secret(value: str, *, expiring: bool = False) -> None:
    """Redact ``value`` (and its URL-quoted and Basic forms) wherever it appears from now on.

    ``expiring`` (an issued access token): kept among the latest :data:`_MAX_EXPIRING`
    only, so a long-running worker's set stays bounded; configured secrets stay for good.
    """
    if not value or len(value) < _MIN_SECRET:
        return
    global _longest_first
    forms = {value, quote(value, safe=""), base64.b64encode(value.encode()).decode("ascii")}
    with _known_lock:
        for form in (f for f in forms if len(f) >= _MIN_SECRET):
            if not expiring:
                _known.add(form)
                continue
            _expiring.pop(form, None)
            _expiring[form] = None
        while len(_expiring) > _MAX_EXPIRING:
            del _expiring[next(iter(_expiring))]
        _longest_first = tuple(sorted({*_known, *_expiring}, key=len, reverse=True))


def redact_text(text: str) -> str:
    """``text`` without credentials (see the module docstring)."""
    if not text:
        return text
    for value in _longest_first:  # a tuple, replaced whole: safe to read without the lock
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, repl in _SHAPES:
        text = pattern.sub(repl, text)
    return text


def redact_json(doc: Any) -> Any:
    """A copy of ``doc`` with credential members blanked and every string redacted."""
    if isinstance(doc, dict):
        return {k: REDACTED if isinstance(k, str) and SECRET_KEY.match(k) and v not in (None, "")
                else redact_json(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [redact_json(v) for v in doc]
    if isinstance(doc, str):
        return redact_text(doc)
    return doc


def _authority(target: str) -> str:
    rest = target.split("://", 1)[1] if "://" in target else target
    return re.split(r"[/?#]", rest, maxsplit=1)[0]


def has_userinfo(target: str) -> bool:
    """Does ``target`` (a URL, or ``CONNECTOR:HOST:PORT/…``) carry ``user[:password]@``?"""
    return "@" in _authority(target)


def carries_credentials(target: str) -> bool:
    """``user:password@``, or a query parameter named like a credential (``?access_token=``)."""
    if has_userinfo(target):
        return True
    rest = target.partition("?")[2] if "?" in target else ""
    query, _, fragment = rest.partition("#")
    fragment = fragment or target.partition("#")[2]  # the implicit flow puts tokens there
    pairs = [p for part in (query, fragment) for p in re.split(r"[&;]", part) if p]
    return any(_credential_name(pair.partition("=")[0]) for pair in pairs)


#: URL parameters that carry a credential besides :data:`SECRET_KEY`'s names (cloud keys
#: and signed-URL signatures), after normalising (lower case, ``-`` as ``_``).
_URL_SECRETS = frozenset({"key", "sig", "signature", "subscription_key", "code_verifier",
                          "x_amz_signature", "x_amz_credential", "x_amz_security_token",
                          "x_goog_signature", "x_goog_credential", "sas", "auth"})


def _credential_name(name: str) -> bool:
    """Is a URL parameter named like a credential? ``access-token``, ``accessToken`` and
    ``access_token`` are one name here."""
    name = unquote(name).strip()
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower().replace("-", "_")
    return bool(SECRET_KEY.match(snake) or SECRET_KEY.match(name)) or snake in _URL_SECRETS


def without_password(url: str) -> str:
    """``url`` with the password of its userinfo replaced (for showing a database URL)."""
    return re.sub(r"(?i)^([a-z][a-z0-9+.\-]*://[^/@:]*):[^/@]*@", r"\1:" + REDACTED + "@", url)
