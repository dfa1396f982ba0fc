"""The stand-in's reading of a VXU^V04 against the CDC guide: what a real IIS refuses or warns.

Three outcomes, as real registries answer (the corpus's IIS ACKs are the model):

* a header the registry cannot take (not VXU^V04, not 2.5.1, no MSH-10, processing id
  not P/T/D, no sending facility) → **AR**, nothing kept;
* a field the guide *requires* missing or wrong (PID-3, PID-5, PID-7, ORC-3, RXA-3,
  RXA-5 and its CVX table, RXA-20's table, RXA-18 for a refusal, a date in the future
  or a dose before the birth date)
  → **AE** with an ERR of severity **E**, the message not kept;
* a field the guide expects (``RE``) missing — PID-8 sex, PID-11 address, NK1 for a
  minor, RXA-15 lot, RXA-17 manufacturer and RXR for an administered dose — or a
  manufacturer not in the MVX table → **AE** with ERRs of severity **W** only: the doses
  are kept, the gaps reported.

Each issue carries ERR-2 (segment, sequence, field), ERR-3 (table 0357), ERR-5 (table
0533) and ERR-8 text naming the field, never its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mafhir.codes import cvx, mvx
from mafhir.hl7v2.message import Message, Segment

from ..codes import APPLICATION_ERRORS, COMPLETION

__all__ = ["Issue", "check_vxu"]

_CONDITIONS = {"100": "Segment sequence error", "101": "Required field missing",
               "102": "Data type error", "103": "Table value not found",
               "200": "Unsupported message type", "201": "Unsupported event code",
               "202": "Unsupported processing id", "203": "Unsupported version id"}


@dataclass(frozen=True)
class Issue:
    """One ERR of the answer."""

    severity: str  # E or W
    segment: str
    sequence: int
    field: int | None
    condition: str  # table 0357
    application: str  # table 0533 ('' when none applies)
    text: str

    @property
    def header(self) -> bool:
        return self.segment == "MSH"

    def err(self) -> list:
        """The ERR segment (as :func:`mafhir.hl7v2.build_message` lists it)."""
        where = (self.segment, str(self.sequence), str(self.field) if self.field else "")
        app = (self.application, APPLICATION_ERRORS[self.application], "HL70533") \
            if self.application else None
        return ["ERR", None, where, (self.condition, _CONDITIONS[self.condition], "HL70357"),
                self.severity, app, None, None, self.text]


def _e(seg: str, seq: int, fld: int | None, condition: str, app: str, text: str) -> Issue:
    return Issue("E", seg, seq, fld, condition, app, text)


def _w(seg: str, seq: int, fld: int | None, condition: str, app: str, text: str) -> Issue:
    return Issue("W", seg, seq, fld, condition, app, text)


def _date(text: str) -> date | None:
    digits = text[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _header(msg: Message) -> list[Issue]:
    out = []
    if msg.msh.get(9, 1) != "VXU":
        out.append(_e("MSH", 1, 9, "200", "", "MSH-9: only VXU^V04 is accepted here"))
    elif msg.msh.get(9, 2) != "V04":
        out.append(_e("MSH", 1, 9, "201", "", "MSH-9.2: the event must be V04"))
    if msg.version != "2.5.1":
        out.append(_e("MSH", 1, 12, "203", "", "MSH-12: the version must be 2.5.1"))
    if msg.msh.get(11) not in ("P", "T", "D"):
        out.append(_e("MSH", 1, 11, "202", "4", "MSH-11: the processing id must be P, T or D"))
    if not msg.control_id:
        out.append(_e("MSH", 1, 10, "101", "7", "MSH-10: the message control id is missing"))
    if not msg.msh.get(4):
        out.append(_e("MSH", 1, 4, "101", "7", "MSH-4: the sending facility is missing"))
    return out


def _pid(pid: Segment | None, today: date) -> tuple[list[Issue], bool]:
    """PID's issues, and whether the patient is a minor (NK1 expected)."""
    if pid is None:
        return [_e("PID", 1, None, "100", "7", "PID: the segment is required")], False
    out = []
    if not pid.get(3):
        out.append(_e("PID", 1, 3, "101", "7", "PID-3: the patient identifier is required"))
    if not pid.get(5):
        out.append(_e("PID", 1, 5, "101", "7", "PID-5: the patient name is required"))
    born = _date(pid.get(7))
    minor = False
    if not pid.get(7):
        out.append(_e("PID", 1, 7, "101", "7", "PID-7: the date of birth is required"))
    elif born is None:
        out.append(_e("PID", 1, 7, "102", "2", "PID-7: the date of birth is not a date"))
    elif born > today:
        out.append(_e("PID", 1, 7, "102", "1", "PID-7: the date of birth is after today"))
    else:
        minor = (today.year - born.year - ((today.month, today.day) <
                                           (born.month, born.day))) < 18
    if not pid.get(8):
        out.append(_w("PID", 1, 8, "101", "7", "PID-8: the administrative sex is missing"))
    if not pid.get(11):
        out.append(_w("PID", 1, 11, "101", "7", "PID-11: the patient address is missing"))
    return out, minor


def _group(orc: Segment | None, rxa: Segment | None, rxr: Segment | None, n: int,
           today: date, born: date | None) -> list[Issue]:
    out = []
    if orc is None:
        out.append(_e("ORC", n, None, "100", "7", "ORC: each RXA needs its ORC"))
    elif not orc.get(3):
        out.append(_e("ORC", n, 3, "101", "7", "ORC-3: the filler order number (the dose's "
                                               "id) is required"))
    if rxa is None:
        return [*out, _e("RXA", n, None, "100", "7", "RXA: each ORC needs its RXA")]
    given = _date(rxa.get(3))
    if not rxa.get(3):
        out.append(_e("RXA", n, 3, "101", "7", "RXA-3: the administration date is required"))
    elif given is None:
        out.append(_e("RXA", n, 3, "102", "2", "RXA-3: the administration date is not a date"))
    elif given > today:
        out.append(_e("RXA", n, 3, "102", "1", "RXA-3: the administration date is in the "
                                               "future"))
    elif born is not None and given < born:
        out.append(_e("RXA", n, 3, "102", "1", "RXA-3: the administration date is before "
                                               "the date of birth"))
    code, system = rxa.get(5), rxa.get(5, 3).upper()
    if not code:
        out.append(_e("RXA", n, 5, "101", "7", "RXA-5: the vaccine code is required"))
    elif system == "CVX" and cvx(code) is None:
        out.append(_e("RXA", n, 5, "103", "5", "RXA-5: the vaccine code is not a CVX code"))
    completion = rxa.get(20) or "CP"
    if completion not in COMPLETION:
        out.append(_e("RXA", n, 20, "103", "5", "RXA-20: the completion status is not in "
                                                "table 0322"))
    if completion == "RE" and not rxa.get(18):
        out.append(_e("RXA", n, 18, "101", "7", "RXA-18: a refusal needs its reason"))
    administered = rxa.get(9) == "00" and completion in ("CP", "PA")
    if administered:
        if not rxa.get(15):
            out.append(_w("RXA", n, 15, "101", "7", "RXA-15: the lot number of an "
                                                    "administered dose is missing"))
        if not rxa.get(17):
            out.append(_w("RXA", n, 17, "101", "7", "RXA-17: the manufacturer of an "
                                                    "administered dose is missing"))
        elif mvx(rxa.get(17)) is None:
            out.append(_w("RXA", n, 17, "103", "8", "RXA-17: the manufacturer is not an MVX "
                                                    "code; ignored"))
        if rxr is None:
            out.append(_w("RXR", n, None, "101", "7", "RXR: route and site of an "
                                                      "administered dose are missing"))
    return out


def check_vxu(msg: Message, today: date) -> list[Issue]:
    """Every issue of ``msg`` (header issues first: with any, the rest is not read)."""
    header = _header(msg)
    if header:
        return header
    issues, minor = _pid(msg.first("PID"), today)
    if minor and msg.first("NK1") is None:
        issues.append(_w("NK1", 1, None, "101", "7", "NK1: the responsible person of a minor "
                                                     "is missing"))
    pid = msg.first("PID")
    born = _date(pid.get(7)) if pid is not None else None
    groups = list(msg.groups(("ORC", "RXA"), within=("RXA",)))
    if not groups:
        issues.append(_e("RXA", 1, None, "100", "7", "RXA: the message reports no dose"))
    for n, group in enumerate(groups, start=1):
        orc = next((s for s in group if s.name == "ORC"), None)
        rxa = next((s for s in group if s.name == "RXA"), None)
        rxr = next((s for s in group if s.name == "RXR"), None)
        issues += _group(orc, rxa, rxr, n, today, born)
    return issues
