"""How a Bundle goes out: the send strategy, on top of the transport.

``/metadata`` decides: a ``transaction`` when the server has them, else ``batch``
Bundles, else one conditional request per entry — in the last two cases in dependency
order, with ``urn:uuid`` references replaced by the ids the server gave, since only
transactions resolve them. A refused transaction names the entries the server's
OperationOutcome points at; batch/single delivery says which entries were stored.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from mafhir.bundle import rewrite_references
from mafhir.errors import PermanentError
from mafhir.patch import resolve

from .errors import (
    PartialDelivery,
    PermanentHttpError,
    ProtocolError,
    TransactionRejected,
    Unsupported,
    http_error,
    outcome_issues,
)

if TYPE_CHECKING:
    from .capabilities import Capabilities
    from .transport import Response

__all__ = ["BundleSender", "EntryResult", "SendResult"]

JSON = dict[str, Any]
#: Tries of a Bundle with a PATCH whose resource changed between read and write.
PATCH_ATTEMPTS = 3


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


class BundleSender:
    """The send strategy of :class:`~.client.FhirClient` (mixed in over its transport)."""

    if TYPE_CHECKING:
        request: Callable[..., Response]
        capabilities: Callable[[], Capabilities]
        search_entries: Callable[..., Iterator[JSON]]

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
        for attempt in range(1, PATCH_ATTEMPTS + 1):
            ready = resolve(bundle, self._current)
            try:
                return self._send(ready, mode)
            except TransactionRejected as exc:
                # a PATCH read, then changed meanwhile (If-Match 412): read it again
                if ready is bundle or exc.status != 412 or attempt == PATCH_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _current(self, rtype: str, query: str) -> tuple[JSON, str | None] | None:
        """The one resource a PATCH entry's ``Type?query`` names, and its version (the
        server's copy, changed and sent back with If-Match: see mafhir.patch)."""
        found = [e["resource"] for e in self.search_entries(rtype, parse_qsl(query))
                 if (e.get("search") or {}).get("mode", "match") == "match"]
        if len(found) > 1:
            raise PermanentError(f"{len(found)} {rtype} resources have the identifier a "
                                 "change is for: which one to change cannot be told",
                                 code="conflict")
        if not found:
            return None
        return found[0], (found[0].get("meta") or {}).get("versionId")

    def _send(self, bundle: JSON, mode: str | None) -> SendResult:
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

    @staticmethod
    def _id_of(body: Any) -> str:
        if isinstance(body, dict) and body.get("id"):
            return f"{body['resourceType']}/{body['id']}"
        return ""
