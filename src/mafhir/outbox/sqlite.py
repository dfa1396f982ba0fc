"""The embedded backend: one SQLite file (``mafhir.db``), WAL mode, one writer.

SQLite suits one process on one machine: worker threads share one engine, and every
write transaction goes through one lock, so no writer ever waits on another for the
file. A lock file (``<db>.lock``) makes sure only one process runs workers on the file;
that process may then put items a killed predecessor left in flight back to pending at
once. ``synchronous=FULL``: a committed enqueue survives a power cut, not only a crash.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..storage import sqlite_engine, sqlite_path, write_transaction
from .store import OutboxStore

__all__ = ["SqliteStore"]

#: :meth:`OutboxStore._claimable` as SQLite is told to run it: walking the active items in
#: id order (``ix_outbox_items_active``) until ``limit`` are found, each checked against the
#: active items of its patient (``ix_outbox_items_active_lane``). Left to itself, SQLite's
#: planner (no statistics) read every pending item by state, and every earlier item of each
#: patient, then sorted them: 0.6 s a claim with 20,000 items waiting.
_ACTIVE = "('pending', 'inflight', 'retry')"  # == schema.ACTIVE, as the indexes say it
_CLAIM = text(f"""
SELECT i.id FROM outbox_items AS i INDEXED BY ix_outbox_items_active
WHERE i.state IN {_ACTIVE}
  AND CASE WHEN i.state = 'inflight' THEN i.lease_until < :now ELSE i.next_at <= :now END
  AND NOT EXISTS (SELECT 1 FROM outbox_items AS e INDEXED BY ix_outbox_items_active_lane
                  WHERE e.destination = i.destination AND e.okey = i.okey AND e.id < i.id
                    AND e.state IN {_ACTIVE})
ORDER BY i.id LIMIT :limit""")


class SqliteStore(OutboxStore):
    """The outbox in a SQLite file."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = Path(sqlite_path(path))
        engine = sqlite_engine(self.path)
        super().__init__(engine, str(self.path))
        self._write = threading.RLock()
        self._ident_locks: dict[str, threading.Lock] = {}
        self._ident_guard = threading.Lock()
        self._lockfile: IO[str] | None = None

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._write, self.engine.connect() as conn, write_transaction(conn):
            yield conn

    @contextmanager
    def _claim_tx(self) -> Iterator[Connection]:
        """A claim's transaction, committed without waiting for the disk.

        Nothing depends on a claim surviving a power cut: this process is the only one
        working the file, and the next one puts whatever is in flight back to pending at
        start. So the claim commits with ``synchronous=NORMAL`` (WAL: no fsync), and the
        next durable commit — the batch's results — makes it durable with its own. Under a
        busy disk an fsync took 20–130 ms here: one per claim was the outbox's largest
        cost per item.
        """
        with self._write, self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            if raw is None:  # pragma: no cover - a checked-out connection always has one
                raise RuntimeError("no SQLite connection")
            level = raw.execute("PRAGMA synchronous").fetchone()[0]
            raw.execute("PRAGMA synchronous=NORMAL")
            try:
                with write_transaction(conn):
                    yield conn
            finally:
                raw.execute(f"PRAGMA synchronous={int(level)}")

    def _claim_ids(self, conn: Connection, now: float, limit: int) -> list[int]:
        # the write lock makes this exclusive
        return list(conn.execute(_CLAIM, {"now": now, "limit": limit}).scalars())

    @contextmanager
    def identity_lock(self, key: str) -> Iterator[None]:
        with self._ident_guard:
            lock = self._ident_locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def acquire_worker_lock(self) -> bool:
        if self._lockfile is not None:
            return True
        handle = open(f"{self.path}.lock", "a")  # noqa: SIM115 - held for the process's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lockfile = handle
        return True

    def close(self) -> None:
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None
        super().close()
