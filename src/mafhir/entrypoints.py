"""Installed plugins' entry points, read as ``importlib.metadata`` reads them, without it.

Why: importing ``importlib.metadata`` (it brings email, zipfile, csv and more) cost about a
sixth of ``mafhir --help``, to read a few ``entry_points.txt`` files. This reads the same
files the same way — each folder on ``sys.path``, in order, its ``*.dist-info`` and
``*.egg-info`` folders in listing order, the first distribution of a (normalized) name
winning — and ``importlib.metadata`` is used instead whenever ``sys.path`` holds anything
else (a zip file) or another finder can list distributions: then it answers, as before.
``tests/test_plugins_entrypoints.py`` compares both on this installation and on made-up ones.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import reduce
from typing import Any

__all__ = ["EntryPoint", "entry_points"]

#: importlib.metadata's ``EntryPoint.pattern``.
_PATTERN = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


@dataclass(frozen=True)
class EntryPoint:
    """One entry point: its name, its ``module:attr`` value, where its distribution is."""

    name: str
    value: str
    group: str
    dist_path: str | None = None
    #: for the fallback: the version importlib.metadata gave
    _version: str | None = None

    def load(self) -> Any:
        """The object the value names, imported (as ``importlib.metadata`` loads it)."""
        match = _PATTERN.match(self.value)
        if match is None:
            raise ValueError(f"entry point {self.name!r}: {self.value!r} names no object")
        module = importlib.import_module(match.group("module"))
        attrs = filter(None, (match.group("attr") or "").split("."))
        return reduce(getattr, attrs, module)

    @property
    def version(self) -> str | None:
        """The distribution's version (its metadata's ``Version:``), None if unknown."""
        if self.dist_path is None:
            return self._version
        for name in ("METADATA", "PKG-INFO"):
            try:
                with open(os.path.join(self.dist_path, name), encoding="utf-8") as fd:
                    for line in fd:
                        if not line.strip():
                            break  # the headers end at the first blank line
                        key, sep, value = line.partition(":")
                        if sep and key.strip().lower() == "version":
                            return value.strip()
            except OSError:
                continue
            return None
        return None


def _normalize(name: str) -> str:
    """importlib.metadata's ``Prepared.normalize``."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def _plain() -> bool:
    """Whether ``sys.path`` is only folders (or absent paths) and the standard path finder
    is the only one that lists distributions: the case read here."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder is not PathFinder:
            return False
    return not any(os.path.exists(p) and not os.path.isdir(p) for p in sys.path if p)


def _sections(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, name, value) of an ``entry_points.txt`` (importlib.metadata's reading)."""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        name, sep, value = line.partition("=")
        if not sep:  # importlib.metadata fails on it too (a TypeError there)
            raise ValueError(f"entry_points.txt: {line!r} is no 'name = value'")
        yield section, name.strip(), value.strip()


def _read(group: str) -> list[EntryPoint]:
    seen: set[str] = set()
    found = []
    for root in sys.path:
        try:
            children = os.listdir(root or ".")
        except OSError:
            continue
        for child in children:
            low = child.lower()
            if not low.endswith((".dist-info", ".egg-info")):
                continue
            name = _normalize(os.path.splitext(child)[0].partition("-")[0])
            if name in seen:
                continue
            seen.add(name)
            dist = os.path.join(root, child)
            try:
                with open(os.path.join(dist, "entry_points.txt"), encoding="utf-8") as fd:
                    text = fd.read()
            except OSError:
                continue
            found += [EntryPoint(n, v, g, dist) for g, n, v in _sections(text) if g == group]
    return found


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group`` of every installed distribution, in
    ``importlib.metadata.entry_points(group=…)``'s order."""
    if _plain():
        return _read(group)
    from importlib import metadata

    return [EntryPoint(ep.name, ep.value, ep.group, None,
                       ep.dist.version if ep.dist else None)
            for ep in metadata.entry_points(group=group)]
