"""The durable outbox and the sync engine (``mafhir sync``, ``mafhir worker``).

Work is written to the outbox (:mod:`.store`: SQLite by default, PostgreSQL for several
workers) before anything is sent; the :mod:`.engine` delivers it in order per patient and
in parallel across patients, with retries, dead letters, a :mod:`.ledger` of what was
delivered where, and an :mod:`.audit` trail. :mod:`.local` is the embedded destination.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazyexports import exporter

if TYPE_CHECKING:  # the names for type checkers; at run time they load on first use
    from .delivery import Delivery, LocalConnector, connect, resolve_destination
    from .engine import Engine
    from .enqueue import Enqueuer
    from .local import LocalStore
    from .model import Item, NewItem, Tally
    from .retry import RetryPolicy
    from .store import OutboxStore, open_store

__all__ = [
    "Delivery",
    "Engine",
    "Enqueuer",
    "Item",
    "LocalConnector",
    "LocalStore",
    "NewItem",
    "OutboxStore",
    "RetryPolicy",
    "Tally",
    "connect",
    "open_store",
    "resolve_destination",
]

#: Each public name and the module it lives in: importing the package costs nothing;
#: a name loads its module when first used (``mafhir --help`` need not load SQLAlchemy).
_EXPORTS = {
    "Delivery": ".delivery",
    "LocalConnector": ".delivery",
    "connect": ".delivery",
    "resolve_destination": ".delivery",
    "Engine": ".engine",
    "Enqueuer": ".enqueue",
    "LocalStore": ".local",
    "Item": ".model",
    "NewItem": ".model",
    "Tally": ".model",
    "RetryPolicy": ".retry",
    "OutboxStore": ".store",
    "open_store": ".store",
}


__getattr__ = exporter(__name__, globals(), _EXPORTS)
