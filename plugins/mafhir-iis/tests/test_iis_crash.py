"""Crash safety of IIS delivery: ``mafhir sync --to iis:NAME`` killed with SIGKILL at random
points, again and again (as ``tests/test_sync_crash.py`` does for FHIR servers), with the
outbox in SQLite and in PostgreSQL (the core tests' helpers make the database).

The stand-in runs in this process, so it outlives every kill. Afterwards every dose is in
the registry exactly once (the registry keys doses by ORC-3, as real ones do, and the
VXU of a resend carries the same ORC-3 and MSH-10), no dose is missing, and the outbox
shows everything delivered. How many VXUs were sent more than once (delivered, then
killed before the outbox recorded it) is printed: at-least-once delivery made harmless.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers_iis import CLINIC, CREDENTIALS_ENV, MRN_SYSTEM, flu_shot, running_standin, write_config

from mafhir.outbox import open_store

# the core's outbox test helpers (a throwaway PostgreSQL database per run)
_CORE_TESTS = str(Path(__file__).resolve().parents[3] / "tests")
if _CORE_TESTS not in sys.path:
    sys.path.append(_CORE_TESTS)
from outbox_helpers import outbox_url  # noqa: E402

MAFHIR = Path(sys.executable).parent / "mafhir"
KILLS = 12
RECORDS = 120
BATCH = 20


def task(i: int) -> dict:
    patient = {"mrn": f"K-{i % 15}", "system": MRN_SYSTEM, "family": f"Kim{i % 15}",
               "given": ["Lee"], "birth_date": "1980-05-06", "gender": "male",
               "phone": "608-555-0199", "address": {"line": ["2 Oak St"], "city": "Madison",
                                                    "state": "WI", "postal_code": "53703"}}
    return flu_shot(f"imm-k{i}", patient=patient)


@pytest.fixture(name="db", params=["sqlite", "postgres"])
def _db(request, tmp_path):
    with outbox_url(request.param, tmp_path) as url:
        yield url


@pytest.mark.slow
def test_sigkill_during_iis_delivery_loses_and_duplicates_nothing(tmp_path, db):
    rng = random.Random(20261203)
    (tmp_path / "clinic.json").write_text(CLINIC.model_dump_json())
    batch = tmp_path / "batch.ndjson"
    tasks: list[dict] = []

    def next_batch() -> None:
        start = len(tasks)
        tasks.extend(task(i) for i in range(start, start + BATCH))
        batch.write_text("".join(json.dumps(t) + "\n" for t in tasks[start:]))

    with running_standin() as standin:
        config = write_config(tmp_path / "mafhir.toml", standin)
        env = {**os.environ, **CREDENTIALS_ENV, "MAFHIR_CONFIG": str(config),
               "MAFHIR_LOAD_PLUGINS": "iis"}
        cmd = [str(MAFHIR), "sync", str(batch), "--db", db, "--to", "iis:state",
               "--clinic", str(tmp_path / "clinic.json"), "--threads", "4",
               "--retry-base", "0.05", "--lease", "3", "--no-progress", "--json"]
        next_batch()
        store = open_store(db)
        kills = 0
        while kills < KILLS or len(tasks) < RECORDS:
            before = standin.soap_requests
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    env=env)
            started = time.monotonic()
            deadline = started + rng.uniform(0.1, 1.5) if kills % 4 == 3 else None
            while proc.poll() is None:
                now = time.monotonic()
                if kills >= KILLS:
                    deadline = None
                elif deadline is None and standin.soap_requests > before:
                    deadline = now + rng.uniform(0.0, 0.3)  # while it delivers
                if deadline is not None and now >= deadline:
                    proc.kill()
                    kills += 1
                    break
                if now - started > 120:
                    proc.kill()
                    pytest.fail("a sync run hung for 2 minutes")
                time.sleep(0.01)
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
            counts = store.counts()
            enqueued = sum(n for states in counts.values() for n in states.values())
            drained = all(set(states) == {"delivered"} for states in counts.values())
            # more work while records are wanted, or while kills are still owed and all was
            # delivered (a run that finishes before it can be killed must not leave the
            # loop waiting for a kill that an idle sync never gives)
            if enqueued == len(tasks) and (len(tasks) < RECORDS or
                                           (kills < KILLS and drained)):
                next_batch()
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert final.returncode == 0, final.stderr[-2000:]
        assert list(store.counts().values()) == [{"delivered": len(tasks)}]
        store.close()

        held = Counter(d.filler_id for d in standin.registry.doses())
        assert sorted(held) == sorted(t["id"] for t in tasks)  # none lost, none extra
        assert set(held.values()) == {1}  # none twice
        sent = Counter(r.control_id for r in standin.registry.receipts)
        assert len(sent) == len(tasks)  # one MSH-10 per dose, resends included
    print(json.dumps({"kills": kills, "records": len(tasks),
                      "resent": sum(n - 1 for n in sent.values())}))
