"""The MA's refill worklist: prescriptions sent, refill requests waiting, decisions made.

A small SQLite file. It is what makes the refill workflow a state machine across runs
and processes (a listener receives, the MA decides later): a request whose prescription
the clinic never sent is kept for review, not dropped; deciding a request the worklist
does not hold, or one already answered, is an error naming it. The decision is recorded
with a conditional UPDATE (``WHERE status = 'requested'``), so two people answering at
once cannot both succeed.

:class:`RefillHandler` is the MLLP receiver's handler for RDE^O25/OMP^O09: it fills the
worklist and answers AA, or AE with ERR 204 on ORC-2 when no prescription matches.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mafhir.bundle import transaction
from mafhir.errors import InputError, MafhirError, Problem
from mafhir.hl7v2 import ConvertHandler, Message, Outcome, V2Context
from mafhir.registry import Registry

from .mappers import AlreadyAnswered, refill_request_to_fhir
from .tasks import PrescriptionTask, RefillDecisionTask, RefillRequestTask

__all__ = ["LocalWorklist", "RefillHandler", "UnknownPrescription"]

JSON = dict[str, Any]
REFILL_TYPES = ("RDE^O25", "OMP^O09")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS prescriptions (id TEXT PRIMARY KEY, task TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, prescription TEXT NOT NULL, status TEXT NOT NULL,
    task TEXT NOT NULL, decision TEXT
);
CREATE INDEX IF NOT EXISTS requests_status ON requests (status);
-- where a request came from when it is to be answered there (a polled FHIR Task)
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, task_ref TEXT NOT NULL, prior_ref TEXT
);
-- answers owed to pharmacies: written with the decision, so none is lost when the
-- pharmacy is down; 'pending' until it took it, then 'sent' (or 'refused', with why)
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, status TEXT NOT NULL, payload TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT
);
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
-- a pharmacy's Tasks that could not be read as refill requests: kept with why (never
-- their values) for the MA, so they are not lost and do not hold the poll cursor back;
-- 'updated' is the Task's meta.lastUpdated, so a corrected version is read again
CREATE TABLE IF NOT EXISTS unreadable (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, task_ref TEXT NOT NULL, reason TEXT NOT NULL,
    updated TEXT
);
"""


class UnknownPrescription(InputError):
    """A refill request for a prescription the clinic has no record of."""


class LocalWorklist:
    """SQLite-backed worklist (``:memory:`` for one process)."""

    def __init__(self, path: str | Path = "mafhir-pharmacy.sqlite") -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def add_prescription(self, task: PrescriptionTask) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO prescriptions VALUES (?, ?)",
                             (task.id, task.model_dump_json()))

    def prescription(self, rx_id: str) -> PrescriptionTask | None:
        with self._lock:
            row = self._db.execute("SELECT task FROM prescriptions WHERE id=?",
                                   (rx_id,)).fetchone()
        return PrescriptionTask.model_validate_json(row[0]) if row else None

    def add_request(self, task: RefillRequestTask) -> str:
        """Put a request on the worklist; its state: ``requested``, or ``review`` when no
        prescription matches (then :class:`UnknownPrescription` is raised after storing)."""
        known = self.prescription(task.prescription) is not None
        status = "requested" if known else "review"
        with self._lock:
            row = self._db.execute("SELECT status FROM requests WHERE id=?",
                                   (task.id,)).fetchone()
            if row is None:
                self._db.execute("INSERT INTO requests VALUES (?, ?, ?, ?, NULL)",
                                 (task.id, task.prescription, status, task.model_dump_json()))
            else:
                status = row[0]
        if status == "review":
            raise UnknownPrescription([Problem("prescription", f"refill request '{task.id}' "
                                                               "matches no prescription of "
                                                               "this clinic; held for review",
                                               "business-rule")])
        return status

    def add_source(self, request_id: str, target: str, task_ref: str,
                   prior_ref: str | None) -> None:
        """Remember that ``request_id`` is answered at ``target`` (its Task there)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO sources VALUES (?, ?, ?, ?)",
                             (request_id, target, task_ref, prior_ref))

    def source(self, request_id: str) -> tuple[str, str, str | None] | None:
        with self._lock:
            row = self._db.execute("SELECT target, task_ref, prior_ref FROM sources WHERE id=?",
                                   (request_id,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def cursor(self, source: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM cursors WHERE source=?",
                                   (source,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, source: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (source, value))

    def add_unreadable(self, request_id: str, source: str, task_ref: str, reason: str,
                       updated: str | None) -> None:
        """Record a pharmacy Task that could not be read (its latest version and why)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO unreadable VALUES (?, ?, ?, ?, ?)",
                             (request_id, source, task_ref, reason, updated))

    def unreadable_version(self, request_id: str) -> str | None:
        """The ``meta.lastUpdated`` of the unreadable Task as recorded, if it is."""
        with self._lock:
            row = self._db.execute("SELECT updated FROM unreadable WHERE id=?",
                                   (request_id,)).fetchone()
        return row[0] if row else None

    def clear_unreadable(self, request_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM unreadable WHERE id=?", (request_id,))

    def unreadable(self) -> list[tuple[str, str, str, str]]:
        """(request, source, Task reference, why) of the Tasks that could not be read."""
        with self._lock:
            return list(self._db.execute("SELECT id, source, task_ref, reason FROM unreadable "
                                         "ORDER BY id"))

    def decision(self, request_id: str) -> RefillDecisionTask | None:
        with self._lock:
            row = self._db.execute("SELECT decision FROM requests WHERE id=?",
                                   (request_id,)).fetchone()
        return RefillDecisionTask.model_validate_json(row[0]) if row and row[0] else None

    def answers(self, status: str | None = "pending") -> list[tuple[str, str, str, int,
                                                                     str | None]]:
        """(request, target, status, attempts, error) of the answers owed/made."""
        with self._lock:
            sql = "SELECT id, target, status, attempts, error FROM answers"
            return list(self._db.execute(sql + (" WHERE status=?" if status else "") +
                                         " ORDER BY id", (status,) if status else ()))

    def answer_payload(self, request_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT payload FROM answers WHERE id=?",
                                   (request_id,)).fetchone()
        return row[0] if row else None

    def keep_payload(self, request_id: str, payload: str) -> None:
        """The built answer, kept so a re-send is the same message (same MSH-10)."""
        with self._lock:
            self._db.execute("UPDATE answers SET payload=? WHERE id=? AND payload IS NULL",
                             (payload, request_id))

    def mark_answer(self, request_id: str, status: str, error: str | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE answers SET status=?, error=?, attempts=attempts+1 "
                             "WHERE id=?", (status, error, request_id))

    def state(self, request_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM requests WHERE id=?",
                                   (request_id,)).fetchone()
        return row[0] if row else None

    def request(self, request_id: str) -> RefillRequestTask | None:
        with self._lock:
            row = self._db.execute("SELECT task FROM requests WHERE id=?",
                                   (request_id,)).fetchone()
        return RefillRequestTask.model_validate_json(row[0]) if row else None

    def items(self, status: str | None = None) -> list[tuple[str, RefillRequestTask]]:
        with self._lock:
            sql = "SELECT status, task FROM requests"
            rows = self._db.execute(sql + (" WHERE status=?" if status else "") + " ORDER BY id",
                                    (status,) if status else ()).fetchall()
        return [(s, RefillRequestTask.model_validate_json(t)) for s, t in rows]

    def decide(self, request_id: str, decision: str, at: datetime, decision_id: str, *,
               reason: str | None = None, reason_text: str | None = None,
               quantity: float | None = None, refills: int | None = None,
               answer_to: str | None = None) -> RefillDecisionTask:
        """Answer a request once: the ``refill_decision`` task to map and send.

        The answer owed to the pharmacy is recorded in the same transaction as the
        decision (at ``answer_to``, a ``CHANNEL:TARGET``; by default where a polled
        request came from), so a pharmacy that is down loses nothing: it stays pending
        until delivered (:func:`mafhir_pharmacy.answers.deliver_answers`).
        """
        request = self.request(request_id)
        state = self.state(request_id)
        if request is None:
            raise InputError([Problem("request", f"no refill request '{request_id}' is on the "
                                                 "worklist", "not-found")])
        if state == "review":
            raise InputError([Problem("request", f"refill request '{request_id}' matches no "
                                                 "prescription; resolve it before deciding",
                                      "business-rule")])
        if state != "requested":
            raise AlreadyAnswered(request_id, str(state), decision)
        if request.prescriber is None:
            raise InputError([Problem("request", f"refill request '{request_id}' names no "
                                                 "prescriber (the pharmacy sent none); it "
                                                 "cannot be answered in a prescriber's name",
                                      "required")])
        raw: JSON = {"task": "refill_decision", "id": decision_id, "request": request_id,
                     "request_status": "requested", "received": request.received.isoformat(),
                     "decided": at.isoformat(), "decision": decision, "reason": reason,
                     "reason_text": reason_text,
                     "patient": request.patient.model_dump(mode="json", exclude_none=True),
                     "prescription": request.prescription,
                     "prescriber": request.prescriber.model_dump(mode="json",
                                                                 exclude_none=True),
                     "pharmacy": request.pharmacy.model_dump(mode="json", exclude_none=True),
                     "message_id": request.message_id}
        if decision == "approved":
            prior = self.prescription(request.prescription)
            assert prior is not None
            qty = prior.quantity.model_dump()
            if quantity is not None:
                qty["value"] = quantity
            raw["renewal"] = {
                "medication": prior.medication.model_dump(mode="json", exclude_none=True),
                "sig": prior.sig.model_dump(mode="json", exclude_none=True),
                "quantity": qty, "days_supply": prior.days_supply,
                "refills": prior.refills if refills is None else refills,
                "substitution_allowed": prior.substitution_allowed,
                "pharmacy": prior.pharmacy.model_dump(mode="json", exclude_none=True)}
        task = RefillDecisionTask.model_validate({k: v for k, v in raw.items()
                                                  if v is not None})
        source = self.source(request_id)
        target = answer_to or (source[0] if source else None)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cur = self._db.execute("UPDATE requests SET status=?, decision=? WHERE id=? "
                                       "AND status='requested'",
                                       (decision, task.model_dump_json(), request_id))
                if cur.rowcount != 1:
                    now = self._db.execute("SELECT status FROM requests WHERE id=?",
                                           (request_id,)).fetchone()
                    raise AlreadyAnswered(request_id, now[0] if now else "unknown", decision)
                if target:
                    self._db.execute("INSERT INTO answers (id, target, status) VALUES "
                                     "(?, ?, 'pending')", (request_id, target))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        if decision == "approved" and task.renewal is not None:
            self.add_prescription(PrescriptionTask.model_validate({
                "task": "prescription", "id": decision_id,
                "patient": raw["patient"], "written": at.isoformat(),
                "prescriber": raw["prescriber"], **json.loads(task.renewal.model_dump_json(
                    exclude_none=True))}))
        return task

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RefillHandler:
    """Receiver handler: refill requests onto the worklist; other types to ``fallback``."""

    def __init__(self, registry: Registry, ctx: V2Context, worklist: LocalWorklist,
                 deliver: Callable[[JSON], Any] | None = None, strict: bool = False) -> None:
        self.registry = registry
        self.ctx = ctx
        self.worklist = worklist
        self.deliver = deliver
        #: ``--strict``: a request kept despite a gap (no prescriber named) is refused
        self.strict = strict
        self.fallback = ConvertHandler(registry, ctx, deliver)

    def __call__(self, msg: Message) -> Outcome:
        from .v2in import refill_requests

        if msg.type not in REFILL_TYPES:
            return self.fallback(msg)
        try:
            tasks, warnings = refill_requests(msg, self.ctx)
        except InputError as exc:
            return Outcome("error", exc.problems)
        if warnings and self.strict:
            return Outcome("error", tuple(warnings))
        review = []
        for n, task in enumerate(tasks, start=1):
            try:
                self.worklist.add_request(task)
            except UnknownPrescription:
                review.append(Problem(f"ORC[{n}]-2", "matches no prescription of this "
                                                     "clinic; held for review", "not-found"))
        if review:
            return Outcome("review", tuple(review))
        bundle = transaction(e for t in tasks for e in refill_request_to_fhir(t, self.ctx.map))
        if self.deliver is not None:
            try:
                self.deliver(bundle)
            except MafhirError as exc:
                return Outcome("retry" if exc.transient else "error",
                               (Problem("", f"delivery failed ({type(exc).__name__})",
                                        "transient" if exc.transient else "processing"),),
                               bundle)
        return Outcome("processed", (), bundle)
