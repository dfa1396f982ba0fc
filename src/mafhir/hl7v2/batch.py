"""Files of many HL7 v2 messages: one message per MSH, batch envelopes taken apart.

Senders and archives keep messages many to a file — one after another, each starting at
its MSH; wrapped in a batch (FHS/BHS … BTS/FTS); still MLLP-framed; with LF, CR or CRLF
between segments. ``convert``, ``validate`` and ``hl7 send`` read them all in one process
(one process per message costs about 1.6 s of start-up each). Each message keeps its bytes;
only the segment terminator is written as the standard CR.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, Problem

__all__ = ["Split", "iter_messages", "split_messages"]

_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass(frozen=True)
class Split:
    """One message found in a file: its bytes, where it began (1-based line), and the
    batch counts the envelope declared (BTS-1), if any, for a check by the caller."""

    data: bytes
    line: int


def split_messages(data: bytes, label: str = "input") -> list[Split]:
    """The messages in ``data``, in order. Text before the first MSH that is not a batch
    header is an error naming its line (it would otherwise be lost); a batch whose trailer
    (BTS-1) counts a different number of messages than it holds is an error too."""
    data = data.removeprefix(b"\xef\xbb\xbf").replace(b"\x0b", b"").replace(b"\x1c", b"")
    lines = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    found: list[Split] = []
    current: list[bytes] = []
    start = 0
    in_batch = 0  # messages seen since the last BHS
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        head = line[:3]
        if head == b"MSH":
            if current:
                found.append(Split(b"\r".join(current) + b"\r", start))
            current, start = [line], n
            in_batch += 1
        elif head in _ENVELOPE:
            if current:
                found.append(Split(b"\r".join(current) + b"\r", start))
                current = []
            if head == b"BHS":
                in_batch = 0
            elif head == b"BTS":
                _check_count(line, in_batch, label, n)
        elif current:
            current.append(line)
        else:
            raise InputError([Problem(f"{label} line {n}", "text before the first MSH segment "
                                      "(not a message, not a batch header)", "structure")])
    if current:
        found.append(Split(b"\r".join(current) + b"\r", start))
    return found


def _check_count(line: bytes, seen: int, label: str, n: int) -> None:
    sep = line[3:4] or b"|"
    fields = line.split(sep)
    declared = fields[1].strip() if len(fields) > 1 else b""
    if declared.isdigit() and int(declared) != seen:
        raise InputError([Problem(f"{label} line {n} BTS-1", f"the batch says "
                                  f"{int(declared)} message(s) but holds {seen}", "value")])


def iter_messages(sources: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """``(label, message)`` for every message in ``sources``: files, folders (their files
    in name order, hidden ones skipped) and ``-`` for standard input. A label is
    ``FILE#N`` (N counts from 1 within the file), or ``FILE`` for a file of one."""
    for source in sources:
        if source == "-":
            yield from _labelled("stdin", sys.stdin.buffer.read())
            continue
        path = Path(source)
        if path.is_dir():
            for child in sorted(p for p in path.iterdir()
                                if p.is_file() and not p.name.startswith(".")):
                yield from _labelled(str(child), child.read_bytes())
        else:
            yield from _labelled(source, path.read_bytes())


def _labelled(label: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    parts = split_messages(data, label)
    if not parts:
        raise InputError([Problem(label, "holds no HL7 v2 message", "required")])
    for n, part in enumerate(parts, start=1):
        yield (label if len(parts) == 1 else f"{label}#{n}"), part.data
