"""Interchange control numbers from a durable counter in the outbox database.

ISA13, GS06 and ST02 must never repeat towards one partner: a clearinghouse drops a
"duplicate" interchange (TA1 025) and the clinic's check silently never happens. So the
number is allocated in its own committed transaction *before* the 270 is sent — a send
that fails, or a process killed right after, simply leaves a gap (gaps are allowed;
repeats are not). The row is per partner (sender/receiver pair), in the same database
as the outbox (SQLite or PostgreSQL through :mod:`mafhir.storage`), so it survives
what the outbox survives. ``SELECT … FOR UPDATE`` (PostgreSQL) / ``BEGIN IMMEDIATE``
(SQLite) make concurrent workers take distinct numbers.
"""

from __future__ import annotations

import time

from sqlalchemy import BigInteger, Column, Engine, Float, MetaData, String, Table, select, update

from mafhir.errors import PermanentError
from mafhir.storage import create_tables, dialect_insert, open_engine, write_transaction

__all__ = ["MAX_CONTROL", "ControlNumbers", "counters"]

#: ISA13 is nine digits.
MAX_CONTROL = 999_999_999

metadata = MetaData()
counters = Table(
    "x12_control_numbers", metadata,
    Column("partner", String(200), primary_key=True),
    Column("last", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)


class ControlNumbers:
    """Allocates increasing, never-repeated control numbers per partner."""

    def __init__(self, location: str, engine: Engine | None = None) -> None:
        self.engine = engine or open_engine(location, pool_size=2)
        self._own = engine is None
        create_tables(self.engine, metadata)

    def allocate(self, partner: str) -> int:
        """The next number for ``partner``, committed before it is returned."""
        insert = dialect_insert(self.engine.dialect.name)
        with self.engine.connect() as conn, write_transaction(conn):
            conn.execute(insert(counters).values(partner=partner, last=0,
                                                 updated_at=time.time())
                         .on_conflict_do_nothing(index_elements=["partner"]))
            query = select(counters.c.last).where(counters.c.partner == partner)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            last = int(conn.execute(query).scalar_one())
            if last >= MAX_CONTROL:
                raise PermanentError(f"the control numbers towards {partner!r} are used up "
                                     f"({MAX_CONTROL}); agree a new sender id with the "
                                     "partner", code="processing")
            conn.execute(update(counters).where(counters.c.partner == partner)
                         .values(last=last + 1, updated_at=time.time()))
        return last + 1

    def last(self, partner: str) -> int:
        """The last number allocated (0 when none)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(counters.c.last)
                                 .where(counters.c.partner == partner)).scalar()
        return int(value or 0)

    def close(self) -> None:
        if self._own:
            self.engine.dispose()
