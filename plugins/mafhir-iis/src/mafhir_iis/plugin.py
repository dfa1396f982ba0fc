"""The iis plugin's hooks (filled in as its parts land)."""

from __future__ import annotations

from . import __version__

__all__ = ["__version__"]
