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
from typing import IO, Any

from sqlalchemy.engine import Connection

from ..storage import sqlite_engine, sqlite_path, write_transaction
from .store import OutboxStore

__all__ = ["SqliteStore"]


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

    def _claim_ids(self, conn: Connection, query: Any) -> list[int]:
        return list(conn.execute(query).scalars())  # the write lock makes this exclusive

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
