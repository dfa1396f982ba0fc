"""A FHIR R4 REST client for one destination: pooled, retrying, honest about failures.

:class:`FhirClient` is the transport (:mod:`.transport`: session, retries, classified
errors) plus the send strategy (:mod:`.sending`: transaction, batch or single requests)
plus what reads need: the CapabilityStatement, reads, conditional writes and searches
streamed page by page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from mafhir.errors import PermanentError
from mafhir.retry import RetryPolicy, parse_retry_after

from .capabilities import Capabilities
from .errors import ProtocolError, Unsupported
from .sending import BundleSender, EntryResult, SendResult, _type_id
from .transport import FHIR_JSON, JSON_TYPES, Response, Transport

__all__ = ["Capabilities", "EntryResult", "FhirClient", "Response", "RetryPolicy", "SendResult",
           "parse_retry_after"]

JSON = dict[str, Any]


class FhirClient(BundleSender, Transport):
    """A FHIR R4 server at ``base_url``: one pooled session, retries, CapabilityStatement.

    :param auth: a ``requests`` auth (see :mod:`mafhir_fhir_rest.auth`); one with an
        ``invalidate()`` method gets one fresh try after a 401.
    :param verify: TLS verification: True (default), a CA bundle path, or False only when
        explicitly asked for.
    :param timeout: ``(connect, read)`` seconds; :param retry: a :class:`RetryPolicy`.
    :param page_size: ``_count`` for searches.
    """

    def __init__(self, base_url: str, **options: Any) -> None:
        super().__init__(base_url, **options)
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()

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
