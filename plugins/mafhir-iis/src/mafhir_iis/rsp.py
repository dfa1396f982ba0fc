"""RSP^K11 (the IIS's answer to a QBP^Q11) → a typed result the MA can act on (pure).

What the registry said decides the result, never a guess:

- QAK-2 ``OK`` with one PID (profile Z32 or Z42): the patient's registry history as
  Immunizations (``primarySource=false``, ``reportOrigin`` the IIS: the registry is not
  who gave the dose, even when its record came from this clinic), and for Z42 one
  ImmunizationEvaluation per evaluated dose and vaccine group and one
  ImmunizationRecommendation holding the forecast;
- ``NF`` (no match), ``TM`` (too many candidates), ``PD`` (protected) and a Z31 candidate
  list are *answers* the MA must see, not errors of mafhir: a :class:`QueryResult` whose
  ``outcome`` says which;
- ``AE`` / ``AR`` (QAK-2 or MSA-1): :class:`QueryRefused`, a permanent error naming the
  IIS's own ERR text and location.

Evaluation rows (OBX 30956-7 vaccine group, 30973-2 dose number, 59781-5 validity…) are
grouped by OBX-4 under their RXA; forecast rows hang under an RXA whose vaccine is CVX
998 ("no vaccine administered") and are grouped by OBX-4 too (CDC IG Z42).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from mafhir import systems
from mafhir.bundle import Entry, create, transaction, update
from mafhir.errors import InputError, Problem
from mafhir.hl7v2 import parse
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.datatypes import DtmError, codeable, null, read_dtm, readable
from mafhir.hl7v2.message import Message, Segment
from mafhir.identity import identifier_query

from .doses import DoseGroup, DoseReader, dose_groups, message_tz
from .terms import FORECAST_LOINC, IMMUNIZATION_ORIGIN
from .vxu_in import read_patient

__all__ = ["EVALUATION_LOINC", "IisError", "QueryRefused", "QueryResult", "read_rsp"]

JSON = dict[str, Any]
Outcome = Literal["found", "not-found", "too-many", "protected", "candidates"]
QAK_OUTCOME: dict[str, Outcome] = {"OK": "found", "NF": "not-found", "TM": "too-many",
                                   "PD": "protected"}
#: The OBX rows of a Z42 dose that evaluate it rather than describe it.
EVALUATION_LOINC = ("30956-7", "38890-0", "59779-9", "30973-2", "59782-3", "59781-5",
                    "59780-7", "30982-3")
DATE_CRITERIA = ("30980-7", "30981-5", "59777-3", "59778-1")
NO_VACCINE = "998"
CRITERION_DISPLAY = {k: FORECAST_LOINC[k] for k in DATE_CRITERIA}
FORECAST_STATUS = "http://terminology.hl7.org/CodeSystem/immunization-recommendation-status"
EVAL_STATUS = "http://terminology.hl7.org/CodeSystem/immunization-evaluation-dose-status"


@dataclass(frozen=True)
class IisError:
    """One ERR row of the answer, in the IIS's own words: where (ERR-2), the HL7 code
    (ERR-3, table 0357), severity (ERR-4: E, W, I), the application code (ERR-5, table
    0533) and the text for a person (ERR-8, else ERR-3's text)."""

    location: str
    code: str
    severity: str
    application_code: str
    text: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.text or self.code} (severity {self.severity or '?'})"


class QueryRefused(InputError):
    """The IIS refused the query (AE or AR): its own error texts, each naming the field.
    Permanent, and an input error (exit 2): asking again the same way gets the same no."""

    default_code = "business-rule"

    def __init__(self, status: str, errors: tuple[IisError, ...]) -> None:
        self.ack_code = status
        self.errors = errors
        said = "; ".join(str(e) for e in errors) or "no ERR segment said why"
        super().__init__([Problem(e.location or "QPD", e.text or e.code, "business-rule")
                          for e in errors]
                         or [Problem("MSA-1", f"the registry answered {status}",
                                     "business-rule")])
        self.args = (f"the immunization registry answered {status}: {said}",)


@dataclass(frozen=True)
class QueryResult:
    """What the registry answered: ``outcome`` (found, not-found, too-many, protected,
    candidates), the FHIR (a transaction Bundle, empty but for the Patient when nothing
    was found), the candidates of a Z31 list, the IIS's ERR rows (warnings and notes it
    sent with an answer it gave) and what mafhir kept despite a gap (``warnings``)."""

    outcome: Outcome
    profile: str
    query_tag: str
    bundle: JSON
    errors: tuple[IisError, ...] = ()
    warnings: tuple[Problem, ...] = ()
    candidates: tuple[JSON, ...] = field(default=())

    def of_type(self, rtype: str) -> list[JSON]:
        return [e["resource"] for e in self.bundle.get("entry", [])
                if e["resource"]["resourceType"] == rtype]


def _location(err: Segment) -> str:
    """ERR-2 (ERL: segment ^ sequence ^ field ^ repetition ^ component) as ``QPD[1]-2``."""
    seg, seq, fld, comp = err.get(2), err.get(2, 2), err.get(2, 3), err.get(2, 5)
    if not seg:
        return ""
    return seg + (f"[{seq}]" if seq else "") + (f"-{fld}" if fld else "") + \
        (f".{comp}" if comp else "")


def _errors(msg: Message) -> tuple[IisError, ...]:
    return tuple(IisError(_location(err), err.get(3), err.get(4).upper(), err.get(5),
                          null(err.get(8)) or null(err.get(3, 2)))
                 for err in msg.all("ERR"))


def read_rsp(text: str | bytes | Message, ctx: V2Context, asked: JSON | None = None
             ) -> QueryResult:
    """The typed result of an RSP^K11; QueryRefused for AE/AR, InputError for an answer
    that is not an RSP^K11 or cannot be read (naming the field).

    ``asked`` is the Patient the query was about (its MRN identifier first). A registry
    may answer with only its own ids in PID-3; the doses then belong to the patient asked
    about (the registry matched them to the query), and the PID's Patient is not written
    — a registry id must never create or match a chart by itself."""
    msg = text if isinstance(text, Message) else parse(text)
    if msg.type != "RSP^K11":
        raise InputError([Problem("MSH-9", f"expected RSP^K11, got {msg.type or 'nothing'}",
                                  "not-supported")])
    errors = _errors(msg)
    msa, qak = msg.first("MSA"), msg.first("QAK")
    ack = msa.get(1).upper() if msa is not None else ""
    status = qak.get(2).upper() if qak is not None else ""
    if ack in ("AE", "AR", "CE", "CR") or status in ("AE", "AR"):
        raise QueryRefused(status if status in ("AE", "AR") else ack, errors)
    if qak is None:
        raise InputError([Problem("QAK", "the answer has no QAK segment (query status)",
                                  "required")])
    profile = msg.msh.get(21)
    qpd = msg.first("QPD")
    tag = qak.get(1) or (qpd.get(2) if qpd is not None else "")
    pids = msg.all("PID")
    reader = DoseReader(msg, ctx, message_tz(msg, ctx))
    if profile == "Z31" or len(pids) > 1:
        candidates = tuple(read_patient(msg, reader, pid).resource for pid in pids)
        return QueryResult("candidates", profile, tag, transaction([]), errors,
                           tuple(reader.warnings), candidates)
    if status not in QAK_OUTCOME:
        raise InputError([Problem("QAK-2", "is not a query response status of HL7 table "
                                  "0208 (OK, NF, TM, PD, AE, AR)", "code-invalid")])
    if status != "OK" or not pids:
        return QueryResult(QAK_OUTCOME[status] if pids or status != "OK" else "not-found",
                           profile, tag, transaction([]), errors)
    found = _answered_patient(msg, reader, asked)
    entries: list[Entry] = [found.entry] if found.entry is not None else []
    registry = _registry_name(msg)
    forecast: list[tuple[DoseGroup, int]] = []
    evaluated = profile == "Z42"
    for k, group in enumerate(dose_groups(msg, reader.warnings), start=1):
        if group.rxa.get(5) == NO_VACCINE:
            forecast.append((group, k))
            continue
        rows = [o for o in group.obx if null(o.get(3)).strip() not in EVALUATION_LOINC] \
            if evaluated else group.obx
        own = DoseGroup(group.orc, group.rxa, group.rxr, rows)
        before = len(reader.problems)
        imm = reader.immunization(own, k, found.reference)
        if len(reader.problems) > before:
            # one unreadable dose does not hide the rest of the history: it is left out
            # and each of its problems shown to the MA (the answer is not stored as is)
            reader.warnings.extend(reader.problems[before:])
            reader.warnings.append(Problem(group.rxa.where(), "this dose of the registry's "
                                           "answer could not be read and is not shown",
                                           "incomplete"))
            del reader.problems[before:]
            continue
        _from_registry(imm, registry)
        entries.append(create(imm))
        if evaluated:
            entries.extend(create(e) for e in _evaluations(group, imm, found.reference,
                                                           reader))
    if forecast:
        entries.append(update(_recommendation(forecast, msg, found.reference, reader,
                                              found.resource)))
    if reader.problems:
        raise InputError(reader.problems)
    return QueryResult("found", profile, tag, transaction(entries), errors,
                       (*found.warnings, *reader.warnings))


@dataclass(frozen=True)
class _Answered:
    resource: JSON
    reference: JSON
    entry: Entry | None
    warnings: tuple[Problem, ...] = ()


def _answered_patient(msg: Message, reader: DoseReader, asked: JSON | None) -> _Answered:
    """The PID's Patient when it carries the clinic's MRN; else, with ``asked``, the
    patient asked about (by its MRN reference; the PID read only to report that)."""
    try:
        found = read_patient(msg, reader)
    except InputError as exc:
        if asked is None or not asked.get("identifier") or \
                any(p.code != "business-rule" for p in exc.problems):
            raise
        key = asked["identifier"][0]
        return _Answered(asked, {"reference": "Patient?" + identifier_query(
            key["system"], key["value"])}, None, (Problem(
                "PID-3", "the registry's answer names the patient by its own ids only; the "
                "doses are filed under the patient asked about", "incomplete"),))
    return _Answered(found.resource, found.reference, found.entry, found.warnings)


def _registry_name(msg: Message) -> str:
    return " ".join(p for p in (msg.msh.get(3), msg.msh.get(4)) if p) or "the IIS"


def _from_registry(imm: JSON, registry: str) -> None:
    """The registry reported the dose: not the primary source, the IIS as origin (the
    NIP001 source it recorded kept beside it)."""
    imm["primarySource"] = False
    nip = [c for c in imm.get("reportOrigin", {}).get("coding", [])
           if c.get("system") != IMMUNIZATION_ORIGIN]
    imm["reportOrigin"] = {"coding": [{"system": IMMUNIZATION_ORIGIN, "code": "jurisdiction",
                                       "display": "Jurisdictional IIS"}, *nip],
                           "text": f"reported by {registry}"}


def _by_subid(rows: list[Segment]) -> dict[str, list[Segment]]:
    out: dict[str, list[Segment]] = {}
    for obx in rows:
        out.setdefault(null(obx.get(4)) or f"#{obx.occurrence}", []).append(obx)
    return out


def _value(rows: list[Segment], loinc: str) -> Segment | None:
    return next((o for o in rows if null(o.get(3)).strip() == loinc), None)


def _targeted(rows: list[Segment], what: str, reader: DoseReader
              ) -> list[tuple[str, Segment, list[Segment]]]:
    """(OBX-4 sub-id, vaccine-group row, rows) per group of ``rows``; a group with no
    vaccine group (OBX 30956-7 or 38890-0) is reported, not guessed."""
    out = []
    for sub, obxs in _by_subid(rows).items():
        target = _value(obxs, "30956-7") or _value(obxs, "38890-0")
        if target is None:
            reader.warnings.append(Problem(obxs[0].where(3), f"{what} rows without a vaccine "
                                           "group (OBX 30956-7); not mapped", "incomplete"))
            continue
        out.append((sub, target, obxs))
    return out


def _series(obxs: list[Segment], into: JSON) -> None:
    """OBX 30973-2 (dose number) and 59782-3 (doses in series) as FHIR positiveInts."""
    dose, doses = _int(_value(obxs, "30973-2")), _int(_value(obxs, "59782-3"))
    if dose:
        into["doseNumberPositiveInt"] = dose
    if doses:
        into["seriesDosesPositiveInt"] = doses


def _int(obx: Segment | None) -> int | None:
    text = null(obx.get(5)).strip() if obx is not None else ""
    return int(text) if text.isdigit() and int(text) > 0 else None


def _evaluations(group: DoseGroup, imm: JSON, patient: JSON, reader: DoseReader
                 ) -> list[JSON]:
    """One ImmunizationEvaluation per vaccine group the IIS evaluated this dose for."""
    out = []
    ident = imm["identifier"][0]
    event = {"reference": f"Immunization?{identifier_query(ident['system'], ident['value'])}"}
    rows = [o for o in group.obx if null(o.get(3)).strip() in EVALUATION_LOINC]
    for sub, target, obxs in _targeted(rows, "evaluation", reader):
        ev: JSON = {"resourceType": "ImmunizationEvaluation",
                    "identifier": [{"system": f"{ident['system']}/evaluation",
                                    "value": f"{ident['value']}-{sub}"}],
                    "status": "completed", "patient": patient,
                    "targetDisease": codeable(target.v(5)) or {"text": readable(target.v(5))},
                    "immunizationEvent": event}
        when = reader.time(target.get(14), target.where(14))
        if when:
            ev["date"] = when
        validity = _value(obxs, "59781-5")
        answer = null(validity.get(5)).upper() if validity is not None else ""
        if answer in ("Y", "N"):
            ev["doseStatus"] = {"coding": [{"system": EVAL_STATUS,
                                            "code": "valid" if answer == "Y" else "notvalid"}],
                                "text": readable(validity.v(5)) if validity else answer}
        elif validity is not None:
            ev["doseStatus"] = codeable(validity.v(5)) or {"text": answer}
        else:
            ev["doseStatus"] = {"text": "validity not stated by the registry"}
        reason = _value(obxs, "30982-3")
        if reason is not None and (c := codeable(reason.v(5))):
            ev["doseStatusReason"] = [c]
        schedule = _value(obxs, "59779-9")
        if schedule is not None:
            ev["authority"] = {"display": null(schedule.get(5, 2)) or null(schedule.get(5))}
        series = _value(obxs, "59780-7")
        if series is not None:
            ev["series"] = readable(series.v(5))
        _series(obxs, ev)
        out.append(ev)
    return out


def _recommendation(groups: list[tuple[DoseGroup, int]], msg: Message, patient: JSON,
                    reader: DoseReader, patient_resource: JSON) -> JSON:
    """The forecast: one recommendation per vaccine group, with its dates and status.
    Keyed on the registry and the patient, so the next query's forecast replaces it."""
    key = patient_resource["identifier"][0]
    try:  # when the forecast was made: MSH-7, its date alone when its zone is unknown
        made: str | None = read_dtm(msg.msh.get(7), reader.tz)
    except DtmError:
        made = reader.date(msg.msh.get(7), "MSH-7")
    rec: JSON = {"resourceType": "ImmunizationRecommendation",
                 "identifier": [{"system": f"{reader.ctx.map.clinic.system}/iis/forecast",
                                 "value": uuid.uuid5(uuid.NAMESPACE_URL, "|".join((
                                     msg.sender_name, key["system"], key["value"]))).hex}],
                 "patient": patient, "date": made or reader.ctx.now.isoformat(),
                 "authority": {"display": _registry_name(msg)}, "recommendation": []}
    today = (made or reader.ctx.now.isoformat())[:10]
    for group, _k in groups:
        for _sub, target, obxs in _targeted(group.obx, "forecast", reader):
            one: JSON = {"vaccineCode": [codeable(target.v(5)) or
                                         {"text": readable(target.v(5))}]}
            criteria = []
            for loinc in DATE_CRITERIA:
                row = _value(obxs, loinc)
                day = reader.date(row.get(5), row.where(5)) if row is not None else None
                if day:
                    criteria.append({"code": {"coding": [{
                        "system": systems.LOINC, "code": loinc,
                        "display": CRITERION_DISPLAY[loinc]}]}, "value": day})
            if criteria:
                one["dateCriterion"] = criteria
            one["forecastStatus"] = _status(_value(obxs, "59783-1"), criteria, today)
            schedule = _value(obxs, "59779-9")
            if schedule is not None:
                one["description"] = f"schedule: {readable(schedule.v(5))}"
            _series(obxs, one)
            rec["recommendation"].append(one)
    if not rec["recommendation"]:
        rec["recommendation"].append({"vaccineCode": [{"text": "no forecast given"}],
                                      "forecastStatus": {"text": "not stated"}})
    return rec


def _status(row: Segment | None, criteria: list[JSON], today: str) -> JSON:
    """59783-1 as the IIS said it; without it, from the dates: overdue once the overdue
    date has come, else due (the IIS gave a due date, so the dose is not complete)."""
    if row is not None and null(row.get(5)):
        concept = codeable(row.v(5)) or {"text": readable(row.v(5))}
        word = (null(row.get(5, 2)) or null(row.get(5))).lower()
        for code in ("overdue", "due", "complete", "immune", "contraindicated"):
            if code in word.split() or word == code:
                concept.setdefault("coding", []).insert(0, {"system": FORECAST_STATUS,
                                                            "code": code})
                break
        return concept
    dates = {c["code"]["coding"][0]["code"]: c["value"] for c in criteria}
    overdue = dates.get("59778-1")
    code = "overdue" if overdue and overdue <= today else "due"
    return {"coding": [{"system": FORECAST_STATUS, "code": code}]}
