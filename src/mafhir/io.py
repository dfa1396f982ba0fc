"""JSON in and out: one object, a JSON list, or NDJSON read (streamed where possible),
and FHIR JSON written with its decimals exactly as given.

NDJSON is read line by line, so a file of 100,000 tasks is never held in memory whole.
FHIR decimals keep their precision (``13.40`` is not ``13.4``: the trailing zero says
what the lab measured), so mappers may put :class:`~decimal.Decimal` values in
resources; :func:`dumps` writes them digit for digit and :func:`loads` reads them back
as Decimals when the text has any whose float would lose digits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

import orjson

from .errors import InputError, Problem

__all__ = ["dumps", "iter_documents", "json_default", "loads"]


def json_default(value: Any) -> Any:
    """orjson's fallback: a finite Decimal is written as its own digits (plain notation)."""
    if isinstance(value, Decimal) and value.is_finite():
        return orjson.Fragment(format(value, "f").encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(doc: Any, pretty: bool = False, sort_keys: bool = False) -> bytes:
    """FHIR JSON bytes: exactly the values built (Decimals digit for digit), keys in built
    order unless ``sort_keys``."""
    option = (orjson.OPT_INDENT_2 if pretty else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(doc, default=json_default, option=option)


# A number a float would print differently: a trailing zero after the point, or an exponent.
_INEXACT = re.compile(rb"[0-9]\.[0-9]*0(?![0-9])|[0-9][eE][-+]?[0-9]")


def loads(data: bytes | str) -> Any:
    """Parse JSON; decimals whose float would lose digits come back as Decimals."""
    raw = data.encode() if isinstance(data, str) else data
    if _INEXACT.search(raw):
        return json.loads(raw, parse_float=Decimal)
    return orjson.loads(raw)


def iter_documents(stream: IO[bytes], label: str = "input") -> Iterator[tuple[int, Any]]:
    """Yield ``(index, document)`` from a JSON object, a JSON list or NDJSON.

    A line of NDJSON that is not JSON is yielded as an :class:`InputError` in place of
    its document, so the caller can quarantine it and go on with the rest. Decimals are
    read with :func:`loads`, so what a file says (``13.40``) is what goes out.
    """
    first = b""
    for line in stream:
        if line.strip():
            first = line
            break
    if not first:
        return
    stripped = first.strip()
    if stripped.startswith(b"{"):
        try:
            doc = loads(stripped)
        except ValueError:
            doc = None
        if isinstance(doc, dict):  # NDJSON (or a one-line object)
            yield 0, doc
            index = 0
            for lineno, line in enumerate(stream, start=2):
                if not line.strip():
                    continue
                index += 1
                try:
                    yield index, loads(line)
                except ValueError as exc:
                    yield index, InputError([Problem(f"{label} line {lineno}",
                                                     f"not valid JSON ({exc.args[0]})")])
            return
    rest = first + stream.read()
    try:
        doc = loads(rest)
    except ValueError as exc:
        why = f"not valid JSON, NDJSON or a JSON list ({exc.args[0]})"
        raise InputError([Problem(label, why)]) from None
    if isinstance(doc, list):
        yield from enumerate(doc)
    else:
        yield 0, doc
