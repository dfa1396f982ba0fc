"""Worker threads opening one fresh SQLite store at the same moment (as ``mafhir sync``'s
workers and ``mafhir demo`` do): every one of them opens it, none fails creating the
tables, and the file ends with one copy of each table and index."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from mafhir.connectors.local import LocalStore

THREADS = 8
ROUNDS = 10  # fresh files; the race needs the threads to meet on an empty one


def open_together(path: Path) -> list[BaseException]:
    """Open ``path`` from THREADS threads released by one barrier; what each one raised."""
    barrier = threading.Barrier(THREADS)
    failures: list[BaseException] = []
    stores: list[LocalStore] = []
    guard = threading.Lock()

    def opener() -> None:
        barrier.wait()
        try:
            store = LocalStore(path)
        except BaseException as exc:  # every failure is what we look for
            with guard:
                failures.append(exc)
        else:
            with guard:
                stores.append(store)

    threads = [threading.Thread(target=opener) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store in stores:
        store.close()
    return failures


def test_threads_opening_a_fresh_local_store_at_once_all_succeed(tmp_path):
    for n in range(ROUNDS):
        path = tmp_path / f"store-{n}.db"
        failures = open_together(path)
        assert failures == [], f"round {n}: {len(failures)} of {THREADS} openers failed: " \
                               f"{[type(f).__name__ + ': ' + str(f)[:120] for f in failures]}"
        with sqlite3.connect(path) as db:
            names = sorted(r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'index') "
                "AND name NOT LIKE 'sqlite_%'"))
        assert names == ["history", "identifiers", "ix_resources_patient", "resources"]
