"""Changes to a resource someone else wrote: a FHIR ``PATCH`` entry (JSON Patch, RFC 6902).

A task that changes one element of a resource it did not write (a reminder's reply moves
the status of an Appointment the EHR's schedule booked) must not rewrite it whole: the
participants, reason, slot and comments the schedule sent would be lost. Such a task
writes a transaction entry ``PATCH Type?identifier=…`` whose resource is a Binary holding
the JSON Patch operations (R4 http.html#patch); a ``test`` operation states what the
task expects to find, so a change made meanwhile is refused rather than overwritten.

Not every destination takes a conditional PATCH (SEKMET answers 405 to one, and cannot
PATCH inside a transaction), so a destination may :func:`resolve` the entry instead:
read the current resource, apply the operations, and send ``PUT Type/id`` with
``ifMatch`` on the version read. When nothing has the identifier the entry is refused
(``not-found``) — never turned into a thin new resource: the outbox keeps it as a dead
letter with the reason, for review and replay once the resource exists.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

from .bundle import Entry
from .errors import InputError, Problem
from .identity import identifier_query, resource_uuid

__all__ = ["JSON_PATCH", "Lookup", "apply", "binary", "is_patch", "not_found", "operations",
           "patch", "resolve"]

JSON = dict[str, Any]
JSON_PATCH = "application/json-patch+json"
#: ``lookup(rtype, query)`` → (the current resource, its version) or None when nothing
#: has the identifier; raises when several do.
Lookup = Callable[[str, str], "tuple[JSON, str | None] | None"]


def patch(rtype: str, system: str, value: str, ops: list[JSON]) -> Entry:
    """``PATCH rtype?identifier=system|value`` with ``ops`` (JSON Patch) in a Binary.

    Its fullUrl is the one the resource's own entry would have, so a Bundle holding both
    (the task that booked it and the reply) is merged into one entry by
    :func:`mafhir.bundle.transaction`."""
    return Entry(resource=binary(ops), full_url=resource_uuid(rtype, system, value), method="PATCH",
                 url=f"{rtype}?{identifier_query(system, value)}")


def binary(ops: list[JSON]) -> JSON:
    """The Binary a PATCH entry carries: ``ops`` as JSON, base64 (R4 Binary.data)."""
    data = base64.b64encode(json.dumps(ops, separators=(",", ":")).encode()).decode()
    return {"resourceType": "Binary", "contentType": JSON_PATCH, "data": data}


def is_patch(entry: JSON) -> bool:
    return (entry.get("request") or {}).get("method") == "PATCH"


def operations(resource: JSON) -> list[JSON]:
    """The JSON Patch operations of a PATCH entry's Binary; InputError when it holds none."""
    if resource.get("resourceType") != "Binary" or resource.get("contentType") != JSON_PATCH:
        raise InputError([Problem("Bundle.entry.resource", f"a PATCH needs a Binary of "
                                                           f"{JSON_PATCH}", "not-supported")])
    try:
        ops = json.loads(base64.b64decode(str(resource.get("data", ""))))
    except ValueError:
        ops = None
    if not isinstance(ops, list) or not all(isinstance(o, dict) for o in ops):
        raise InputError([Problem("Bundle.entry.resource.data", "is not a JSON Patch "
                                                                "(a list of operations)", "value")])
    return ops


def _parent(doc: Any, path: str) -> tuple[Any, str]:
    if not path.startswith("/"):
        raise InputError([Problem("patch.path", f"'{path}' is not a JSON pointer", "value")])
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def apply(resource: JSON, ops: list[JSON]) -> JSON:
    """``resource`` with ``ops`` applied (a copy): add, replace, remove, test.

    A failed ``test`` is an InputError ``conflict`` saying what was expected and what is
    there (a status, not patient data); a path that is not there, ``not-found``."""
    doc = copy.deepcopy(resource)
    for op in ops:
        kind, path = op.get("op"), str(op.get("path", ""))
        try:
            parent, key = _parent(doc, path)
            if kind == "test":
                found = parent[int(key)] if isinstance(parent, list) else parent.get(key)
                if found != op.get("value"):
                    raise InputError([Problem(path.lstrip("/"), f"is {json.dumps(found)} where "
                                              f"{json.dumps(op.get('value'))} was expected: it "
                                              "changed meanwhile, so this change is not applied",
                                              "conflict")])
            elif kind in ("add", "replace"):
                if isinstance(parent, list):
                    index = len(parent) if key == "-" else int(key)
                    if kind == "add":
                        parent.insert(index, op.get("value"))
                    else:
                        parent[index] = op.get("value")
                elif kind == "replace" and key not in parent:
                    raise KeyError(key)
                else:
                    parent[key] = op.get("value")
            elif kind == "remove":
                del parent[int(key) if isinstance(parent, list) else key]
            else:
                raise InputError([Problem("patch.op", f"'{kind}' is not supported",
                                          "not-supported")])
        except (KeyError, IndexError, ValueError, TypeError):
            raise InputError([Problem(path.lstrip("/"), "is not there to change",
                                      "not-found")]) from None
    return doc


def not_found(index: int, rtype: str) -> InputError:
    """The refusal of a PATCH whose resource the destination does not have."""
    return InputError([Problem(f"Bundle.entry[{index}].request.url", f"no {rtype} with this "
                               "identifier at the destination: a change to it (a reminder's "
                               "reply) is not written as a new one; held for review — replay "
                               "it once it is known", "not-found")])


def resolve(bundle: JSON, lookup: Lookup) -> JSON:
    """``bundle`` with each PATCH entry turned into ``PUT Type/id`` (``ifMatch`` the version
    read) of the current resource with the operations applied; InputError ``not-found``
    when nothing has the identifier (see the module docstring)."""
    if not any(is_patch(e) for e in bundle.get("entry") or []):
        return bundle
    out = []
    for i, entry in enumerate(bundle.get("entry") or []):
        if not is_patch(entry):
            out.append(entry)
            continue
        url = str(entry["request"].get("url", ""))
        rtype, _, query = url.partition("?")
        found = lookup(rtype, query) if query else None
        if found is None:
            raise not_found(i, rtype)
        current, version = found
        changed = apply(current, operations(entry.get("resource") or {}))
        request: JSON = {"method": "PUT", "url": f"{rtype}/{current['id']}"}
        if version:
            request["ifMatch"] = f'W/"{version}"'
        out.append({**entry, "resource": changed, "request": request})
    return {**bundle, "entry": out}
