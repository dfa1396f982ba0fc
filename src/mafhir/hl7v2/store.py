"""The message store: every inbound message is written here before it is acknowledged.

One SQLite file (WAL, ``synchronous=FULL``: a committed row survives a crash or power
loss). A message is known by its sender (MSH-3 and MSH-4, whole), its control id (MSH-10,
whole) **and its content** (the SHA-256 of its bytes): an identical re-send finds its row
and gets the original ACK back instead of being processed again. Different bytes under
a control id already used are a message of their own: stored, processed and
acknowledged as such, with ``conflicts_with`` naming the earlier row (the sender reused
an id; an operator can see it, and nothing was dropped under a positive ACK).
Unreadable input is kept too (status ``rejected``, no control id): quarantined, never
dropped. Thread-safe; one store serves every connection of a listener.

In enhanced mode the application ACK is a message of its own, sent back to the sender
on a connection mafhir opens (:class:`mafhir.hl7v2.replies.ReplySender`). It is kept
here with ``reply_status`` ``pending`` until the sender commits it (``sent``), so a
crash or an unreachable sender delays the answer but never loses it.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["FINAL", "Claim", "MessageStore", "PendingReply", "StoredMessage"]

#: Statuses whose ACK is replayed to a duplicate. ``retry`` (a transient failure
#: downstream) is not final: a re-sent message is processed again.
FINAL = ("processed", "error", "rejected", "review")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id           INTEGER PRIMARY KEY,
    sender       TEXT,
    control_id   TEXT,
    message_type TEXT,
    received_at  TEXT NOT NULL,
    raw          BLOB NOT NULL,
    status       TEXT NOT NULL,
    ack          BLOB,
    app_ack      BLOB,
    problems     TEXT,
    attempts     INTEGER NOT NULL DEFAULT 1,
    duplicates   INTEGER NOT NULL DEFAULT 0,
    reply_status TEXT,
    reply_attempts INTEGER NOT NULL DEFAULT 0,
    reply_error  TEXT,
    reply_next_at REAL NOT NULL DEFAULT 0,
    content_sha256 BLOB,
    conflicts_with INTEGER,
    UNIQUE (sender, control_id, content_sha256)
);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status);
"""
#: Columns added after the first release: an older store file gets them on open.
_ADDED = {"reply_status": "TEXT", "reply_attempts": "INTEGER NOT NULL DEFAULT 0",
          "reply_error": "TEXT", "reply_next_at": "REAL NOT NULL DEFAULT 0"}
_COLUMNS = ("id, sender, control_id, message_type, received_at, raw, status, ack, app_ack, "
            "problems, attempts, duplicates, reply_status, reply_attempts, reply_error, "
            "reply_next_at")
#: The columns in StoredMessage's order (an upgraded file has them in another order).
_SELECT = f"{_COLUMNS}, content_sha256, conflicts_with"
_REPLIES_INDEX = ("CREATE INDEX IF NOT EXISTS messages_reply ON messages (reply_status) "
                  "WHERE reply_status = 'pending'")


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
    """SQLite-backed store of inbound messages, their status and their ACKs."""

    def __init__(self, path: str | Path = "mafhir-hl7v2.sqlite", durable: bool = True) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        for column, kind in _ADDED.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
        if "content_sha256" not in have:
            self._migrate_content_key()
            self._db.executescript(_SCHEMA)  # the indexes went with the old table
        self._db.execute(_REPLIES_INDEX)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)

    def _migrate_content_key(self) -> None:
        """A store from before the content key: rebuild the table under the new UNIQUE
        (SQLite cannot change a constraint in place), hashing the kept bytes."""
        self._db.create_function("sha256", 1, lambda raw: hashlib.sha256(raw or b"").digest(),
                                 deterministic=True)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("ALTER TABLE messages RENAME TO messages_before_content_key")
            self._db.execute(_SCHEMA.split(";")[0])  # the table (executescript would commit)
            self._db.execute(
                f"INSERT INTO messages ({_COLUMNS}, content_sha256) SELECT {_COLUMNS}, "
                "CASE WHEN control_id IS NULL THEN NULL ELSE sha256(raw) END "
                "FROM messages_before_content_key")
            self._db.execute("DROP TABLE messages_before_content_key")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def claim(self, sender: str, control_id: str, message_type: str, raw: bytes,
              at: datetime) -> Claim:
        """Store an arriving message, or find the earlier one with the same id and the
        same bytes. Other bytes under a used id are stored as a message of their own
        (``Claim.conflicts_with`` names the earlier row)."""
        digest = hashlib.sha256(raw).digest()
        with self._lock:
            try:  # one statement: the insert finds an earlier row with other content
                row_id, earlier = self._db.execute(
                    "INSERT INTO messages (sender, control_id, message_type, received_at, raw,"
                    " status, content_sha256, conflicts_with) VALUES (?, ?, ?, ?, ?, "
                    "'received', ?, (SELECT id FROM messages WHERE sender=? AND control_id=? "
                    "AND content_sha256 IS NOT ? ORDER BY id LIMIT 1)) "
                    "RETURNING id, conflicts_with",
                    (sender, control_id, message_type, at.isoformat(), raw, digest, sender,
                     control_id, digest)).fetchone()
                return Claim(int(row_id), duplicate=False, conflicts_with=earlier)
            except sqlite3.IntegrityError:
                row = self._db.execute(
                    "SELECT id, status, ack FROM messages WHERE sender=? AND control_id=? "
                    "AND content_sha256=?", (sender, control_id, digest)).fetchone()
            row_id, status, ack = row
            if status == "retry":
                self._db.execute("UPDATE messages SET status='received', raw=?, "
                                 "attempts=attempts+1 WHERE id=?", (raw, row_id))
                return Claim(row_id, duplicate=False)
            self._db.execute("UPDATE messages SET duplicates=duplicates+1 WHERE id=?", (row_id,))
            final = status in FINAL
            return Claim(row_id, duplicate=True, ack=ack if final else None, finished=final)

    def finish(self, row_id: int, status: str, ack: bytes | None,
               problems: Sequence[str] = (), app_ack: bytes | None = None) -> None:
        """Record the outcome and the ACK of a claimed message."""
        with self._lock:
            self._db.execute(
                "UPDATE messages SET status=?, ack=?, app_ack=?, problems=?, reply_status=?, "
                "reply_next_at=0 WHERE id=?", (status, ack, app_ack, "\n".join(problems) or None,
                                               "pending" if app_ack is not None else None,
                                               row_id))
            self._done.notify_all()

    def take_over(self, row_id: int, raw: bytes, stored_before: datetime) -> bool:
        """Claim a row left ``received`` (stored, never finished: its process stopped) for
        processing again. Only a row stored before ``stored_before`` qualifies, so one that
        another listener on this file is still working on is not taken from it."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE messages SET raw=?, attempts=attempts+1, received_at=? WHERE id=? "
                "AND status='received' AND received_at < ?",
                (raw, datetime.now(stored_before.tzinfo).isoformat(), row_id,
                 stored_before.isoformat()))
            return cur.rowcount == 1

    def pending_replies(self, limit: int = 100, senders: Sequence[str] | None = None,
                        due_at: float | None = None) -> list[PendingReply]:
        """Application ACKs not yet committed by their senders, oldest first: only those
        of ``senders`` (None: all) that are due by ``due_at`` (epoch seconds; None: all),
        so ACKs no route can deliver, or waiting out a backoff, never crowd out the rest."""
        sql = "SELECT id, sender, app_ack, reply_attempts FROM messages WHERE " \
              "reply_status='pending'"
        args: list[object] = []
        if senders is not None:
            sql += f" AND sender IN ({', '.join('?' * len(senders)) or 'NULL'})"
            args += list(senders)
        if due_at is not None:
            sql += " AND reply_next_at <= ?"
            args.append(due_at)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id LIMIT ?", (*args, limit)).fetchall()
        return [PendingReply(i, s or "", a, n) for i, s, a, n in rows]

    def pending_reply_count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COUNT(*) FROM messages WHERE "
                                   "reply_status='pending'").fetchone()
        return int(row[0])

    def pending_senders(self) -> list[str]:
        """The senders that have application ACKs waiting."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT sender FROM messages WHERE "
                                    "reply_status='pending'").fetchall()
        return [r[0] or "" for r in rows]

    def reply_result(self, reply: PendingReply, sent: bool, error: str | None = None,
                     next_at: float = 0.0) -> bool:
        """Record one attempt to deliver ``reply``. Only the very ACK that was sent is
        marked: if the message was processed again meanwhile (a re-send after ``retry``),
        its new ACK stays pending. Returns whether the row was updated."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE messages SET reply_status=?, reply_attempts=reply_attempts+1, "
                "reply_error=?, reply_next_at=? WHERE id=? AND reply_status='pending' "
                "AND app_ack=?", ("sent" if sent else "pending", error, next_at, reply.id,
                                  reply.app_ack))
            return cur.rowcount == 1

    def wait_ack(self, row_id: int, timeout: float = 30.0) -> bytes | None:
        """The ACK of a message another connection is still processing (None on timeout)."""
        with self._done:
            ok = self._done.wait_for(lambda: self._status(row_id) != "received", timeout)
            if not ok:
                return None
            row = self._db.execute("SELECT ack FROM messages WHERE id=?", (row_id,)).fetchone()
            return row[0] if row else None

    def wait_finished(self, row_id: int, timeout: float = 30.0) -> tuple[bool, bytes | None]:
        """Wait for another connection to finish a message: (finished, its ACK). A
        finished message may have no ACK (its MSH-15 wanted none); that is not "still
        being processed"."""
        with self._done:
            ok = self._done.wait_for(lambda: self._status(row_id) != "received", timeout)
            if not ok:
                return False, None
            row = self._db.execute("SELECT ack FROM messages WHERE id=?", (row_id,)).fetchone()
            return True, (row[0] if row else None)

    def _status(self, row_id: int) -> str | None:
        row = self._db.execute("SELECT status FROM messages WHERE id=?", (row_id,)).fetchone()
        return row[0] if row else None

    def quarantine(self, raw: bytes, problems: Sequence[str], ack: bytes | None,
                   at: datetime, message_type: str | None = None) -> int:
        """Keep input that cannot be read as a message (no id to deduplicate on)."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO messages (message_type, received_at, raw, status, ack, problems)"
                " VALUES (?, ?, ?, 'rejected', ?, ?)",
                (message_type, at.isoformat(), raw, ack, "\n".join(problems) or None))
            return int(cur.lastrowid or 0)

    def get(self, row_id: int) -> StoredMessage | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_SELECT} FROM messages WHERE id=?",
                                   (row_id,)).fetchone()
        return StoredMessage(*row) if row else None

    def find(self, sender: str, control_id: str) -> StoredMessage | None:
        """The first message stored under this sender and control id."""
        found = self.find_all(sender, control_id)
        return found[0] if found else None

    def find_all(self, sender: str, control_id: str) -> list[StoredMessage]:
        """Every message stored under this sender and control id (more than one when the
        sender reused the id for other content), oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_SELECT} FROM messages WHERE sender=? AND "
                                    "control_id=? ORDER BY id", (sender, control_id)).fetchall()
        return [StoredMessage(*row) for row in rows]

    def messages(self, status: str | None = None) -> Iterator[StoredMessage]:
        with self._lock:
            if status:
                rows = self._db.execute(f"SELECT {_SELECT} FROM messages WHERE status=? "
                                        "ORDER BY id", (status,)).fetchall()
            else:
                rows = self._db.execute(f"SELECT {_SELECT} FROM messages ORDER BY id"
                                        ).fetchall()
        for row in rows:
            yield StoredMessage(*row)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM messages GROUP BY status")
            return {status: n for status, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
