"""Files of many HL7 v2 messages: one message per MSH, batch envelopes taken apart.

Senders and archives keep messages many to a file — one after another, each starting at
its MSH; wrapped in a batch (FHS/BHS … BTS/FTS); still MLLP-framed; with LF, CR or CRLF
between segments. ``convert`` and ``hl7 send`` read them all in one process (one process
per message costs about 1.6 s of start-up each).

The splitter reads a stream in pieces, so a message is handed on as soon as its end is
known (the next MSH, a batch segment, or the end of input) and memory holds one message,
not the file: ``cat archive.hl7 | mafhir convert --from hl7v2 -`` converts as it reads.
Each message keeps its bytes (:attr:`Split.original`, what ``convert`` parses, so a
one-message file converts exactly as before; files put together keep each its own UTF-8
byte order mark); :attr:`Split.data` has the segment
terminator written as the standard CR, for sending.
"""

from __future__ import annotations

import io
import itertools
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from ..errors import InputError, Problem
from ..io import iter_paths
from .charset import wide_charset

__all__ = ["Split", "Unsplit", "iter_messages", "iter_splits", "split_messages"]

_ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")
_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"\r\n|\r|\n")
#: Bytes read from a stream at a time (``read1``: whatever has arrived, up to this).
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Split:
    """One message found in a file: its segments CR-terminated (``data``), its bytes as
    they were in the file (``original``: line ends, a leading BOM), and the line (1-based)
    where it began."""

    data: bytes
    line: int
    original: bytes = b""


@dataclass(frozen=True)
class Unsplit:
    """What could not be taken as a message, in its place: text before the first MSH
    that is not a batch header, or a batch trailer (BTS-1) counting another number of
    messages than the batch held. The messages around it are not affected."""

    problem: Problem
    line: int


class _Splitter:
    """The state of one input: the message being gathered and the batch count. ``feed``
    each line (content, terminator); what it returns is finished."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.current: list[bytes] = []
        self.raw: list[bytes] = []
        self.start = 0
        self.in_batch = 0  # messages seen since the last BHS
        self.in_junk = False

    def _flush(self) -> list[Split | Unsplit]:
        if not self.current:
            return []
        done = Split(b"\r".join(self.current) + b"\r", self.start, b"".join(self.raw))
        self.current, self.raw = [], []
        return [done]

    def extend(self, raw: bytes) -> None:
        """More bytes of the last line's end (the LF of its CRLF)."""
        if self.raw:
            self.raw[-1] += raw

    def feed(self, n: int, line: bytes, raw: bytes) -> list[Split | Unsplit]:
        # a UTF-8 byte order mark opens a file, and files put together keep theirs: the
        # line is read without it, the message's own bytes keep it (its decoder checks it)
        line = line.removeprefix(_BOM)
        if not line.strip():
            if self.current:
                self.raw.append(raw)
            return []
        head = line[:3]
        if head == b"MSH":
            out = self._flush()
            self.current, self.raw, self.start = [line], [raw], n
            self.in_batch += 1
            self.in_junk = False
            return out
        if head in _ENVELOPE:
            out = self._flush()
            self.in_junk = False
            if head == b"BHS":
                self.in_batch = 0
            elif head == b"BTS":
                problem = _check_count(line, self.in_batch, self.label, n)
                if problem is not None:
                    out.append(Unsplit(problem, n))
            return out
        if self.current:
            self.current.append(line)
            self.raw.append(raw)
            return []
        if self.in_junk:  # one report for a run of lines that are not a message
            return []
        self.in_junk = True
        return [Unsplit(Problem(f"{self.label} line {n}", "text before the first MSH "
                                "segment (not a message, not a batch header)", "structure"), n)]


def _check_count(line: bytes, seen: int, label: str, n: int) -> Problem | None:
    sep = line[3:4] or b"|"
    fields = line.split(sep)
    declared = fields[1].strip() if len(fields) > 1 else b""
    if declared.isdigit() and int(declared) != seen:
        return Problem(f"{label} line {n} BTS-1", f"the batch says {int(declared)} "
                       f"message(s) but holds {seen}", "value")
    return None


def _lines(pieces: Iterable[bytes]) -> Iterator[tuple[bytes | None, bytes]]:
    """(content, content + terminator) of each line of a byte stream given in pieces;
    CR, LF and CRLF each end a line. A line ending in CR is given at once (a live stream
    must not wait for the next piece); when that CR was half of a CRLF, the LF comes
    next as ``(None, b"\\n")``: the same line's end, not a line."""
    carry: list[bytes] = []
    after_cr = False
    for piece in pieces:
        piece = piece.replace(b"\x0b", b"").replace(b"\x1c", b"")  # MLLP frame bytes
        if not piece:
            continue
        if after_cr and piece.startswith(b"\n"):
            yield None, b"\n"
            piece = piece[1:]
        if carry:
            piece = b"".join(carry) + piece
            carry = []
        pos = 0
        for m in _EOL.finditer(piece):
            yield piece[pos:m.start()], piece[pos:m.end()]
            pos = m.end()
        after_cr = pos == len(piece) and piece.endswith(b"\r")
        if pos < len(piece):
            carry.append(piece[pos:])
    rest = b"".join(carry)
    if rest:
        yield rest, rest


def _pieces(stream: IO[bytes]) -> Iterator[bytes]:
    read = getattr(stream, "read1", None) or stream.read
    while True:
        piece = read(CHUNK)
        if not piece:
            return
        yield piece


def iter_splits(stream: IO[bytes], label: str = "input") -> Iterator[Split | Unsplit]:
    """The messages of ``stream`` in order, each as soon as its end is known, with an
    :class:`Unsplit` in the place of what is not a message. A UTF-16/32 input (its
    bytes are no lines of ASCII) is taken whole as one message."""
    pieces = _pieces(stream)
    first = next(pieces, b"")
    while first and len(first) < 4:  # enough to see a byte order mark
        more = next(pieces, b"")
        if not more:
            break
        first += more
    if not first:
        return
    if wide_charset(first) is not None:
        whole = first + b"".join(pieces)
        yield Split(whole, 1, whole)
        return
    splitter = _Splitter(label)
    n = 0
    for line, raw in _lines(itertools.chain((first,), pieces)):
        if line is None:  # the LF of a CRLF that came apart between two reads
            splitter.extend(raw)
            continue
        n += 1
        yield from splitter.feed(n, line, raw)
    yield from splitter._flush()


def split_messages(data: bytes, label: str = "input") -> list[Split]:
    """The messages in ``data``, in order. Text before the first MSH that is not a batch
    header is an error naming its line (it would otherwise be lost); a batch whose trailer
    (BTS-1) counts a different number of messages than it holds is an error too."""
    found: list[Split] = []
    for item in iter_splits(io.BytesIO(data), label):
        if isinstance(item, Unsplit):
            raise InputError([item.problem])
        found.append(item)
    return found


def iter_messages(sources: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """``(label, message)`` for every message in ``sources``: files, folders (their files
    in name order, hidden ones skipped) and ``-`` for standard input. A label is
    ``FILE#N`` (N counts from 1 within the file), or ``FILE`` for a file of one."""
    for path in iter_paths(sources):
        if path == "-":
            yield from _labelled("stdin", sys.stdin.buffer.read())
        else:
            with open(path, "rb") as stream:
                yield from _labelled(path, stream.read())


def _labelled(label: str, data: bytes) -> Iterator[tuple[str, bytes]]:
    parts = split_messages(data, label)
    if not parts:
        raise InputError([Problem(label, "holds no HL7 v2 message", "required")])
    for n, part in enumerate(parts, start=1):
        yield (label if len(parts) == 1 else f"{label}#{n}"), part.data
