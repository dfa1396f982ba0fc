"""Helpers for writing profile rules over FHIR JSON dicts.

Rules are plain functions ``check(resource) -> Iterable[Issue]``; these helpers keep them
short and make every finding carry a FHIR path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .. import systems
from .issues import Issue

__all__ = [
    "codings",
    "error",
    "has_coding",
    "plausibility",
    "require",
    "require_coding",
    "select",
    "ucum_quantity",
    "warning",
]

JSON = dict[str, Any]


def error(expression: str, message: str, code: str = "required") -> Issue:
    return Issue("error", code, expression, message)


def warning(expression: str, message: str, code: str = "business-rule") -> Issue:
    return Issue("warning", code, expression, message)


def plausibility(expression: str, message: str) -> Issue:
    """A warning of mafhir's own: what the profiles allow but a clinic's data rarely
    should be. Named as such, so nobody mistakes it for a conformance rule."""
    return Issue("warning", "business-rule", expression, f"plausibility (mafhir): {message}")


def select(node: Any, path: str, base: str) -> Iterator[tuple[str, Any]]:
    """Every value at a dotted ``path`` under ``node``, with its indexed FHIR path.

    ``select(obs, "component.code", "Observation")`` yields
    ``("Observation.component[0].code", {...})`` and so on.
    """
    parts = path.split(".") if path else []
    frontier: list[tuple[str, Any]] = [(base, node)]
    for part in parts:
        nxt: list[tuple[str, Any]] = []
        for where, value in frontier:
            if not isinstance(value, dict) or part not in value:
                continue
            child = value[part]
            if isinstance(child, list):
                nxt.extend((f"{where}.{part}[{i}]", c) for i, c in enumerate(child))
            else:
                nxt.append((f"{where}.{part}", child))
        frontier = nxt
    yield from frontier


def require(resource: JSON, path: str, why: str = "") -> Iterator[Issue]:
    """An error when nothing is present at ``path``."""
    rtype = resource.get("resourceType", "Resource")
    if not any(v not in (None, "", [], {}) for _, v in select(resource, path, rtype)):
        yield error(f"{rtype}.{path}", f"is required{': ' + why if why else ''}")


def codings(concept: Any) -> list[JSON]:
    if not isinstance(concept, dict):
        return []
    found = concept.get("coding")  # a JSON null the models take as absent: none
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


def has_coding(concept: Any, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in codings(concept))


def require_coding(
    resource: JSON, path: str, system: str, code: str, why: str = ""
) -> Iterator[Issue]:
    """An error unless the CodeableConcept at ``path`` has the coding ``system|code``."""
    rtype = resource.get("resourceType", "Resource")
    found = list(select(resource, path, rtype))
    if not any(has_coding(v, system, code) for _, v in found):
        where = found[0][0] if found else f"{rtype}.{path}"
        yield error(where, f"must have the coding {system}|{code}{' (' + why + ')' if why else ''}",
                    code="value")


def ucum_quantity(q: Any, where: str, allowed: tuple[str, ...] | None = None) -> Iterator[Issue]:
    """A US Core vital quantity: value, unit, system (UCUM) and code all present."""
    if not isinstance(q, dict):
        yield error(where, "is required")
        return
    for key in ("value", "unit", "system", "code"):
        if q.get(key) in (None, ""):
            yield error(f"{where}.{key}", "is required")
    if q.get("system") not in (None, systems.UCUM):
        yield error(f"{where}.system", f"must be {systems.UCUM} (us-core-3)", code="value")
    if allowed and q.get("code") not in allowed:
        yield error(f"{where}.code", f"must be one of {', '.join(allowed)}", code="code-invalid")
