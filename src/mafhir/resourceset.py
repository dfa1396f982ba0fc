"""A set of FHIR resources that reverse mappers read, with references resolved.

Resources may come from a transaction Bundle (referenced by ``urn:uuid`` fullUrls) or
from a server (referenced as ``Type/id``); both resolve here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from .identity import identifier_query

__all__ = ["ResourceSet"]

JSON = dict[str, Any]


class ResourceSet:
    """Resources indexed by fullUrl, ``Type/id`` and business identifier."""

    def __init__(self, items: Iterable[tuple[str | None, JSON]] = ()) -> None:
        self._items: list[JSON] = []
        self._by_ref: dict[str, JSON] = {}
        for full_url, resource in items:
            self.add(resource, full_url)

    @classmethod
    def from_bundle(cls, bundle: JSON) -> ResourceSet:
        entries = bundle.get("entry", [])
        return cls((e.get("fullUrl"), e["resource"]) for e in entries if "resource" in e)

    @classmethod
    def of(cls, resources: Iterable[JSON]) -> ResourceSet:
        return cls((None, r) for r in resources)

    def add(self, resource: JSON, full_url: str | None = None) -> None:
        self._items.append(resource)
        rtype = resource.get("resourceType", "")
        if full_url:
            self._by_ref[full_url] = resource
        if resource.get("id"):
            self._by_ref[f"{rtype}/{resource['id']}"] = resource
        idents = resource.get("identifier")
        for ident in idents if isinstance(idents, list) else []:
            if ident.get("system") and ident.get("value"):
                key = f"{rtype}?{identifier_query(ident['system'], ident['value'])}"
                self._by_ref[key] = resource

    def __iter__(self) -> Iterator[JSON]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def of_type(self, resource_type: str) -> list[JSON]:
        return [r for r in self._items if r.get("resourceType") == resource_type]

    def resolve(self, ref: JSON | str | None) -> JSON | None:
        """The resource a Reference points at, or None when it is not in the set."""
        if ref is None:
            return None
        text = ref if isinstance(ref, str) else ref.get("reference")
        if not text:
            return None
        if text in self._by_ref:
            return self._by_ref[text]
        if "/_history/" in text:
            text = text.split("/_history/")[0]
        # absolute URL to a server resource: keep the last Type/id
        parts = text.rstrip("/").split("/")
        if len(parts) >= 2:
            return self._by_ref.get(f"{parts[-2]}/{parts[-1]}")
        return None
