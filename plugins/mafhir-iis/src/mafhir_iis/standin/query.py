"""The stand-in IIS answering QBP^Q11: Z34 → RSP^K11 Z32 (history), Z44 → Z42 (evaluated
history and forecast by :mod:`mafhir_iis.forecast`), no match → Z33 ``NF``, several → Z33
``TM``, a query it cannot take → ``AE`` with ERR naming the field (CDC IG, as the
corpus's IZ Gateway examples show it). The patient is matched by
:meth:`Registry.patients` on QPD-3 (identifier and authority) or, without one, on name
and birth date; PID-3 echoes QPD-3 so the asker reads back its own identifier.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from mafhir.hl7v2 import Reps, build_message, msh
from mafhir.hl7v2.message import Message, Segment, Value

from ..forecast import Recommendation, evaluate, forecast
from .registry import DoseRecord, PatientQuery, PatientRecord, Registry

__all__ = ["SCHEDULE_CODE", "answer_query"]

#: OBX 59779-9: which schedule the forecast used — ours, said plainly (not ACIP's VXC16).
SCHEDULE_CODE = ("MAFHIR-SIMPLE", "mafhir stand-in schedule (not clinical)", "99MAF")
QUERY_NAMES = {"Z34": "Request Immunization History",
               "Z44": "Request Evaluated History and Forecast"}
STATUS_TEXT = {"due": "Due", "overdue": "Overdue", "complete": "Complete"}


def _cx(value: Value) -> tuple:
    return (value.c(1), "", "", (value.c(4, 1), value.c(4, 2), value.c(4, 3)), value.c(5))


def _day(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError):
        return None


class _Writer:
    """The segments of one answer, numbering OBX as it goes."""

    def __init__(self) -> None:
        self.segments: list[list] = []
        self.obx = 0

    def add(self, *fields: object) -> None:
        self.segments.append(list(fields))

    def observation(self, kind: str, loinc: tuple[str, str], sub: int, value: object) -> None:
        self.obx += 1
        self.add("OBX", str(self.obx), kind, (*loinc, "LN"), str(sub), value, None, None,
                 None, None, None, "F")


def answer_query(msg: Message, registry: Registry, now: datetime) -> bytes:
    """The RSP^K11 to a QBP^Q11 (``msg``), as bytes in the query's encoding."""
    qpd = msg.first("QPD")
    kind = qpd.get(1) if qpd is not None else ""
    tag = qpd.get(2) if qpd is not None else ""
    m = msg.msh
    problem = None
    if qpd is None:
        problem = (("QPD", "1", "1"), "101", "QPD segment is missing")
    elif kind not in QUERY_NAMES:
        problem = (("QPD", "1", "1"), "103", "query name is not Z34 or Z44")
    elif not tag:
        problem = (("QPD", "1", "2"), "101", "required field missing")
    query = PatientQuery(id=qpd.get(3), authority=qpd.get(3, 4), family=qpd.get(4),
                         given=qpd.get(4, 2), birth_date=qpd.get(6), sex=qpd.get(7)) \
        if qpd is not None else PatientQuery()
    found = registry.patients(query) if problem is None else []
    status = "AE" if problem else "NF" if not found else "TM" if len(found) > 1 else "OK"
    profile = "Z33" if status != "OK" else ("Z42" if kind == "Z44" else "Z32")
    out = _Writer()
    out.segments.append(msh(sending=(m.get(5), m.get(6)), receiving=(m.get(3), m.get(4)),
                            at=now, message_type=("RSP", "K11", "RSP_K11"),
                            control_id=uuid.uuid4().hex[:20], processing=m.get(11) or "P",
                            accept_ack="NE", app_ack="NE", charset="",
                            profile=(profile, "CDCPHINVS")))
    out.add("MSA", "AE" if problem else "AA", msg.control_id)
    if problem is not None:
        (seg, seq, fld), code, text = problem
        out.add("ERR", None, (seg, seq, fld), (code, text, "HL70357"), "E", None, None, None,
                text)
    out.add("QAK", tag, status, (kind, QUERY_NAMES.get(kind, ""), "CDCPHINVS") if kind
            else None)
    if qpd is not None:
        out.add("QPD", (kind, QUERY_NAMES.get(kind, ""), "CDCPHINVS"), tag,
                Reps([_cx(v) for v in qpd.reps(3)]) if qpd.reps(3) else None,
                (qpd.get(4), qpd.get(4, 2), qpd.get(4, 3), "", "", "", "L"), None,
                qpd.get(6), qpd.get(7))
    if status == "OK" and qpd is not None:
        _history(out, found[0], registry.history(query), qpd, kind == "Z44", now)
    return build_message(out.segments, msg.seps).encode("utf-8")


def _history(out: _Writer, patient: PatientRecord, doses: list[DoseRecord],
             qpd: Segment, evaluated: bool, now: datetime) -> None:
    ids = Reps([_cx(v) for v in qpd.reps(3)]) if qpd.reps(3) else \
        (patient.id, "", "", (patient.authority,), "MR")
    out.add("PID", "1", None, ids, None,
            (patient.family, patient.given, "", "", "", "", "L"),
            (patient.mother_maiden, "", "", "", "", "", "M") if patient.mother_maiden
            else None, patient.birth_date, patient.sex)
    birth = _day(patient.birth_date)
    history = [(d.cvx, day) for d in doses if d.cvx and (day := _day(d.administered))
               and d.completion in ("CP", "PA", "")]
    evaluations = evaluate(birth, history)[0] if (evaluated and birth) else []
    counted = [d for d in doses if d.cvx and _day(d.administered)
               and d.completion in ("CP", "PA", "")]
    for d in doses:
        _dose(out, d)
        if d in counted:
            index = counted.index(d)
            for sub, ev in enumerate((e for e in evaluations if e.index == index), start=1):
                out.observation("CE", ("30956-7", "vaccine type"), sub,
                                (ev.group.cvx, ev.group.name, "CVX"))
                out.observation("CE", ("59779-9", "Immunization Schedule used"), sub,
                                SCHEDULE_CODE)
                out.observation("NM", ("30973-2", "dose number in series"), sub,
                                str(ev.dose_number))
                out.observation("NM", ("59782-3", "number of doses in series"), sub,
                                str(len(ev.group.doses)))
                out.observation("CE", ("59781-5", "dose validity"), sub,
                                ("Y" if ev.valid else "N", "Yes" if ev.valid else "No",
                                 "HL70136"))
    if evaluated and birth is not None:
        _forecast(out, forecast(birth, history, now.date()), now)


def _dose(out: _Writer, d: DoseRecord) -> None:
    out.add("ORC", "RE", None, (d.filler_id, d.sender) if d.filler_id else None)
    vaccine = (d.cvx, d.cvx_text, "CVX") if d.cvx else (d.ndc, d.cvx_text, "NDC")
    out.add("RXA", "0", "1", d.administered, None, vaccine, d.amount or "999",
            (d.unit, "", "UCUM") if d.unit else None, None,
            (d.source, "", "NIP001") if d.source else None, None, None, None, None, None,
            d.lot, d.expiration, (d.mvx, "", "MVX") if d.mvx else None,
            (d.refusal, "", "NIP002") if d.refusal else None, None, d.completion or "CP",
            d.action or "A")
    if d.route or d.site:
        route_system = "NCIT" if d.route.startswith("C") else "HL70162"
        out.add("RXR", (d.route, "", route_system) if d.route else None,
                (d.site, "", "HL70163") if d.site else None)
    if d.eligibility:
        out.observation("CE", ("64994-7", "Vaccine funding program eligibility category"),
                        1, (d.eligibility, "", "HL70064"))
    if d.funding:
        out.observation("CE", ("30963-3", "Vaccine funding source"), 1,
                        (d.funding, "", "CDCPHINVS"))


def _forecast(out: _Writer, recommendations: list[Recommendation], now: datetime) -> None:
    today = now.strftime("%Y%m%d")
    out.add("ORC", "RE", None, ("forecast", "IIS"))
    out.add("RXA", "0", "1", today, today, ("998", "No vaccine administered", "CVX"), "999",
            None, None, None, None, None, None, None, None, None, None, None, None, None,
            "NA")
    for sub, rec in enumerate(recommendations, start=1):
        out.observation("CE", ("30956-7", "vaccine type"), sub,
                        (rec.group.cvx, rec.group.name, "CVX"))
        out.observation("CE", ("59779-9", "Immunization Schedule used"), sub, SCHEDULE_CODE)
        for loinc, label, day in (("30980-7", "Date vaccination due", rec.due),
                                  ("30981-5", "Earliest date to give", rec.earliest),
                                  ("59777-3", "Latest date to give", rec.latest),
                                  ("59778-1", "Date dose is overdue", rec.overdue)):
            if day is not None:
                out.observation("DT", (loinc, label), sub, day.strftime("%Y%m%d"))
        if rec.status != "complete":
            out.observation("NM", ("30973-2", "dose number in series"), sub,
                            str(rec.dose_number))
        out.observation("CE", ("59783-1", "Status in immunization series"), sub,
                        (rec.status, STATUS_TEXT[rec.status], "99MAF"))
