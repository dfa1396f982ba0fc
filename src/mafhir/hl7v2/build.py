"""Writing HL7 v2 messages with python-hl7's containers, every value escaped on the way in.

A segment is written as a list ``[name, field1, field2, …]``; a field is ``None`` or ``""``
(empty), a ``str`` (one value), a ``tuple`` of components (each a ``str`` or a ``tuple``
of subcomponents), or a :class:`Reps` of such values. Values are plain text: escaping
happens here, once, so no caller can forget it or do it twice. Trailing empty fields and
components are dropped, as the standard asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import hl7

from .datatypes import format_dtm
from .escape import DEFAULT, Separators, escape

__all__ = ["Reps", "build_message", "msh"]

Field = Any  # str | tuple[...] | Reps | None


class Reps(list):
    """The repetitions of one field."""


def _seps_string(seps: Separators) -> str:
    return "\r" + seps.field + seps.repetition + seps.component + seps.subcomponent


def _trim(items: list[Any]) -> list[Any]:
    while items and (items[-1] is None or items[-1] == "" or items[-1] == ()):
        items.pop()
    return items


def _component(value: Any, seps: Separators, sstr: str) -> Any:
    if isinstance(value, tuple):
        subs = _trim([escape(str(s), seps) if s not in (None, "") else "" for s in value])
        return hl7.Component(seps.subcomponent, subs, esc=seps.escape, separators=sstr)
    return escape(str(value), seps) if value not in (None, "") else ""


def _repetition(value: Any, seps: Separators, sstr: str) -> Any:
    if isinstance(value, tuple):
        comps = _trim([_component(c, seps, sstr) for c in value])
        comps = [c if str(c) else "" for c in comps]
        return hl7.Repetition(seps.component, _trim(comps), esc=seps.escape, separators=sstr)
    return escape(str(value), seps) if value not in (None, "") else ""


def _field(value: Field, seps: Separators, sstr: str) -> hl7.Field:
    if isinstance(value, Reps):
        reps = [_repetition(v, seps, sstr) for v in value]
    elif value is None or value == "":
        reps = []
    else:
        reps = [_repetition(value, seps, sstr)]
    return hl7.Field(seps.repetition, _trim(reps), esc=seps.escape, separators=sstr)


def build_message(segments: Sequence[Sequence[Field]], seps: Separators = DEFAULT) -> str:
    """The message text, segments ended by CR (the MLLP payload)."""
    sstr = _seps_string(seps)
    out = []
    for seg in segments:
        name = str(seg[0])
        if name == "MSH":
            fields = [hl7.Field(seps.repetition, [name], separators=sstr),
                      hl7.Field(seps.repetition, [seps.field], separators=sstr),
                      hl7.Field(seps.repetition, [seps.encoding_characters], separators=sstr)]
            fields += [_field(f, seps, sstr) for f in seg[3:]]
        else:
            fields = [hl7.Field(seps.repetition, [name], separators=sstr)]
            fields += [_field(f, seps, sstr) for f in seg[1:]]
        while len(fields) > 1 and not str(fields[-1]):
            fields.pop()
        out.append(hl7.Segment(seps.field, fields, esc=seps.escape, separators=sstr))
    return str(hl7.Message("\r", out, esc=seps.escape, separators=sstr)).rstrip("\r") + "\r"


def msh(*, sending: tuple[str, str], receiving: tuple[str, str], at: datetime,
        message_type: tuple[str, str, str], control_id: str, version: str = "2.5.1",
        processing: str = "P", accept_ack: str = "", app_ack: str = "",
        charset: str = "UNICODE UTF-8", profile: Field = None) -> list[Field]:
    """An MSH segment as a list for :func:`build_message` (MSH-1/2 come from the separators)."""
    return ["MSH", None, None, (sending[0],), (sending[1],), (receiving[0],), (receiving[1],),
            format_dtm(at), None, message_type, control_id, (processing,), (version,), None,
            None, accept_ack, app_ack, None, charset, None, None, profile]
