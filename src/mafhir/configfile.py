"""Where the project's settings file is: ``--config PATH``, else ``$MAFHIR_CONFIG``, else
``./mafhir.toml`` when it exists. One rule for every command and plugin, so that the clinic,
the destinations and the plugins' tables are always read from the same file."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CONFIG_ENV", "DEFAULT_CONFIG", "find_config"]

CONFIG_ENV = "MAFHIR_CONFIG"
DEFAULT_CONFIG = "mafhir.toml"


def find_config(path: str | None = None) -> Path | None:
    """``path``, else ``$MAFHIR_CONFIG``, else ``./mafhir.toml`` when it exists."""
    chosen = path or os.environ.get(CONFIG_ENV)
    if chosen:
        return Path(chosen)
    here = Path(DEFAULT_CONFIG)
    return here if here.exists() else None
