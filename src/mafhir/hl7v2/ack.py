"""Acknowledgments: original mode (AA/AE/AR) and enhanced mode (CA/CE/CR), with ERR segments.

The ACK code comes from the outcome: a message mafhir cannot take at all (unreadable header,
unsupported type or version) is *rejected* (AR/CR); one it took but could not process
(a field it cannot map) is an *error* (AE/CE), with one ERR per problem naming the
segment, sequence and field (ERR-2) and an HL7 table 0357 code (ERR-3) read from the
problem's code through :data:`ERR_CODES`, never from its English text. ERR-8 carries the
reason, never the field's value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import Problem
from .build import Field, build_message, msh
from .charset import encode
from .message import Message, parse

__all__ = ["ERR_CODES", "REFUSING", "Ack", "AckCode", "Response", "ack_bytes", "ack_for",
           "ack_for_unreadable", "as_problem", "err_code", "error_location", "read_ack"]

AckCode = str  # AA AE AR CA CE CR

#: HL7 table 0119 order control codes by which a filler refuses an order or a change.
REFUSING = frozenset({"UA", "UC", "UD", "UF", "UH", "UM", "UR", "UX"})

_ERROR = ("207", "Application internal error")
#: Problem.code (mafhir.errors.CODES) → HL7 table 0357 (message error condition) for
#: ERR-3: the one place a problem's kind becomes an ERR code. 0357 has nothing closer
#: than 207 for a clinic's business rule; ERR-8 carries the reason in words.
ERR_CODES: dict[str, tuple[str, str]] = {
    "structure": ("100", "Segment sequence error"),
    "required": ("101", "Required field missing"),
    "incomplete": ("101", "Required field missing"),
    "value": ("102", "Data type error"),
    "invalid": ("102", "Data type error"),
    "invariant": ("102", "Data type error"),
    "too-long": ("102", "Data type error"),
    "code-invalid": ("103", "Table value not found"),
    "not-supported": ("200", "Unsupported message type"),
    "not-found": ("204", "Unknown key identifier"),
    "duplicate": ("205", "Duplicate key identifier"),
    "conflict": ("205", "Duplicate key identifier"),
    "security": _ERROR,
    "business-rule": _ERROR,
    "processing": _ERROR,
    "transient": _ERROR,
}
#: ``not-supported`` names what is not supported by where it is (table 0357's 20x).
_NOT_SUPPORTED_AT = {"MSH-9.2": ("201", "Unsupported event code"),
                     "MSH-11": ("202", "Unsupported processing id"),
                     "MSH-12": ("203", "Unsupported version id")}


def err_code(problem: Problem) -> tuple[str, str]:
    """The table-0357 code and text for ERR-3, from ``problem.code`` (and, for
    ``not-supported``, the field it names)."""
    if problem.code == "not-supported":
        for where, code in _NOT_SUPPORTED_AT.items():
            if problem.location.startswith(where):
                return code
    return ERR_CODES.get(problem.code, _ERROR)


def as_problem(item: object) -> Problem:
    """``item`` when it is a Problem; anything else (an older handler's ``(Problem,
    kind)`` pair) is refused by name, since its kind would have to be guessed: the
    Problem's own code gives ERR-3."""
    if isinstance(item, Problem):
        return item
    raise TypeError(f"an outcome's problems are Problems with a code (mafhir.errors.CODES), "
                    f"not {type(item).__name__}: write Problem(location, message, code) "
                    f"instead of a (Problem, kind) pair")


_LOC = re.compile(r"^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+)(?:\.(\d+))?)?")


def error_location(location: str) -> tuple[str, ...]:
    """A problem location (``OBX[3]-5.2``) as an ERL: segment ^ sequence ^ field ^ rep ^ comp."""
    m = _LOC.match(location)
    if not m:
        return ()
    seg, seq, fld, comp = m.groups()
    return (seg, seq or "1", fld or "", "1" if fld else "", comp or "")


@dataclass(frozen=True)
class Response:
    """An application response richer than ACK: its MSH-9 (``("ORL", "O22", "ORL_O22")``)
    and the segments that follow MSA/ERR (PID, ORC, OBR…, as :func:`build_message` lists)."""

    message_type: tuple[str, str, str]
    segments: list[list] = field(default_factory=list)


@dataclass(frozen=True)
class Ack:
    """An acknowledgment as read back from its text."""

    code: AckCode
    control_id: str
    acked_id: str
    errors: tuple[str, ...] = field(default=())
    text: str = ""
    #: The reply's MSH-9 (``ACK^O21^ACK``, ``ORL^O22^ORL_O22``, ``RRE^O12``…).
    message_type: str = "ACK"
    #: ORC-1 of each order in an order response (ORL^O22, ORR^O02, RRE^O12): ``OK``
    #: accepted, ``UA`` unable to accept, ``CR``/``UC`` cancelled…
    order_controls: tuple[str, ...] = field(default=())

    @property
    def accepted(self) -> bool:
        """The message was taken: AA/CA and no order in the reply refused (ORC-1 UA/UC/UX…)."""
        return self.code in ("AA", "CA") and not self.refused_orders

    @property
    def refused_orders(self) -> tuple[int, ...]:
        """1-based positions of the orders the reply refuses: ORC-1 one of table 0119's
        "unable to" codes (UA accept, UC cancel, UD discontinue, UF release, UH hold, UM
        replace, UR release, UX change). ``UN`` is not one: it unlinks a care problem."""
        return tuple(i for i, c in enumerate(self.order_controls, start=1) if c in REFUSING)


def _reply_msh(msg: Message | None, at: datetime, control_id: str, trigger: str) -> list:
    if msg is None:
        return msh(sending=("MAFHIR", ""), receiving=("", ""), at=at,
                   message_type=("ACK", "", "ACK"), control_id=control_id, version="2.5.1")
    m = msg.msh
    return msh(sending=(m.get(5), m.get(6)), receiving=(m.get(3), m.get(4)), at=at,
               message_type=("ACK", trigger, "ACK"), control_id=control_id,
               version=msg.version or "2.5.1", processing=m.get(11) or "P",
               charset=m.get(18) or "")


def _echo(msg: Message) -> Field:
    """MSH-10 whole for MSA-2 (``A^1``, not ``A``): its components and subcomponents
    unescaped here and escaped again by :func:`build_message`, so the sender reads back
    exactly the id it sent."""
    value = msg.msh.v(10)
    comps = tuple(tuple(value.subs(i)) for i in range(1, len(value.components) + 1))
    if len(comps) == 1 and len(comps[0]) == 1:
        return comps[0][0]
    return tuple(c[0] if len(c) == 1 else c for c in comps)


def _err(problem: Problem, severity: str) -> list:
    code, text = err_code(problem)
    loc = error_location(problem.location)
    return ["ERR", None, loc or None, (code, text, "HL70357"), severity, None, None, None,
            str(problem)]


def ack_for(msg: Message | None, code: AckCode, at: datetime,
            problems: Sequence[Problem] = (),
            control_id: str | None = None, severity: str = "E",
            response: Response | None = None, commit_wanted: bool = False,
            warnings: Sequence[Problem] = ()) -> str:
    """The ACK to ``msg``: one ERR per problem (ERR-3 from its code, severity
    ``severity``), then one ERR of severity W per warning (kept despite a gap).

    With a ``response`` (from the message's converter) the reply is that message type
    instead of a bare ACK: ORL^O22 to an OML^O21, ORR^O02 to an ORM^O01… carrying its
    segments after MSA and ERR. ``commit_wanted`` marks an enhanced-mode application ACK,
    sent on a connection of its own: MSH-15 ``AL`` asks the sender to commit-accept it
    (that CA is how mafhir knows it arrived), MSH-16 ``NE`` asks for nothing more.
    """
    cid = control_id or uuid.uuid4().hex[:20]
    trigger = msg.msh.get(9, 2) if msg is not None else ""
    segs: list[list] = [_reply_msh(msg, at, cid, trigger)]
    if response is not None:
        segs[0][9] = response.message_type
    if commit_wanted:
        segs[0][15], segs[0][16] = "AL", "NE"
    found = [as_problem(p) for p in problems]
    text = {"AA": "", "CA": ""}.get(code, found[0].message if found else "")
    segs.append(["MSA", code, _echo(msg) if msg is not None else "", text[:80] or None])
    for problem in found:
        segs.append(_err(problem, severity))
    for warning in warnings:
        segs.append(_err(warning, "W"))
    if response is not None:
        segs += response.segments
    seps = msg.seps if msg is not None else None
    return build_message(segs, seps) if seps else build_message(segs)


def ack_for_unreadable(raw: bytes, problems: Sequence[Problem], at: datetime,
                       enhanced: bool = False, code: AckCode | None = None) -> str:
    """An AR (CR) for bytes that are not a readable message; echoes MSH-10 if it can.

    ``code`` overrides: CE (enhanced) / AE is for a message that was read but could not be
    committed (no MSH-10 to keep it by, or a store that failed) — an error, not a refusal
    of its type, version or processing id, which is what CR/AR say (v2.5.1 §2.9.3).
    """
    acked = ""
    try:
        text = raw.decode("utf-8", "replace").lstrip("\ufeff\x0b\r\n ")
        if text.startswith("MSH") and len(text) > 3:
            fields = text.split("\r", 1)[0].split("\n", 1)[0].split(text[3])
            acked = fields[9] if len(fields) > 9 else ""
    except Exception:  # nothing about these bytes can be trusted
        acked = ""
    segs: list[list] = [_reply_msh(None, at, uuid.uuid4().hex[:20], "")]
    segs.append(["MSA", code or ("CR" if enhanced else "AR"), acked[:199], problems[0].message[:80]
                 if problems else None])
    for p in problems:
        segs.append(_err(p, "E"))
    return build_message(segs)


def ack_bytes(text: str, msg: Message | None) -> bytes:
    """An ACK's bytes in the character set its MSH-18 (the message's) declares."""
    return encode(text, msg.msh.get(18) if msg is not None else "")


def read_ack(text: str | bytes) -> Ack:
    """An ACK's code, the id it acknowledges and its ERR texts."""
    msg = parse(text)
    msa = msg.first("MSA")
    if msa is None:
        raise ValueError("the reply has no MSA segment")
    errors = tuple(e.get(8) or e.get(3, 2) for e in msg.all("ERR"))
    controls = tuple(o.get(1) for o in msg.all("ORC"))
    return Ack(msa.get(1), msg.control_id, msa.text(2), errors, msg.text, msg.type or "ACK",
               controls)
