"""A FHIR R4 REST client for one destination: pooled, retrying, honest about failures.

One :class:`FhirClient` per destination holds one ``requests.Session`` (keep-alive
connection pool). ``/metadata`` is read once, and what it says decides how Bundles go out:
a ``transaction`` when the server has them, else ``batch`` Bundles, else one conditional
request per entry — in the last two cases in dependency order, with ``urn:uuid``
references replaced by the ids the server gave, since only transactions resolve them.

Every attempt is logged on ``mafhir_fhir_rest.http`` with method, resource type, status,
attempt and duration — never a body, a query string or an id (they can identify a patient).
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter

from mafhir.bundle import rewrite_references
from mafhir.errors import PermanentError
from mafhir.io import dumps
from mafhir.retry import RetryPolicy, parse_retry_after

from .errors import (
    PartialDelivery,
    PermanentHttpError,
    ProtocolError,
    TransactionRejected,
    TransientHttpError,
    Unsupported,
    http_error,
    outcome_issues,
)

__all__ = ["Capabilities", "EntryResult", "FhirClient", "Response", "RetryPolicy", "SendResult",
           "parse_retry_after"]

JSON = dict[str, Any]
log = logging.getLogger("mafhir_fhir_rest.http")

FHIR_JSON = "application/fhir+json"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


@dataclass(frozen=True)
class Capabilities:
    """What the server's CapabilityStatement says, as far as sending and reading need."""

    fhir_version: str
    formats: frozenset[str]
    system: frozenset[str]
    resources: dict[str, frozenset[str]]
    conditional_create: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, cs: JSON) -> Capabilities:
        rest = next((r for r in cs.get("rest", []) if r.get("mode", "server") == "server"), {})
        resources = {
            r["type"]: frozenset(i.get("code") for i in r.get("interaction", []))
            for r in rest.get("resource", []) if isinstance(r, dict) and r.get("type")
        }
        cond = frozenset(r["type"] for r in rest.get("resource", [])
                         if isinstance(r, dict) and r.get("conditionalCreate"))
        return cls(str(cs.get("fhirVersion", "")), frozenset(cs.get("format", [])),
                   frozenset(i.get("code") for i in rest.get("interaction", [])), resources,
                   cond)

    @property
    def send_mode(self) -> str:
        """``transaction``, ``batch`` or ``single``: the best way this server offers."""
        if "transaction" in self.system:
            return "transaction"
        if "batch" in self.system:
            return "batch"
        return "single"

    def supports(self, resource_type: str, interaction: str) -> bool:
        if not self.resources:  # a server that lists nothing is taken at its word elsewhere
            return True
        return interaction in self.resources.get(resource_type, frozenset())


@dataclass(frozen=True, slots=True)
class Response:
    """One HTTP answer, its body parsed (None when empty)."""

    status: int
    headers: Any
    body: Any


@dataclass(frozen=True, slots=True)
class EntryResult:
    """What the server did with one entry of a Bundle that was sent."""

    index: int
    resource_type: str
    status: str
    location: str | None = None
    etag: str | None = None


@dataclass
class SendResult:
    """A delivered Bundle: how it went (``mode``) and one result per entry, in order."""

    mode: str
    entries: list[EntryResult] = field(default_factory=list)
    requests: int = 0

    def summary(self) -> JSON:
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e.status] = counts.get(e.status, 0) + 1
        return {"mode": self.mode, "entries": len(self.entries), "requests": self.requests,
                "statuses": counts}


def _type_id(location: str | None) -> str | None:
    """``Type/id`` from a Location (absolute or relative, with or without ``_history``)."""
    if not location:
        return None
    path = urlsplit(location).path.split("/_history/")[0].rstrip("/")
    parts = path.split("/")
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 else None


def _refs(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("urn:uuid:"):
            out.add(ref)
        for v in node.values():
            if isinstance(v, (dict, list)):
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, (dict, list)):
                _refs(v, out)
    return out


def _status_code(status: str) -> int:
    try:
        return int(str(status).split()[0])
    except (ValueError, IndexError):
        return 0


class FhirClient:
    """A FHIR R4 server at ``base_url``: one pooled session, retries, CapabilityStatement.

    :param auth: a ``requests`` auth (see :mod:`mafhir_fhir_rest.auth`); one with an
        ``invalidate()`` method gets one fresh try after a 401.
    :param verify: TLS verification: True (default), a CA bundle path, or False only when
        explicitly asked for.
    :param page_size: ``_count`` for searches.
    """

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
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()
        self._content_type = FHIR_JSON
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc)
        self._base_path = base.path.rstrip("/")

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r}, auth={self.auth!r}, verify={self.verify!r})"

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> FhirClient:
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
                                         auth=self.auth, timeout=self.timeout,
                                         verify=self.verify, allow_redirects=False)
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
            if r.status_code == 401 and not auth_retried and callable(
                    getattr(self.auth, "invalidate", None)) and self.auth.invalidate():
                auth_retried = True  # a fresh token once; a second 401 is the answer
                attempt -= 1
                continue
            if r.status_code < 400:
                return Response(r.status_code, r.headers, self._parse(r, method, label))
            err = self._error(r, method, label)
            retryable = isinstance(err, TransientHttpError) and (
                idempotent or r.status_code in (429, 503))  # the server did not process it
            if not retryable:
                raise err
            self._wait_or_raise(err, attempt, err.retry_after)

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

    # ------------------------------------------------------------------ capabilities
    def capabilities(self) -> Capabilities:
        """The server's CapabilityStatement, read once, checked for R4 and JSON."""
        with self._caps_lock:
            if self._caps is None:
                cs = self.request("GET", "metadata", what="metadata").body
                if not isinstance(cs, dict) or cs.get("resourceType") != "CapabilityStatement":
                    raise ProtocolError("/metadata did not return a CapabilityStatement",
                                        request="GET metadata")
                caps = Capabilities.parse(cs)
                if not caps.fhir_version.startswith("4.0"):
                    raise Unsupported(f"the server speaks FHIR {caps.fhir_version or '?'}, "
                                      "mafhir sends R4 (4.0.x)", request="GET metadata")
                if caps.formats and not caps.formats & {"json", *JSON_TYPES}:
                    raise Unsupported("the server does not accept JSON", request="GET metadata")
                if caps.formats and FHIR_JSON not in caps.formats and "json" not in caps.formats:
                    self._content_type = "application/json"
                self._caps = caps
            return self._caps

    # ------------------------------------------------------------------ single resources
    def read(self, resource_type: str, rid: str) -> tuple[JSON, str | None]:
        """A resource and its ETag (give it to :meth:`update` as ``if_match``)."""
        r = self.request("GET", f"{resource_type}/{rid}")
        return self._resource(r, resource_type), r.headers.get("ETag")

    def create(self, resource: JSON, if_none_exist: str | None = None) -> tuple[JSON | None, str]:
        """POST; with ``if_none_exist`` a conditional create. Returns (resource, Type/id)."""
        rtype = resource["resourceType"]
        headers = {"If-None-Exist": if_none_exist} if if_none_exist else {}
        r = self.request("POST", rtype, body=resource, headers=headers,
                         idempotent=if_none_exist is not None)
        return r.body, _type_id(r.headers.get("Location")) or self._id_of(r.body)

    def update(self, resource: JSON, if_match: str | None = None) -> JSON | None:
        """PUT ``Type/id``; with ``if_match`` (an ETag) a 412 when it changed meanwhile."""
        rtype, rid = resource["resourceType"], resource.get("id")
        if not rid:
            raise PermanentError("update needs the resource id (use conditional_update)")
        headers = {"If-Match": if_match} if if_match else {}
        return self.request("PUT", f"{rtype}/{rid}", body=resource, headers=headers).body

    def conditional_update(self, resource: JSON, query: str) -> JSON | None:
        """PUT ``Type?query``: updates the one match, or creates when there is none."""
        return self.request("PUT", f"{resource['resourceType']}?{query}", body=resource,
                            what=resource["resourceType"]).body

    @staticmethod
    def _id_of(body: Any) -> str:
        if isinstance(body, dict) and body.get("id"):
            return f"{body['resourceType']}/{body['id']}"
        return ""

    @staticmethod
    def _resource(r: Response, resource_type: str) -> JSON:
        if not isinstance(r.body, dict) or r.body.get("resourceType") != resource_type:
            raise ProtocolError(f"expected a {resource_type}", r.status, request="GET")
        return r.body

    # ------------------------------------------------------------------ search
    def search_entries(self, resource_type: str, params: Any = None,
                       count: int | None = None) -> Iterator[JSON]:
        """Every entry of every page of a search (``match`` and ``include``), streamed.

        Only one page is held at a time. A page without a ``next`` link before ``total``
        matches were seen raises :class:`ProtocolError` (after the entries received).
        """
        query = list(params.items() if isinstance(params, dict) else params or [])
        if count is not None or not any(k == "_count" for k, _ in query):
            query = [(k, v) for k, v in query if k != "_count"]
            query.append(("_count", str(count or self.page_size)))
        headers = {"Prefer": "handling=strict"} if self.strict_search else {}
        url: str | None = self._url(resource_type)
        seen_urls: set[str] = set()
        matches = 0
        total: int | None = None
        first = True
        while url is not None:
            r = self.request("GET", url, params=query if first else None, headers=headers,
                             what=resource_type)
            first = False
            page = r.body
            if not isinstance(page, dict) or page.get("resourceType") != "Bundle" \
                    or page.get("type") != "searchset":
                raise ProtocolError("a search answered something other than a searchset Bundle",
                                    r.status, request=f"GET {resource_type}")
            if total is None and isinstance(page.get("total"), int):
                total = page["total"]
            for entry in page.get("entry") or []:
                mode = (entry.get("search") or {}).get("mode", "match")
                if mode == "match":
                    matches += 1
                if mode in ("match", "include") and isinstance(entry.get("resource"), dict):
                    yield entry
            del page
            url = self._next_link(r.body, resource_type, seen_urls)
        if total is not None and matches < total:
            raise ProtocolError(f"the search stopped after {matches} of {total} matches: a page "
                                "had no next link", request=f"GET {resource_type}")

    def _next_link(self, page: JSON, resource_type: str, seen: set[str]) -> str | None:
        nxt = next((link.get("url") for link in page.get("link") or []
                    if link.get("relation") == "next"), None)
        if not nxt:
            return None
        parts = urlsplit(nxt)
        if parts.scheme and (parts.scheme, parts.netloc) != self._origin:
            # the bearer token must not go to another host
            raise ProtocolError("a next link points outside the server",
                                request=f"GET {resource_type}")
        if nxt in seen:
            raise ProtocolError("the server sent the same next link twice",
                                request=f"GET {resource_type}")
        seen.add(nxt)
        return nxt if parts.scheme else self._url(nxt)

    def search(self, resource_type: str, params: Any = None,
               count: int | None = None) -> Iterator[JSON]:
        """The matching resources of a search (all pages, streamed)."""
        for entry in self.search_entries(resource_type, params, count):
            if (entry.get("search") or {}).get("mode", "match") == "match":
                yield entry["resource"]

    # ------------------------------------------------------------------ sending Bundles
    def send(self, bundle: JSON, mode: str | None = None) -> SendResult:
        """Deliver a transaction Bundle the best way the server allows.

        ``mode`` forces ``transaction``, ``batch`` or ``single``; by default the
        CapabilityStatement decides. Raises :class:`TransactionRejected` (nothing stored)
        or :class:`PartialDelivery` (batch/single: some stored, which ones said).
        """
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or \
                bundle.get("type") not in ("transaction", "batch"):
            raise PermanentError("send needs a transaction (or batch) Bundle")
        entries = bundle.get("entry") or []
        caps = self.capabilities()
        for i, entry in enumerate(entries):
            rtype = (entry.get("resource") or {}).get("resourceType") or \
                str((entry.get("request") or {}).get("url", "")).split("?")[0].split("/")[0]
            method = (entry.get("request") or {}).get("method", "")
            needed = {"POST": "create", "PUT": "update", "DELETE": "delete",
                      "GET": "search-type"}.get(method, "")
            if needed and not caps.supports(rtype, needed):
                raise Unsupported(f"entry[{i}]: the server does not support {needed} of {rtype}",
                                  request="POST transaction")
        mode = mode or caps.send_mode
        if bundle["type"] == "batch" and mode == "transaction":
            mode = "batch" if "batch" in caps.system else "single"
        if mode == "transaction":
            return self._send_transaction(bundle)
        return self._send_layered(entries, mode)

    @staticmethod
    def _conditional(entry: JSON) -> bool:
        req = entry.get("request") or {}
        method = req.get("method")
        return method in ("PUT", "DELETE", "GET") or (method == "POST" and
                                                      bool(req.get("ifNoneExist")))

    def _send_transaction(self, bundle: JSON) -> SendResult:
        entries = bundle.get("entry") or []
        idempotent = all(self._conditional(e) for e in entries)
        try:
            r = self.request("POST", "", body=bundle, idempotent=idempotent, what="transaction")
        except PermanentHttpError as exc:
            if exc.status is None or isinstance(exc, ProtocolError):
                raise
            idx = self._blame(entries, exc)
            labels = tuple(f"entry[{i}] {self._entry_type(entries[i])}" for i in idx)
            raise TransactionRejected("transaction rejected, nothing was stored", exc.status,
                                      exc.outcome, "POST transaction", idx, labels) from None
        body = r.body
        if not isinstance(body, dict) or body.get("type") != "transaction-response" or \
                len(body.get("entry") or []) != len(entries):
            raise ProtocolError("the transaction answer is not a transaction-response with one "
                                "entry per request; delivery unknown", r.status,
                                request="POST transaction")
        result = SendResult("transaction", requests=1)
        for i, (sent, got) in enumerate(zip(entries, body["entry"], strict=True)):
            resp = got.get("response") or {}
            if not 200 <= _status_code(resp.get("status", "")) < 300:
                raise ProtocolError(f"entry[{i}] answered {resp.get('status')!r} inside a "
                                    "successful transaction", r.status, request="POST transaction")
            result.entries.append(EntryResult(i, self._entry_type(sent), str(resp.get("status")),
                                              _type_id(resp.get("location")), resp.get("etag")))
        return result

    @staticmethod
    def _entry_type(entry: JSON) -> str:
        res = entry.get("resource") or {}
        return str(res.get("resourceType") or
                   str((entry.get("request") or {}).get("url", "")).split("?")[0].split("/")[0])

    def _blame(self, entries: list[JSON], exc: PermanentHttpError) -> tuple[int, ...]:
        """The entries the OperationOutcome points at (by index, else by type and path)."""
        found: list[int] = []
        for issue in outcome_issues(exc.outcome):
            for expr in issue.expression:
                if expr.startswith("Bundle.entry["):
                    with contextlib.suppress(ValueError):
                        found.append(int(expr[len("Bundle.entry["):].split("]")[0]))
                    continue
                rtype, _, path = expr.partition(".")
                candidates = [i for i, e in enumerate(entries) if self._entry_type(e) == rtype]
                element = path.split(".")[0].split("[")[0]
                missing = [i for i in candidates
                           if element and element not in (entries[i].get("resource") or {})]
                found.extend(missing if missing and "required" in issue.diagnostics.lower()
                             else candidates)
            for m in re.finditer(r"\bentry\s*\[?(\d+)\]?", issue.diagnostics, re.IGNORECASE):
                found.append(int(m.group(1)))  # "Entry 8: ..." in the diagnostics
            if not issue.expression and issue.code == "conflict" and exc.status == 412:
                found.extend(i for i, e in enumerate(entries)
                             if (e.get("request") or {}).get("ifMatch"))
        return tuple(sorted(set(i for i in found if 0 <= i < len(entries))))

    def _layers(self, entries: list[JSON]) -> list[list[int]]:
        """Entries in dependency order: each layer only references earlier layers."""
        urls = {e.get("fullUrl"): i for i, e in enumerate(entries) if e.get("fullUrl")}
        deps = {i: {urls[r] for r in _refs(e.get("resource") or {}, set()) if r in urls} - {i}
                for i, e in enumerate(entries)}
        done: set[int] = set()
        layers: list[list[int]] = []
        while len(done) < len(entries):
            layer = [i for i in range(len(entries)) if i not in done and deps[i] <= done]
            if not layer:
                raise PermanentError("the Bundle's entries reference each other in a cycle; "
                                     "only a transaction can send them")
            layers.append(layer)
            done.update(layer)
        return layers

    def _send_layered(self, entries: list[JSON], mode: str) -> SendResult:
        result = SendResult(mode)
        ids: dict[str, str] = {}
        accepted: list[int] = []
        failed: list[int] = []
        first_error: PermanentHttpError | None = None
        by_index: dict[int, EntryResult] = {}
        for layer in self._layers(entries):
            if failed:  # later layers reference what failed, or may: send no more
                failed.extend(layer)
                continue
            prepared = [self._prepared(entries[i], ids) for i in layer]
            if mode == "batch":
                outcomes = self._batch(prepared, result)
            else:
                outcomes = [self._single(e, result) for e in prepared]
            for i, (res, err) in zip(layer, outcomes, strict=True):
                if err is not None:
                    failed.append(i)
                    first_error = first_error or err
                    continue
                assert res is not None
                by_index[i] = EntryResult(i, self._entry_type(entries[i]), res.status,
                                          res.location, res.etag)
                accepted.append(i)
                if entries[i].get("fullUrl") and res.location:
                    ids[entries[i]["fullUrl"]] = res.location
        result.entries = [by_index[i] for i in sorted(by_index)]
        if failed:
            raise PartialDelivery(f"{mode} delivery incomplete", tuple(sorted(accepted)),
                                  tuple(sorted(failed)),
                                  first_error.outcome if first_error else None,
                                  first_error.status if first_error else None,
                                  f"POST {mode}")
        return result

    @staticmethod
    def _prepared(entry: JSON, ids: dict[str, str]) -> JSON:
        out = dict(entry)
        if "resource" in entry:
            out["resource"] = rewrite_references(entry["resource"], ids)
        return out

    def _batch(self, prepared: list[JSON], result: SendResult
               ) -> list[tuple[EntryResult | None, PermanentHttpError | None]]:
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": prepared}
        idempotent = all(self._conditional(e) for e in prepared)
        r = self.request("POST", "", body=bundle, idempotent=idempotent, what="batch")
        result.requests += 1
        body = r.body
        if not isinstance(body, dict) or body.get("type") != "batch-response" or \
                len(body.get("entry") or []) != len(prepared):
            raise ProtocolError("the batch answer is not a batch-response with one entry per "
                                "request; delivery unknown", r.status, request="POST batch")
        out: list[tuple[EntryResult | None, PermanentHttpError | None]] = []
        for i, got in enumerate(body["entry"]):
            resp = got.get("response") or {}
            code = _status_code(resp.get("status", ""))
            if 200 <= code < 300:
                out.append((EntryResult(i, "", str(resp.get("status")),
                                        _type_id(resp.get("location")), resp.get("etag")), None))
            else:
                err = http_error(code or 500, resp.get("outcome"), "POST batch")
                out.append((None, err if isinstance(err, PermanentHttpError) else
                            PermanentHttpError(str(err), code, resp.get("outcome"), "POST batch")))
        return out

    def _single(self, entry: JSON, result: SendResult
                ) -> tuple[EntryResult | None, PermanentHttpError | None]:
        req = entry.get("request") or {}
        method, url = req.get("method", "POST"), req.get("url", "")
        headers = {}
        if req.get("ifNoneExist"):
            headers["If-None-Exist"] = req["ifNoneExist"]
        if req.get("ifMatch"):
            headers["If-Match"] = req["ifMatch"]
        try:
            r = self.request(method, url, body=entry.get("resource"), headers=headers,
                             idempotent=self._conditional(entry),
                             what=url.split("?")[0].split("/")[0])
        except PermanentHttpError as exc:
            result.requests += 1
            return None, exc
        result.requests += 1
        location = _type_id(r.headers.get("Location")) or self._id_of(r.body) or None
        return EntryResult(0, "", f"{r.status}", location, r.headers.get("ETag")), None
