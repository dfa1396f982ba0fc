"""The outbox's tables, written once in SQLAlchemy Core for both SQLite and PostgreSQL.

* ``outbox_items`` — one unit of work (a transaction Bundle for one destination), with
  its ordering key (a hash of the patient's MRN identity), idempotency key, state,
  attempts, last error and the server's OperationOutcome when it refused.
* ``outbox_ledger`` — what was delivered where: business identifier → server id/version
  and the hash of the content sent, so unchanged records are never sent again.
* ``outbox_attempts`` — every attempt and its result (the audit trail).
* ``outbox_audit`` — FHIR AuditEvent / Provenance for what was delivered.
* ``outbox_quarantine`` — input that could not become work, with the reasons.

Times are epoch seconds (floats): the same on both backends, and cheap to compare.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = ["ACTIVE", "STATES", "attempts", "audit", "items", "ledger", "metadata", "quarantine"]

#: Item states. ``retry`` is "failed, will retry"; ``discarded`` keeps the row and reason.
STATES = ("pending", "inflight", "retry", "delivered", "dead", "discarded")
#: States that still need work (and block later items of the same patient).
ACTIVE = ("pending", "inflight", "retry")

# SQLite only makes INTEGER PRIMARY KEY an auto-incrementing rowid.
_ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

items = Table(
    "outbox_items", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("destination", String(500), nullable=False),
    Column("okey", String(128), nullable=False),
    Column("idem_key", String(128), nullable=False),
    Column("source", String(500), nullable=False, default=""),
    Column("kind", String(64), nullable=False, default=""),
    Column("payload", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("outcome", Text),
    Column("result", String(16)),
    Column("reason", Text),
    Column("next_at", Float, nullable=False, default=0.0),
    Column("lease_until", Float),
    Column("owner", String(100)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float),
    UniqueConstraint("destination", "idem_key", name="uq_outbox_items_idem"),
)
Index("ix_outbox_items_state_next", items.c.state, items.c.next_at)
Index("ix_outbox_items_lane", items.c.destination, items.c.okey, items.c.id)
# The dashboard's overview (mafhir serve): counts, last success and last change per
# destination and state from one covering index; the day's throughput from a range.
Index("ix_outbox_items_dest_state", items.c.destination, items.c.state, items.c.delivered_at,
      items.c.updated_at)
Index("ix_outbox_items_delivered", items.c.delivered_at, items.c.destination)
# The claim walks the work still to do in id order and asks of each item whether an
# earlier one of its patient is still active: both through partial indexes that hold the
# active items only, so a claim costs the same behind 100 or 100,000 delivered items (with
# the full indexes it read every pending item, and every earlier item of each patient).
_ACTIVE_SQL = text("state IN ({})".format(", ".join(f"'{s}'" for s in ACTIVE)))
Index("ix_outbox_items_active", items.c.id, sqlite_where=_ACTIVE_SQL,
      postgresql_where=_ACTIVE_SQL)
Index("ix_outbox_items_active_lane", items.c.destination, items.c.okey, items.c.id,
      sqlite_where=_ACTIVE_SQL, postgresql_where=_ACTIVE_SQL)

ledger = Table(
    "outbox_ledger", metadata,
    Column("destination", String(500), primary_key=True),
    Column("rtype", String(64), primary_key=True),
    Column("ident", String(64), primary_key=True),  # sha256 of system|value (no PHI)
    Column("server_id", String(128), nullable=False),
    Column("version", String(64)),
    Column("content_hash", String(64), nullable=False),
    Column("item_id", BigInteger),
    Column("updated_at", Float, nullable=False),
)

attempts = Table(
    "outbox_attempts", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("item_id", BigInteger, nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("worker", String(100), nullable=False),
    Column("result", String(16), nullable=False),  # sent | unchanged | retry | dead
    Column("status", Integer),
    Column("error", Text),
    Column("writes", Integer, nullable=False, default=0),
)

audit = Table(
    "outbox_audit", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("item_id", BigInteger, nullable=False, index=True),
    Column("resource_type", String(32), nullable=False),
    Column("resource", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

quarantine = Table(
    "outbox_quarantine", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("qkey", String(64), nullable=False, unique=True),
    Column("source", String(500), nullable=False),
    Column("idx", Integer, nullable=False),
    Column("problems", Text, nullable=False),
    Column("raw", Text),
    Column("created_at", Float, nullable=False),
)
