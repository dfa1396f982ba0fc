"""The message store: every inbound message is written here before it is acknowledged.

A SQLite file (WAL, ``synchronous=FULL``: a committed row survives a crash or power
loss) or a PostgreSQL database (``postgresql://…``), opened through
:mod:`mafhir.storage`; several listeners may share one PostgreSQL database.

A message is known by its sender (MSH-3 and MSH-4, whole), its control id (MSH-10,
whole) **and its content** (the SHA-256 of its bytes): an identical re-send finds its row
and gets the original ACK back instead of being processed again. Different bytes under
a control id already used are a message of their own: stored, processed and
acknowledged as such, with ``conflicts_with`` naming the earlier row (the sender reused
an id; an operator can see it, and nothing was dropped under a positive ACK).
Unreadable input is kept too (status ``rejected``, no control id): quarantined, never
dropped. Thread-safe; one store serves every connection of a listener. A SQLite file
written by an earlier release is brought up to this schema when it is opened.

In enhanced mode the application ACK is a message of its own, sent back to the sender
on a connection mafhir opens (:class:`mafhir.hl7v2.replies.ReplySender`). It is kept
here with ``reply_status`` ``pending`` until the sender commits it (``sent``), so a
crash or an unreachable sender delays the answer but never loses it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    case,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

from ..storage import (
    create_tables,
    display_url,
    is_postgres,
    open_engine,
    sqlite_path,
    upsert,
    write_transaction,
)

__all__ = ["FINAL", "Claim", "MessageStore", "PendingReply", "StoredMessage", "messages"]

#: Statuses whose ACK is replayed to a duplicate. ``retry`` (a transient failure
#: downstream) is not final: a re-sent message is processed again.
FINAL = ("processed", "error", "rejected", "review")

#: How often a wait for another connection's result looks at the database again: a
#: listener in another process (same PostgreSQL database or SQLite file) finishes
#: without notifying this one.
_POLL = 0.1

_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite: the rowid

metadata = MetaData()

messages = Table(
    "messages", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("sender", Text),
    Column("control_id", Text),
    Column("message_type", Text),
    Column("received_at", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("status", Text, nullable=False),
    Column("ack", LargeBinary),
    Column("app_ack", LargeBinary),
    Column("problems", Text),
    Column("attempts", Integer, nullable=False, server_default=text("1")),
    Column("duplicates", Integer, nullable=False, server_default=text("0")),
    Column("reply_status", Text),
    Column("reply_attempts", Integer, nullable=False, server_default=text("0")),
    Column("reply_error", Text),
    Column("reply_next_at", Float, nullable=False, server_default=text("0")),
    Column("content_sha256", LargeBinary),
    Column("conflicts_with", BigInteger),
    UniqueConstraint("sender", "control_id", "content_sha256", name="messages_content_key"),
)
Index("messages_status", messages.c.status)
Index("messages_received", messages.c.received_at)  # the dashboard's throughput
_REPLIES = Index("messages_reply", messages.c.reply_status,
                 sqlite_where=messages.c.reply_status == "pending",
                 postgresql_where=messages.c.reply_status == "pending")

#: Columns added after the first release: an older SQLite file gets them on open.
_ADDED = {"reply_status": "TEXT", "reply_attempts": "INTEGER NOT NULL DEFAULT 0",
          "reply_error": "TEXT", "reply_next_at": "REAL NOT NULL DEFAULT 0"}
#: The columns every release had (after _ADDED), copied when the table is rebuilt.
_KEPT = ("id, sender, control_id, message_type, received_at, raw, status, ack, app_ack, "
         "problems, attempts, duplicates, reply_status, reply_attempts, reply_error, "
         "reply_next_at")
#: The columns in StoredMessage's order (an upgraded file has them in another order).
_SELECT = [messages.c[name] for name in (
    "id", "sender", "control_id", "message_type", "received_at", "raw", "status", "ack",
    "app_ack", "problems", "attempts", "duplicates", "reply_status", "reply_attempts",
    "reply_error", "reply_next_at", "content_sha256", "conflicts_with")]

# The hot path's statements, built once with bound parameters: building and hashing a
# statement per message cost SQLAlchemy more than the database took to run it.
_KEY = (messages.c.sender == bindparam("sender"),
        messages.c.control_id == bindparam("control_id"))
_FIND_LOCKED = (select(messages.c.id, messages.c.status, messages.c.ack)
                .where(*_KEY, messages.c.content_sha256 == bindparam("digest"))
                .with_for_update())
_FINISH = (update(messages).where(messages.c.id == bindparam("b_id"))
           .values(status=bindparam("status"), ack=bindparam("ack"),
                   app_ack=bindparam("app_ack"), problems=bindparam("problems"),
                   reply_status=bindparam("reply_status"), reply_next_at=0.0))


def _claim_insert(dialect: str) -> Any:
    """INSERT the arriving message unless its content key is there (then nothing), naming
    an earlier row with this id and other content, in the same statement."""
    m = messages.c
    earlier = (select(m.id).where(*_KEY, m.content_sha256.is_distinct_from(
        bindparam("digest", type_=LargeBinary))).order_by(m.id).limit(1).scalar_subquery())
    row = {"sender": bindparam("sender"), "control_id": bindparam("control_id"),
           "message_type": bindparam("message_type"), "received_at": bindparam("received_at"),
           "raw": bindparam("raw", type_=LargeBinary), "status": "received",
           "content_sha256": bindparam("digest", type_=LargeBinary), "conflicts_with": earlier}
    return upsert(dialect, messages, row, ["sender", "control_id", "content_sha256"],
                  None).returning(m.id, m.conflicts_with)


@dataclass(frozen=True)
class Claim:
    """The row of an arriving message; ``duplicate`` when it was seen before."""

    id: int
    duplicate: bool
    ack: bytes | None = None
    #: A duplicate whose processing is over (its ACK, possibly none, is final).
    finished: bool = False
    #: A new message under a control id this sender used before for other content.
    conflicts_with: int | None = None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    sender: str | None
    control_id: str | None
    message_type: str | None
    received_at: str
    raw: bytes
    status: str
    ack: bytes | None
    app_ack: bytes | None
    problems: str | None
    attempts: int
    duplicates: int
    reply_status: str | None = None  # enhanced mode: pending | sent (the app ACK's delivery)
    reply_attempts: int = 0
    reply_error: str | None = None
    reply_next_at: float = 0.0  # epoch seconds: not tried again before then
    content_sha256: bytes | None = None
    conflicts_with: int | None = None  # an earlier row with this id and other content


@dataclass(frozen=True)
class PendingReply:
    """An application ACK waiting to go back to its sender."""

    id: int
    sender: str
    app_ack: bytes
    attempts: int


class MessageStore:
    """Store of inbound messages, their status and their ACKs: a SQLite file or, given a
    ``postgresql://`` URL, a PostgreSQL database that several listeners can share."""

    def __init__(self, path: str | Path = "mafhir-hl7v2.sqlite", durable: bool = True) -> None:
        location = str(path)
        self.postgres = is_postgres(location)
        #: Where the store is, as it may be shown (never a password).
        self.path = display_url(location) if self.postgres else sqlite_path(location)
        self.engine = open_engine(location, durable=durable, pool_size=4)
        self._dialect = self.engine.dialect.name
        self._claim_insert = _claim_insert(self._dialect)
        # One lock per store: on SQLite the one writer; everywhere, the condition another
        # connection of this listener waits on for a message to be finished.
        self._lock = threading.RLock()
        self._done = threading.Condition(self._lock)
        #: SQLite: one connection, used under the lock (as one writer must anyway); a
        #: pooled checkout per statement cost more than the statement.
        self._held: Connection | None = None
        if not self.postgres:
            self._migrate_sqlite()
        create_tables(self.engine, metadata)
        _REPLIES.create(self.engine, checkfirst=True)

    # ------------------------------------------------------------------ schema
    def _migrate_sqlite(self) -> None:
        """Bring a file written by an earlier release up to this schema, in place."""
        with self._write() as conn:
            if not inspect(conn).has_table("messages"):
                return
            have = {c["name"] for c in inspect(conn).get_columns("messages")}
            for column, kind in _ADDED.items():
                if column not in have:
                    conn.exec_driver_sql(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
            if "content_sha256" not in have:
                self._migrate_content_key(conn)

    @staticmethod
    def _migrate_content_key(conn: Connection) -> None:
        """A store from before the content key: rebuild the table under the new UNIQUE
        (SQLite cannot change a constraint in place), hashing the kept bytes."""
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        dbapi.create_function("sha256", 1, lambda raw: hashlib.sha256(raw or b"").digest(),
                              deterministic=True)
        conn.exec_driver_sql("ALTER TABLE messages RENAME TO messages_before_content_key")
        conn.exec_driver_sql("DROP INDEX IF EXISTS messages_status")
        conn.exec_driver_sql("DROP INDEX IF EXISTS messages_reply")
        metadata.create_all(conn)
        conn.exec_driver_sql(
            f"INSERT INTO messages ({_KEPT}, content_sha256) SELECT {_KEPT}, "
            "CASE WHEN control_id IS NULL THEN NULL ELSE sha256(raw) END "
            "FROM messages_before_content_key")
        conn.exec_driver_sql("DROP TABLE messages_before_content_key")

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """PostgreSQL: a pooled connection; SQLite: the store's one, under the lock."""
        if self.postgres:
            with self.engine.connect() as conn:
                yield conn
            return
        with self._lock:
            if self._held is None:
                self._held = self.engine.connect()
            yield self._held

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, so it never waits to upgrade)."""
        with self._connection() as conn, write_transaction(conn):
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._connection() as conn, conn.begin():
            yield conn

    # ------------------------------------------------------------------ arriving messages
    def claim(self, sender: str, control_id: str, message_type: str, raw: bytes,
              at: datetime) -> Claim:
        """Store an arriving message, or find the earlier one with the same id and the
        same bytes. Other bytes under a used id are stored as a message of their own
        (``Claim.conflicts_with`` names the earlier row).

        Safe against a second listener on the same database: the content key is a UNIQUE
        index, so of two identical messages inserted at once one row is written and the
        other insert does nothing (PostgreSQL makes it wait for the first to commit); it
        then finds that row, locked (``FOR UPDATE``) while its counters change."""
        digest = hashlib.sha256(raw).digest()
        m = messages.c
        key = {"sender": sender, "control_id": control_id, "digest": digest}
        with self._lock:
            with self._write() as conn:  # one statement: insert, or nothing when known
                new = conn.execute(self._claim_insert, {
                    **key, "message_type": message_type, "received_at": at.isoformat(),
                    "raw": raw}).first()
            if new is not None:
                return Claim(int(new[0]), duplicate=False, conflicts_with=new[1])
            with self._write() as conn:
                row_id, status, ack = conn.execute(_FIND_LOCKED, key).one()
                if status == "retry":  # processed again from now: a second listener on
                    # this store must see it as fresh work, not an orphan to take over
                    conn.execute(update(messages).where(messages.c.id == row_id).values(
                        status="received", raw=raw, attempts=m.attempts + 1,
                        received_at=at.isoformat()))
                    return Claim(row_id, duplicate=False)
                conn.execute(update(messages).where(m.id == row_id)
                             .values(duplicates=m.duplicates + 1))
            final = status in FINAL
            return Claim(row_id, duplicate=True, ack=ack if final else None, finished=final)

    def finish(self, row_id: int, status: str, ack: bytes | None,
               problems: Sequence[str] = (), app_ack: bytes | None = None) -> None:
        """Record the outcome and the ACK of a claimed message."""
        with self._lock:
            with self._write() as conn:
                conn.execute(_FINISH, {"b_id": row_id, "status": status, "ack": ack,
                                       "app_ack": app_ack,
                                       "problems": "\n".join(problems) or None,
                                       "reply_status": "pending" if app_ack is not None
                                       else None})
            self._done.notify_all()

    def take_over(self, row_id: int, raw: bytes, stored_before: datetime) -> bool:
        """Claim a row left ``received`` (stored, never finished: its process stopped) for
        processing again. Only a row stored before ``stored_before`` qualifies, so one that
        another listener on this store is still working on is not taken from it."""
        m = messages.c
        with self._lock, self._write() as conn:
            cur = conn.execute(update(messages).where(
                m.id == row_id, m.status == "received",
                m.received_at < stored_before.isoformat()).values(
                raw=raw, attempts=m.attempts + 1,
                received_at=datetime.now(stored_before.tzinfo).isoformat()))
            return cur.rowcount == 1

    # ------------------------------------------------------------------ application ACKs
    def pending_replies(self, limit: int = 100, senders: Sequence[str] | None = None,
                        due_at: float | None = None) -> list[PendingReply]:
        """Application ACKs not yet committed by their senders, oldest first: only those
        of ``senders`` (None: all) that are due by ``due_at`` (epoch seconds; None: all),
        so ACKs no route can deliver, or waiting out a backoff, never crowd out the rest."""
        m = messages.c
        query = select(m.id, m.sender, m.app_ack, m.reply_attempts).where(
            m.reply_status == "pending")
        if senders is not None:
            query = query.where(m.sender.in_(list(senders)))
        if due_at is not None:
            query = query.where(m.reply_next_at <= due_at)
        with self._read() as conn:
            rows = conn.execute(query.order_by(m.id).limit(limit)).all()
        return [PendingReply(i, s or "", a, n) for i, s, a, n in rows]

    def pending_reply_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(messages).where(
                messages.c.reply_status == "pending")).scalar_one())

    def pending_senders(self) -> list[str]:
        """The senders that have application ACKs waiting."""
        with self._read() as conn:
            rows = conn.execute(select(messages.c.sender).distinct().where(
                messages.c.reply_status == "pending")).scalars().all()
        return [r or "" for r in rows]

    def reply_result(self, reply: PendingReply, sent: bool, error: str | None = None,
                     next_at: float = 0.0) -> bool:
        """Record one attempt to deliver ``reply``. Only the very ACK that was sent is
        marked: if the message was processed again meanwhile (a re-send after ``retry``),
        its new ACK stays pending. Returns whether the row was updated."""
        m = messages.c
        with self._lock, self._write() as conn:
            cur = conn.execute(update(messages).where(
                m.id == reply.id, m.reply_status == "pending", m.app_ack == reply.app_ack
            ).values(reply_status="sent" if sent else "pending",
                     reply_attempts=m.reply_attempts + 1, reply_error=error,
                     reply_next_at=next_at))
            return cur.rowcount == 1

    # ------------------------------------------------------------------ waiting
    def wait_ack(self, row_id: int, timeout: float = 30.0) -> bytes | None:
        """The ACK of a message another connection is still processing (None on timeout)."""
        return self.wait_finished(row_id, timeout)[1]

    def wait_finished(self, row_id: int, timeout: float = 30.0) -> tuple[bool, bytes | None]:
        """Wait for another connection to finish a message: (finished, its ACK). A
        finished message may have no ACK (its MSH-15 wanted none); that is not "still
        being processed". Woken by :meth:`finish` in this process; another process's
        finish is seen when the row is looked at again (every ``_POLL`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while True:
                row = self._status_ack(row_id)
                if row is not None and row[0] != "received":
                    return True, row[1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, None
                self._done.wait(min(left, _POLL))

    def _status_ack(self, row_id: int) -> tuple[str, bytes | None] | None:
        with self._read() as conn:
            row = conn.execute(select(messages.c.status, messages.c.ack)
                               .where(messages.c.id == row_id)).first()
        return (row[0], row[1]) if row else None

    # ------------------------------------------------------------------ unreadable input
    def quarantine(self, raw: bytes, problems: Sequence[str], ack: bytes | None,
                   at: datetime, message_type: str | None = None) -> int:
        """Keep input that cannot be read as a message (no id to deduplicate on)."""
        with self._lock, self._write() as conn:
            row_id = conn.execute(messages.insert().values(
                message_type=message_type, received_at=at.isoformat(), raw=raw,
                status="rejected", ack=ack, problems="\n".join(problems) or None)
                .returning(messages.c.id)).scalar_one()
            return int(row_id)

    # ------------------------------------------------------------------ reading
    def _select(self, *where: Any) -> list[StoredMessage]:
        with self._read() as conn:
            rows = conn.execute(select(*_SELECT).where(*where).order_by(messages.c.id)).all()
        return [StoredMessage(*row) for row in rows]

    def get(self, row_id: int) -> StoredMessage | None:
        found = self._select(messages.c.id == row_id)
        return found[0] if found else None

    def find(self, sender: str, control_id: str) -> StoredMessage | None:
        """The first message stored under this sender and control id."""
        found = self.find_all(sender, control_id)
        return found[0] if found else None

    def find_all(self, sender: str, control_id: str) -> list[StoredMessage]:
        """Every message stored under this sender and control id (more than one when the
        sender reused the id for other content), oldest first."""
        return self._select(messages.c.sender == sender, messages.c.control_id == control_id)

    def messages(self, status: str | None = None) -> Iterator[StoredMessage]:
        yield from self._select(*([messages.c.status == status] if status else []))

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(select(messages.c.status, func.count())
                                .group_by(messages.c.status)).all()
        return {status: int(n) for status, n in rows}

    def senders(self) -> dict[str, dict[str, Any]]:
        """Per sender: messages by status, the last one received, application ACKs
        pending (the dashboard's overview; one GROUP BY)."""
        m = messages.c
        pending = func.sum(case((m.reply_status == "pending", 1), else_=0))
        with self._read() as conn:
            rows = conn.execute(select(m.sender, m.status, func.count(),
                                       func.max(m.received_at), pending)
                                .group_by(m.sender, m.status)).all()
        out: dict[str, dict[str, Any]] = {}
        for sender, status, n, last, waiting in rows:
            entry = out.setdefault(sender or "", {"statuses": {}, "last_received": "",
                                                  "replies_pending": 0})
            entry["statuses"][status] = int(n)
            entry["last_received"] = max(entry["last_received"], last or "")
            entry["replies_pending"] += int(waiting or 0)
        return out

    def received_since(self, since: datetime, limit: int = 100_000
                       ) -> list[tuple[str, datetime]]:
        """(sender, when received) of up to ``limit`` messages received since ``since``
        (the overview's throughput). Stamps are ISO 8601 (the listener's are UTC), so the
        range is first narrowed as strings on ``messages_received``, then each time is
        checked once read (a row stamped with another offset is placed by its real time)."""
        # a day early: a stamp with another offset sorts by its local date, up to 14 h off
        floor = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        with self._read() as conn:
            rows = conn.execute(select(messages.c.sender, messages.c.received_at)
                                .where(messages.c.received_at >= floor)
                                .order_by(messages.c.received_at.desc()).limit(limit)).all()
        out = []
        for sender, at in rows:
            when = datetime.fromisoformat(at)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if when >= since:
                out.append((sender or "", when))
        return out

    def search(self, *, status: str | None = None, sender: str | None = None,
               message_type: str | None = None, replies_pending: bool = False,
               limit: int = 100, offset: int = 0) -> tuple[int, list[StoredMessage]]:
        """Messages matching every filter given, newest first: (how many match, a page)."""
        m = messages.c
        conds = [c for c in (
            m.status == status if status else None,
            m.sender == sender if sender else None,
            m.message_type == message_type if message_type else None,
            m.reply_status == "pending" if replies_pending else None) if c is not None]
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(messages).where(*conds)
                                 ).scalar_one()
            rows = conn.execute(select(*_SELECT).where(*conds).order_by(m.id.desc())
                                .limit(limit).offset(offset)).all()
        return int(total), [StoredMessage(*row) for row in rows]

    def mark_for_reprocessing(self, row_id: int) -> bool:
        """A finished message (error, review) is to be processed again: status ``retry``,
        which makes the next arrival of the same bytes (a re-send by its sender, or by
        ``mafhir serve --listener``) a fresh claim instead of a duplicate. Unreadable
        input (no control id) cannot be: nothing would find it again."""
        m = messages.c
        with self._lock, self._write() as conn:
            cur = conn.execute(update(messages).where(
                m.id == row_id, m.control_id.is_not(None),
                m.status.in_(("error", "review", "retry"))).values(status="retry"))
            return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            if self._held is not None:
                self._held.close()
                self._held = None
            self.engine.dispose()

