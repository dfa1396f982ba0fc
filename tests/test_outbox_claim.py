"""How the SQLite outbox claims work (issue 14): walking the active items in id order
through the partial indexes, never reading every pending item and sorting them (which made
a sync quadratic in its size), and committing the claim without changing the durability of
anything else written on the same pooled connection."""

from __future__ import annotations

import sqlite3
import time

from sqlalchemy import event

from mafhir.outbox import open_store
from mafhir.outbox.model import NewItem


def _plan(db: str, sql: str, params: object) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    finally:
        conn.close()


def test_the_claim_walks_active_items_in_id_order_through_the_partial_indexes(tmp_path):
    store = open_store(str(tmp_path / "o.db"))
    store.enqueue([NewItem("d", f"p{i % 7}", f"k{i}", b"{}") for i in range(50)])
    seen: list[tuple[str, object]] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def keep(conn, cursor, statement, params, context, executemany):
        if "FROM outbox_items AS i" in statement:
            seen.append((statement, params))

    claimed = store.claim("w", limit=9)
    # one per patient, the earliest of each, in id order
    assert [i.idem_key for i in claimed] == [f"k{i}" for i in range(7)]
    ((sql, params),) = seen
    plan = _plan(str(tmp_path / "o.db"), sql, params)
    assert any("SCAN i USING INDEX ix_outbox_items_active" in step for step in plan), plan
    assert any("USING INDEX ix_outbox_items_active_lane" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan  # no sort of all pending
    store.close()


def test_delivered_items_are_out_of_the_partial_indexes(tmp_path):
    db = tmp_path / "o.db"
    store = open_store(str(db))
    store.enqueue([NewItem("d", f"p{i}", f"k{i}", b"{}") for i in range(5)])
    first = store.claim("w", limit=2)
    store.delivered(first[0], "w", time.time(), "sent", 1)
    conn = sqlite3.connect(db)
    try:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM outbox_items INDEXED BY ix_outbox_items_active "
            "WHERE state IN ('pending', 'inflight', 'retry') ORDER BY id")]
    finally:
        conn.close()
    assert ids == [i for i in range(1, 6) if i != first[0].id]
    store.close()


def test_a_claim_leaves_the_connection_durable_for_what_follows(tmp_path):
    store = open_store(str(tmp_path / "o.db"))
    store.enqueue([NewItem("d", "p", "k1", b"{}")])
    levels: list[int] = []

    @event.listens_for(store.engine, "commit")
    def level(conn) -> None:
        levels.append(conn.connection.dbapi_connection.execute("PRAGMA synchronous")
                      .fetchone()[0])

    (item,) = store.claim("w")
    store.delivered(item, "w", time.time(), "sent", 1)
    # the claim committed at NORMAL (1); the result after it at FULL (2), as opened
    assert levels == [1, 2]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    assert store.get(item.id).state == "delivered"
    store.close()
