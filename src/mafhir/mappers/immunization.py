"""The immunization task kind (to be written)."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from ..registry import Mapper

__all__ = ["register_mappers"]


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    """Nothing yet."""
