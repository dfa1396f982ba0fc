"""The message store: every inbound message is written here before it is acknowledged.

One SQLite file (WAL, ``synchronous=FULL``: a committed row survives a crash or power
loss). A message is known by its sender (MSH-3/MSH-4) and control id (MSH-10): a re-sent
message finds its row and gets the original ACK back instead of being processed again.
Unreadable input is kept too (status ``rejected``, no control id): quarantined, never
dropped. Thread-safe; one store serves every connection of a listener.

In enhanced mode the application ACK is a message of its own, sent back to the sender
on a connection mafhir opens (:class:`mafhir.hl7v2.replies.ReplySender`). It is kept
here with ``reply_status`` ``pending`` until the sender commits it (``sent``), so a
crash or an unreachable sender delays the answer but never loses it.
"""

from __future__ import annotations

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
    UNIQUE (sender, control_id)
);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status);
"""
#: Columns added after the first release: an older store file gets them on open.
_ADDED = {"reply_status": "TEXT", "reply_attempts": "INTEGER NOT NULL DEFAULT 0",
          "reply_error": "TEXT"}
_REPLIES_INDEX = ("CREATE INDEX IF NOT EXISTS messages_reply ON messages (reply_status) "
                  "WHERE reply_status = 'pending'")


@dataclass(frozen=True)
class Claim:
    """The row of an arriving message; ``duplicate`` when it was seen before."""

    id: int
    duplicate: bool
    ack: bytes | None = None


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
        self._db.execute(_REPLIES_INDEX)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)

    def claim(self, sender: str, control_id: str, message_type: str, raw: bytes,
              at: datetime) -> Claim:
        """Store an arriving message, or find the earlier one with the same id."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO messages (sender, control_id, message_type, received_at, raw,"
                    " status) VALUES (?, ?, ?, ?, ?, 'received')",
                    (sender, control_id, message_type, at.isoformat(), raw))
                return Claim(int(cur.lastrowid or 0), duplicate=False)
            except sqlite3.IntegrityError:
                row = self._db.execute(
                    "SELECT id, status, ack FROM messages WHERE sender=? AND control_id=?",
                    (sender, control_id)).fetchone()
            row_id, status, ack = row
            if status == "retry":
                self._db.execute("UPDATE messages SET status='received', raw=?, "
                                 "attempts=attempts+1 WHERE id=?", (raw, row_id))
                return Claim(row_id, duplicate=False)
            self._db.execute("UPDATE messages SET duplicates=duplicates+1 WHERE id=?", (row_id,))
            return Claim(row_id, duplicate=True, ack=ack if status in FINAL else None)

    def finish(self, row_id: int, status: str, ack: bytes | None,
               problems: Sequence[str] = (), app_ack: bytes | None = None) -> None:
        """Record the outcome and the ACK of a claimed message."""
        with self._lock:
            self._db.execute(
                "UPDATE messages SET status=?, ack=?, app_ack=?, problems=?, reply_status=? "
                "WHERE id=?", (status, ack, app_ack, "\n".join(problems) or None,
                               "pending" if app_ack is not None else None, row_id))
            self._done.notify_all()

    def pending_replies(self, limit: int = 100) -> list[PendingReply]:
        """Application ACKs not yet committed by their senders, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, sender, app_ack, reply_attempts FROM messages WHERE "
                "reply_status='pending' ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [PendingReply(i, s or "", a, n) for i, s, a, n in rows]

    def reply_result(self, row_id: int, sent: bool, error: str | None = None) -> None:
        """Record one attempt to deliver an application ACK (``sent``: the sender took it)."""
        with self._lock:
            self._db.execute(
                "UPDATE messages SET reply_status=?, reply_attempts=reply_attempts+1, "
                "reply_error=? WHERE id=? AND reply_status='pending'",
                ("sent" if sent else "pending", error, row_id))

    def wait_ack(self, row_id: int, timeout: float = 30.0) -> bytes | None:
        """The ACK of a message another connection is still processing (None on timeout)."""
        with self._done:
            ok = self._done.wait_for(lambda: self._status(row_id) != "received", timeout)
            if not ok:
                return None
            row = self._db.execute("SELECT ack FROM messages WHERE id=?", (row_id,)).fetchone()
            return row[0] if row else None

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
            row = self._db.execute("SELECT * FROM messages WHERE id=?", (row_id,)).fetchone()
        return StoredMessage(*row) if row else None

    def find(self, sender: str, control_id: str) -> StoredMessage | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM messages WHERE sender=? AND control_id=?",
                                   (sender, control_id)).fetchone()
        return StoredMessage(*row) if row else None

    def messages(self, status: str | None = None) -> Iterator[StoredMessage]:
        with self._lock:
            if status:
                rows = self._db.execute("SELECT * FROM messages WHERE status=? ORDER BY id",
                                        (status,)).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM messages ORDER BY id").fetchall()
        for row in rows:
            yield StoredMessage(*row)

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM messages GROUP BY status")
            return {status: n for status, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
