"""Reading JSON documents: one object, a JSON list, or NDJSON — streamed where possible.

NDJSON is read line by line, so a file of 100,000 tasks is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import orjson

from .errors import InputError, Problem

__all__ = ["dumps", "iter_documents"]


def dumps(doc: Any, pretty: bool = False) -> bytes:
    """FHIR JSON bytes: exactly the values built, keys in built order."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 if pretty else 0)


def iter_documents(stream: IO[bytes], label: str = "input") -> Iterator[tuple[int, Any]]:
    """Yield ``(index, document)`` from a JSON object, a JSON list or NDJSON.

    A line of NDJSON that is not JSON is yielded as an :class:`InputError` in place of
    its document, so the caller can quarantine it and go on with the rest.
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
            doc = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):  # NDJSON (or a one-line object)
            yield 0, doc
            index = 0
            for lineno, line in enumerate(stream, start=2):
                if not line.strip():
                    continue
                index += 1
                try:
                    yield index, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield index, InputError([Problem(f"{label} line {lineno}",
                                                     f"not valid JSON ({exc.args[0]})")])
            return
    rest = first + stream.read()
    try:
        doc = orjson.loads(rest)
    except orjson.JSONDecodeError as exc:
        why = f"not valid JSON, NDJSON or a JSON list ({exc.args[0]})"
        raise InputError([Problem(label, why)]) from None
    if isinstance(doc, list):
        yield from enumerate(doc)
    else:
        yield 0, doc
