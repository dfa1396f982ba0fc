"""HTTP to one FHIR server: a pooled session, one retry loop, failures classified.

One ``requests.Session`` (keep-alive pool) per destination. Each interaction is retried
when transient, by the one policy of :mod:`mafhir.retry` (``Retry-After`` honoured there);
a 401 gets one fresh token when the auth can renew it. Every attempt is logged on
``mafhir_fhir_rest.http`` with method, resource type, status, attempt and duration — never
a body, a query string or an id (they can identify a patient).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter

from mafhir.io import dumps
from mafhir.retry import RetryPolicy, parse_retry_after

from .errors import PermanentHttpError, ProtocolError, TransientHttpError, http_error

__all__ = ["FHIR_JSON", "JSON_TYPES", "Response", "Transport", "pinned_verify"]

JSON = dict[str, Any]
log = logging.getLogger("mafhir_fhir_rest.http")

FHIR_JSON = "application/fhir+json"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


def pinned_verify(verify: bool | str) -> bool | str:
    """``verify`` as requests cannot change it: ``True`` becomes requests' own default CA
    bundle by path. Given ``True``, requests takes $REQUESTS_CA_BUNDLE (or
    $CURL_CA_BUNDLE) instead, so the environment would decide which servers are trusted; a
    path is used as it is, and ``False`` only ever comes from the configuration."""
    if verify is True:
        return str(requests.utils.DEFAULT_CA_BUNDLE_PATH)
    return verify


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer, its body parsed (None when empty)."""

    status: int
    headers: Any
    body: Any


class Transport:
    """Requests to the FHIR server at ``base_url`` (see :class:`~.client.FhirClient`)."""

    def __init__(self, base_url: str, *, auth: requests.auth.AuthBase | None = None,
                 verify: bool | str = True, timeout: float | tuple[float, float] = (5.0, 60.0),
                 retry: RetryPolicy | None = None, page_size: int = 100,
                 pool_size: int = 4, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, strict_search: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.verify = verify
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.sleep = sleep
        self.rng = rng or self.retry.rng()
        self.strict_search = strict_search
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": FHIR_JSON, "User-Agent": "mafhir-fhir-rest"})
        self._read_environment()
        self._content_type = FHIR_JSON
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc)
        self._base_path = base.path.rstrip("/")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.base_url!r}, auth={self.auth!r}, "
                f"verify={self.verify!r})")

    def _read_environment(self) -> None:
        """What ``requests`` reads from the environment for each request — proxies (and
        ``NO_PROXY``) for this server's host and a ``.netrc`` login — read once, for the
        one origin this client talks to.

        ``requests`` walks ``os.environ`` several times a request to find them (2.7 ms a
        request measured on a busy machine, more than the outbox's own work per item);
        the answers do not change while a client lives. The effect is the same: the
        session then trusts nothing more from the environment, and is given these.
        """
        env = self.session.merge_environment_settings(self.base_url, {}, None, True, None)
        self.session.proxies.update(env["proxies"])
        self._netrc_auth = requests.utils.get_netrc_auth(self.base_url)  # never shown
        self.session.trust_env = False

    def _verify(self) -> bool | str:
        """``verify`` as given; plain True pinned to requests' own CA bundle, never the
        environment's (see :func:`pinned_verify`)."""
        return pinned_verify(self.verify)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}" if path else self.base_url

    def _label(self, url: str) -> str:
        """The resource type (or operation) a URL addresses — never ids or queries."""
        path = urlsplit(url).path
        rest = path[len(self._base_path):] if path.startswith(self._base_path) else path
        first = rest.strip("/").split("/")[0] if rest.strip("/") else ""
        return first or "(system)"

    def request(self, method: str, path: str, *, params: Any = None, body: Any = None,
                headers: dict[str, str] | None = None, idempotent: bool = True,
                what: str | None = None) -> Response:
        """One FHIR interaction, retried when transient; raises the classified error."""
        url = self._url(path)
        label = what or self._label(url)
        data = dumps(body) if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs.setdefault("Content-Type", self._content_type)
        attempt = 0
        auth_retried = False
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                r = self.session.request(method, url, params=params, data=data, headers=hdrs,
                                         auth=self.auth or self._netrc_auth,
                                         timeout=self.timeout,
                                         verify=self._verify(), allow_redirects=False)
            except requests.exceptions.SSLError:
                self._log(method, label, "tls-error", attempt, started)
                raise PermanentHttpError("TLS verification failed (check the certificate or "
                                         "set a CA bundle)", request=f"{method} {label}") from None
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                kind = type(exc).__name__
                self._log(method, label, kind, attempt, started)
                err = TransientHttpError(f"network failure ({kind})", request=f"{method} {label}")
                never_sent = isinstance(exc, requests.ConnectTimeout) or isinstance(
                    getattr(exc.args[0] if exc.args else None, "reason", None),
                    urllib3.exceptions.NewConnectionError)
                if not (idempotent or never_sent):
                    raise err from None
                self._wait_or_raise(err, attempt, None)
                continue
            self._log(method, label, r.status_code, attempt, started)
            invalidate = getattr(self.auth, "invalidate", None)
            if r.status_code == 401 and not auth_retried and callable(invalidate) \
                    and invalidate():
                auth_retried = True  # a fresh token once; a second 401 is the answer
                attempt -= 1
                continue
            if r.status_code < 400:
                return Response(r.status_code, r.headers, self._parse(r, method, label))
            failure = self._error(r, method, label)
            if not (isinstance(failure, TransientHttpError) and (
                    idempotent or r.status_code in (429, 503))):  # the server did not process it
                raise failure
            self._wait_or_raise(failure, attempt, failure.retry_after)

    def _wait_or_raise(self, err: TransientHttpError, attempt: int,
                       retry_after: float | None) -> None:
        delay = self.retry.delay(attempt, retry_after, self.rng)
        if delay is None:
            raise err
        self.sleep(delay)

    def _log(self, method: str, label: str, status: object, attempt: int,
             started: float) -> None:
        ms = (time.perf_counter() - started) * 1000
        log.info("%s %s -> %s attempt=%d %.1fms", method, label, status, attempt, ms,
                 extra={"fhir_method": method, "fhir_type": label, "fhir_status": status,
                        "fhir_attempt": attempt, "fhir_ms": round(ms, 1)})

    @staticmethod
    def _media(r: requests.Response) -> str:
        return r.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def _parse(self, r: requests.Response, method: str, label: str) -> Any:
        if not r.content:
            return None
        media = self._media(r)
        if media not in JSON_TYPES:
            shown = "HTML" if "html" in media else (media or "no content type")
            raise ProtocolError(f"expected FHIR JSON, the server answered {shown}", r.status_code,
                                request=f"{method} {label}")
        try:
            return orjson.loads(r.content)
        except orjson.JSONDecodeError:
            raise ProtocolError("the answer is not valid JSON", r.status_code,
                                request=f"{method} {label}") from None

    def _error(self, r: requests.Response, method: str, label: str) -> Exception:
        outcome = None
        note = ""
        if r.content and self._media(r) in JSON_TYPES:
            try:
                doc = orjson.loads(r.content)
                outcome = doc if isinstance(doc, dict) else None
            except orjson.JSONDecodeError:
                note = "body is not valid JSON"
        elif r.content:
            media = self._media(r)
            note = ("answered HTML, not an OperationOutcome" if "html" in media
                    else f"answered {media or 'no content type'}, not an OperationOutcome")
        retry_after = parse_retry_after(r.headers.get("Retry-After"))
        return http_error(r.status_code, outcome, f"{method} {label}", retry_after, note)
