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
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import InputError, Problem
from .strictjson import BOM, is_fhir, location, parse

__all__ = ["dumps", "iter_documents", "iter_paths", "json_default", "loads", "read_json"]


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
    out = orjson.dumps(doc, default=json_default, option=option)
    # orjson (3.12+) hands back its write buffer without shrinking it: every result holds
    # at least 4 KiB whatever its length. The validation memos and the pipeline's cache
    # keep thousands of these texts (≈ 80 B each), so the waste was ~4 KiB an entry, tens
    # of MB of RSS per run. A copy of the exact length costs ~0.2 µs; a big text (a whole
    # Bundle, only ever passing through) is left as it is.
    return b"".join((out, b"")) if len(out) <= TRIM_BELOW else out


def kept(text: bytes) -> bytes:
    """``text`` (orjson's bytes) as a memo should hold it: copied to its exact length, so a
    remembered key does not keep orjson's ≥ 4 KiB write buffer alive (see :func:`dumps`).
    For memos that look keys up with orjson's bytes directly and store only on a miss."""
    return b"".join((text, b""))


#: Results of :func:`dumps` up to this length are copied to their exact size (see there).
TRIM_BELOW = 64 * 1024


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def loads(data: bytes | str) -> Any:
    """Parse JSON with every decimal as a :class:`~decimal.Decimal` (``13.40`` stays 13.40,
    whatever else the document holds); NaN and Infinity, which JSON does not have, are
    refused. Integers stay ints. For what mafhir wrote itself; input goes through
    :func:`iter_documents` or :func:`read_json`, which refuse what this would change."""
    return json.loads(data, parse_float=Decimal, parse_constant=_not_json)


def _root(doc: Any, index: int) -> str:
    """How a problem names its document: the task (``task[3]``) or the resource type."""
    if is_fhir(doc):
        return str(doc["resourceType"])
    return f"task[{index}]" if isinstance(doc, dict) else f"document[{index}]"


def _read(raw: bytes, index: int = 0) -> Any:
    """One document (an object or a list) as :func:`strictjson.parse` reads it.

    What it refuses comes back as an :class:`InputError` in the document's place, or, in a
    JSON list, in the place of each item at fault only: one bad task never stops the others.
    Raises ``ValueError`` for text that is not JSON.
    """
    doc, findings = parse(raw)
    if not findings:
        return doc
    if isinstance(doc, list) and all(f.path for f in findings):
        by_item: dict[int, list[Problem]] = {}
        for f in findings:
            i = int(f.path[0])
            by_item.setdefault(i, []).append(
                Problem(location(f.path[1:], _root(doc[i], i)), f.message, f.code))
        return [InputError(by_item[i]) if i in by_item else item for i, item in enumerate(doc)]
    return InputError([Problem(location(f.path, _root(doc, index)), f.message, f.code)
                       for f in findings])


def iter_documents(stream: IO[bytes], label: str = "input") -> Iterator[tuple[int, Any]]:
    """Yield ``(index, document)`` from a JSON object, a JSON list or NDJSON.

    A line of NDJSON that is not JSON, or a document (a list item) that must be refused —
    a key given twice, a number a float cannot keep, nesting past
    :data:`~mafhir.strictjson.MAX_DEPTH` — is yielded as an :class:`InputError` in place of
    its document, so the caller can quarantine it and go on with the rest. A FHIR resource
    or Bundle keeps its decimals exactly (what a file says, ``13.40``, is what goes out); an
    MA task gets plain floats, the numbers its models validate. A UTF-8 BOM at the start is
    skipped, as HL7 input's already is.
    """
    first = b""
    for line in stream:
        if line.strip():
            first = line
            break
    if not first:
        return
    stripped = first.strip().removeprefix(BOM).strip()
    if stripped.startswith(b"{"):
        try:
            doc = _read(stripped)
        except ValueError:
            doc = None
        if doc is not None:  # one whole object on the first line: NDJSON (or just it)
            yield 0, doc
            index = 0
            for lineno, line in enumerate(stream, start=2):
                if not line.strip():
                    continue
                index += 1
                try:
                    yield index, _read(line, index)
                except ValueError as exc:
                    yield index, InputError([Problem(f"{label} line {lineno}",
                                                     f"not valid JSON ({exc.args[0]})",
                                                     "structure")])
            return
    rest = first.lstrip().removeprefix(BOM) + stream.read()
    try:
        doc = _read(rest)
    except ValueError as exc:
        why = f"not valid JSON, NDJSON or a JSON list ({exc.args[0]})"
        raise InputError([Problem(label, why, "structure")]) from None
    if isinstance(doc, list):
        yield from enumerate(doc)
    else:
        yield 0, doc


def read_json(data: bytes, label: str) -> Any:
    """One JSON document (a settings file…) read strictly, or an :class:`InputError`
    naming ``label`` and the element at fault."""
    try:
        doc, findings = parse(data)
    except ValueError as exc:
        raise InputError([Problem(label, f"not valid JSON ({exc.args[0]})", "structure")]) \
            from None
    if findings:
        raise InputError([Problem(location(f.path, label), f.message, f.code)
                          for f in findings])
    return doc


def iter_paths(sources: Iterable[str]) -> Iterator[str]:
    """The inputs a command was given, folders opened: a folder stands for its files in
    name order (hidden ones and subfolders skipped); a file, or ``-`` for standard input,
    stands for itself. A folder with no file is an InputError naming it (an empty success
    would hide a wrong path)."""
    for source in sources:
        path = Path(source)
        if source != "-" and path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError([Problem(source, "the directory holds no file", "required")])
            yield from (str(p) for p in files)
        else:
            yield source
