"""Transaction entries and the Bundle that carries them.

A mapper returns :class:`Entry` objects; this module turns them into a ``transaction``
Bundle whose entries reference each other by ``urn:uuid`` fullUrls. New resources are
conditional creates (``ifNoneExist`` on the business identifier); resources a task
changes are conditional updates (``PUT Type?identifier=…``). Posting the same Bundle
twice therefore never makes a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .identity import identifier_query, resource_uuid
from .io import dumps

__all__ = ["Entry", "create", "rewrite_references", "transaction", "update"]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    """One resource and how it is to be written."""

    resource: JSON
    full_url: str
    method: Literal["POST", "PUT", "PATCH"]
    url: str
    if_none_exist: str | None = None
    #: Resource (``Type/id`` or fullUrl) this entry is about, for summaries and Provenance.
    kind: str = field(default="", compare=False)
    #: ``(resource, dumps(resource))`` once written (the Pipeline's validated-cache key),
    #: so :func:`transaction` does not write it again. Not an ``__init__`` field (unset
    #: until :meth:`remember`; no cost per entry made), and it holds the resource itself,
    #: so a pair that no longer applies is recognisable: see ``blob``.
    written: tuple[JSON, bytes] = field(init=False, compare=False, repr=False)

    @property
    def blob(self) -> bytes | None:
        """``dumps(self.resource)`` if :meth:`remember` was told it, else None."""
        try:
            resource, blob = self.written
        except AttributeError:
            return None
        return blob if resource is self.resource else None

    def remember(self, blob: bytes) -> None:
        """Keep ``blob`` (``dumps(self.resource)``) for :func:`transaction`.

        A cache fill, not a change of value (the field takes no part in equality), so it
        is set in place: a ``replace`` per entry would cost more than it saves."""
        object.__setattr__(self, "written", (self.resource, blob))

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    def as_bundle_entry(self) -> JSON:
        request: JSON = {"method": self.method, "url": self.url}
        if self.if_none_exist:
            request["ifNoneExist"] = self.if_none_exist
        return {"fullUrl": self.full_url, "resource": self.resource, "request": request}


def _identity(resource: JSON) -> tuple[str, str]:
    ident = resource["identifier"]
    first = ident[0] if isinstance(ident, list) else ident
    return first["system"], first["value"]


def create(resource: JSON) -> Entry:
    """A conditional create: POST, ``ifNoneExist`` on the first business identifier."""
    rtype = resource["resourceType"]
    system, value = _identity(resource)
    return Entry(
        resource=resource,
        full_url=resource_uuid(rtype, system, value),
        method="POST",
        url=rtype,
        if_none_exist=identifier_query(system, value),
    )


def update(resource: JSON) -> Entry:
    """A conditional update: ``PUT Type?identifier=…`` (creates if absent, else updates)."""
    rtype = resource["resourceType"]
    system, value = _identity(resource)
    return Entry(
        resource=resource,
        full_url=resource_uuid(rtype, system, value),
        method="PUT",
        url=f"{rtype}?{identifier_query(system, value)}",
    )


def _link(node: Any, targets: dict[str, str]) -> Any:
    """``node`` with conditional references to in-Bundle resources made ``urn:uuid`` ones.

    Copy on write: a dict or list with nothing to relink under it is returned as it is, so
    a transaction copies only the paths that lead to a changed reference (most resources
    have none, and most of a resource is not on such a path)."""
    if isinstance(node, dict):
        out: dict[str, Any] | None = None
        ref = node.get("reference")
        if isinstance(ref, str) and ref in targets:
            out = {**node, "reference": targets[ref]}
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                linked = _link(value, targets)
                if linked is not value:
                    if out is None:
                        out = dict(node)
                    out[key] = linked
        return node if out is None else out
    if isinstance(node, list):
        copied: list[Any] | None = None
        for i, value in enumerate(node):
            if isinstance(value, (dict, list)):
                linked = _link(value, targets)
                if linked is not value:
                    if copied is None:
                        copied = list(node)
                    copied[i] = linked
        return node if copied is None else copied
    return node


#: A ``"reference":`` member as orjson writes it, capturing its value's JSON string.
_REFERENCE = re.compile(rb'"reference":("[^"\\]*(?:\\.[^"\\]*)*")')  # unrolled: 5x faster


def _may_link(resource: JSON, needles: frozenset[bytes], blob: bytes | None) -> bool:
    """Whether ``resource`` can hold a reference :func:`_link` would change: a pre-check
    in C, so most resources (none of theirs is in the Bundle) skip the walk.

    Every dict :func:`_link` reaches is written by orjson as ``"reference":<the string as
    JSON>`` (no space; a quote inside a string is escaped, so no match starts there), so a
    resource whose bytes hold none of the ``needles`` (the targets as JSON strings) has
    nothing to relink. A false positive only costs the walk; what orjson cannot write is
    walked."""
    if blob is None:
        try:
            blob = dumps(resource)
        except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
            return True
    return not needles.isdisjoint(_REFERENCE.findall(blob))


def _patched(seen: Entry, change: Entry) -> Entry:
    """A PATCH after an entry for the same resource: applied to it when the Bundle holds
    the whole resource (it stays one conditional update), else the two patches joined."""
    from .patch import apply, binary, operations  # here: patch.py builds on Entry

    if seen.method == "PATCH":
        ops = [*operations(seen.resource), *operations(change.resource)]
        return replace(seen, resource=binary(ops))
    return update(apply(seen.resource, operations(change.resource)))


def transaction(entries: Iterable[Entry]) -> JSON:
    """A transaction Bundle of ``entries``, each resource once, linked by ``urn:uuid``.

    The same resource can come from several tasks (a patient seen twice, an appointment
    booked then checked in). The later entry carries the newer state, so it wins, at the
    place of the first; if either was a conditional update the result stays one, since a
    conditional create would leave an existing resource unchanged.

    Mappers refer to things outside their task by identifier (``Patient?identifier=…``);
    when that resource is in this Bundle the reference becomes its ``urn:uuid`` fullUrl,
    otherwise the server resolves it.
    """
    chosen: dict[str, Entry] = {}
    for entry in entries:
        seen = chosen.get(entry.full_url)
        if seen is not None and seen.method == "PUT" and entry.method == "POST":
            entry = update(entry.resource)
        elif seen is not None and entry.method == "PATCH":
            entry = _patched(seen, entry)
        chosen[entry.full_url] = entry
    targets: dict[str, str] = {}
    for entry in chosen.values():
        idents = entry.resource.get("identifier")
        for ident in idents if isinstance(idents, list) else []:
            if ident.get("system") and ident.get("value"):
                query = identifier_query(ident["system"], ident["value"])
                targets[f"{entry.resource_type}?{query}"] = entry.full_url
    needles = frozenset(dumps(ref) for ref in targets)
    out = []
    for entry in chosen.values():
        item = entry.as_bundle_entry()
        if needles and _may_link(entry.resource, needles, entry.blob):
            item["resource"] = _link(entry.resource, targets)
        out.append(item)
    return {"resourceType": "Bundle", "type": "transaction", "entry": out}


def rewrite_references(node: Any, refs: dict[str, str]) -> Any:
    """A copy of ``node`` with every ``reference`` found in ``refs`` replaced (urn:uuid or
    a conditional reference → the server's ``Type/id``), at any depth."""
    if isinstance(node, dict):
        out = {k: (rewrite_references(v, refs) if isinstance(v, (dict, list)) else v)
               for k, v in node.items()}
        ref = node.get("reference")
        if isinstance(ref, str) and ref in refs:
            out["reference"] = refs[ref]
        return out
    if isinstance(node, list):
        return [rewrite_references(v, refs) if isinstance(v, (dict, list)) else v
                for v in node]
    return node
