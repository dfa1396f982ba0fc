"""Crash safety: ``mafhir sync`` killed with SIGKILL at random points, again and again.

At least 50 kills over a run of at least 1,000 records to the real FHIR test server,
each followed by a restart of the same command. Afterwards every record is on the
server exactly once (counted by identifier) and the outbox shows all delivered.

Each kill is made cheap (issue 12.7) without weakening it: every run of the command gets
the next 20 records in its input file once the last 20 are in the outbox (so it maps
and enqueues 20, not the whole day again: that took ~6 s of each cycle with 1,000; a
run killed while it enqueued gets the same records again) and drains whatever earlier,
killed runs left; and the process loads only the plugin it uses (fhir-rest).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mafhir.outbox import open_store
from mafhir.outbox.schema import attempts
from mafhir.plugins import get_registry
from mafhir.testing import fhir_server
from outbox_helpers import (
    PRACTITIONERS,
    clinic_ctx,
    outbox_url,
    run_and_kill,
    search,
    server_identifiers,
    vitals_task,
    write_ndjson,
)

MAFHIR = Path(sys.executable).parent / "mafhir"
KILLS = 50
RECORDS = 1000
BATCH = 20
# the killed process loads only the connector it sends with (the built-ins always load)
LIGHT = {**os.environ, "MAFHIR_LOAD_PLUGINS": "fhir-rest"}


def last_attempt(store) -> int:
    """The newest attempt's id: an index lookup, cheap enough to poll while a run works."""
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.max(attempts.c.id))).scalar() or 0)


@pytest.fixture(params=["sqlite", "postgres"])
def outbox(request, tmp_path):
    with outbox_url(request.param, tmp_path) as url:
        store = open_store(url)
        yield url, store
        store.close()


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path, fhir_base_url,
                                                              outbox):
    url, store = outbox
    # the fhir-rest plugin loads in this process too (the built-ins alone would not do)
    assert "fhir-rest" in get_registry().connectors
    rng = random.Random(20261127)
    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    tasks: list = []
    batch = tmp_path / "batch.ndjson"

    def next_batch() -> None:
        start = len(tasks)
        tasks.extend(vitals_task(i, patient=i % 100) for i in range(start, start + BATCH))
        write_ndjson(batch, tasks[start:])

    next_batch()
    # a short lease: on PostgreSQL a killed worker's items come back when it runs out
    cmd = [str(MAFHIR), "sync", str(batch), "--db", url, "--to", fhir_base_url,
           "--clinic", str(clinic), "--threads", "4", "--retry-base", "0.05",
           "--lease", "3", "--no-progress", "--json"]
    kills = 0
    while kills < KILLS or len(tasks) < RECORDS:
        before = last_attempt(store)
        # now and then while it starts or enqueues; mostly while it delivers (a random
        # moment after its first attempt); enough kills: the remaining batches run through
        early = rng.uniform(0.1, 2.0) if kills % 5 == 4 and kills < KILLS else None
        if run_and_kill(cmd, lambda before=before: last_attempt(store) > before, rng,
                        early=early, kill=kills < KILLS, env=LIGHT):
            kills += 1
        enqueued = sum(n for states in store.counts().values() for n in states.values())
        # the same command, with the next records in its input once these are all in the
        # outbox (a run killed while it enqueued gets the same records again)
        if len(tasks) < RECORDS and enqueued == len(tasks):
            next_batch()
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills >= KILLS and len(tasks) >= RECORDS

    assert list(store.counts().values()) == [{"delivered": len(tasks)}]

    base = fhir_server().base_url
    observations = server_identifiers(base, "Observation", ctx.clinic.system)
    assert sorted(observations) == sorted(f"{ctx.clinic.system}/observation|v-{i}/heart-rate"
                                          for i in range(len(tasks)))
    assert set(observations.values()) == {1}, "a record is on the server more than once"
    patients = server_identifiers(base, "Patient", ctx.clinic.system)
    assert len(patients) == 100 and set(patients.values()) == {1}
    for p in PRACTITIONERS:
        assert len(search(base, "Practitioner",
                          identifier=f"http://hl7.org/fhir/sid/us-npi|{p['npi']}")) == 1
    print(json.dumps({"kills": kills, "records": len(tasks)}))
