"""The sync engine: worker threads that drain the outbox, in order per patient.

Each worker thread claims a small batch of items (the store guarantees at most one per
patient is in flight, and in order), plans each against the ledger, delivers what is new
or changed through the ``deliver_bundle`` hook, and records the batch's results, ledger
rows and audit resources in one transaction (a crash before it commits only means those
items go out again: harmless, see below). Failures are classified once:

* permanent (a 400 with an OperationOutcome, a Bundle the store refuses) → dead letter
  at once, the outcome kept;
* transient (429, 503, timeouts, resets, a server that is down) → rescheduled with
  backoff and jitter, ``Retry-After`` as a floor, until the retry policy gives up.

A stop request (SIGINT/SIGTERM via :meth:`Engine.stop`) lets every in-flight item finish;
nothing is claimed after it. A process killed outright leaves its items in flight: the
next SQLite worker takes them back at start, PostgreSQL workers when the lease ends.
Delivery is at-least-once; conditional writes and the ledger make the effect
exactly-once.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, cast

import orjson

from ..errors import MafhirError, PermanentError, operation_outcome, unexpected
from ..io import dumps, loads
from ..redact import redact_json, redact_text
from ..registry import UsesClinic, capabilities_of
from .audit import audit_event, provenance, provenance_entry
from .delivery import Delivery, connect, deliver
from .enqueue import RESEND
from .ledger import PlannedEntry, entries_of, ledger_rows, plan, shared_entries
from .model import Item, Outcome, Tally
from .retry import RetryPolicy
from .store import OutboxStore

__all__ = ["Engine", "classify"]

log = logging.getLogger("mafhir.outbox")
JSON = dict[str, Any]


def classify(exc: BaseException) -> tuple[bool, int | None, float | None, str | None, str]:
    """(transient?, HTTP status, Retry-After, OperationOutcome JSON, message) of a failure.

    mafhir's own errors carry these as fields (:class:`~mafhir.errors.MafhirError`), and
    their messages are free of patient data by contract. For anything else (a bug) the
    message is :func:`~mafhir.errors.unexpected` — its type and where it was raised, not
    its text, which might quote input. Whatever a server said (message and
    OperationOutcome) loses its credentials here, before the store, the log or
    ``outbox dead`` sees it.
    """
    if isinstance(exc, MafhirError):
        transient, status, retry_after = exc.transient, exc.status, exc.retry_after
        # the server's OperationOutcome, else ours: its issue codes are what the outbox
        # views show (never the English text)
        outcome, message = exc.outcome or operation_outcome(exc), str(exc)
    else:  # not one of ours: a bug or an unexpected failure; retry, bounded
        transient = not isinstance(exc, (ValueError, TypeError, KeyError))
        status, retry_after = None, None
        outcome, message = operation_outcome(exc), f"{unexpected(exc)} (unexpected)"
    return (bool(transient), status if isinstance(status, int) else None,
            retry_after if isinstance(retry_after, (int, float)) else None,
            orjson.dumps(redact_json(outcome)).decode() if isinstance(outcome, dict) else None,
            redact_text(message)[:2000])


class Engine:
    """Drains an outbox with ``threads`` worker threads (see the module docstring)."""

    def __init__(self, store: OutboxStore, *, threads: int = 4,
                 retry: RetryPolicy | None = None, lease: float = 300.0, poll: float = 0.5,
                 timeout: float | None = None, send_provenance: bool = False,
                 on_result: Callable[[str, Item], None] | None = None,
                 rng: random.Random | None = None, batch: int = 8,
                 record_attempts: int = 3) -> None:
        self.store = store
        #: Failed recordings of an item's result before it is dead-lettered (never a loop).
        self.record_attempts = max(1, record_attempts)
        #: The clinic message destinations write into MSH (set by ``mafhir sync --clinic``).
        self.clinic: Any = None
        self.threads = max(1, threads)
        self.retry = retry or RetryPolicy()
        self.lease = lease
        self.poll = poll
        self.timeout = timeout
        self.send_provenance = send_provenance
        self.batch = max(1, batch)
        self.on_result = on_result
        self.rng = rng or self.retry.rng()  # seeded when the policy has a seed
        self.tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._name = f"{socket.gethostname()}:{os.getpid()}"
        self._started = False

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """Finish what is in flight, claim nothing more."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def prepare(self) -> None:
        """Take the store's worker lock; on SQLite, take back items a dead process left."""
        if self._started:
            return
        if not self.store.acquire_worker_lock():
            raise PermanentError("another process is running workers on this SQLite outbox "
                                 f"({self.store.url}); run one per file, or use PostgreSQL "
                                 "(--db postgresql://…) for several workers", code="conflict")
        if self.store.dialect == "sqlite":
            self.store.recover_inflight()
        self._started = True

    def run(self, once: bool = True) -> Tally:
        """Work until the outbox is drained (``once``) or until :meth:`stop`."""
        self.prepare()
        if once and self.store.active() == 0:
            return self.tally  # a re-run of known input: no threads, no connections
        workers = [threading.Thread(target=self._loop, args=(f"{self._name}:{i}", once),
                                    name=f"mafhir-worker-{i}", daemon=True)
                   for i in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.2)
        return self.tally

    # ------------------------------------------------------------------ the loop
    def _loop(self, worker: str, once: bool) -> None:
        """Claim, send, and hand the batch's results to this worker's recorder thread.

        The results of one batch are committed (one durable transaction) while the next
        batch goes out, so the wait for the disk overlaps the wait for the server instead
        of adding to it. At most one batch is ever waiting to be recorded: before the next
        is handed over, the previous one is committed. Nothing changes for durability —
        an item is marked delivered only in that commit, after its 2xx; a crash before it
        only means the item goes out again — nor for order: until its result is committed
        the item stays in flight, so the next item of its patient cannot be claimed.
        """
        connectors: dict[str, Any] = {}
        recorder = ThreadPoolExecutor(
            1, thread_name_prefix=f"{threading.current_thread().name}-recorder")
        recording: Future[None] | None = None
        try:
            while not self._stop.is_set():
                try:
                    claimed = self.store.claim(worker, self.batch, self.lease)
                except Exception as exc:  # the database went away: wait, do not die
                    log.warning("claim failed (%s); retrying", unexpected(exc))
                    self._stop.wait(self.poll)
                    continue
                if not claimed:
                    if recording is not None:  # what waits behind it may be claimable now
                        recording.result()
                        recording = None
                        continue
                    if once and self.store.active() == 0:
                        return
                    self._stop.wait(self._idle_wait())
                    continue
                outcomes = self._batch(claimed, worker, connectors)
                if recording is not None:
                    recording.result()
                recording = recorder.submit(self._record, outcomes)
        finally:
            try:
                if recording is not None:
                    recording.result()
            finally:
                recorder.shutdown(wait=True)
                for c in connectors.values():
                    try:
                        c.close()
                    except Exception:  # closing must never mask the work's result
                        log.debug("closing a connector failed", exc_info=True)

    def _idle_wait(self) -> float:
        due = self.store.next_due()
        if due is None:
            return self.poll
        return max(0.01, min(self.poll, due - time.time()))

    def _batch(self, claimed: list[Item], worker: str, connectors: dict[str, Any]
               ) -> list[Outcome]:
        """Process claimed items (one per patient); their outcomes, to :meth:`_record`."""
        outcomes: list[Outcome] = []
        bundles: dict[int, Any] = {}
        # each Bundle's ledger identities and hashes, worked out once for the batch's read
        # and for the item's own planning (a canonical dump and two SHA-256 an entry)
        planned: dict[int, list[PlannedEntry]] = {}
        keys: dict[str, set[tuple[str, str]]] = {}
        for item in claimed:  # one ledger read for the whole batch
            try:
                bundles[item.id] = loads(item.payload)
            except ValueError as exc:  # orjson's and json's decode errors both
                bundles[item.id] = exc
                continue
            if not isinstance(bundles[item.id], dict):
                continue  # refused in _process, as before
            planned[item.id] = entries_of(bundles[item.id])
            if item.idem_key.startswith(RESEND):
                continue  # sent whatever the ledger says
            keys.setdefault(item.destination, set()).update(
                p.key for p in planned[item.id] if p.key)
        known = {d: self.store.ledger_get(d, k) for d, k in keys.items()}
        for n, item in enumerate(claimed):
            if self._stop.is_set():
                self.store.release(claimed[n:], worker)
                break
            resend = item.idem_key.startswith(RESEND)
            outcomes.append(self._process(item, worker, connectors, bundles[item.id],
                                          {} if resend else known.get(item.destination, {}),
                                          resend, planned.get(item.id)))
        return outcomes

    def _record(self, outcomes: list[Outcome]) -> None:
        """Record a batch's outcomes in one transaction, then count them."""
        try:
            self.store.record(outcomes)
        except Exception as exc:
            outcomes = self._unrecorded(outcomes, exc)
            if not outcomes:
                return
        for o in outcomes:
            what = {"sent": "sent", "unchanged": "unchanged"}.get(
                o.result, "retried" if o.retry_in is not None else "dead")
            if what in ("retried", "dead"):
                log.info("item %d %s: %s", o.item.id, what, o.error)
            with self._lock:
                setattr(self.tally, what, getattr(self.tally, what) + 1)
                self.tally.writes += o.writes
            if self.on_result is not None:
                self.on_result(what, o.item)

    def _unrecorded(self, outcomes: list[Outcome], exc: Exception) -> list[Outcome]:
        """The batch's results could not be recorded: say so loudly, and count it.

        Each item gets an attempt marked ``unrecorded`` (in a small statement of its own,
        apart from the upsert that failed) and is tried again with backoff; after
        :attr:`record_attempts` such failures, or when the retry policy gives up, it is
        dead-lettered with the reason — never claimed and resent forever. Returns the
        outcomes as recorded (for the tally), or [] when even that failed (the store is
        unreachable: the lease hands the items back).
        """
        reason = f"could not record the result: {unexpected(exc)}"
        log.error("could not record %d result(s) (items %s): %s", len(outcomes),
                  ", ".join(str(o.item.id) for o in outcomes), reason)
        now = time.time()
        delays = {o.item.id: self.retry.next_delay(o.item.attempts + 1, None,
                                                   now - o.item.created_at, self.rng)
                  for o in outcomes}
        try:
            dead = self.store.unrecorded(outcomes, reason, delays, self.record_attempts)
        except Exception:  # the store is unreachable: the lease will hand the items back
            log.warning("could not record %d result(s) as unrecorded either", len(outcomes),
                        exc_info=True)
            return []
        for item_id in dead:
            log.error("item %d dead-lettered: %s", item_id, reason)
        return [replace(o, result="failed", error=reason,
                        retry_in=None if o.item.id in dead else delays[o.item.id] or 0.0)
                for o in outcomes]

    def _connector(self, destination: str, connectors: dict[str, Any]) -> Any:
        if destination not in connectors:
            connector = connect(destination, self.timeout)
            if self.clinic is not None and "use_clinic" in capabilities_of(connector):
                cast(UsesClinic, connector).use_clinic(self.clinic)
            connectors[destination] = connector
        return connectors[destination]

    # ------------------------------------------------------------------ one item
    def _process(self, item: Item, worker: str, connectors: dict[str, Any], bundle: Any,
                 known: dict[tuple[str, str], Any], resend: bool = False,
                 entries: list[PlannedEntry] | None = None) -> Outcome:
        started = time.time()
        dest = item.destination
        try:
            if isinstance(bundle, Exception):
                raise PermanentError("the stored Bundle is not valid JSON", code="structure")
            connector = self._connector(dest, connectors)
            if "whole_bundles" in capabilities_of(connector):
                # a message destination (HL7 v2 over MLLP…): each Bundle is one message,
                # sent whole; there are no server ids to learn or shared resources to settle
                # what the receiver accepted with warnings (an IIS's AE with W only) is
                # delivered, and its warnings are kept in the delivery's AuditEvent
                response = self._send(item, connector, bundle)
                audits = [("AuditEvent", orjson.dumps(audit_event(
                    dest, worker, time.time(), [], "0", False,
                    response.get("warnings"))).decode())]
                # what the answer said that the clinic keeps with the item (an eligibility
                # summary and response): recorded in the same transaction as "sent"
                audits += [(str(r["type"])[:32], dumps(r["body"]).decode())
                           for r in response.get("records") or []
                           if isinstance(r, dict) and r.get("type") and "body" in r]
                return Outcome(item, worker, started, "sent", 1, audit_rows=audits)
            if entries is None:
                entries = entries_of(bundle)
            shared = shared_entries(bundle, entries)
            writes, refs = self._ensure_shared(item, bundle, connector, known, resend, shared)
            if resend:
                known = {}  # the lane's entries go out as written (conditional writes)
            elif len(refs) > sum(1 for p in shared if p.key in known):
                # shared resources were settled just now: read their ledger rows again
                known = {**known, **self.store.ledger_get(
                    dest, [p.key for p in entries if p.key])}
            todo = plan(bundle, known, refs, entries)
            if todo.bundle is None:
                return Outcome(item, worker, started, "sent" if writes else "unchanged", writes)
            outgoing = todo.bundle
            if self.send_provenance:
                outgoing = {**outgoing, "entry": [*outgoing["entry"], provenance_entry(
                    outgoing, item.source, item.idem_key[:32], started)]}
            response = self._send(item, connector, outgoing)
            rows = ledger_rows(dest, todo.send, response)
            targets = [r["server_id"] for r in rows]
            updated = any(known.get(p.key) for p in todo.send if p.key)
            audits = [("AuditEvent", orjson.dumps(audit_event(
                          dest, worker, time.time(), targets, "0", updated)).decode()),
                      ("Provenance", orjson.dumps(provenance(
                          targets, item.source, item.idem_key[:32], started,
                          updated)).decode())]
            return Outcome(item, worker, started, "sent", writes + len(todo.send), rows, audits)
        except Exception as exc:
            return self._failed(item, worker, started, exc)

    def _send(self, item: Item, connector: Any, bundle: JSON) -> JSON:
        delivery = Delivery(item.destination, bundle, connector, item.id, item.source,
                            item.attempts + 1)
        response = deliver(delivery)
        if not isinstance(response, dict):
            raise PermanentError("the connector's answer is not a Bundle", code="processing")
        return response

    def _ensure_shared(self, item: Item, bundle: JSON, connector: Any,
                       known: dict[tuple[str, str], Any], resend: bool = False,
                       shared: list[PlannedEntry] | None = None
                       ) -> tuple[int, dict[str, str]]:
        """Create or update, once and under a lock each, the shared resources of a Bundle.

        Returns the writes made and the ``urn:uuid`` → ``Type/id`` of every shared entry.
        With ``resend`` each is sent again (as its conditional write), once per run: a
        ledger row newer than the item counts as sent by this resend.
        """
        if shared is None:
            shared = shared_entries(bundle)
        refs: dict[str, str] = {}
        writes = 0
        if not shared:
            return 0, refs
        pending: list[PlannedEntry] = []
        for p in shared:
            row = known.get(p.key) if p.key else None
            if row is not None and row["content_hash"] == p.hash:
                if p.entry.get("fullUrl"):
                    refs[p.entry["fullUrl"]] = row["server_id"]
            else:
                pending.append(p)
        for p in _dependency_order(pending):
            key = p.key
            if key is None:  # shared_entries keeps only entries with an identity
                raise AssertionError(f"shared entry {p.index} ({p.rtype}) has no identity")
            lock_key = f"{item.destination}|{p.rtype}|{p.ident}"
            with self.store.identity_lock(lock_key):
                row = self.store.ledger_get(item.destination, [key]).get(key)
                if resend and row is not None and row["updated_at"] < item.created_at:
                    row = None  # from before the resend: send it again
                one = {"resourceType": "Bundle", "type": "transaction", "entry": [p.entry]}
                todo = plan(one, {key: row} if row else {}, refs)
                if todo.bundle is not None:
                    response = self._send(item, connector, todo.bundle)
                    rows = ledger_rows(item.destination, todo.send, response)
                    self.store.ledger_put(rows, item.id)
                    writes += 1
                    row = rows[0] if rows else None
            if row is not None and p.entry.get("fullUrl"):
                refs[p.entry["fullUrl"]] = row["server_id"]
        return writes, refs

    def _failed(self, item: Item, worker: str, started: float, exc: Exception) -> Outcome:
        transient, status, retry_after, outcome, message = classify(exc)
        retry_in = None
        if transient:
            retry_in = self.retry.next_delay(item.attempts + 1, retry_after,
                                             time.time() - item.created_at, self.rng)
            if retry_in is None:
                message = f"gave up after {item.attempts + 1} attempt(s): {message}"
        return Outcome(item, worker, started, "failed", error=message, status=status,
                       retry_in=retry_in, outcome=outcome)


def _dependency_order(entries: list[PlannedEntry]) -> list[PlannedEntry]:
    """Shared entries so that one referring to another (Location → Organization) follows it."""
    urls = {p.entry.get("fullUrl") for p in entries}
    blob = {id(p): dumps(p.entry.get("resource") or {}) for p in entries}
    done: list[PlannedEntry] = []
    left = list(entries)
    while left:
        placed = {d.entry.get("fullUrl") for d in done}
        ready = [p for p in left
                 if not any(u and u != p.entry.get("fullUrl") and u not in placed
                            and u.encode() in blob[id(p)] for u in urls)]
        if not ready:  # a cycle: send in Bundle order, the server resolves what it can
            ready = left
        done.extend(ready)
        left = [p for p in left if p not in ready]
    return done
