"""Package exports that load on first use (PEP 562).

Every ``mafhir`` command imports the packages of every plugin at start-up; a package
``__init__`` that imports its modules eagerly makes ``mafhir --help`` load SQLAlchemy,
requests and the FHIR models. A package lists its public names with the module each lives
in, and :func:`exporter` gives it the module ``__getattr__`` that imports that module when
the name is first read (then keeps the value, so it is looked up once).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exporter"]


def exporter(package: str, namespace: dict[str, Any],
             exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``exports`` maps a name to its module (relative,
    like ``".store"``); ``namespace`` is the package's ``globals()``."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
