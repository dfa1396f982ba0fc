"""Keys the outbox derives from content: ordering (the patient), idempotency, hashes.

Keys are SHA-256 hex digests, so the outbox's indexes and listings never show an MRN or
an identifier value, and equal content always gives equal keys.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import unquote

from ..identity import identifier_query
from ..io import dumps

__all__ = ["canonical", "content_hash", "digest", "identity_of", "ordering_key"]

JSON = dict[str, Any]


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else part.encode())
        h.update(b"\x1f")
    return h.hexdigest()


def canonical(doc: Any) -> bytes:
    """JSON with sorted keys: the same content gives the same bytes."""
    return dumps(doc, sort_keys=True)


def content_hash(resource: JSON) -> str:
    """The hash of what is sent (``id`` and ``meta.versionId`` left out: the server's)."""
    body = {k: v for k, v in resource.items() if k != "id"}
    meta = body.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        body["meta"] = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
    return hashlib.sha256(canonical(body)).hexdigest()


def identity_of(resource: JSON) -> str | None:
    """``identifier=system|value`` of the first business identifier, or None."""
    idents = resource.get("identifier")
    first = idents[0] if isinstance(idents, list) and idents else idents
    if isinstance(first, dict) and first.get("system") and first.get("value"):
        return identifier_query(str(first["system"]), str(first["value"]))
    return None


def _patient_ref(node: Any) -> str | None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref.startswith("Patient?"):
            return unquote(ref[len("Patient?"):])
        for v in node.values():
            if isinstance(v, (dict, list)):
                found = _patient_ref(v)
                if found:
                    return found
    elif isinstance(node, list):
        for v in node:
            found = _patient_ref(v)
            if found:
                return found
    return None


def ordering_key(bundle: JSON) -> str | None:
    """The patient a Bundle is about (hashed), from its Patient entry or its references.

    Returns None for a Bundle about no patient (such work is not ordered).
    """
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict)]
    for entry in entries:
        res = entry.get("resource") or {}
        if res.get("resourceType") == "Patient":
            ident = identity_of(res)
            if ident:
                return digest("patient", ident)
    for entry in entries:
        found = _patient_ref(entry.get("resource") or {})
        if found:
            return digest("patient", found)
    return None
