"""The schedule feed's own table: the latest event applied per appointment id, and the
events held because their appointment was not booked yet.

An EHR's interface engine may send an S14 before its S12 (two queues, a retry). Each SIU
carries the whole appointment, so the right final state is the newest event's; what must
never happen is an older event overwriting a newer one. The table keeps, per appointment
id (``system|value``), the event time (MSH-7, as UTC) of the last event applied; events
for an id never booked are held here (kept whole) until the booking arrives, and then
applied in time order. SQLAlchemy Core over :mod:`mafhir.storage`: a SQLite file or a
PostgreSQL URL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Connection

from mafhir.storage import create_tables, lock_key, open_engine, upsert, write_transaction

__all__ = ["AppointmentState", "Held", "ScheduleState", "metadata"]

metadata = MetaData()
appointments = Table(
    "adt_appointments", metadata,
    Column("key", Text, primary_key=True),
    Column("event_time", Text, nullable=False),  # UTC ISO 8601: compares as text
    Column("trigger", Text, nullable=False),
    Column("control_id", Text, nullable=False))
held = Table(
    "adt_held_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, index=True),
    Column("event_time", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("control_id", Text, nullable=False),
    Column("message", LargeBinary, nullable=False))


@dataclass(frozen=True)
class AppointmentState:
    """The last event applied to one appointment."""

    key: str
    event_time: str
    trigger: str
    control_id: str


@dataclass(frozen=True)
class Held:
    """An event held until its appointment is booked."""

    id: int
    key: str
    event_time: str
    trigger: str
    control_id: str
    message: bytes


class ScheduleState:
    """The table above; one transaction per call, one message per appointment at a time."""

    def __init__(self, location: str | Path) -> None:
        self.engine = open_engine(str(location), pool_size=2)
        self._dialect = self.engine.dialect.name
        self._lock = threading.RLock()
        create_tables(self.engine, metadata)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, write_transaction(conn):
            yield conn

    @contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Held while one message for appointment ``key`` is decided and applied (check,
        deliver, record): by this process's threads, and on PostgreSQL by every listener
        sharing the table (a session advisory lock on the key)."""
        with self._lock:
            if self._dialect != "postgresql":
                yield
                return
            with self.engine.connect() as conn:
                conn.execute(select(func.pg_advisory_lock(lock_key(f"adt:{key}"))))
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(select(func.pg_advisory_unlock(lock_key(f"adt:{key}"))))
                    conn.commit()

    def get(self, key: str) -> AppointmentState | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(appointments).where(appointments.c.key == key)).first()
        return AppointmentState(*row) if row is not None else None

    def applied(self, key: str, event_time: str, trigger: str, control_id: str) -> None:
        """Record ``key``'s latest applied event (never moves back in time)."""
        with self._tx() as conn:
            row = conn.execute(select(appointments.c.event_time)
                               .where(appointments.c.key == key)).first()
            if row is not None and row[0] > event_time:
                return
            conn.execute(upsert(self._dialect, appointments,
                                {"key": key, "event_time": event_time, "trigger": trigger,
                                 "control_id": control_id},
                                ("key",), ("event_time", "trigger", "control_id")))

    def hold(self, key: str, event_time: str, trigger: str, control_id: str,
             message: bytes) -> None:
        with self._tx() as conn:
            conn.execute(held.insert().values(key=key, event_time=event_time, trigger=trigger,
                                              control_id=control_id, message=message))

    def held_for(self, key: str) -> list[Held]:
        """The events held for ``key``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(held).where(held.c.key == key)
                                .order_by(held.c.event_time, held.c.id)).all()
        return [Held(*r) for r in rows]

    def release(self, held_id: int) -> None:
        with self._tx() as conn:
            conn.execute(delete(held).where(held.c.id == held_id))
