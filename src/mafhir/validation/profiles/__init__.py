"""The built-in profile rules, registered as a plugin like any other.

Each module holds the rules of one family of profiles as ``PROFILES``.
"""

from __future__ import annotations

from collections.abc import Callable

from ...hookspecs import hookimpl
from ...registry import Profile
from . import common, coverage, encounter, immunization, observation, vitals

__all__ = ["register_profiles"]


@hookimpl
def register_profiles(register: Callable[[Profile], None]) -> None:
    for module in (common, observation, vitals, immunization, encounter, coverage):
        for profile in module.PROFILES:
            register(profile)
