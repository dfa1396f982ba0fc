"""Control numbers (ISA13/GS06/ST02) never repeat: concurrent workers on both backends,
and 50 SIGKILLs of a running ``mafhir sync --to x12:NAME``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers_x12 import clinic_ctx, coverage_task

from mafhir.outbox import open_store
from mafhir_x12_eligibility.controlnumbers import ControlNumbers
from outbox_helpers import outbox_url, run_and_kill

MAFHIR = Path(sys.executable).parent / "mafhir"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_allocations_are_unique_and_increasing(tmp_path, backend):
    with outbox_url(backend, tmp_path) as url:
        numbers = [ControlNumbers(url) for _ in range(4)]  # four "processes"
        got: list[list[int]] = [[] for _ in numbers]

        def work(i: int) -> None:
            for _ in range(25):
                got[i].append(numbers[i].allocate("CLINIC01>ACMECH"))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(numbers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [n for g in got for n in g]
        assert sorted(every) == list(range(1, 101))  # 100 distinct, no gap without a crash
        assert all(g == sorted(g) for g in got)  # increasing for each allocator
        assert numbers[0].allocate("CLINIC01>OTHER") == 1  # per partner
        assert numbers[0].last("CLINIC01>ACMECH") == 100
        for n in numbers:
            n.close()


@pytest.mark.slow
def test_sigkill_never_repeats_a_control_number(tmp_path, standin):
    """Killed at random points (mostly while it sends), restarted each time: every 270 that
    reached the clearinghouse has its own ISA13, and in the end every check is answered."""
    rng = random.Random(20261203)
    clinic = tmp_path / "clinic.json"
    clinic.write_text(clinic_ctx().clinic.model_dump_json())
    config = tmp_path / "mafhir.toml"
    db = str(tmp_path / "outbox.db")
    config.write_text('[x12]\nsender_id = "CLINIC01"\nprovider_npi = "1234567893"\n'
                      'provider_name = "Maple"\n\n'
                      f'[x12.acme]\nurl = "{standin.url}"\nreceiver_id = "ACMECH"\n')
    tasks = tmp_path / "tasks.ndjson"
    tasks.write_text("".join(json.dumps(coverage_task("ACTIVE01", mrn=f"M{i}",
                                                      task_id=f"cov-{i}")) + "\n"
                             for i in range(300)))
    env = {**os.environ, "MAFHIR_CONFIG": str(config), "MAFHIR_OUTBOX": db,
           "MAFHIR_LOAD_PLUGINS": "x12_eligibility",
           "MAFHIR_PATIENTS": f"local:{tmp_path / 'store.db'}"}
    cmd = [str(MAFHIR), "sync", str(tasks), "--db", db, "--to", "x12:acme", "--clinic",
           str(clinic), "--threads", "4", "--retry-base", "0.05", "--no-progress"]
    standin.slow_next(0.1, times=10_000)  # each answer takes a moment: kills land mid-send
    kills = 0
    while kills < 50:
        before = len(standin.requests)
        if run_and_kill(cmd, lambda before=before: len(standin.requests) > before, rng,
                        window=(0.0, 0.3), env=env, cwd=tmp_path):
            kills += 1
        else:
            break  # it ended by itself: everything went out before a kill could land
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                           cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills == 50
    controls = [r["control"] for r in standin.requests if r.get("control")]
    assert len(controls) == len(set(controls)), "a control number was sent twice"
    assert len(controls) >= 300  # every check went out at least once (resends included)
    store = open_store(db)
    try:
        assert list(store.counts().values()) == [{"delivered": 300}]
    finally:
        store.close()
    last = ControlNumbers(db).last("CLINIC01>ACMECH")
    assert last >= max(int(c) for c in controls)
    print(json.dumps({"kills": kills, "sent": len(controls), "last": last}))
