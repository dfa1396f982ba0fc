"""TA1 (interchange) and 999 (implementation) acknowledgments, read and written.

A clearinghouse that cannot read our interchange answers a TA1 (the envelope: ISA/IEA)
or a 999 (the 270's content: IK3 segment errors, IK4 element errors, IK5/AK9 verdict)
instead of a 271. Either is permanent for that 270 — the same bytes would be refused
again — and is reported with the codes' meanings and locations (segment id, position,
element), never the data. The stand-in writes them for broken envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mafhir.errors import Problem

from .codes import IK3_ERRORS, IK4_ERRORS, IK5_CODES, TA1_NOTES
from .segments import Delimiters, Interchange, Segment, build_segment, parse_interchange

__all__ = ["Ack", "read_999", "read_999_text", "read_ta1", "write_999", "write_ta1"]


@dataclass(slots=True)
class Ack:
    """What a TA1 or 999 said: accepted or not, and each error named."""

    kind: str  # TA1 / 999
    accepted: bool
    code: str  # TA104 / IK501 (AK901 when no IK5)
    acknowledges: str  # TA101 / AK202 (the control number acknowledged)
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        verdict = "accepted" if self.accepted else "rejected"
        reasons = "; ".join(str(p) for p in self.problems)
        head = f"{self.kind} {verdict} ({self.code} {IK5_CODES.get(self.code, '')})"
        return head + (f": {reasons}" if reasons else "")


def read_ta1(seg: Segment) -> Ack:
    """TA1: TA104 A accepted, E accepted with errors, R rejected; TA105 the note."""
    note = seg.get(5)
    problems = [] if note in ("", "000") else [
        Problem("ISA/IEA", f"TA1 {note} {TA1_NOTES.get(note, 'unknown note code')}",
                "structure")]
    return Ack("TA1", seg.get(4) in ("A", "E"), seg.get(4), seg.get(1), problems)


def read_999(ic: Interchange) -> Ack:
    """The first 999 of ``ic`` (IK3/IK4 errors named; IK5 or else AK9 the verdict)."""
    tx = next(t for t in ic.transactions if t.code == "999")
    problems: list[Problem] = []
    code, acked = "", ""
    where = ""
    for seg in tx.segments:
        if seg.id == "AK2":
            acked = seg.get(2)
        elif seg.id == "IK3":
            where = f"{seg.get(1)}[{seg.get(2)}]" + (f" loop {seg.get(3)}" if seg.get(3) else "")
            err = seg.get(4)
            problems.append(Problem(where, f"IK3 {err} {IK3_ERRORS.get(err, 'unknown error')}",
                                    "structure"))
        elif seg.id == "IK4":
            pos = seg.get(1).split(ic.delimiters.component)[0]
            err = seg.get(3)
            problems.append(Problem(f"{where}-{pos}" if where else f"element {pos}",
                                    f"IK4 {err} {IK4_ERRORS.get(err, 'unknown error')}",
                                    "code-invalid" if err in ("7", "I6") else "value"))
        elif seg.id == "IK5" or (seg.id == "AK9" and not code):
            code = seg.get(1)
    return Ack("999", code in ("A", "E"), code or "?", acked, problems)


def read_999_text(text: str) -> Ack:
    return read_999(parse_interchange(text))


def _isa(sender: str, receiver: str, control: str, now: datetime, d: Delimiters) -> str:
    return (f"ISA*00*{' ' * 10}*00*{' ' * 10}*ZZ*{sender:<15.15}*ZZ*{receiver:<15.15}*"
            f"{now:%y%m%d}*{now:%H%M}*{d.repetition}*00501*{control}*0*P*{d.component}"
            f"{d.segment}").replace("*", d.element)


def write_ta1(acked: Interchange | None, note: str, sender: str, receiver: str,
              now: datetime, control: str = "000000001") -> str:
    """A TA1 rejecting an interchange (``note`` a TA105 code), alone in its envelope."""
    d = acked.delimiters if acked is not None else Delimiters()
    acked_control = acked.control if acked is not None else "000000000"
    parts = [_isa(sender, receiver, control, now, d),
             build_segment("TA1", [acked_control, f"{now:%y%m%d}", f"{now:%H%M}", "R", note],
                           d),
             build_segment("IEA", ["0", control], d)]
    return "\n".join(parts) + "\n"


def write_999(acked_group: str, acked_set: str, errors: list[tuple[str, str, str, str]],
              sender: str, receiver: str, now: datetime, control: str = "000000001") -> str:
    """A 999 rejecting one 270: ``errors`` are (segment id, position, loop, IK304 code)."""
    d = Delimiters()
    body = [build_segment("AK1", ["HS", acked_group, "005010X279A1"], d),
            build_segment("AK2", ["270", acked_set, "005010X279A1"], d)]
    for sid, pos, loop, err in errors:
        body.append(build_segment("IK3", [sid, pos, loop, err], d))
    verdict = "R" if errors else "A"
    body += [build_segment("IK5", [verdict, *(["5"] if errors else [])], d),
             build_segment("AK9", [verdict, "1", "1", "0" if errors else "1"], d)]
    st = build_segment("ST", ["999", "0001", "005010X231A1"], d)
    se = build_segment("SE", [str(len(body) + 2), "0001"], d)
    parts = [_isa(sender, receiver, control, now, d),
             build_segment("GS", ["FA", sender, receiver, f"{now:%Y%m%d}", f"{now:%H%M}",
                                  str(int(control)), "X", "005010X231A1"], d),
             st, *body, se, build_segment("GE", ["1", str(int(control))], d),
             build_segment("IEA", ["1", control], d)]
    return "\n".join(parts) + "\n"
