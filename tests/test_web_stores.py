"""The read functions the dashboard uses, on both backends: the outbox's last success,
last errors, throughput buckets, search and statuses; the v2 store's senders, search and
reprocess mark. Expected values are worked out by hand from rows with known times. On
SQLite, the overview's statements are shown to use the indexes (EXPLAIN QUERY PLAN), and
an outbox made before those indexes gets them when it is opened."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, update

from mafhir.errors import Problem
from mafhir.hl7v2.receiver import Outcome, Receiver
from mafhir.hl7v2.store import MessageStore
from mafhir.outbox import open_store
from mafhir.outbox.model import NewItem
from mafhir.outbox.schema import items
from web_helpers import v2_message


def add(store, dest: str, n: int, okey: str = "p", kind: str = "vitals") -> list[int]:
    added = store.enqueue([NewItem(dest, f"{okey}{i}", f"{dest}-{okey}-{i}", b"{}", kind=kind)
                           for i in range(n)])
    assert added == n
    return [i.id for i in store.items_in("pending") if i.destination == dest][-n:]


def settle(store, item_id: int, state: str, *, at: float, error: str | None = None) -> None:
    """Give an item a state and a time (the rows a day of work would leave)."""
    values = {"state": state, "updated_at": at, "created_at": at - 1}
    if state == "delivered":
        values["delivered_at"] = at
    if error is not None:
        values["last_error"] = error
    with store.engine.begin() as conn:
        conn.execute(update(items).where(items.c.id == item_id).values(**values))


def test_outbox_reads_for_the_overview_and_the_queue(store_at):
    store = open_store(store_at("outbox"))
    try:
        now = time.time()
        a = add(store, "https://a.example/fhir", 6)
        b = add(store, "dir:/tmp/b", 2, kind="immunization")
        # a: delivered 10 s, 10 min and 2 h ago; one retry (30 s ago), one dead (5 min ago)
        settle(store, a[0], "delivered", at=now - 10)
        settle(store, a[1], "delivered", at=now - 600)
        settle(store, a[2], "delivered", at=now - 7200)
        settle(store, a[3], "retry", at=now - 30, error="HTTP 503: busy")
        settle(store, a[4], "dead", at=now - 300, error="HTTP 422: refused")
        settle(store, b[0], "delivered", at=now - 100)
        summary = store.state_summary()
        n, last, changed = summary["https://a.example/fhir"]["delivered"]
        assert n == 3 and abs(last - (now - 10)) < 1e-3 and abs(changed - (now - 10)) < 1e-3
        n, last, changed = summary["https://a.example/fhir"]["retry"]
        assert (n, last) == (1, None) and abs(changed - (now - 30)) < 1e-3
        n, last, changed = summary["https://a.example/fhir"]["dead"]
        assert (n, last) == (1, None) and abs(changed - (now - 300)) < 1e-3
        assert summary["https://a.example/fhir"]["pending"][:2] == (1, None)
        n, last, _ = summary["dir:/tmp/b"]["delivered"]
        assert n == 1 and abs(last - (now - 100)) < 1e-3
        assert store.counts() == {"https://a.example/fhir": {"delivered": 3, "retry": 1,
                                                             "dead": 1, "pending": 1},
                                  "dir:/tmp/b": {"delivered": 1, "pending": 1}}
        # last hour in 5-minute buckets from now-3600: 10 s and 100 s ago fall in the
        # last bucket (11), 600 s ago in bucket (3600-600)//300 = 10; 2 h ago: outside
        hour = store.throughput(now - 3600, 300)
        series = hour["https://a.example/fhir"]
        assert (sum(series), series[10], series[11]) == (2, 1, 1)
        assert hour["dir:/tmp/b"][11] == 1 and sum(hour["dir:/tmp/b"]) == 1
        day = store.throughput(now - 86400, 3600)
        assert sum(day["https://a.example/fhir"]) == 3
        assert day["https://a.example/fhir"][(86400 - 7200) // 3600] == 1
        # search: filters combine, newest first, with the total of all matches
        total, page = store.search(destination="https://a.example/fhir", limit=2)
        assert total == 6 and [i.id for i in page] == [a[5], a[4]]
        total, page = store.search(state="delivered")
        assert (total, sorted(i.id for i in page)) == (4, sorted([a[0], a[1], a[2], b[0]]))
        assert store.search(kind="immunization")[0] == 2
        assert [i.id for i in store.search(okey="p1")[1]] == [b[1], a[1]]
        assert store.search(since=now - 60)[0] == 3 + 1  # a[0], a[3], the two untouched
        assert store.search(until=now - 3000)[0] == 1  # a[2]
        assert store.search(state="dead", offset=1)[1] == []
        assert store.quarantined_count() == 0
        store.quarantine([{"qkey": "q1", "source": "in.ndjson", "idx": 0,
                           "problems": ["x"], "raw": None}])
        assert store.quarantined_count() == 1
    finally:
        store.close()


def test_last_statuses_are_each_items_latest_attempt(store_at):
    store = open_store(store_at("outbox"))
    try:
        first, second = add(store, "d", 2)
        claimed = {i.id: i for i in store.claim("w", limit=2)}
        store.failed(claimed[first], "w", time.time(), "HTTP 503", 503, 0.0)
        store.failed(claimed[second], "w", time.time(), "timed out", None, None)
        (again,) = store.claim("w", limit=1)
        store.failed(again, "w", time.time(), "HTTP 400", 400, None)
        assert store.last_statuses([first, second, 999]) == {first: 400, second: None}
        assert store.last_statuses([]) == {}
    finally:
        store.close()


def test_message_store_reads_for_the_overview_and_the_inbound_list(store_at):
    store = MessageStore(store_at("messages"))
    try:
        outcomes = iter([Outcome("processed"), Outcome("review", (Problem(
            "PID-3", "unknown patient", "not-found"),)), Outcome("error", (Problem(
                "OBR-4", "unknown code", "code-invalid"),))])
        clock = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
        times = iter([clock, clock + timedelta(minutes=30), clock + timedelta(minutes=50)])
        receiver = Receiver(store, lambda _m: next(outcomes), clock=lambda: next(times))
        for n in range(3):
            receiver.receive(v2_message(f"M{n}"))
        store.quarantine(b"garbage", ["not HL7"], None, clock)
        senders = store.senders()
        assert senders["LABSYS|REFLAB"] == {
            "statuses": {"processed": 1, "review": 1, "error": 1},
            "last_received": (clock + timedelta(minutes=50)).isoformat(),
            "replies_pending": 0}
        assert senders[""]["statuses"] == {"rejected": 1}
        recent = store.received_since(clock + timedelta(minutes=20))
        # the unreadable one came last but was stamped 08:00: not since 08:20
        assert [(s, t.minute) for s, t in recent] == [("LABSYS|REFLAB", 50),
                                                      ("LABSYS|REFLAB", 30)]
        total, page = store.search(status="review")
        assert total == 1 and page[0].control_id == "M1"
        assert store.search(sender="LABSYS|REFLAB", limit=2)[0] == 3
        assert [m.control_id for m in store.search(sender="LABSYS|REFLAB", limit=2)[1]] == [
            "M2", "M1"]
        assert store.search(message_type="ORU^R01")[0] == 3
        # reprocess: an error or review message, not a processed or unreadable one
        by_id = {m.control_id: m.id for m in store.messages()}
        assert store.mark_for_reprocessing(by_id["M2"]) is True
        assert store.get(by_id["M2"]).status == "retry"
        assert store.mark_for_reprocessing(by_id["M0"]) is False
        assert store.mark_for_reprocessing(by_id[None]) is False
    finally:
        store.close()


def _plans(store, call) -> list[str]:
    """EXPLAIN QUERY PLAN of every SELECT ``call`` runs on the SQLite outbox."""
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    db = sqlite3.connect(store.engine.url.database)
    try:
        return [" | ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in seen]
    finally:
        db.close()


def test_the_overview_queries_use_the_indexes(tmp_path):
    store = open_store(str(tmp_path / "outbox.db"))
    try:
        add(store, "d", 3)
        (summary,) = _plans(store, store.state_summary)
        assert "COVERING INDEX ix_outbox_items_dest_state" in summary
        (through,) = _plans(store, lambda: store.throughput(time.time() - 3600, 300))
        assert "INDEX ix_outbox_items_delivered" in through
    finally:
        store.close()


def test_an_outbox_from_before_the_dashboard_gets_its_indexes_when_opened(tmp_path):
    path = tmp_path / "outbox.db"
    open_store(str(path)).close()
    db = sqlite3.connect(path)
    db.execute("DROP INDEX ix_outbox_items_dest_state")
    db.execute("DROP INDEX ix_outbox_items_delivered")
    db.commit()
    db.close()
    open_store(str(path)).close()
    db = sqlite3.connect(path)
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    db.close()
    assert {"ix_outbox_items_dest_state", "ix_outbox_items_delivered"} <= names
