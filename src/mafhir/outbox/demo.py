"""The demo day through the outbox: its Bundles enqueued, then drained with progress.

``mafhir demo`` calls :func:`sync_day` with the Bundles it made; they go to the local
store in the demo folder (``store.db``), or to a FHIR server with ``--to URL``. The
outbox (``mafhir.db`` in the folder unless ``--db``) stays, so running the demo again
shows a re-run sending nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from ..plugins import get_registry
from .cli import print_summary, showing_progress
from .delivery import resolve_destination
from .engine import Engine
from .enqueue import Enqueuer
from .retry import RetryPolicy
from .store import open_store

__all__ = ["sync_day"]


def sync_day(bundles: Sequence[tuple[str, dict[str, Any]]], out_dir: Path, console: Console,
             to: str | None = None, db: str | None = None) -> dict[str, Any]:
    """Enqueue and deliver ``bundles`` (name, Bundle); the run's tally and where it went."""
    store = open_store(db or str(out_dir / "mafhir.db"))
    try:
        destination = resolve_destination(to or f"local:{out_dir / 'store.db'}")
        got = Enqueuer(store, destination, get_registry()).add_bundles(bundles)
        engine = Engine(store, threads=4, retry=RetryPolicy(max_attempts=5, base=0.5),
                        timeout=30.0)
        with showing_progress(store, engine, console.is_terminal, console):
            tally = engine.run(once=True)
        tally.enqueued, tally.skipped = got.added, got.skipped
        console.print(f"\nthrough the outbox ({store.url}) to {destination}:")
        print_summary(tally, console, store)
        return {"destination": destination, "outbox": store.url, **tally.as_dict()}
    finally:
        store.close()
