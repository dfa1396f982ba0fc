"""Deterministic identities: the same task always gives the same identifiers and fullUrls.

That is what makes a re-run idempotent: a conditional create on the business identifier
finds what the first run made, and byte-identical bundles make changes easy to see.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from urllib.parse import unquote

__all__ = ["identifier_from_reference", "identifier_query", "query_escape", "resource_uuid"]

# A fixed namespace for mafhir's name-based UUIDs (uuid5 of the DNS name below).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "mafhir.fhir.resources")


@lru_cache(maxsize=8192)
def resource_uuid(resource_type: str, system: str, value: str) -> str:
    """A ``urn:uuid:`` fullUrl derived from the resource's business identifier.

    Remembered: a converter names the same resource from every entry that refers to it
    (a result's Patient, its order), and SHA-1 is most of what this costs."""
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{resource_type}|{system}|{value}')}"


def query_escape(text: str) -> str:
    """``text`` with what would end or split the URL query it travels in escaped (``%``
    first): the URL half of :func:`identifier_query`, so a query decoded with ``unquote``
    can be brought back to the one spelling that function gives."""
    for char, code in (("%", "%25"), ("#", "%23"), ("&", "%26"), ("+", "%2B"), (" ", "%20")):
        text = text.replace(char, code)
    return text


#: The characters :func:`identifier_query` escapes; most identifiers have none of them.
_SPECIAL = re.compile(r"[\\|,$%#&+ ]")


@lru_cache(maxsize=8192)
def identifier_query(system: str, value: str) -> str:
    """The ``identifier=system|value`` search: FHIR search escapes, then URL escapes.
    (Remembered, as :func:`resource_uuid` is: every reference to a resource asks again.)"""
    def esc(text: str) -> str:
        if _SPECIAL.search(text) is None:
            return text
        for special in ("\\", "|", ",", "$"):
            text = text.replace(special, "\\" + special)
        return query_escape(text)

    return f"identifier={esc(system)}|{esc(value)}"


def identifier_from_reference(reference: str) -> tuple[str, str, str] | None:
    """``(type, system, value)`` of a ``Type?identifier=system|value`` reference, else None.

    Undoes the escaping :func:`identifier_query` applies.
    """
    rtype, sep, query = reference.partition("?identifier=")
    if not sep or not rtype:
        return None
    query = unquote(query)
    parts: list[str] = []
    buf: list[str] = []
    escaped = False
    for ch in query:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "|" and not parts:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    if not parts:
        return None
    return rtype, parts[0], "".join(buf)
