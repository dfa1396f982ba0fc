"""The CDC CVX (vaccine) and MVX (manufacturer) tables shipped with mafhir.

The tables are CSV files under ``codes/data`` made by ``scripts/update_vaccine_codes.py``
from the AIRA/CDC code sets; each starts with ``#`` lines naming its sources. They are read
once, on first use, through :mod:`importlib.resources` so they work from a wheel or a zip.
Codes are strings: CVX "03" and "3" are different keys (leading zeros are significant).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal

__all__ = ["Manufacturer", "Vaccine", "cvx", "cvx_table", "mvx", "mvx_table"]

#: CDC status values. Only "Active" codes may be used for a dose given now.
Status = Literal["Active", "Inactive", "Never Active", "Non-US", "Pending"]


@dataclass(frozen=True, slots=True)
class Vaccine:
    """One CVX row: code, CDC status, CDC short description and full vaccine name."""

    code: str
    status: str
    short_description: str
    full_name: str

    @property
    def active(self) -> bool:
        return self.status == "Active"


@dataclass(frozen=True, slots=True)
class Manufacturer:
    """One MVX row: code, status (Active/Inactive) and manufacturer name."""

    code: str
    status: str
    name: str

    @property
    def active(self) -> bool:
        return self.status == "Active"


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("mafhir.codes").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))


@cache
def cvx_table() -> MappingProxyType[str, Vaccine]:
    """Every CVX code, read once."""
    return MappingProxyType({r["code"]: Vaccine(**r) for r in _rows("cvx.csv")})


@cache
def mvx_table() -> MappingProxyType[str, Manufacturer]:
    """Every MVX code, read once."""
    return MappingProxyType({r["code"]: Manufacturer(**r) for r in _rows("mvx.csv")})


def cvx(code: str) -> Vaccine | None:
    """The CVX row for ``code`` (exact string, e.g. "03"), or None when unknown."""
    return cvx_table().get(code.strip()) if isinstance(code, str) else None


def mvx(code: str) -> Manufacturer | None:
    """The MVX row for ``code`` (upper case, e.g. "PMC"), or None when unknown."""
    return mvx_table().get(code.strip().upper()) if isinstance(code, str) else None
