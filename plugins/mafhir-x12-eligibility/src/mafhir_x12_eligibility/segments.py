"""A small, strict X12 segment layer: read and write interchanges, nothing about meaning.

The separators are never assumed: the ISA header is fixed width (106 characters), so its
4th character is the element separator, ISA11 (5010) the repetition separator, ISA16 the
component separator and the character after ISA16 the segment terminator. A reader that
assumed ``*`` and ``~`` would split a payer's file at the wrong places and quote garbage
as member ids. Line breaks after a terminator (``~\\n``) are tolerated, as every
clearinghouse writes them. Problems are :class:`mafhir.errors.InputError` located as
``ISA-16`` or ``SEG[n]`` (n counts segments from 1, ISA included) with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from mafhir.errors import InputError, Problem

__all__ = ["ISA_LENGTH", "Delimiters", "Interchange", "Segment", "Transaction",
           "build_segment", "iter_loops", "parse_interchange", "read_segments"]

#: The ISA segment is fixed width: 106 characters including its terminator.
ISA_LENGTH = 106
# Start of each ISA element (ISA01…ISA16) in the fixed-width header, after "ISA" + separator.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four separators of one interchange (from its ISA)."""

    element: str = "*"
    component: str = ":"
    repetition: str = "^"
    segment: str = "~"

    def check(self) -> None:
        """Four distinct separators that cannot occur inside a value we write."""
        chars = (self.element, self.component, self.repetition, self.segment)
        if len(set(chars)) != 4 or any(len(c) != 1 or c.isalnum() or c == " " for c in chars):
            raise InputError([Problem("ISA", "the separators must be four distinct "
                                             "non-alphanumeric characters", "structure")])


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment: its id and elements (``elements[0]`` is element 01)."""

    id: str
    elements: tuple[str, ...]
    position: int = 0  # 1-based within the interchange (ISA = 1); 0 when built

    def get(self, n: int, component: int = 0, delimiters: Delimiters | None = None) -> str:
        """Element ``n`` (1-based), or its ``component`` (1-based) when asked; '' if absent."""
        value = self.elements[n - 1] if 0 < n <= len(self.elements) else ""
        if component:
            parts = value.split((delimiters or Delimiters()).component)
            return parts[component - 1] if component <= len(parts) else ""
        return value

    @property
    def where(self) -> str:
        return f"SEG[{self.position}] {self.id}"


@dataclass(slots=True)
class Transaction:
    """One ST…SE transaction set with its group's and interchange's control data."""

    code: str  # ST01: 270, 271, 999…
    control: str  # ST02
    version: str  # ST03, else GS08
    segments: list[Segment] = field(default_factory=list)  # between ST and SE


@dataclass(slots=True)
class Interchange:
    """One ISA…IEA envelope: its header values, groups' transactions and loose TA1s."""

    delimiters: Delimiters
    isa: Segment
    gs: list[Segment] = field(default_factory=list)
    transactions: list[Transaction] = field(default_factory=list)
    ta1: list[Segment] = field(default_factory=list)
    #: Envelope counts and control numbers that disagree (kept, not fatal: payers'
    #: files get them wrong and the content is still readable; an ack would name them).
    warnings: list[Problem] = field(default_factory=list)

    @property
    def control(self) -> str:
        return self.isa.get(13)

    @property
    def sender(self) -> str:
        return self.isa.get(6).strip()

    @property
    def receiver(self) -> str:
        return self.isa.get(8).strip()


def _delimiters(text: str) -> Delimiters:
    if not text.startswith("ISA"):
        raise InputError([Problem("SEG[1]", "an X12 interchange starts with the ISA segment",
                                  "structure")])
    if len(text) < ISA_LENGTH:
        raise InputError([Problem("ISA", f"the ISA header is {ISA_LENGTH} characters long; "
                                         f"the text has {len(text)}", "structure")])
    element = text[3]
    # walk the fixed widths: every ISA element is where the standard says it is
    pos = 4
    for n, width in enumerate(_ISA_WIDTHS, start=1):
        end = pos + width
        if n < 16 and text[end] != element:
            raise InputError([Problem(f"ISA-{n:02d}", f"is not {width} characters wide (the "
                                      "ISA header is fixed width)", "structure")])
        pos = end + 1
    repetition = text[82]
    # 4010 has no repetition separator there (ISA11 is "U"), and 5010 files in the wild
    # keep the "U": a letter is not a separator
    delims = Delimiters(element=element, component=text[104],
                        repetition=repetition if not repetition.isalnum() else "\x1f",
                        segment=text[105])
    delims.check()
    return delims


def read_segments(text: str) -> tuple[Delimiters, list[Segment]]:
    """All segments of ``text`` with the separators its ISA declares."""
    text = text.lstrip("\ufeff \r\n\t")
    delims = _delimiters(text)
    out: list[Segment] = []
    for raw in text.split(delims.segment):
        raw = raw.strip("\r\n")
        if not raw.strip():
            continue
        parts = raw.split(delims.element)
        sid = parts[0]
        if not (2 <= len(sid) <= 3 and sid.isascii() and sid.isalnum() and sid == sid.upper()):
            raise InputError([Problem(f"SEG[{len(out) + 1}]", f"{sid[:10]!r} is not a segment "
                                      "identifier (2-3 capital letters or digits)",
                                      "structure")])
        out.append(Segment(sid, tuple(parts[1:]), len(out) + 1))
    return delims, out


def parse_interchange(text: str) -> Interchange:
    """One interchange. Broken structure (a missing SE/GE/IEA, a segment outside its
    envelope) is an error; counts and control numbers that disagree are ``warnings``."""
    delims, segs = read_segments(text)
    isa = segs[0]
    ic = Interchange(delims, isa)
    current: Transaction | None = None
    st_pos = 0
    groups = 0
    group_sets = 0
    group_open: Segment | None = None
    closed = False
    problems: list[Problem] = []
    for seg in segs[1:]:
        if closed:
            problems.append(Problem(seg.where, "follows IEA (one interchange per text)",
                                    "structure"))
            break
        if current is not None and seg.id not in ("SE",):
            if seg.id in ("ST", "GS", "GE", "IEA", "ISA"):
                problems.append(Problem(seg.where, f"{seg.id} inside a transaction set "
                                        "(SE missing)", "structure"))
                break
            current.segments.append(seg)
            continue
        if seg.id == "GS":
            group_open, group_sets = seg, 0
            ic.gs.append(seg)
            groups += 1
        elif seg.id == "ST":
            if group_open is None:
                problems.append(Problem(seg.where, "ST outside a functional group (GS)",
                                        "structure"))
                break
            current = Transaction(seg.get(1), seg.get(2), seg.get(3) or group_open.get(8))
            st_pos = seg.position
        elif seg.id == "SE":
            if current is None:
                problems.append(Problem(seg.where, "SE without ST", "structure"))
                break
            count = seg.position - st_pos + 1
            if seg.get(1) != str(count):
                ic.warnings.append(Problem(f"{seg.where}-01", f"says {seg.get(1) or 'nothing'} "
                                        f"segments; the set has {count}", "structure"))
            if seg.get(2) != current.control:
                ic.warnings.append(Problem(f"{seg.where}-02", "does not match ST02", "structure"))
            ic.transactions.append(current)
            group_sets += 1
            current = None
        elif seg.id == "GE":
            if group_open is None:
                problems.append(Problem(seg.where, "GE without GS", "structure"))
                break
            if seg.get(1) != str(group_sets):
                ic.warnings.append(Problem(f"{seg.where}-01", f"says {seg.get(1) or 'nothing'} "
                                        f"transaction sets; the group has {group_sets}",
                                        "structure"))
            if seg.get(2) != group_open.get(6):
                ic.warnings.append(Problem(f"{seg.where}-02", "does not match GS06", "structure"))
            group_open = None
        elif seg.id == "TA1":
            ic.ta1.append(seg)
        elif seg.id == "IEA":
            if group_open is not None:
                problems.append(Problem(seg.where, "IEA before GE", "structure"))
            if seg.get(1) != str(groups):
                ic.warnings.append(Problem(f"{seg.where}-01", f"says {seg.get(1) or 'nothing'} "
                                        f"groups; the interchange has {groups}", "structure"))
            if seg.get(2) != isa.get(13):
                ic.warnings.append(Problem(f"{seg.where}-02", "does not match ISA13", "structure"))
            closed = True
        else:
            problems.append(Problem(seg.where, "outside a transaction set", "structure"))
            break
    if not problems and (current is not None or not closed):
        problems.append(Problem("IEA", "the interchange ends early (SE, GE or IEA missing)",
                                "structure"))
    if problems:
        raise InputError(problems)
    return ic


def build_segment(sid: str, elements: Sequence[str], delims: Delimiters) -> str:
    """One segment, trailing empty elements dropped, refusing a value with a separator.

    A name such as ``O*BRIEN`` or an id with ``~`` would otherwise become two elements
    or two segments at the payer: X12 has no escape, so it is refused here, named.
    """
    values = list(elements)
    while values and values[-1] == "":
        values.pop()
    for n, value in enumerate(values, start=1):
        bad = next((c for c in (delims.element, delims.segment, delims.repetition)
                    if c in value), None)
        if bad is not None:
            raise InputError([Problem(f"{sid}{n:02d}", f"contains the separator {bad!r}, "
                                                       "which X12 cannot escape", "value")])
    return delims.element.join([sid, *values]) + delims.segment


def iter_loops(segments: Sequence[Segment], start: str) -> Iterator[list[Segment]]:
    """Runs of ``segments`` each beginning at a segment with id ``start``."""
    run: list[Segment] = []
    for seg in segments:
        if seg.id == start and run:
            yield run
            run = []
        if seg.id == start or run:
            run.append(seg)
    if run:
        yield run
