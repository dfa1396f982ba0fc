"""One profile validator per preferred package, shared by the profile tests of a process:
building one reads and links every compiled package, which the mutation, invariant and
corpus suites need not repeat."""

from __future__ import annotations

from functools import cache

from mafhir.profiles import Validator


@cache
def validator(prefer: str | None = None) -> Validator:
    return Validator.default(prefer=prefer)
