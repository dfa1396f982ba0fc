"""The shared backend: PostgreSQL, for several worker processes on one or more machines.

Workers claim with ``SELECT … FOR UPDATE SKIP LOCKED``, so two never take the same item
and none waits for another's lock. A claimed item carries a lease: a worker that dies
without a word (SIGKILL, a lost machine) gives its items back when the lease runs out.
A resource that several patients share (the clinic, a practitioner, a room) is first
created under a PostgreSQL advisory lock on its identity, so parallel workers never race
a server's conditional create.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from ..errors import InputError, Problem
from ..storage import lock_key as _lock_key
from ..storage import postgres_engine, sqlalchemy_url
from . import schema
from .store import OutboxStore

__all__ = ["PostgresStore", "sqlalchemy_url"]


class PostgresStore(OutboxStore):
    """The outbox in a PostgreSQL database."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        try:  # an optional extra: say how to get it rather than SQLAlchemy's bare import error
            import psycopg  # noqa: F401
        except ImportError:
            raise InputError([Problem("--db", "a PostgreSQL outbox needs the driver: pip "
                                      "install 'mafhir[postgres]'", "not-supported")]) from None
        super().__init__(postgres_engine(url), url)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _claim_ids(self, conn: Connection, now: float, limit: int) -> list[int]:
        query = self._claimable(now, limit)
        return list(conn.execute(query.with_for_update(skip_locked=True,
                                                       of=schema.items)).scalars())

    @contextmanager
    def identity_lock(self, key: str) -> Iterator[None]:
        with self.engine.connect() as conn:
            conn.execute(select(func.pg_advisory_lock(_lock_key(key))))
            conn.commit()
            try:
                yield
            finally:
                conn.execute(select(func.pg_advisory_unlock(_lock_key(key))))
                conn.commit()

    def acquire_worker_lock(self) -> bool:
        return True  # any number of worker processes; leases cover the ones that die

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
