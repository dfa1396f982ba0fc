"""Several worker processes on one PostgreSQL outbox: no item is taken twice, nothing is
sent twice, and each patient's steps reach the server in order (read back from its
version history)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

from mafhir.outbox import Enqueuer, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.plugins import get_registry
from outbox_helpers import (
    appointment_tasks,
    clinic_ctx,
    postgres_database,
    search,
    server_history,
    write_ndjson,
)

MAFHIR = Path(sys.executable).parent / "mafhir"
PATIENTS = 40
STEPS = ("book", "confirm", "check_in", "start", "complete")


def test_four_worker_processes_drain_one_postgres_outbox(tmp_path, fhir_base_url):
    ctx = clinic_ctx()
    docs = [d for p in range(PATIENTS) for d in appointment_tasks(p)]
    random.Random(5).shuffle(docs)
    docs.sort(key=lambda d: STEPS.index(d["action"]))  # patients interleaved, steps in order
    with postgres_database() as url:
        store = open_store(url)
        dest = resolve_destination(fhir_base_url)
        path = write_ndjson(tmp_path / "day.ndjson", docs)
        assert Enqueuer(store, dest, get_registry(), ctx).add_file(path).added == len(docs)
        workers = [subprocess.Popen([str(MAFHIR), "worker", "--db", url, "--once",
                                     "--threads", "1", "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        tallies = []
        for w in workers:
            out, err = w.communicate(timeout=300)
            assert w.returncode == 0, err[-2000:]
            tallies.append(json.loads(out.strip().splitlines()[-1]))
        assert sum(t["sent"] + t["unchanged"] for t in tallies) == len(docs)
        assert sum(t["dead"] for t in tallies) == 0
        assert sum(1 for t in tallies if t["sent"]) >= 2  # the work was shared out

        assert store.counts() == {dest: {"delivered": len(docs)}}
        per_item = Counter()
        for item in store.items_in("delivered"):
            per_item[item.id] = len(store.attempts_of(item.id))
        assert set(per_item.values()) == {1}  # no item was ever processed twice
        store.close()

    for p in range(PATIENTS):
        (appt,) = search(fhir_base_url, "Appointment",
                         identifier=f"{ctx.clinic.system}/appointment|appt-{p}")
        history = server_history(fhir_base_url, "Appointment", appt["id"])
        assert [v["meta"]["tag"][0]["code"] for v in history] == \
            [f"appt-{p}-{s}" for s in STEPS]  # each step once, in the patient's order
        assert [v["status"] for v in history] == \
            ["booked", "booked", "checked-in", "checked-in", "fulfilled"]
        (enc,) = search(fhir_base_url, "Encounter",
                        identifier=f"{ctx.clinic.system}/encounter|appt-{p}")
        assert [v["status"] for v in server_history(fhir_base_url, "Encounter", enc["id"])] \
            == ["arrived", "in-progress", "finished"]
