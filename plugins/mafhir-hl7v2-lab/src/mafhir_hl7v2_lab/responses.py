"""ORL^O22 and ORR^O02: the order responses a lab interface answers orders with (pure).

An ordering system reads ORC-1 of each order to learn whether *that* order was taken
(``OK``) or not (``UA``, unable to accept); a bare ACK cannot say so per order. Placer
and filler numbers are echoed so the sender can match each answer to its order.

``UA`` is a permanent refusal (the sender dead-letters the order), so it answers only an
order that could not be read (``error``) or a message refused outright (``rejected``). An
order held for review (unknown patient, AE with an ERR of severity W) was taken: ``OK``.
A transient failure (``retry``) gets no order response at all: the bare AR asks the
sender to try again, where a ``UA`` would tell it to give up.

ORL^O22 (v2.5.1): MSH, MSA, [ERR], then RESPONSE: PATIENT (PID), ORDER (ORC, [TQ1],
[OBR, [SPM]]). ORR^O02 (v2.5.1): MSH, MSA, [ERR], then PID, ORDER (ORC, [OBR]).
"""

from __future__ import annotations

from mafhir.hl7v2 import Reps, Response
from mafhir.hl7v2.message import Message, Segment

__all__ = ["orl_o22", "orr_o02"]

ACCEPTED = ("AA", "CA")
#: outcome status (the core's receiver) → ORC-1; ``retry`` has no entry (no response)
CONTROL = {"processed": "OK", "review": "OK", "error": "UA", "rejected": "UA"}


def _echo(seg: Segment | None, n: int) -> Reps | None:
    """Field ``n`` as build_message takes it (unescaped parts, so it is escaped once)."""
    if seg is None:
        return None
    reps = seg.reps(n)
    if not reps:
        return None
    return Reps(tuple(tuple(v.subs(c)) if len(v.subs(c)) > 1 else v.c(c)
                      for c in range(1, len(v.components) + 1)) for v in reps)


def _orders(msg: Message) -> list[list[Segment]]:
    return list(msg.groups(("ORC", "OBR"), within=("OBR",)))


def _pid(msg: Message) -> list | None:
    pid = msg.first("PID")
    if pid is None:
        return None
    return ["PID", pid.get(1) or "1", None, _echo(pid, 3), None, _echo(pid, 5)]


def _orc(control: str, orc: Segment | None, obr: Segment | None) -> list:
    """ORC-1 the answer; ORC-2/ORC-3 the order's numbers (from ORC, else OBR)."""
    placer = _echo(orc, 2) or _echo(obr, 2)
    filler = _echo(orc, 3) or _echo(obr, 3)
    return ["ORC", control, placer, filler]


def _obr(obr: Segment) -> list:
    return ["OBR", obr.get(1) or "1", _echo(obr, 2), _echo(obr, 3), _echo(obr, 4)]


def _control(ack_code: str, status: str | None) -> str | None:
    """ORC-1 for every order, or None for no order response (a bare ACK).

    Without a status (a caller that passes only the ACK code) the code decides: AE/AR
    cannot tell "held" or "try again" from "refused", so both mean ``UA`` as before.
    """
    if status == "retry":
        return None
    if status in CONTROL:
        return CONTROL[status]
    return "OK" if ack_code in ACCEPTED else "UA"


def _respond(msg: Message, ack_code: str, status: str | None, with_tq1_spm: bool,
             message_type: tuple[str, str, str]) -> Response | None:
    control = _control(ack_code, status)
    if control is None:
        return None
    pid = _pid(msg)
    segments: list[list] = []
    if pid is not None:  # the ORDER group sits inside PATIENT: no PID, no orders echoed
        segments.append(pid)
        for group in _orders(msg):
            orc = next((s for s in group if s.name == "ORC"), None)
            obr = next((s for s in group if s.name == "OBR"), None)
            segments.append(_orc(control, orc, obr))
            if with_tq1_spm:
                tq1 = next((s for s in group if s.name == "TQ1"), None)
                if tq1 is not None:
                    segments.append(["TQ1", tq1.get(1) or "1", None, None, None, None, None,
                                     _echo(tq1, 7), _echo(tq1, 8), _echo(tq1, 9)])
            if obr is not None:
                segments.append(_obr(obr))
                if with_tq1_spm:
                    for spm in (s for s in group if s.name == "SPM"):
                        segments.append(["SPM", spm.get(1) or "1", _echo(spm, 2), None,
                                         _echo(spm, 4)])
    return Response(message_type, segments)


def orl_o22(msg: Message, ack_code: str, status: str | None = None) -> Response | None:
    """The ORL^O22 answering an OML^O21: ORC-1 per order by the outcome ``status``
    (``OK`` processed or held for review, ``UA`` error or rejected, none for retry); with
    no status, ``OK`` for AA/CA and ``UA`` for AE/AR."""
    return _respond(msg, ack_code, status, True, ("ORL", "O22", "ORL_O22"))


def orr_o02(msg: Message, ack_code: str, status: str | None = None) -> Response | None:
    """The ORR^O02 answering an ORM^O01 (same ORC-1 rule; no TQ1/SPM in its structure)."""
    return _respond(msg, ack_code, status, False, ("ORR", "O02", "ORR_O02"))
