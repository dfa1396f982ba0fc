"""JSON in and out: one object, a JSON list, or NDJSON read (streamed where possible),
and FHIR JSON written with its decimals exactly as given.

NDJSON is read line by line, so a file of 100,000 tasks is never held in memory whole.
FHIR decimals keep their precision (``13.40`` is not ``13.4``: the trailing zero says
what the lab measured), so mappers may put :class:`~decimal.Decimal` values in
resources; :func:`dumps` writes them digit for digit and :func:`loads` reads every
decimal back as a Decimal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

import orjson

from .errors import InputError, Problem

__all__ = ["dumps", "iter_documents", "json_default", "loads"]


def json_default(value: Any) -> Any:
    """orjson's fallback: a finite Decimal is written as its own digits (plain notation,
    or the exponent form when plain would run past 40 digits of zeros)."""
    if isinstance(value, Decimal) and value.is_finite():
        text = format(value, "f") if -40 < value.adjusted() < 40 else str(value)
        return orjson.Fragment(text.encode())
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(doc: Any, pretty: bool = False, sort_keys: bool = False) -> bytes:
    """FHIR JSON bytes: exactly the values built (Decimals digit for digit), keys in built
    order unless ``sort_keys``."""
    option = (orjson.OPT_INDENT_2 if pretty else 0) | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    return orjson.dumps(doc, default=json_default, option=option)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def loads(data: bytes | str) -> Any:
    """Parse JSON with every decimal as a :class:`~decimal.Decimal` (``13.40`` stays 13.40,
    whatever else the document holds); NaN and Infinity, which JSON does not have, are
    refused. Integers stay ints."""
    return json.loads(data, parse_float=Decimal, parse_constant=_not_json)


def _is_fhir(doc: Any) -> bool:
    return isinstance(doc, dict) and "resourceType" in doc


def _read(raw: bytes) -> Any:
    """One document: MA tasks as orjson reads them (floats, the fast path); a FHIR
    resource or Bundle read again with :func:`loads` so its decimals stay exact."""
    doc = orjson.loads(raw)
    if isinstance(doc, list) and any(_is_fhir(item) for item in doc):
        exact = loads(raw)
        return [e if _is_fhir(e) else d for d, e in zip(doc, exact, strict=True)]
    return loads(raw) if _is_fhir(doc) else doc


def iter_documents(stream: IO[bytes], label: str = "input") -> Iterator[tuple[int, Any]]:
    """Yield ``(index, document)`` from a JSON object, a JSON list or NDJSON.

    A line of NDJSON that is not JSON is yielded as an :class:`InputError` in place of
    its document, so the caller can quarantine it and go on with the rest. A FHIR
    resource or Bundle keeps its decimals exactly (what a file says, ``13.40``, is what
    goes out); an MA task gets plain floats, the numbers its models validate.
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
            doc = _read(stripped)
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
                    yield index, _read(line)
                except ValueError as exc:
                    yield index, InputError([Problem(f"{label} line {lineno}",
                                                     f"not valid JSON ({exc.args[0]})")])
            return
    rest = first + stream.read()
    try:
        doc = _read(rest)
    except ValueError as exc:
        why = f"not valid JSON, NDJSON or a JSON list ({exc.args[0]})"
        raise InputError([Problem(label, why)]) from None
    if isinstance(doc, list):
        yield from enumerate(doc)
    else:
        yield 0, doc
