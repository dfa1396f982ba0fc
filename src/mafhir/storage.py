"""One storage layer under every store: a SQLite file or a PostgreSQL database, in SQLAlchemy Core.

The outbox, the v2 message store, the local store and the pharmacy worklist all open their
database here, so the choices that matter for durability are made once:

* **Where**: a ``postgresql://`` (or ``postgres://``) URL is PostgreSQL through psycopg 3;
  anything else is a SQLite file path (``sqlite:///`` accepted), its folder created.
* **SQLite**: WAL, ``synchronous=FULL`` (a committed row survives a power cut), a busy
  timeout instead of "database is locked", and ``BEGIN IMMEDIATE`` for a transaction
  marked as a write (``conn.info["write"]``) so a writer never upgrades a read lock and
  deadlocks. ``:memory:`` is one shared connection (otherwise every pooled connection
  would see its own empty database).
* **PostgreSQL**: pre-pinged pooled connections; tables created under an advisory lock
  so processes starting together do not race ``CREATE TABLE``.
* **Dialect**: the dialect's ``INSERT … ON CONFLICT`` (both spell it the same way) and a
  stable 64-bit advisory-lock key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from .redact import without_password

__all__ = [
    "POSTGRES_PREFIXES",
    "create_tables",
    "dialect_insert",
    "display_url",
    "is_postgres",
    "lock_key",
    "open_engine",
    "postgres_engine",
    "sqlalchemy_url",
    "sqlite_engine",
    "sqlite_path",
    "upsert",
    "write_transaction",
]

#: What a PostgreSQL location starts with (everything else is a SQLite file).
POSTGRES_PREFIXES = ("postgresql://", "postgres://", "postgresql+psycopg://")

_SCHEMA_LOCK = 0x6D61_6668_6972  # "mafhir": serializes CREATE TABLE across processes


def is_postgres(location: str | Path) -> bool:
    """Is ``location`` a PostgreSQL URL (rather than a SQLite path)?"""
    return str(location).startswith(POSTGRES_PREFIXES)


def sqlalchemy_url(url: str) -> str:
    """``postgresql://…`` as SQLAlchemy's psycopg 3 URL."""
    for prefix in POSTGRES_PREFIXES:
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def sqlite_path(location: str | Path) -> str:
    """The file a SQLite location names (``sqlite:///`` removed; ``:memory:`` kept)."""
    path = str(location).removeprefix("sqlite:///")
    return path if path == ":memory:" else str(Path(path).resolve())


def display_url(location: str | Path) -> str:
    """The location as it may be shown or logged: never a password."""
    return without_password(str(location))


def sqlite_engine(location: str | Path, *, durable: bool = True, pool_size: int = 8) -> Engine:
    """A SQLite engine with the pragmas every store needs (see the module docstring)."""
    path = sqlite_path(location)
    if path == ":memory:":
        engine = create_engine("sqlite://", poolclass=StaticPool,
                               connect_args={"check_same_thread": False})
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", pool_size=pool_size,
                               max_overflow=pool_size,
                               connect_args={"check_same_thread": False, "timeout": 30})
    sync = "FULL" if durable else "NORMAL"

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={sync}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

    return engine


@contextmanager
def write_transaction(conn: Connection) -> Iterator[Connection]:
    """A write transaction on ``conn``: marked so that SQLite begins it ``IMMEDIATE`` (a
    writer never upgrades a read lock and deadlocks); plain ``BEGIN`` on PostgreSQL."""
    conn.info["write"] = True
    try:
        with conn.begin():
            yield conn
    finally:
        conn.info.pop("write", None)


def postgres_engine(url: str, *, pool_size: int = 8) -> Engine:
    """A PostgreSQL engine (psycopg 3), connections checked before use."""
    return create_engine(sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True)


def open_engine(location: str | Path, *, durable: bool = True, pool_size: int = 8) -> Engine:
    """The engine for ``location``: a PostgreSQL URL or a SQLite path."""
    if is_postgres(location):
        return postgres_engine(str(location), pool_size=pool_size)
    return sqlite_engine(location, durable=durable, pool_size=pool_size)


def create_tables(engine: Engine, metadata: MetaData) -> None:
    """``CREATE TABLE IF NOT EXISTS`` for ``metadata``, and every index a later release
    added to a table that was already there, by one creator at a time: two creating the
    same table at once make one of them fail. On SQLite the check and the creation share
    one ``BEGIN IMMEDIATE`` transaction (the others wait out the busy timeout, then find
    the tables made; a plain ``BEGIN`` would upgrade its read lock and fail at once with
    "database is locked"); on PostgreSQL an advisory lock."""
    if engine.dialect.name != "postgresql":
        # a fresh file's first connection sets its journal mode, which SQLite does not let
        # wait on the busy timeout: a "locked" there is retried, briefly, never swallowed
        deadline = time.monotonic() + 30.0
        while True:
            try:
                with engine.connect() as conn, write_transaction(conn):
                    _create(conn, metadata)
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    with engine.connect() as conn:
        conn.execute(select(func.pg_advisory_lock(_SCHEMA_LOCK)))
        try:
            conn.commit()
            _create(conn, metadata)
            conn.commit()
        finally:
            conn.execute(select(func.pg_advisory_unlock(_SCHEMA_LOCK)))
            conn.commit()


def _create(conn: Connection, metadata: MetaData) -> None:
    metadata.create_all(conn)
    for table in metadata.sorted_tables:  # create_all skips the indexes of existing tables
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def dialect_insert(dialect: str) -> Callable[[Table], Any]:
    """The dialect's ``insert`` (the one that knows ``ON CONFLICT``)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def upsert(dialect: str, table: Table, rows: list[dict[str, Any]] | dict[str, Any] | None,
           keys: Sequence[str], update_cols: Sequence[str] | None) -> Any:
    """INSERT … ON CONFLICT (``keys``) DO NOTHING, or DO UPDATE ``update_cols`` from the row.

    ``rows=None`` gives the statement without values, to run as ``conn.execute(stmt,
    rows)`` (executemany): one statement for any number of rows, compiled once and cached,
    where ``.values(rows)`` writes one bound parameter per column per row and compiles
    again for every new count of rows (1.5 ms an item, measured, on a 500-item enqueue).
    """
    stmt = dialect_insert(dialect)(table)
    if rows is not None:
        stmt = stmt.values(rows)
    if update_cols is None:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: stmt.excluded[c] for c in update_cols})


def lock_key(key: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from any string."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
