"""The outbox store: one interface, one SQLAlchemy Core implementation, two backends.

:class:`OutboxStore` holds everything that is the same on SQLite and PostgreSQL; the
backends (:mod:`.sqlite`, :mod:`.postgres`) differ only in how work is claimed without
two workers taking the same item, in how a shared resource is locked while it is first
created, and in who may run workers (SQLite: one process; PostgreSQL: any number).

Ordering: an item is claimable only when no earlier item of the same destination and
ordering key (the patient) is still active, so one patient's work goes out in order while
other patients' work goes out in parallel; a dead item no longer blocks its patient.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import (
    Engine,
    Integer,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection

from ..errors import InputError, Problem
from ..redact import carries_credentials, redact_text, without_password
from ..storage import create_tables, is_postgres, upsert
from . import schema
from .model import Item, NewItem, Outcome
from .schema import ACTIVE, attempts, audit, items, ledger, quarantine

__all__ = ["LedgerRow", "OutboxStore", "open_store"]

LedgerRow = dict[str, Any]
LEDGER_KEY = ("destination", "rtype", "ident")
LEDGER_UPDATE = ("server_id", "version", "content_hash", "item_id", "updated_at")


class OutboxStore(ABC):
    """A durable outbox in a SQL database (see the module docstring)."""

    dialect = ""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = without_password(url)  # shown by status and summaries; never the password

    # ------------------------------------------------------------------ backend specifics
    @abstractmethod
    def _tx(self) -> AbstractContextManager[Connection]:
        """A write transaction (SQLite: behind the one writer's lock)."""

    def _claim_tx(self) -> AbstractContextManager[Connection]:
        """The write transaction of a claim (SQLite: one that need not reach the disk)."""
        return self._tx()

    @abstractmethod
    def _claim_ids(self, conn: Connection, now: float, limit: int) -> list[int]:
        """Ids of :meth:`_claimable` items, locked for this transaction (or made exclusive
        another way)."""

    @abstractmethod
    def identity_lock(self, key: str) -> AbstractContextManager[None]:
        """Held while a resource shared by several patients is first created."""

    @abstractmethod
    def acquire_worker_lock(self) -> bool:
        """May this process run workers? (SQLite: one process at a time.)"""

    def _upsert(self, conn: Connection, table: Any, rows: list[dict[str, Any]],
                keys: Sequence[str], update_cols: Sequence[str] | None,
                count: bool = False) -> int:
        """INSERT … ON CONFLICT DO NOTHING / DO UPDATE of ``rows``, in the backend's dialect,
        as one executemany of one cached statement. With ``count``, how many rows it wrote
        (by ``RETURNING``: psycopg's executemany gives no row count)."""
        if not rows:
            return 0
        stmt = upsert(self.dialect, table, None, keys, update_cols)
        if not count:
            conn.execute(stmt, rows)
            return len(rows)
        key = next(iter(table.primary_key.columns))
        return len(conn.execute(stmt.returning(key), rows).all())

    def create_schema(self) -> None:
        create_tables(self.engine, schema.metadata)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # ------------------------------------------------------------------ enqueue
    def known_keys(self, destination: str, keys: Iterable[str]) -> set[str]:
        """The idempotency keys among ``keys`` already in the outbox for ``destination``."""
        keys = list(keys)
        found: set[str] = set()
        with self._read() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                found.update(conn.execute(select(items.c.idem_key).where(
                    items.c.destination == destination,
                    items.c.idem_key.in_(chunk))).scalars())
        return found

    def enqueue(self, new: Sequence[NewItem]) -> int:
        """Write ``new`` durably; an item already there (same key) is skipped. Returns added."""
        if not new:
            return 0
        for n in new:  # the last line of defence: a credential is never written down
            if carries_credentials(n.destination):
                raise InputError([Problem("destination", "carries credentials (user:password@ or "
                                          "a token in the query); the outbox never "
                                          "stores them", "security")])
        now = time.time()
        rows = [{"destination": n.destination, "okey": n.okey, "idem_key": n.idem_key,
                 "payload": n.payload, "source": n.source[:500], "kind": n.kind,
                 "state": "pending", "attempts": 0, "next_at": 0.0, "created_at": now,
                 "updated_at": now} for n in new]
        with self._tx() as conn:  # DO NOTHING: the row count is what was added
            return self._upsert(conn, items, rows, ["destination", "idem_key"], None,
                                count=True)

    def quarantine(self, rows: Sequence[dict[str, Any]]) -> int:
        """Keep input that could not become work (``source``, ``idx``, ``problems``, ``raw``)."""
        if not rows:
            return 0
        now = time.time()
        data = [{"qkey": r["qkey"], "source": r["source"][:500], "idx": r["idx"],
                 "problems": json.dumps(r["problems"]), "raw": r.get("raw"),
                 "created_at": now} for r in rows]
        with self._tx() as conn:
            self._upsert(conn, quarantine, data, ["qkey"], None)
        return len(rows)

    def repoint_patient(self, old: str, new: str) -> int:
        """Re-point the work still to do from one patient to another (an ADT^A40 merge).

        ``old`` and ``new`` are ``identifier=system|value`` queries. Every reference
        ``Patient?<old>`` in a pending or retrying item's Bundle becomes ``Patient?<new>``,
        in one transaction, so no result is delivered onto the merged-away record. Items in
        flight are left to finish (their worker holds them); the Patient entries themselves
        are kept (a conditional create of the old record changes nothing after the merge).
        Returns how many items changed; a second call changes none (idempotent).
        """
        from ..bundle import rewrite_references
        from ..io import dumps, loads

        needle = old.encode()
        changed = 0
        with self._tx() as conn:
            rows = conn.execute(select(items.c.id, items.c.payload).where(
                items.c.state.in_(("pending", "retry")))).all()
            for item_id, payload in rows:
                if needle not in bytes(payload):
                    continue
                before = loads(bytes(payload))
                refs = {f"Patient?{old}": f"Patient?{new}"}
                for entry in before.get("entry") or []:  # the old Patient's own entry
                    request = entry.get("request") or {}
                    if (entry.get("resource") or {}).get("resourceType") == "Patient" and \
                            old in (request.get("ifNoneExist"), request.get("url", "")[8:]):
                        refs[entry.get("fullUrl", "")] = f"Patient?{new}"
                after = rewrite_references(before, refs)
                if after != before:
                    conn.execute(update(items).where(items.c.id == item_id).values(
                        payload=dumps(after), updated_at=time.time()))
                    changed += 1
        return changed

    # ------------------------------------------------------------------ claiming
    def claim(self, worker: str, limit: int = 1, lease: float = 300.0) -> list[Item]:
        """Take up to ``limit`` items that are due, at most one per patient, in order."""
        now = time.time()
        with self._claim_tx() as conn:
            ids = self._claim_ids(conn, now, limit)
            if not ids:
                return []
            conn.execute(update(items).where(items.c.id.in_(ids)).values(
                state="inflight", owner=worker, lease_until=now + lease, updated_at=now))
            rows = conn.execute(select(items).where(items.c.id.in_(ids))
                                .order_by(items.c.id)).all()
        return [Item.from_row(r) for r in rows]

    @staticmethod
    def _claimable(now: float, limit: int) -> Any:
        """The first ``limit`` items that are due and whose patient has no earlier active
        item: pending or retrying at their time, or in flight past their lease."""
        earlier = schema.items.alias("earlier")
        blocked = exists().where(earlier.c.destination == items.c.destination,
                                 earlier.c.okey == items.c.okey,
                                 earlier.c.id < items.c.id,
                                 _active(earlier))
        due = or_(and_(items.c.state.in_(("pending", "retry")), items.c.next_at <= now),
                  and_(items.c.state == "inflight", items.c.lease_until < now))
        return select(items.c.id).where(due, ~blocked).order_by(items.c.id).limit(limit)

    def active(self) -> int:
        """How many items still need work (pending, in flight, or waiting to retry)."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(items)
                                    .where(items.c.state.in_(ACTIVE))).scalar_one())

    def next_due(self) -> float | None:
        """When the earliest waiting retry is due (epoch seconds), if any."""
        with self._read() as conn:
            return conn.execute(select(func.min(items.c.next_at))
                                .where(items.c.state.in_(("pending", "retry")))).scalar()

    def recover_inflight(self) -> int:
        """Items left in flight by a process that died go back to pending (SQLite start)."""
        with self._tx() as conn:
            return conn.execute(update(items).where(items.c.state == "inflight").values(
                state="pending", owner=None, lease_until=None,
                updated_at=time.time())).rowcount

    def release(self, claimed: Sequence[Item], worker: str) -> None:
        """Claimed items go back to pending untouched (graceful stop)."""
        if not claimed:
            return
        with self._tx() as conn:
            conn.execute(update(items).where(items.c.id.in_([i.id for i in claimed]),
                                             items.c.owner == worker,
                                             items.c.state == "inflight")
                         .values(state="pending", owner=None, lease_until=None,
                                 updated_at=time.time()))

    # ------------------------------------------------------------------ results
    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Record the results of several items (and their ledger and audit rows) at once.

        One transaction for a worker's whole batch: a crash before it commits only means
        those items are sent again, which conditional writes make harmless.
        """
        if not outcomes:
            return
        now = time.time()
        ledger_rows = _one_per_key([{**r, "item_id": o.item.id, "updated_at": now}
                                    for o in outcomes for r in o.ledger_rows])
        audit_rows = [{"item_id": o.item.id, "resource_type": rtype, "resource": body,
                       "recorded_at": now} for o in outcomes for rtype, body in o.audit_rows]
        attempt_rows = []
        done, failed = [], []
        for o in outcomes:
            ok = o.result in ("sent", "unchanged")
            result = o.result if ok else ("dead" if o.retry_in is None else "retry")
            attempt_rows.append({"item_id": o.item.id, "attempt": o.item.attempts + 1,
                                 "started_at": o.started, "finished_at": now,
                                 "worker": o.worker, "result": result, "status": o.status,
                                 "error": o.error, "writes": o.writes})
            key = {"b_id": o.item.id, "b_owner": o.worker, "b_attempts": o.item.attempts + 1}
            if ok:
                done.append({**key, "b_result": o.result})
            else:
                error = redact_text(o.error) if o.error else o.error
                attempt_rows[-1]["error"] = error
                failed.append({**key, "b_state": result, "b_error": error,
                               "b_outcome": redact_text(o.outcome) if o.outcome else None,
                               "b_reason": error if o.retry_in is None else None,
                               "b_next": now + (o.retry_in or 0.0)})
        mine = and_(items.c.id == bindparam("b_id"), items.c.owner == bindparam("b_owner"),
                    items.c.state == "inflight")
        with self._tx() as conn:
            if ledger_rows:
                self._upsert(conn, ledger, ledger_rows, LEDGER_KEY, LEDGER_UPDATE)
            if audit_rows:
                conn.execute(audit.insert(), audit_rows)
            conn.execute(attempts.insert(), attempt_rows)
            if done:
                conn.execute(update(items).where(mine).values(
                    state="delivered", result=bindparam("b_result"),
                    attempts=bindparam("b_attempts"), delivered_at=now, updated_at=now,
                    owner=None, lease_until=None), done)
            if failed:
                conn.execute(update(items).where(mine).values(
                    state=bindparam("b_state"), attempts=bindparam("b_attempts"),
                    last_error=bindparam("b_error"), outcome=bindparam("b_outcome"),
                    reason=bindparam("b_reason"), next_at=bindparam("b_next"),
                    updated_at=now, owner=None, lease_until=None), failed)

    def unrecorded(self, outcomes: Sequence[Outcome], reason: str,
                   delays: dict[int, float | None], limit: int) -> set[int]:
        """Count a failed :meth:`record` against each item, in statements of their own.

        Each item gets an attempt row ``unrecorded`` with ``reason``; one that has now
        failed to be recorded ``limit`` times, or whose delay is None (the retry policy
        gave up), is dead-lettered with the reason; the others wait ``delays[id]``
        seconds. Returns the ids dead-lettered.
        """
        now = time.time()
        reason = redact_text(reason)
        dead: set[int] = set()
        with self._tx() as conn:
            for o in outcomes:
                conn.execute(attempts.insert().values(
                    item_id=o.item.id, attempt=o.item.attempts + 1, started_at=o.started,
                    finished_at=now, worker=o.worker, result="unrecorded", status=o.status,
                    error=reason, writes=o.writes))
                failures = _unrecorded_since_replay(conn, o.item.id, o.item.attempts + 1)
                delay = delays.get(o.item.id)
                values: dict[str, Any] = {"attempts": o.item.attempts + 1,
                                          "last_error": reason, "updated_at": now,
                                          "owner": None, "lease_until": None}
                if failures >= limit or delay is None:
                    dead.add(o.item.id)
                    values.update(state="dead", reason=f"its result could not be recorded "
                                                       f"{failures} time(s): {reason}")
                else:
                    values.update(state="retry", next_at=now + delay)
                conn.execute(update(items).where(items.c.id == o.item.id,
                                                 items.c.owner == o.worker,
                                                 items.c.state == "inflight").values(**values))
        return dead

    def delivered(self, item: Item, worker: str, started: float, result: str, writes: int,
                  ledger_rows: Sequence[LedgerRow] = (),
                  audit_rows: Sequence[tuple[str, str]] = ()) -> None:
        """Mark delivered, with the ledger and audit records, in one transaction."""
        self.record([Outcome(item, worker, started, result, writes, list(ledger_rows),
                             list(audit_rows))])

    def failed(self, item: Item, worker: str, started: float, error: str,
               status: int | None, retry_in: float | None, outcome: str | None = None
               ) -> None:
        """Record a failure: retry in ``retry_in`` seconds, or dead-letter when None."""
        self.record([Outcome(item, worker, started, "failed", error=error, status=status,
                             retry_in=retry_in, outcome=outcome)])

    # ------------------------------------------------------------------ ledger
    def ledger_get(self, destination: str, keys: Iterable[tuple[str, str]]
                   ) -> dict[tuple[str, str], LedgerRow]:
        """Ledger rows for ``(resource type, identity hash)`` keys at ``destination``."""
        keys = list(set(keys))
        out: dict[tuple[str, str], LedgerRow] = {}
        if not keys:
            return out
        with self._read() as conn:
            rows = conn.execute(select(ledger).where(
                ledger.c.destination == destination,
                tuple_(ledger.c.rtype, ledger.c.ident).in_(keys))).all()
        for row in rows:
            m = dict(row._mapping)
            out[(m["rtype"], m["ident"])] = m
        return out

    def ledger_put(self, rows: Sequence[LedgerRow], item_id: int | None = None) -> None:
        with self._tx() as conn:
            self._ledger_put(conn, rows, item_id)

    def _ledger_put(self, conn: Connection, rows: Sequence[LedgerRow],
                    item_id: int | None) -> None:
        if not rows:
            return
        now = time.time()
        data = _one_per_key([{**r, "item_id": item_id, "updated_at": now} for r in rows])
        self._upsert(conn, ledger, data, LEDGER_KEY, LEDGER_UPDATE)

    # ------------------------------------------------------------------ inspection
    def state_summary(self) -> dict[str, dict[str, tuple[int, float | None, float]]]:
        """Per destination and state: (how many, the latest delivered_at, the latest
        updated_at) — one pass over the covering index ix_outbox_items_dest_state. The
        latest change of a destination's retry and dead items is when it last failed."""
        with self._read() as conn:
            rows = conn.execute(select(items.c.destination, items.c.state, func.count(),
                                       func.max(items.c.delivered_at),
                                       func.max(items.c.updated_at))
                                .group_by(items.c.destination, items.c.state)).all()
        out: dict[str, dict[str, tuple[int, float | None, float]]] = {}
        for dest, state, n, delivered, updated in rows:
            out.setdefault(dest, {})[state] = (int(n), None if delivered is None
                                               else float(delivered), float(updated))
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Items by destination and state."""
        return {dest: {state: row[0] for state, row in by_state.items()}
                for dest, by_state in self.state_summary().items()}

    def quarantined_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(quarantine))
                       .scalar_one())

    def throughput(self, since: float, bucket: float) -> dict[str, list[int]]:
        """Items delivered per destination in buckets of ``bucket`` seconds from ``since``
        to now (the last bucket may be partial): a range scan of delivered_at."""
        offset = (items.c.delivered_at - since) / bucket  # >= 0: truncation is floor
        slot = func.floor(offset) if self.dialect == "postgresql" else cast(offset, Integer)
        now = time.time()
        n = max(1, int((now - since) // bucket) + 1)
        with self._read() as conn:
            # bounded on both sides: SQLite, without statistics, then rates the range on
            # ix_outbox_items_delivered above a scan of every item (EXPLAIN in the tests)
            rows = conn.execute(select(items.c.destination, slot, func.count())
                                .where(items.c.delivered_at.between(since, now + bucket))
                                .group_by(items.c.destination, slot)).all()
        out: dict[str, list[int]] = {}
        for dest, at, count in rows:
            series = out.setdefault(dest, [0] * n)
            series[min(int(at), n - 1)] += int(count)
        return out

    def search(self, *, state: str | None = None, destination: str | None = None,
               kind: str | None = None, okey: str | None = None, since: float | None = None,
               until: float | None = None, limit: int = 100, offset: int = 0
               ) -> tuple[int, list[Item]]:
        """Items matching every filter given, newest first: (how many match, one page)."""
        conds = [c for c in (
            items.c.state == state if state else None,
            items.c.destination == destination if destination else None,
            items.c.kind == kind if kind else None,
            items.c.okey == okey if okey else None,
            items.c.created_at >= since if since is not None else None,
            items.c.created_at < until if until is not None else None) if c is not None]
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(items).where(*conds)
                                 ).scalar_one()
            rows = conn.execute(select(items).where(*conds).order_by(items.c.id.desc())
                                .limit(limit).offset(offset)).all()
        return int(total), [Item.from_row(r) for r in rows]

    def quarantined(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(quarantine).order_by(quarantine.c.id)).all()
        return [{**dict(r._mapping), "problems": json.loads(r.problems)} for r in rows]

    def get(self, item_id: int) -> Item | None:
        with self._read() as conn:
            row = conn.execute(select(items).where(items.c.id == item_id)).first()
        return Item.from_row(row) if row else None

    def items_in(self, state: str, limit: int | None = None) -> list[Item]:
        with self._read() as conn:
            q = select(items).where(items.c.state == state).order_by(items.c.id)
            rows = conn.execute(q.limit(limit) if limit else q).all()
        return [Item.from_row(r) for r in rows]

    def attempts_of(self, item_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(attempts).where(attempts.c.item_id == item_id)
                                .order_by(attempts.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def last_statuses(self, item_ids: Sequence[int]) -> dict[int, int | None]:
        """The HTTP status of each item's latest attempt (None: no answer, e.g. a timeout);
        items never attempted are absent."""
        out: dict[int, int | None] = {}
        if not item_ids:
            return out
        with self._read() as conn:
            rows = conn.execute(select(attempts.c.item_id, attempts.c.status)
                                .where(attempts.c.item_id.in_(list(item_ids)))
                                .order_by(attempts.c.id)).all()
        for item_id, status in rows:
            out[int(item_id)] = status
        return out

    def audit_of(self, item_id: int) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(audit).where(audit.c.item_id == item_id)
                                .order_by(audit.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def add_audit(self, item_id: int, resource_type: str, resource: str) -> None:
        """Keep one audit resource about ``item_id`` (e.g. who was shown its PHI, when)."""
        with self._tx() as conn:
            conn.execute(audit.insert().values(item_id=item_id, resource_type=resource_type,
                                               resource=resource, recorded_at=time.time()))

    def attempt_totals(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(attempts.c.result, func.count())
                                .group_by(attempts.c.result)).all()
        return {r: int(n) for r, n in rows}

    # ------------------------------------------------------------------ dead letters
    def replay(self, item_id: int | None, payload: bytes | None = None) -> int:
        """Dead item(s) back to pending (all when ``item_id`` is None); returns how many.

        ``payload`` replaces the Bundle of one item (the fixed version).
        """
        values: dict[str, Any] = {"state": "pending", "attempts": 0, "next_at": 0.0,
                                  "reason": None, "updated_at": time.time()}
        if payload is not None:
            values["payload"] = payload
        cond = items.c.state == "dead"
        if item_id is not None:
            cond = and_(cond, items.c.id == item_id)
        with self._tx() as conn:
            return conn.execute(update(items).where(cond).values(**values)).rowcount

    def discard(self, item_id: int, reason: str) -> int:
        """A dead item is set aside with the reason given; the row is kept."""
        with self._tx() as conn:
            return conn.execute(update(items).where(items.c.id == item_id,
                                                    items.c.state == "dead")
                                .values(state="discarded", reason=redact_text(reason),
                                        updated_at=time.time())).rowcount

    def _wipe(self) -> None:
        """Empty every table (tests only)."""
        with self._tx() as conn:
            for table in reversed(schema.metadata.sorted_tables):
                conn.execute(delete(table))


def _active(table: Any) -> Any:
    """``state IN ('pending', 'inflight', 'retry')`` written out with its values, as the
    partial indexes over active items say it (schema.py): a planner matches the index's
    condition only against the same literal term, never against bound parameters."""
    return table.c.state.in_(bindparam(f"active_{table.name}", list(ACTIVE), expanding=True,
                                       literal_execute=True))


def _unrecorded_since_replay(conn: Connection, item_id: int, attempt: int) -> int:
    """How many of an item's attempts 1‥``attempt`` (since it was enqueued or last
    replayed: a replay starts the numbers again) could not be recorded."""
    rows = conn.execute(select(attempts.c.attempt, attempts.c.result)
                        .where(attempts.c.item_id == item_id)
                        .order_by(attempts.c.id.desc()).limit(attempt)).all()
    failures = 0
    for number, result in rows:
        if number != attempt:  # an earlier life of the item, before a replay
            break
        failures += result == "unrecorded"
        attempt -= 1
    return failures


def _one_per_key(rows: list[LedgerRow]) -> list[LedgerRow]:
    """One ledger row per (destination, type, identity), the last one given winning.

    PostgreSQL refuses an ``INSERT … ON CONFLICT DO UPDATE`` that would touch one row
    twice ("cannot affect row a second time"), so a batch where two items (or one
    Bundle) wrote the same resource would fail to record, forever. The later write is
    the server's latest state of that resource.
    """
    latest: dict[tuple[Any, ...], LedgerRow] = {}
    for row in rows:
        key = tuple(row[k] for k in LEDGER_KEY)
        latest.pop(key, None)  # keep the order of the last occurrence
        latest[key] = row
    return list(latest.values())


def open_store(url: str | None = None) -> OutboxStore:
    """The store at ``url``: a SQLite file path (default ``mafhir.db``) or a PostgreSQL URL."""
    import os

    url = url or os.environ.get("MAFHIR_OUTBOX") or "mafhir.db"
    if is_postgres(url):
        from .postgres import PostgresStore

        store: OutboxStore = PostgresStore(url)
    else:
        from .sqlite import SqliteStore

        store = SqliteStore(url)
    store.create_schema()
    return store
