"""Graceful stop: SIGTERM / SIGINT let in-flight items finish (or go back to pending), and
``--watch`` keeps delivering what is added to its input until it is stopped."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mafhir.outbox import LocalStore
from outbox_helpers import clinic_ctx, vitals_task, write_ndjson

MAFHIR = Path(sys.executable).parent / "mafhir"


def states(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM outbox_items GROUP BY state"))


def wait_for(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    pytest.fail("timed out waiting")


def delivered(db: Path) -> int:
    try:
        return states(db).get("delivered", 0)
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_finishes_in_flight_work_and_leaves_the_rest_pending(tmp_path,
                                                                           fault_proxy, sig):
    from mafhir.testing import Fault

    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    inputs = write_ndjson(tmp_path / "t.ndjson", [vitals_task(i, i, performer=False)
                                                          for i in range(300)])
    fault_proxy.add(Fault.slow(0.05), method="POST", times=10_000)  # a slow server
    db = tmp_path / "o.db"
    proc = subprocess.Popen([str(MAFHIR), "sync", str(inputs), "--db", str(db), "--to",
                             fault_proxy.base_url, "--clinic", str(clinic), "--no-progress",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for(lambda: delivered(db) >= 5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert f"{signal.Signals(sig).name}: finishing what is in flight" in err
    tally = json.loads(out.strip().splitlines()[-1])
    now = states(db)
    assert "inflight" not in now  # nothing left claimed
    assert now["delivered"] == tally["sent"] and 0 < now["delivered"] < 300
    assert now["pending"] == 300 - now["delivered"]
    posted = len(fault_proxy.requests(method="POST"))
    assert posted == tally["sent"]  # nothing was sent that the outbox does not know of


def test_watch_delivers_what_is_added_to_its_input(tmp_path):
    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    tasks = [vitals_task(i, i, performer=False) for i in range(3)]
    inputs = write_ndjson(tmp_path / "t.ndjson", tasks)
    db, store_db = tmp_path / "o.db", tmp_path / "s.db"
    proc = subprocess.Popen([str(MAFHIR), "sync", "--watch", str(inputs), "--db", str(db),
                             "--to", f"local:{store_db}", "--clinic", str(clinic),
                             "--no-progress", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: delivered(db) == 3)
        tasks += [vitals_task(i, i, performer=False) for i in range(3, 5)]
        write_ndjson(inputs, tasks)
        wait_for(lambda: delivered(db) == 5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert json.loads(out.strip().splitlines()[-1])["sent"] == 5
    assert LocalStore(store_db).counts() == {"Observation": 5, "Patient": 5}
