"""One VXU in, one ACK^V04 (Z23) out: check it, keep what may be kept, say what was wrong.

Transport-free: the SOAP endpoint and the MLLP endpoint of the stand-in both call
:func:`answer`, so a message gets the same answer whichever way it came.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime

from mafhir.errors import InputError
from mafhir.hl7v2 import build_message, msh, parse
from mafhir.hl7v2.ack import ack_for_unreadable
from mafhir.hl7v2.message import Message, Segment

from .checks import check_vxu
from .query import answer_query
from .registry import DoseRecord, PatientRecord, Registry

__all__ = ["ANSWERERS", "Answerer", "answer", "answer_vxu", "doses_of", "patient_of"]


def _mrn(pid: Segment) -> tuple[str, str]:
    reps = pid.reps(3)
    rep = next((r for r in reps if r.c(5) == "MR"), reps[0] if reps else None)
    if rep is None:
        return "", ""
    return rep.c(1), rep.c(4, 1) or rep.c(4, 2)


def patient_of(msg: Message) -> PatientRecord:
    """The patient as PID says (identifier and authority of the MR, name, DOB, sex)."""
    pid = msg.first("PID")
    assert pid is not None  # checked before
    ident, authority = _mrn(pid)
    return PatientRecord(ident, authority, pid.get(5, 1), pid.get(5, 2), pid.get(7)[:8],
                         pid.get(8), pid.get(6, 1))


def _obx_code(group: list[Segment], loinc: str) -> str:
    return next((s.get(5) for s in group if s.name == "OBX" and s.get(3) == loinc), "")


def doses_of(msg: Message, patient: PatientRecord, received: datetime) -> list[DoseRecord]:
    """Every order group's dose, its facts as sent."""
    out = []
    for group in msg.groups(("ORC", "RXA"), within=("RXA",)):
        orc = next(s for s in group if s.name == "ORC")
        rxa = next(s for s in group if s.name == "RXA")
        rxr = next((s for s in group if s.name == "RXR"), None)
        vaccine = rxa.v(5)
        ndc = next((vaccine.c(i) for i in (4, 1) if vaccine.c(i + 2).upper() == "NDC"), "")
        out.append(DoseRecord(
            patient=patient, filler_id=orc.get(3), cvx=vaccine.c(1) if vaccine.c(3).upper()
            == "CVX" else "", cvx_text=vaccine.c(2), ndc=ndc, administered=rxa.get(3),
            amount=rxa.get(6), unit=rxa.get(7), source=rxa.get(9),
            completion=rxa.get(20) or "CP", refusal=rxa.get(18), action=rxa.get(21) or "A",
            lot=rxa.get(15), expiration=rxa.get(16), mvx=rxa.get(17),
            route=rxr.get(1) if rxr else "", site=rxr.get(2) if rxr else "",
            eligibility=_obx_code(group, "64994-7"), funding=_obx_code(group, "30963-3"),
            administering_npi=rxa.get(10), sender=msg.msh.get(4), received=received))
    return out


def answer_vxu(msg: Message, registry: Registry, now: datetime) -> bytes:
    """The ACK^V04 to a VXU: AR for a header it cannot take, AE with E (nothing kept), AE
    with W only (kept, gaps reported), AA (kept)."""
    issues = check_vxu(msg, now.date())
    errors = [i for i in issues if i.severity == "E"]
    code = "AR" if any(i.header for i in errors) else "AE" if issues else "AA"
    if not errors:
        patient = patient_of(msg)
        registry.record(patient, doses_of(msg, patient, now), msg.msh.get(4), msg.control_id)
    m = msg.msh
    segments: list[list] = [msh(sending=(m.get(5), m.get(6)), receiving=(m.get(3), m.get(4)),
                                at=now, message_type=("ACK", "V04", "ACK"),
                                control_id=uuid.uuid4().hex[:20],
                                processing=m.get(11) or "P", accept_ack="NE", app_ack="NE",
                                charset="", profile=("Z23", "CDCPHINVS"))]
    segments.append(["MSA", code, msg.control_id])
    segments += [i.err() for i in issues]
    return build_message(segments, msg.seps).encode("utf-8")


#: How the stand-in answers a message, by MSH-9.1: ``(message, registry, now) -> bytes``.
#: The query side adds ``"QBP"`` here (or passes ``answerers=`` to ``StandinIIS``); any
#: other type gets the VXU answer, whose header check refuses it (AR, ERR-3 200).
Answerer = Callable[[Message, Registry, datetime], bytes]
ANSWERERS: dict[str, Answerer] = {"VXU": answer_vxu, "QBP": answer_query}  # QBP: w4


def answer(raw: bytes, registry: Registry, now: datetime,
           answerers: Mapping[str, Answerer] | None = None) -> bytes:
    """The answer to ``raw`` (unreadable bytes: AR), by its message type."""
    try:
        msg = parse(raw)
    except InputError as exc:
        return ack_for_unreadable(raw, list(exc.problems), now).encode()
    table = ANSWERERS if answerers is None else answerers
    return table.get(msg.msh.get(9, 1), answer_vxu)(msg, registry, now)
