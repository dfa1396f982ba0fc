"""``mafhir convert --from hl7v2`` over many messages in one process.

One process per message pays the interpreter and mafhir's start-up every time (1,000 ORU
messages: ≈1,640 CPU-s as separate runs, ≈9 CPU-s in one). Here every message of every
input — files of many (split at MSH, batches taken apart), folders, standard input as it
arrives — is converted and checked on its own: a bad message is reported in its place
and never stops the others.

Each message gets a :class:`Result`: where it was (its 1-based index over all inputs and
its file), its MSH-9 and MSH-10 — names of systems and ids, never a field of the
patient's — and what became of it: ``processed`` (the Bundle, and the gaps it was kept
despite), ``error``, ``review`` (a business rule of the clinic's) or ``rejected`` (not a
readable message, or a type no converter takes).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

from ..errors import InputError, Problem
from ..io import dumps, iter_paths
from .batch import Split, Unsplit, iter_splits
from .convert import ConvertHandler
from .message import parse

__all__ = ["Result", "convert_each", "iter_inputs", "output_name", "result_line"]

JSON = dict[str, Any]

#: What a result line says of each status.
VERDICT = {"processed": "ok", "error": "error", "review": "review", "rejected": "rejected"}


@dataclass(frozen=True)
class Result:
    """What became of one message (see the module's doc)."""

    index: int
    label: str
    type: str
    control_id: str
    status: str
    bundle: JSON | None = None
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "processed"


def iter_inputs(sources: Iterable[str]) -> Iterator[tuple[str, Split | Unsplit]]:
    """``(label, item)`` for every message of ``sources`` (files, folders in name order,
    ``-`` for standard input, read as it arrives); a source without any message gives an
    :class:`Unsplit` saying so, in its place."""
    for path in iter_paths(sources):
        if path == "-":
            yield from _labelled("stdin", sys.stdin.buffer)
            continue
        with open(path, "rb") as stream:
            yield from _labelled(path, stream)


def _labelled(label: str, stream: IO[bytes]) -> Iterator[tuple[str, Split | Unsplit]]:
    n = 0
    for item in iter_splits(stream, label):
        if isinstance(item, Split):
            n += 1
            yield f"{label}#{n}", item
        else:
            yield label, item
    if n == 0:
        yield label, Unsplit(Problem(label, "holds no HL7 v2 message", "required"), 0)


def _header(data: bytes) -> tuple[str, str]:
    """MSH-9 (``CODE^TRIGGER``) and MSH-10 read from the first line's bytes, for naming a
    message that could not be parsed; '' for what is not there."""
    line = data.split(b"\r", 1)[0]
    if not line.startswith(b"MSH") or len(line) < 4:
        return "", ""
    fields = line.split(line[3:4])
    comp = fields[1][:1] if len(fields) > 1 and fields[1] else b"^"

    def text(n: int) -> str:
        return fields[n].decode("ascii", "replace") if len(fields) > n else ""

    kind = "^".join(text(8).split(comp.decode("ascii", "replace"))[:2])
    return kind, text(9)


def convert_each(handler: ConvertHandler, items: Iterable[tuple[str, Split | Unsplit]]
                 ) -> Iterator[Result]:
    """Each item converted and checked by ``handler`` (:meth:`ConvertHandler.checked`),
    in order, one :class:`Result` each."""
    for index, (label, item) in enumerate(items, start=1):
        if isinstance(item, Unsplit):
            yield Result(index, label, "", "", "rejected", problems=(item.problem,))
            continue
        try:
            msg = parse(item.original)
        except InputError as exc:
            kind, control = _header(item.data)
            yield Result(index, label, kind, control, "rejected", problems=exc.problems)
            continue
        outcome = handler.checked(msg)
        ok = outcome.status == "processed"
        yield Result(index, label, msg.type, msg.msh.raw(10), outcome.status,
                     cast(JSON, outcome.result) if ok else None,
                     outcome.problems, outcome.warnings)


def result_line(result: Result) -> str:
    """One line for a message: index, file, MSH-9, MSH-10 and the verdict with its
    reasons (locations and reasons only: a Problem never quotes a value)."""
    head = (f"#{result.index} {result.label} {result.type or '?'} "
            f"{result.control_id or '?'}: {VERDICT.get(result.status, result.status)}")
    if result.problems:
        head += ": " + "; ".join(map(str, result.problems))
    if result.warnings:  # a refusal's are its problems; these are a kept Bundle's gaps
        head += (f", {len(result.warnings)} warning(s): "
                 + "; ".join(map(str, result.warnings)))
    return head


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def output_name(result: Result) -> str:
    """The file a message's Bundle is written to under ``--out``: its order, then its
    control id made safe for a file name (``000012-MSG00012.json``)."""
    control = _UNSAFE.sub("_", result.control_id).strip("._") or "no-control-id"
    return f"{result.index:06d}-{control[:64]}.json"


def write_bundle(folder: Path, result: Result) -> Path:
    """``result``'s Bundle in ``folder`` (written whole or not at all)."""
    target = folder / output_name(result)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(dumps(result.bundle, pretty=True) + b"\n")
    os.replace(tmp, target)
    return target
