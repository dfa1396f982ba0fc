"""The stand-in IIS's memory: every dose it accepted, keyed by patient.

A real IIS keeps one record per dose and per patient, whatever number of messages
reported it: a VXU re-sent (the outbox retrying after a lost ACK) updates the dose it
named by ORC-3 (the submitter's filler order number), RXA-21 ``D`` deletes it and ``U``
replaces it. So does this registry. It also keeps the log of every message it accepted
(:attr:`Registry.receipts`), so a test can tell "recorded once" from "sent once".

The API the query side (QBP^Q11 → RSP^K11, forecast) reads — stable, documented here:

``Registry.history(query: PatientQuery) -> list[DoseRecord]``
    Every dose of the one patient ``query`` matches, oldest first (by RXA-3, then by
    arrival). A patient matches on an identifier (``query.id``, and ``query.authority``
    when given: PID-3.1 / PID-3.4 as submitted) or, without one, on family name, given
    name and birth date together (case-insensitive; sex too when both sides have one).
    No match, or more than one patient: ``[]`` — call :meth:`Registry.patients` first to
    tell "not found" (``[]``) from "too many candidates" (``len > 1``), which is what an
    RSP's QAK-2 ``NF`` / ``TM`` needs.

``Registry.patients(query: PatientQuery) -> list[PatientRecord]``
    The patients ``query`` matches (demographics as last submitted).

:class:`DoseRecord` fields are the VXU's own, as text, codes unchanged: ``cvx`` (leading
zeros kept), ``ndc``, ``administered`` (RXA-3, HL7 DTM as sent), ``amount``/``unit``,
``source`` (RXA-9 NIP001: ``00`` administered, ``01``–``08`` historical, ``""`` when a
refusal left it empty), ``completion`` (RXA-20: CP, PA, RE, NA), ``refusal`` (RXA-18),
``lot``, ``expiration``, ``mvx``, ``route``/``site``, ``eligibility``/``funding`` (OBX
64994-7 / 30963-3), ``filler_id`` (ORC-3.1), ``sender`` (MSH-4.1) and ``received``.
Thread-safe: the SOAP and MLLP endpoints record into one registry.

Answering other message types (QBP^Q11 → RSP^K11): add an answerer for ``"QBP"`` to
:data:`mafhir_iis.standin.answer.ANSWERERS` (``(message, registry, now) -> bytes``), or
pass ``answerers=`` to :class:`~mafhir_iis.standin.StandinIIS`; both endpoints use it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["DoseRecord", "PatientQuery", "PatientRecord", "Receipt", "Registry"]


@dataclass(frozen=True)
class PatientQuery:
    """Who to look up: an identifier, or name and birth date (YYYYMMDD)."""

    id: str = ""
    authority: str = ""
    family: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = ""


@dataclass(frozen=True)
class PatientRecord:
    """A patient as last submitted (PID): identifier, authority, name, DOB, sex."""

    id: str
    authority: str
    family: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = ""
    mother_maiden: str = ""


@dataclass(frozen=True)
class DoseRecord:
    """One dose as the registry holds it (the RXA/RXR/OBX facts, as text)."""

    patient: PatientRecord
    filler_id: str
    cvx: str
    cvx_text: str = ""
    ndc: str = ""
    administered: str = ""
    amount: str = ""
    unit: str = ""
    source: str = ""
    completion: str = ""
    refusal: str = ""
    action: str = "A"
    lot: str = ""
    expiration: str = ""
    mvx: str = ""
    route: str = ""
    site: str = ""
    eligibility: str = ""
    funding: str = ""
    administering_npi: str = ""
    sender: str = ""
    received: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Receipt:
    """One accepted message: sender (MSH-4), control id (MSH-10), patient key, doses."""

    sender: str
    control_id: str
    patient: tuple[str, str]
    doses: int


def _norm(text: str) -> str:
    return text.strip().upper()


class Registry:
    """Doses by patient (``(authority, id)``), in memory; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._patients: dict[tuple[str, str], PatientRecord] = {}
        self._doses: dict[tuple[str, str], dict[str, DoseRecord]] = {}
        self._order = 0
        self._arrival: dict[tuple[tuple[str, str], str], int] = {}
        #: Every message accepted, in order (re-sends included).
        self.receipts: list[Receipt] = []

    # -- writing (the stand-in's message handling) ---------------------------------
    def record(self, patient: PatientRecord, doses: list[DoseRecord], sender: str,
               control_id: str) -> None:
        """Keep the patient and apply each dose (add/update by ORC-3, delete on ``D``)."""
        key = (patient.authority, patient.id)
        with self._lock:
            self._patients[key] = patient
            held = self._doses.setdefault(key, {})
            for dose in doses:
                if dose.action == "D":
                    held.pop(dose.filler_id, None)
                    continue
                if dose.filler_id not in held:
                    self._order += 1
                    self._arrival[(key, dose.filler_id)] = self._order
                held[dose.filler_id] = dose
            self.receipts.append(Receipt(sender, control_id, key, len(doses)))

    # -- reading (the query side) -------------------------------------------------
    def patients(self, query: PatientQuery) -> list[PatientRecord]:
        """The patients ``query`` matches (see the module docstring)."""
        with self._lock:
            known = list(self._patients.values())
        if query.id:
            return [p for p in known if p.id == query.id
                    and (not query.authority or _norm(p.authority) == _norm(query.authority))]
        if not (query.family and query.birth_date):
            return []
        return [p for p in known
                if _norm(p.family) == _norm(query.family)
                and (not query.given or _norm(p.given) == _norm(query.given))
                and p.birth_date[:8] == query.birth_date[:8]
                and (not (query.sex and p.sex) or _norm(p.sex) == _norm(query.sex))]

    def history(self, query: PatientQuery) -> list[DoseRecord]:
        """Every dose of the one patient ``query`` matches, oldest first; ``[]`` when none
        or several match."""
        found = self.patients(query)
        if len(found) != 1:
            return []
        key = (found[0].authority, found[0].id)
        with self._lock:
            doses = list(self._doses.get(key, {}).values())
            arrival = {d.filler_id: self._arrival[(key, d.filler_id)] for d in doses}
        return sorted(doses, key=lambda d: (d.administered[:8], arrival[d.filler_id]))

    def doses(self) -> list[DoseRecord]:
        """Every dose held, of every patient (for tests and ``standin`` reports)."""
        with self._lock:
            return [d for held in self._doses.values() for d in held.values()]
