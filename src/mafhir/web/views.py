"""What the dashboard's pages and its API show, as plain JSON-able dicts, read through the
stores' own query functions (no SQL here) and masked: no patient data and no free text
from outside (servers' diagnostics, errors) unless ``phi`` — which only :func:`item_detail`
and :func:`message_detail` take, after the caller has audited the viewing.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ..hl7v2.ack import read_ack
from ..hl7v2.store import MessageStore, StoredMessage
from ..outbox.model import Item
from ..outbox.outcome import error_code, issues_only
from ..outbox.store import OutboxStore
from ..redact import redact_text

__all__ = [
    "DAY_BUCKET",
    "HOUR_BUCKET",
    "ITEM_STATES",
    "DaySeries",
    "item_detail",
    "item_row",
    "item_rows",
    "message_detail",
    "message_row",
    "overview",
    "when",
]

JSON = dict[str, Any]
ITEM_STATES = ("pending", "inflight", "retry", "delivered", "dead", "discarded")
HOUR_BUCKET = 300.0  # the last hour in 12 bars of 5 minutes
DAY_BUCKET = 3600.0  # the last day in 24 bars of an hour


def when(ts: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 instant (UTC), for the page and the API alike."""
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class DaySeries:
    """The last day's deliveries per destination in hourly bars, kept ``ttl`` seconds:
    the one part of the overview that reads many rows (a day of deliveries) and whose
    bars move by the hour. Counts, errors and the last hour are read afresh every time."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._kept: tuple[float, dict[str, list[int]]] | None = None
        self._lock = threading.Lock()

    def get(self, outbox: OutboxStore, now: float) -> dict[str, list[int]]:
        with self._lock:
            if self._kept is not None and now - self._kept[0] < self.ttl:
                return self._kept[1]
        day = outbox.throughput(now - 86400.0, DAY_BUCKET)
        with self._lock:
            self._kept = (now, day)
        return day


def overview(outbox: OutboxStore, inbound: MessageStore | None, now: float | None = None,
             days: DaySeries | None = None) -> JSON:
    """Per destination and per inbound sender: counts, last success, last error, and the
    last hour's and day's throughput (the day's from ``days`` when given)."""
    now = time.time() if now is None else now
    summary = outbox.state_summary()
    hour = outbox.throughput(now - 3600.0, HOUR_BUCKET)
    day = days.get(outbox, now) if days is not None else outbox.throughput(
        now - 86400.0, DAY_BUCKET)
    destinations = []
    for dest in sorted(summary):
        by_state = {state: row[0] for state, row in summary[dest].items()}
        failed = [summary[dest][s][2] for s in ("retry", "dead") if s in summary[dest]]
        destinations.append({
            # rows written before credentials were refused may still carry them
            "destination": redact_text(dest),
            "sent": by_state.get("delivered", 0),
            "pending": by_state.get("pending", 0) + by_state.get("inflight", 0),
            "retrying": by_state.get("retry", 0),
            "dead": by_state.get("dead", 0),
            "discarded": by_state.get("discarded", 0),
            "last_success": when(summary[dest].get("delivered", (0, None, 0.0))[1]),
            "last_error": when(max(failed)) if failed else None,
            "hour": _series(hour.get(dest), 12),
            "day": _series(day.get(dest), 24),
        })
    return {"destinations": destinations, "quarantined": outbox.quarantined_count(),
            "senders": _senders(inbound, now) if inbound is not None else None,
            "at": when(now)}


def _series(values: list[int] | None, n: int) -> list[int]:
    values = list(values or [])[-n:]
    return [0] * (n - len(values)) + values


def _senders(inbound: MessageStore, now: float) -> list[JSON]:
    start = datetime.fromtimestamp(now, UTC)
    recent = inbound.received_since(start - timedelta(days=1))
    hour: dict[str, list[int]] = {}
    day: dict[str, list[int]] = {}
    for sender, at in recent:
        ago = (start - at).total_seconds()
        d = day.setdefault(sender, [0] * 24)
        d[max(0, 23 - int(ago // DAY_BUCKET))] += 1
        if ago < 3600:
            h = hour.setdefault(sender, [0] * 12)
            h[max(0, 11 - int(ago // HOUR_BUCKET))] += 1
    out = []
    for sender, entry in sorted(inbound.senders().items()):
        statuses = entry["statuses"]
        out.append({"sender": sender or "(unreadable)",
                    "received": sum(statuses.values()),
                    "processed": statuses.get("processed", 0),
                    "errors": statuses.get("error", 0) + statuses.get("rejected", 0),
                    "review": statuses.get("review", 0),
                    "retry": statuses.get("retry", 0),
                    "replies_pending": entry["replies_pending"],
                    "last_received": entry["last_received"] or None,
                    "hour": hour.get(sender, [0] * 12), "day": day.get(sender, [0] * 24)})
    return out


def item_rows(outbox: OutboxStore, found: list[Item]) -> list[JSON]:
    """A page of items as :func:`item_row` shows them (one query for their statuses)."""
    statuses = outbox.last_statuses([i.id for i in found
                                     if i.state in ("retry", "dead", "discarded")])
    return [item_row(i, statuses.get(i.id)) for i in found]


def item_row(item: Item, http_status: int | None = None) -> JSON:
    """One outbox item, masked: ids, states, times, the error's code and the HTTP status
    of its last failed attempt; no patient data."""
    failing = item.state in ("retry", "dead", "discarded")
    return {"id": item.id, "destination": redact_text(item.destination), "kind": item.kind,
            "state": item.state, "attempts": item.attempts, "patient_key": item.okey,
            "created": when(item.created_at), "updated": when(item.updated_at),
            "next_try": when(item.next_at) if item.state in ("pending", "retry") else None,
            "error_code": error_code(item) if failing else None,
            "http_status": http_status if failing else None}


def item_detail(outbox: OutboxStore, item: Item, phi: bool) -> JSON:
    """One item with its attempts; with ``phi`` (audited by the caller) also the error
    texts, the server's whole OperationOutcome and the Bundle."""
    doc = item_rows(outbox, [item])[0]
    outcome = json.loads(item.outcome) if item.outcome else None
    doc["source"] = item.source
    doc["outcome"] = outcome if phi else _masked(outcome)
    doc["attempts_made"] = [
        {"attempt": a["attempt"], "result": a["result"], "status": a["status"],
         "worker": a["worker"], "at": when(a["finished_at"]),
         **({"error": a["error"]} if phi else {})} for a in outbox.attempts_of(item.id)]
    if phi:
        doc["reason"] = item.reason
        doc["last_error"] = item.last_error
        doc["bundle"] = json.loads(item.payload)
    return doc


def _masked(outcome: Any) -> Any:
    masked = issues_only(outcome)
    if masked is not None:
        masked["hidden"] = ("diagnostics and details may carry patient data: an operator's "
                            "\"show\" reveals them (the viewing is audited)")
    return masked


def message_row(m: StoredMessage) -> JSON:
    """One inbound message, masked: who sent what and what was answered."""
    return {"id": m.id, "sender": m.sender, "control_id": m.control_id,
            "type": m.message_type, "received": m.received_at, "status": m.status,
            "ack": _ack_code(m.ack), "app_ack": m.reply_status, "duplicates": m.duplicates,
            "conflicts_with": m.conflicts_with,
            "problems": len(m.problems.splitlines()) if m.problems else 0}


def message_detail(m: StoredMessage, phi: bool) -> JSON:
    """A message; with ``phi`` (audited by the caller) its bytes, its ACKs and problems."""
    doc = message_row(m)
    if phi:
        doc["raw"] = m.raw.decode("utf-8", "replace").replace("\r", "\n")
        doc["ack_text"] = (m.ack or b"").decode("utf-8", "replace").replace("\r", "\n")
        doc["app_ack_text"] = (m.app_ack or b"").decode("utf-8", "replace").replace("\r", "\n")
        doc["problem_list"] = (m.problems or "").splitlines()
        doc["reply_error"] = m.reply_error
    return doc


def _ack_code(ack: bytes | None) -> str | None:
    if not ack:
        return None
    try:
        return read_ack(ack).code
    except Exception:  # an ACK we could not read back is shown as such, not a 500
        return "?"
