"""Where the local store used to live: it is :mod:`mafhir.connectors.local` now (with the
other built-in connectors); this name keeps older imports working."""

from __future__ import annotations

from ..connectors.local import DEFAULT_STORE, LocalStore

__all__ = ["DEFAULT_STORE", "LocalStore"]
