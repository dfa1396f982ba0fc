"""Reading an HL7 v2 message: a fast split on its own delimiters, unescaped on access.

Messages arrive as they do in the wild: CR, LF or CRLF between segments, a UTF-8 BOM,
MLLP frame bytes left on, a line break inside a field of an LF-delimited file. All of
that is normalised here; what cannot be read raises :class:`~mafhir.errors.InputError`
whose problems name the segment and field (``MSH-2``, ``OBX[3]-5``), never the values.

Splitting the text ourselves runs 13–84× faster than python-hl7's parser, depending on
the message (measured by ``benchmarks/bench_hl7v2.py``); the tests check it against python-hl7's
parse of the same messages, field by field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InputError, Problem
from .charset import declared_codec, decode
from .escape import Separators, unescape

__all__ = [
    "ACK_CONDITIONS",
    "MAX_MESSAGE_BYTES",
    "SUPPORTED_VERSIONS",
    "Message",
    "Segment",
    "Value",
    "check_header",
    "decode",
    "parse",
]

#: Messages larger than this are refused (a lab result with images can be a few MB);
#: the listener takes another limit with ``--max-bytes``.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: Acknowledgment conditions of MSH-15/16 (HL7 table 0155).
ACK_CONDITIONS = ("AL", "NE", "ER", "SU")
#: HL7 v2 versions whose MSH, OBR/OBX and ACK layout mafhir reads the same way.
SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8",
                      "2.8.1", "2.8.2", "2.9")

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")


class Value:
    """One repetition of a field: components and subcomponents, unescaped on access."""

    __slots__ = ("_parts", "raw", "seps")

    def __init__(self, raw: str, seps: Separators) -> None:
        self.raw = raw
        self.seps = seps
        self._parts: list[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __repr__(self) -> str:  # never the value itself: it may be patient data
        return f"<Value {len(self.raw)} chars>"

    @property
    def components(self) -> list[str]:
        if self._parts is None:
            self._parts = self.raw.split(self.seps.component)
        return self._parts

    def c(self, index: int, sub: int = 1) -> str:
        """Component ``index`` (1-based), subcomponent ``sub``, unescaped ('' when absent)."""
        parts = self.components
        if index > len(parts):
            return ""
        part = parts[index - 1]
        if self.seps.subcomponent in part:
            subs = part.split(self.seps.subcomponent)
            part = subs[sub - 1] if sub <= len(subs) else ""
        elif sub > 1:
            return ""
        return unescape(part, self.seps) if self.seps.escape in part else part

    def subs(self, index: int) -> list[str]:
        """Every subcomponent of component ``index``, unescaped."""
        parts = self.components
        if index > len(parts):
            return []
        return [unescape(s, self.seps) for s in parts[index - 1].split(self.seps.subcomponent)]

    def text(self) -> str:
        """The whole value unescaped, components kept apart by the component separator."""
        if self.seps.escape not in self.raw:
            return self.raw
        return self.seps.component.join(
            self.seps.subcomponent.join(unescape(s, self.seps)
                                        for s in part.split(self.seps.subcomponent))
            for part in self.components)


_EMPTY = Value("", Separators())


@dataclass(slots=True)
class Segment:
    """One segment; ``fields[n]`` is field *n* (for MSH, ``fields[1]`` is MSH-1)."""

    name: str
    fields: list[str]
    seps: Separators
    occurrence: int = 1  # 1-based count among segments of the same name
    position: int = 1  # 1-based position in the message

    def where(self, field: int | None = None, component: int | None = None) -> str:
        """A location naming this segment (and field): ``OBX[3]-5`` or ``OBX[3]-5.2``."""
        out = self.name if self.occurrence == 1 and self.name == "MSH" else \
            f"{self.name}[{self.occurrence}]"
        if field is not None:
            out += f"-{field}"
            if component is not None:
                out += f".{component}"
        return out

    def raw(self, n: int) -> str:
        """Field ``n`` as written (escaped, all repetitions)."""
        return self.fields[n] if n < len(self.fields) else ""

    def reps(self, n: int) -> list[Value]:
        """The non-empty repetitions of field ``n``."""
        raw = self.raw(n)
        if not raw:
            return []
        if self.name == "MSH" and n in (1, 2):
            return [Value(raw, self.seps)]
        return [Value(r, self.seps) for r in raw.split(self.seps.repetition) if r]

    def v(self, n: int, rep: int = 1) -> Value:
        """Repetition ``rep`` of field ``n`` (an empty Value when absent)."""
        raw = self.raw(n)
        if not raw:
            return _EMPTY
        if self.name == "MSH" and n in (1, 2):
            return Value(raw, Separators())
        if self.seps.repetition in raw:
            parts = raw.split(self.seps.repetition)
            return Value(parts[rep - 1], self.seps) if rep <= len(parts) else _EMPTY
        return Value(raw, self.seps) if rep == 1 else _EMPTY

    def get(self, n: int, component: int = 1, sub: int = 1, rep: int = 1) -> str:
        """Field ``n``, component, subcomponent and repetition (1-based), unescaped."""
        raw = self.raw(n)
        if not raw:
            return ""
        if self.name == "MSH" and n in (1, 2):
            return raw
        return self.v(n, rep).c(component, sub)

    def text(self, n: int) -> str:
        """The first repetition of field ``n`` unescaped, components included."""
        return self.v(n).text()


class Message:
    """A parsed message: its delimiters and segments."""

    __slots__ = ("_by_name", "segments", "seps", "text")

    def __init__(self, text: str, seps: Separators, segments: list[Segment]) -> None:
        self.text = text
        self.seps = seps
        self.segments = segments
        self._by_name: dict[str, list[Segment]] = {}
        for seg in segments:
            self._by_name.setdefault(seg.name, []).append(seg)

    def __repr__(self) -> str:
        return f"<Message {self.type or '?'} {len(self.segments)} segments>"

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        return self._by_name.get(name, [])

    def first(self, name: str) -> Segment | None:
        found = self._by_name.get(name)
        return found[0] if found else None

    @property
    def type(self) -> str:
        """MSH-9 as ``CODE^TRIGGER`` (``ORU^R01``); the structure (MSH-9.3) is left off."""
        code, trigger = self.msh.get(9, 1), self.msh.get(9, 2)
        return f"{code}^{trigger}" if trigger else code

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def version(self) -> str:
        return self.msh.get(12)

    @property
    def sender(self) -> str:
        """Sending application and facility, each whole as written (MSH-3 and MSH-4 with
        all their components): the namespace of MSH-10. ``LABSYS^A`` and ``LABSYS^B`` are
        two senders, so their control ids never collide."""
        return f"{self.msh.raw(3)}|{self.msh.raw(4)}"

    @property
    def sender_name(self) -> str:
        """Sending application and facility by their first components (``MSH-3.1|MSH-4.1``):
        how configuration names a sender (``--sender-tz``, ``--namespace``, ``--set``) and
        the stable, readable part of identifiers made from a message. Not a duplicate key:
        :attr:`sender` is (the whole fields)."""
        return f"{self.msh.get(3)}|{self.msh.get(4)}"

    @property
    def control_key(self) -> str:
        """MSH-10 whole as written (``A^1`` and ``A^2`` are two ids): the duplicate key."""
        return self.msh.raw(10)

    @property
    def accept_ack_type(self) -> str:
        """MSH-15 as a table-0155 code, '' when absent, blank, ``""`` or unknown (the
        default applies); the case is not significant (``al`` is ``AL``)."""
        return _condition(self.msh.raw(15))

    @property
    def app_ack_type(self) -> str:
        """MSH-16 read like :attr:`accept_ack_type`."""
        return _condition(self.msh.raw(16))

    @property
    def enhanced_mode(self) -> bool:
        """Enhanced acknowledgment mode: MSH-15 or MSH-16 is valued (2.5.1 §2.9.3)."""
        return bool(self.accept_ack_type or self.app_ack_type)

    def groups(self, starts: tuple[str, ...], within: tuple[str, ...] | None = None
               ) -> Iterator[list[Segment]]:
        """Runs of segments, each beginning at a segment named in ``starts``.

        A segment named in ``within`` opens no new group when the current group began
        with another start and has no segment of its name yet (so ``ORC`` … ``OBR`` form
        one order group, and the next ``OBR`` opens the next).
        """
        group: list[Segment] = []
        for seg in self.segments[1:]:
            if seg.name in starts:
                joins = (within is not None and bool(group) and seg.name in within
                         and group[0].name != seg.name
                         and all(s.name != seg.name for s in group))
                if group and not joins:
                    yield group
                    group = []
                group.append(seg)
            elif group:
                group.append(seg)
        if group:
            yield group


def _condition(raw: str) -> str:
    value = raw.strip().upper()
    return value if value in ACK_CONDITIONS else ""


def parse(data: bytes | str, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Parse one message. Raises InputError naming the segment and field on bad structure."""
    if len(data) > max_bytes:
        raise InputError([Problem("message", f"is larger than the {max_bytes}-byte limit",
                                  "too-long")])
    text = decode(data) if isinstance(data, bytes) else data
    text = text.lstrip("\ufeff\x0b \t\r\n").rstrip("\x1c\r\n \t")
    if not text:
        raise InputError([Problem("MSH", "the message is empty", "required")])
    if not text.startswith("MSH"):
        if text[:3] in ("FHS", "BHS"):
            raise InputError([Problem(text[:3], "batches (FHS/BHS) are not accepted; send "
                                                "one message at a time", "not-supported")])
        raise InputError([Problem("MSH", "the message does not start with an MSH segment",
                                   "structure")])
    if len(text) < 4 or text[3] in "\r\n":
        raise InputError([Problem("MSH-1", "the field separator is missing", "required")])
    fsep = text[3]
    end = text.find(fsep, 4)
    enc = text[4:end] if end > 0 else text[4:].split("\r", 1)[0].split("\n", 1)[0]
    if len(enc) < 4 or len(enc) > 5 or len(set(enc + fsep)) != len(enc) + 1 \
            or any(ch.isalnum() or ch in "\r\n " for ch in enc + fsep):
        raise InputError([Problem("MSH-2", "the encoding characters are missing or invalid "
                                           "(expected four distinct delimiters such as ^~\\&)",
                                   "value")])
    seps = Separators(fsep, enc[0], enc[1], enc[2], enc[3], enc[4] if len(enc) > 4 else "",
                      declared_codec(data) if isinstance(data, bytes) else "")
    lf_only = "\r" not in text
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    raw_segments: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if (len(line) >= 3 and _SEGMENT_ID.fullmatch(line[:3])
                and (len(line) == 3 or line[3] == fsep)):
            raw_segments.append(line)
        elif lf_only and raw_segments:
            # an LF-delimited file broke a field across lines: the line continues it
            raw_segments[-1] += " " + line
        else:
            raise InputError([Problem(f"segment {len(raw_segments) + 1}",
                                      "is not a segment (expected a 3-character segment id "
                                      "followed by the field separator)", "structure")])
    segments: list[Segment] = []
    counts: dict[str, int] = {}
    for pos, line in enumerate(raw_segments, start=1):
        name = line[:3]
        counts[name] = counts.get(name, 0) + 1
        parts = line.split(fsep)
        if name == "MSH":
            if pos != 1:
                raise InputError([Problem(f"MSH[{counts[name]}]", "a second MSH segment: send "
                                                                 "one message at a time",
                                          "structure")])
            fields = ["MSH", fsep, *parts[1:]]
        else:
            fields = parts
        segments.append(Segment(name, fields, seps, counts[name], pos))
    return Message(text, seps, segments)


def check_header(msg: Message, versions: tuple[str, ...] = SUPPORTED_VERSIONS) -> list[Problem]:
    """What keeps a message from being processed at all: MSH-9, MSH-10, MSH-12."""
    problems = []
    if not msg.msh.get(9):
        problems.append(Problem("MSH-9", "the message type is missing", "required"))
    elif not msg.msh.get(9, 2) and msg.msh.get(9) != "ACK":
        problems.append(Problem("MSH-9.2", "the trigger event is missing", "required"))
    if not msg.control_id:
        problems.append(Problem("MSH-10", "the message control id is missing",
                                "required"))
    if not msg.version:
        problems.append(Problem("MSH-12", "the version id is missing", "required"))
    elif msg.version not in versions:
        problems.append(Problem("MSH-12", f"version {msg.version} is not supported "
                                          f"({versions[0]}–{versions[-1]})", "not-supported"))
    return problems
