"""Profile rules for immunization (to be written)."""

from __future__ import annotations

from ...registry import Profile

__all__ = ["PROFILES"]

PROFILES: list[Profile] = []
