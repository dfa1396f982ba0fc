"""``sync --watch`` re-reads a changed input: only what is new is queued, and nothing
already accepted is judged again (issue 19, item 8: an appended line used to get a
delivered appointment step quarantined, because it was stepped a second time from the
state the rest of the file had left)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mafhir.outbox import Enqueuer, LocalStore, open_store
from mafhir.plugins import get_registry
from outbox_helpers import appointment_tasks, clinic_ctx, vitals_task, write_ndjson

MAFHIR = Path(sys.executable).parent / "mafhir"


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with sqlite3.connect(db) as conn:
            return list(conn.execute(sql))
    except sqlite3.OperationalError:  # not created yet
        return []


def _wait_for(pred, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _appends() -> list[list[dict[str, Any]]]:
    """Twenty appends: the rest of two appointments' lives, new bookings, vitals."""
    life1, life2 = appointment_tasks(1), appointment_tasks(2)
    batches: list[list[dict[str, Any]]] = [[life1[2]], [life1[3]], [life1[4]]]
    batches += [[life2[0]], [life2[1], life2[2]], [life2[3]], [life2[4]]]
    for n in range(13):
        batches.append([appointment_tasks(10 + n)[0]] if n % 2 else
                       [vitals_task(n, 50 + n, performer=False)])
    assert len(batches) == 20
    return batches


def test_rereading_a_grown_file_queues_only_the_new_tasks(tmp_path):
    """The reader itself: the same file read 21 times as it grows."""
    store = open_store(str(tmp_path / "o.db"))
    enq = Enqueuer(store, "local:x", get_registry(), clinic_ctx())
    tasks = appointment_tasks(0) + appointment_tasks(1)[:2]
    path = write_ndjson(tmp_path / "t.ndjson", tasks)
    first = enq.add_file(path)
    assert (first.added, first.quarantined) == (7, 0)
    for batch in _appends():
        tasks += batch
        write_ndjson(path, tasks)
        got = enq.add_file(path)
        assert got.problems == [] and got.quarantined == 0
        assert (got.added, got.skipped) == (len(batch), len(tasks) - len(batch))
    # an illegal step appended after all that is still refused: the state was kept
    late = {**appointment_tasks(0)[0], "id": "appt-0-book-again"}
    write_ndjson(path, [*tasks, late])
    got = enq.add_file(path)
    assert got.quarantined == 1 and "fulfilled" in " ".join(got.problems or [])


def test_watch_never_quarantines_or_resends_what_it_delivered(tmp_path):
    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    tasks = appointment_tasks(0) + appointment_tasks(1)[:2]
    inputs = write_ndjson(tmp_path / "t.ndjson", tasks)
    db, store_db = tmp_path / "o.db", tmp_path / "s.db"
    proc = subprocess.Popen([str(MAFHIR), "sync", "--watch", str(inputs), "--db", str(db),
                             "--to", f"local:{store_db}", "--clinic", str(clinic),
                             "--no-progress", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def delivered() -> int:
        rows = _rows(db, "SELECT count(*) FROM outbox_items WHERE state = 'delivered'")
        return rows[0][0] if rows else 0

    try:
        _wait_for(lambda: delivered() == len(tasks), "the first 7 tasks")
        for batch in _appends():
            tasks += batch
            write_ndjson(inputs, tasks)
            want = len(tasks)
            _wait_for(lambda want=want: delivered() == want, f"{want} delivered")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "quarantined" not in err
    assert _rows(db, "SELECT count(*) FROM outbox_quarantine") == [(0,)]
    items = _rows(db, "SELECT idem_key FROM outbox_items")
    assert len(items) == len(tasks) == len({k for (k,) in items})  # each task once
    assert json.loads(out.strip().splitlines()[-1])["sent"] == len(tasks)
    counts = LocalStore(store_db).counts()
    # patients 0, 1, 2 lived whole lives; 6 more were booked; 7 vitals patients
    assert counts["Appointment"] == 3 + 6
    assert counts["Encounter"] == 3
    assert counts["Observation"] == 7
