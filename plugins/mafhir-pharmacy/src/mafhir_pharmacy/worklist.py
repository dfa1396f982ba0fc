"""The MA's refill worklist: prescriptions sent, refill requests waiting, decisions made.

A small SQLite file, or a PostgreSQL database (``postgresql://…``), through
:mod:`mafhir.storage` like every mafhir store (the tables of earlier releases, unchanged,
so their files open as they are). It is what makes the refill workflow a state machine across runs
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
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Index, Integer, MetaData, Table, Text, delete, select, update
from sqlalchemy.engine import Connection

from mafhir.bundle import transaction
from mafhir.errors import InputError, MafhirError, Problem
from mafhir.hl7v2 import ConvertHandler, Message, Outcome, V2Context
from mafhir.registry import Registry
from mafhir.storage import (
    create_tables,
    display_url,
    is_postgres,
    open_engine,
    upsert,
    write_transaction,
)

from .mappers import AlreadyAnswered, refill_request_to_fhir
from .tasks import PrescriptionTask, RefillDecisionTask, RefillRequestTask

__all__ = ["LocalWorklist", "RefillHandler", "UnknownPrescription"]

JSON = dict[str, Any]
REFILL_TYPES = ("RDE^O25", "OMP^O09")

metadata = MetaData()
prescriptions = Table("prescriptions", metadata, Column("id", Text, primary_key=True),
                      Column("task", Text, nullable=False))
requests = Table("requests", metadata, Column("id", Text, primary_key=True),
                 Column("prescription", Text, nullable=False),
                 Column("status", Text, nullable=False), Column("task", Text, nullable=False),
                 Column("decision", Text))
Index("requests_status", requests.c.status)
#: Where a request came from when it is to be answered there (a polled FHIR Task).
sources = Table("sources", metadata, Column("id", Text, primary_key=True),
                Column("target", Text, nullable=False), Column("task_ref", Text, nullable=False),
                Column("prior_ref", Text))
#: Answers owed to pharmacies: written with the decision, so none is lost when the
#: pharmacy is down; 'pending' until it took it, then 'sent' (or 'refused', with why).
answers = Table("answers", metadata, Column("id", Text, primary_key=True),
                Column("target", Text, nullable=False), Column("status", Text, nullable=False),
                Column("payload", Text),
                Column("attempts", Integer, nullable=False, server_default="0"),
                Column("error", Text))
cursors = Table("cursors", metadata, Column("source", Text, primary_key=True),
                Column("value", Text, nullable=False))
#: A pharmacy's Tasks that could not be read as refill requests: kept with why (never
#: their values) for the MA, so they are not lost and do not hold the poll cursor back;
#: 'updated' is the Task's meta.lastUpdated, so a corrected version is read again.
unreadable = Table("unreadable", metadata, Column("id", Text, primary_key=True),
                   Column("source", Text, nullable=False),
                   Column("task_ref", Text, nullable=False),
                   Column("reason", Text, nullable=False), Column("updated", Text))


class UnknownPrescription(InputError):
    """A refill request for a prescription the clinic has no record of."""


class LocalWorklist:
    """The worklist in SQLite (a path; ``:memory:`` for one process) or PostgreSQL."""

    def __init__(self, path: str | Path = "mafhir-pharmacy.sqlite") -> None:
        location = str(path)
        #: Where the worklist is, as it may be shown (never a password).
        self.path = display_url(location) if is_postgres(location) else location
        self.engine = open_engine(location, pool_size=2)
        self._dialect = self.engine.dialect.name
        create_tables(self.engine, metadata)
        self._lock = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``)."""
        with self._lock, self.engine.connect() as conn, write_transaction(conn):
            yield conn

    def _one(self, query: Any) -> Any:
        """The first row of ``query`` (None when there is none)."""
        with self.engine.connect() as conn:
            return conn.execute(query).first()

    def _all(self, query: Any) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def _put(self, table: Table, row: dict[str, Any], keys: tuple[str, ...],
             replace: bool = True) -> None:
        """INSERT OR REPLACE (``replace``) / OR IGNORE, in the backend's dialect."""
        cols = [c for c in row if c not in keys] if replace else None
        with self._tx() as conn:
            conn.execute(upsert(self._dialect, table, row, keys, cols))

    def add_prescription(self, task: PrescriptionTask) -> None:
        self._put(prescriptions, {"id": task.id, "task": task.model_dump_json()}, ("id",))

    def prescription(self, rx_id: str) -> PrescriptionTask | None:
        row = self._one(select(prescriptions.c.task).where(prescriptions.c.id == rx_id))
        return PrescriptionTask.model_validate_json(row[0]) if row else None

    def add_request(self, task: RefillRequestTask) -> str:
        """Put a request on the worklist; its state: ``requested``, or ``review`` when no
        prescription matches (then :class:`UnknownPrescription` is raised after storing).
        A request already there keeps its state."""
        known = self.prescription(task.prescription) is not None
        with self._tx() as conn:
            conn.execute(upsert(self._dialect, requests, {
                "id": task.id, "prescription": task.prescription,
                "status": "requested" if known else "review",
                "task": task.model_dump_json()}, ("id",), None))
            status = conn.execute(select(requests.c.status)
                                  .where(requests.c.id == task.id)).scalar_one()
        if status == "review":
            raise UnknownPrescription([Problem("prescription", f"refill request '{task.id}' "
                                                               "matches no prescription of "
                                                               "this clinic; held for review",
                                               "business-rule")])
        return status

    def add_source(self, request_id: str, target: str, task_ref: str,
                   prior_ref: str | None) -> None:
        """Remember that ``request_id`` is answered at ``target`` (its Task there)."""
        self._put(sources, {"id": request_id, "target": target, "task_ref": task_ref,
                            "prior_ref": prior_ref}, ("id",), replace=False)

    def source(self, request_id: str) -> tuple[str, str, str | None] | None:
        row = self._one(select(sources.c.target, sources.c.task_ref, sources.c.prior_ref)
                        .where(sources.c.id == request_id))
        return (row[0], row[1], row[2]) if row else None

    def cursor(self, source: str) -> str | None:
        row = self._one(select(cursors.c.value).where(cursors.c.source == source))
        return row[0] if row else None

    def set_cursor(self, source: str, value: str) -> None:
        self._put(cursors, {"source": source, "value": value}, ("source",))

    def add_unreadable(self, request_id: str, source: str, task_ref: str, reason: str,
                       updated: str | None) -> None:
        """Record a pharmacy Task that could not be read (its latest version and why)."""
        self._put(unreadable, {"id": request_id, "source": source, "task_ref": task_ref,
                               "reason": reason, "updated": updated}, ("id",))

    def unreadable_version(self, request_id: str) -> str | None:
        """The ``meta.lastUpdated`` of the unreadable Task as recorded, if it is."""
        row = self._one(select(unreadable.c.updated).where(unreadable.c.id == request_id))
        return row[0] if row else None

    def clear_unreadable(self, request_id: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(unreadable).where(unreadable.c.id == request_id))

    def unreadable(self) -> list[tuple[str, str, str, str]]:
        """(request, source, Task reference, why) of the Tasks that could not be read."""
        u = unreadable.c
        return self._all(select(u.id, u.source, u.task_ref, u.reason).order_by(u.id))

    def decision(self, request_id: str) -> RefillDecisionTask | None:
        row = self._one(select(requests.c.decision).where(requests.c.id == request_id))
        return RefillDecisionTask.model_validate_json(row[0]) if row and row[0] else None

    def answers(self, status: str | None = "pending") -> list[tuple[str, str, str, int,
                                                                     str | None]]:
        """(request, target, status, attempts, error) of the answers owed/made."""
        a = answers.c
        query = select(a.id, a.target, a.status, a.attempts, a.error).order_by(a.id)
        return self._all(query.where(a.status == status) if status else query)

    def answer_payload(self, request_id: str) -> str | None:
        row = self._one(select(answers.c.payload).where(answers.c.id == request_id))
        return row[0] if row else None

    def keep_payload(self, request_id: str, payload: str) -> None:
        """The built answer, kept so a re-send is the same message (same MSH-10)."""
        with self._tx() as conn:
            conn.execute(update(answers).where(answers.c.id == request_id,
                                               answers.c.payload.is_(None))
                         .values(payload=payload))

    def mark_answer(self, request_id: str, status: str, error: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(update(answers).where(answers.c.id == request_id).values(
                status=status, error=error, attempts=answers.c.attempts + 1))

    def state(self, request_id: str) -> str | None:
        row = self._one(select(requests.c.status).where(requests.c.id == request_id))
        return row[0] if row else None

    def request(self, request_id: str) -> RefillRequestTask | None:
        row = self._one(select(requests.c.task).where(requests.c.id == request_id))
        return RefillRequestTask.model_validate_json(row[0]) if row else None

    def items(self, status: str | None = None) -> list[tuple[str, RefillRequestTask]]:
        query = select(requests.c.status, requests.c.task).order_by(requests.c.id)
        rows = self._all(query.where(requests.c.status == status) if status else query)
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
        with self._tx() as conn:  # the conditional UPDATE: one answer wins
            done = conn.execute(update(requests).where(
                requests.c.id == request_id, requests.c.status == "requested").values(
                status=decision, decision=task.model_dump_json())).rowcount
            if done != 1:
                now = conn.execute(select(requests.c.status)
                                   .where(requests.c.id == request_id)).scalar()
                raise AlreadyAnswered(request_id, now or "unknown", decision)
            if target:
                conn.execute(answers.insert().values(id=request_id, target=target,
                                                     status="pending"))
        if decision == "approved" and task.renewal is not None:
            self.add_prescription(PrescriptionTask.model_validate({
                "task": "prescription", "id": decision_id,
                "patient": raw["patient"], "written": at.isoformat(),
                "prescriber": raw["prescriber"], **json.loads(task.renewal.model_dump_json(
                    exclude_none=True))}))
        return task

    def close(self) -> None:
        with self._lock:
            self.engine.dispose()


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
            # as ConvertHandler: a business rule (an MRN authority the clinic does not
            # map) holds it for review; ERR-3 comes from each problem's code
            held = any(p.code == "business-rule" for p in exc.problems)
            return Outcome("review" if held else "error", exc.problems)
        if warnings and self.strict:
            return Outcome("error", tuple(warnings))
        review = []
        for n, task in enumerate(tasks, start=1):
            try:
                self.worklist.add_request(task)
            except UnknownPrescription:
                # not-found: ERR 204 (unknown key) on ORC-2; the outcome holds it for review
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
