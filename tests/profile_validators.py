"""One profile validator per preferred package, for the whole test process.

The engine caches each element's allowed JSON keys by ``id(elem)`` (``engine._ALLOWED``); once a
validator is freed, its ids are reused by the next validator's elements and the stale entries
answer wrongly ("meta is not an element of Location"). Until the engine keeps that cache on the
element (reported to its author), the profile tests build each validator once, never free it,
and start it from an empty cache.
"""

from __future__ import annotations

from functools import cache

from mafhir.profiles import Validator, engine


@cache
def validator(prefer: str | None = None) -> Validator:
    stale = getattr(engine, "_ALLOWED", None)
    if isinstance(stale, dict):
        stale.clear()
    return Validator.default(prefer=prefer)
