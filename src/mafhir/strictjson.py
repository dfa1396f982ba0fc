"""One JSON document read strictly: what a parser would change silently is refused instead.

JSON parsers keep the last of two equal keys (a heart rate of 78 becomes 250), round a
number to the nearest float (``212.000000000000001`` becomes ``212.0``), and recurse
until the stack gives out. Input from the clinic must not be changed without a word, so
:func:`parse` reports each of these as a :class:`Finding` with the path of the element
(the key, never the value) and lets the caller refuse the document or the task.

It keeps orjson's speed for the common case: a document is re-read with the exact
(slow) parser only when a cheap test on the raw bytes says it might need it — more
``"…":`` key marks than keys parsed (a duplicate; a string holding ``":`` is a false
alarm, never a miss), or a number with more digits than a float holds (16 or more, or a
three-digit exponent).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

__all__ = ["BOM", "MAX_DEPTH", "Finding", "exact_float", "is_fhir", "location", "parse"]

BOM = b"\xef\xbb\xbf"

#: Deepest nesting accepted: far beyond any task or FHIR resource, and well inside what
#: orjson writes (254) and Python's json reads without running out of stack.
MAX_DEPTH = 100

_KEY_MARK = re.compile(rb'"\s*:')
_SPACED_KEY_MARK = re.compile(rb'"\s+:')
#: digits and points as "0", exponent marks as "e" and signs as "-": a run of 16 zeros is
#: a number a float may not keep (it holds 15 significant digits for sure) unless a quote
#: opens it (a string of digits, a card number); "0e000" or "0e-000" is an exponent of three
#: digits, beyond a float's range or below it (1e-400 reads as 0.0)
_DIGITS = bytes.maketrans(b"123456789.E+", b"0000000000e-")
_LONG_RUN = b"0" * 16

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """Why an element of a document is refused: where (a path), why, and its code."""

    path: Path
    message: str
    code: str


class _Duplicated(dict):
    """An object whose text repeats keys (``repeated`` names them)."""

    repeated: list[str]


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    marked = _Duplicated(obj)
    marked.repeated = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return marked


def is_fhir(doc: Any) -> bool:
    """A FHIR resource or Bundle (its decimals are kept exactly, as Decimals)."""
    return isinstance(doc, dict) and "resourceType" in doc


class _TooDeep(Exception):
    pass


def _keys(node: Any, depth: int) -> int:
    """How many keys the objects under ``node`` hold; :class:`_TooDeep` past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise _TooDeep
    count = 0
    for child in node.values() if type(node) is dict else node:
        kind = type(child)
        if kind is dict:
            count += len(child) + _keys(child, depth + 1)
        elif kind is list:
            count += _keys(child, depth + 1)
    return count


def _key_marks(raw: bytes) -> int:
    """How many ``"…":`` marks the text holds (every key makes one)."""
    if _SPACED_KEY_MARK.search(raw):
        return len(_KEY_MARK.findall(raw))
    return raw.count(b'":')


def _maybe_inexact(raw: bytes) -> bool:
    """Whether a number in ``raw`` may have more digits than a float keeps (false alarms
    allowed, misses not)."""
    digits = raw.translate(_DIGITS)
    if b"0e000" in digits or b"0e-000" in digits:
        return True
    at = digits.find(_LONG_RUN)
    while at >= 0:
        start = at
        while start > 0 and digits[start - 1] == 0x30:  # back to where the run begins
            start -= 1
        if start == 0 or raw[start - 1] != 0x22:  # not opened by a quote: maybe a number
            return True
        at = digits.find(_LONG_RUN, at + len(_LONG_RUN))
    return False


def _depth(doc: Any) -> int:
    """The nesting depth of a parsed document (only asked when it is too deep)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return deepest


def exact_float(value: Decimal) -> float | None:
    """The float that is ``value`` exactly as written (digit for digit), else None."""
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number if Decimal(repr(number)) == value else None


def _review(doc: Any, keep_decimals: bool) -> tuple[Any, list[Finding]]:
    """The exactly read document with its findings; Decimals become floats unless
    ``keep_decimals`` (then only repeated keys are findings)."""
    findings: list[Finding] = []

    def visit(node: Any, path: Path) -> Any:
        if isinstance(node, dict):
            for key in getattr(node, "repeated", ()):
                findings.append(Finding(
                    (*path, key), "appears more than once in one object; which one was "
                    "meant cannot be known, so neither is taken", "structure"))
            return {k: visit(v, (*path, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [visit(v, (*path, i)) for i, v in enumerate(node)]
        if isinstance(node, Decimal) and not keep_decimals:
            number = exact_float(node)
            if number is None:
                findings.append(Finding(path, "has more digits (or a larger exponent) than "
                                        "a number here can keep exactly; write it with at "
                                        "most 15 significant digits", "value"))
                return node
            return number
        return node

    return visit(doc, ()), findings


def parse(raw: bytes) -> tuple[Any, list[Finding]]:
    """A JSON document and what in it must be refused.

    MA tasks get floats (orjson's fast path); a FHIR resource or Bundle (and a list with
    one) keeps every decimal as a :class:`~decimal.Decimal`. Raises ``ValueError`` for text
    that is not JSON. A leading UTF-8 BOM is skipped.
    """
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    doc = orjson.loads(raw)
    if not isinstance(doc, (dict, list)):
        return doc, []
    try:
        keys = (len(doc) if type(doc) is dict else 0) + _keys(doc, 1)
    except _TooDeep:
        return doc, [Finding((), f"is nested {_depth(doc)} levels deep; at most {MAX_DEPTH} "
                              "are read", "too-long")]
    fhir = is_fhir(doc) or (isinstance(doc, list) and any(is_fhir(d) for d in doc))
    unique = keys == _key_marks(raw)
    if unique and not fhir and not _maybe_inexact(raw):
        return doc, []  # the common case: orjson's reading is exactly the text
    if unique:
        exact = json.loads(raw, parse_float=Decimal, parse_constant=_not_json)
    else:
        exact = json.loads(raw, parse_float=Decimal, parse_constant=_not_json,
                           object_pairs_hook=_pairs)
    if isinstance(doc, list) and fhir:  # tasks beside FHIR in one list: floats for tasks
        out = []
        findings: list[Finding] = []
        for i, item in enumerate(exact):
            kept, found = _review(item, keep_decimals=is_fhir(item))
            out.append(kept)
            findings += [Finding((i, *f.path), f.message, f.code) for f in found]
        return out, findings
    return _review(exact, keep_decimals=fhir)


def location(path: Path, root: str) -> str:
    """``root`` and the path as the pipeline writes it: ``task[3].heart_rate.value``."""
    out = root
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
