"""FHIR pattern matching and simple path navigation over resource JSON."""

from __future__ import annotations

from typing import Any

__all__ = ["matches", "values_at"]


def matches(value: Any, pattern: Any) -> bool:
    """FHIR ``pattern[x]`` semantics: every value the pattern has is in ``value``; a
    list in the pattern needs each of its items matched by some item of the value."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            k in value and matches(value[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else [value]
        return all(any(matches(i, p) for i in items) for p in pattern)
    if isinstance(pattern, bool) or isinstance(value, bool):
        return value is pattern
    return bool(value == pattern)


def values_at(node: Any, path: str) -> list[Any]:
    """The values at a dotted ``path`` below ``node`` (lists flattened); ``$this`` is
    the node itself. Only plain element names are understood; anything else (a function
    call) gives None-free empty results for the caller to treat as "cannot tell"."""
    current = [node]
    if path in ("$this", ""):
        return current
    for name in path.split("."):
        nxt: list[Any] = []
        for item in current:
            if not isinstance(item, dict):
                continue
            value = item.get(name)
            if isinstance(value, list):
                nxt.extend(value)
            elif value is not None:
                nxt.append(value)
        current = nxt
    return current
