"""The outbox commands' exit status and visibility (issue 19, items 2 and 7): one table
for every command — ``worker --once`` with a dead letter exits 1 as ``sync`` does, an
empty ``replay --all`` is not a failure, a wrong id is a usage error — and ``outbox show``
gives any item, whatever its state, with its attempts, last error and next try."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mafhir.outbox import Enqueuer, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.plugins import get_registry
from mafhir.testing import Fault
from outbox_helpers import clinic_ctx, vitals_task, write_ndjson

MAFHIR = Path(sys.executable).parent / "mafhir"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAFHIR), *args], capture_output=True, text=True, timeout=300)


def test_worker_once_with_a_dead_letter_exits_1_and_show_tells_every_state(tmp_path,
                                                                           fault_proxy):
    db = str(tmp_path / "o.db")
    store = open_store(db)
    dest = resolve_destination(fault_proxy.base_url)
    fault_proxy.add(Fault.status_code(400), method="POST", times=1)
    path = write_ndjson(tmp_path / "t.ndjson", [vitals_task(1, 1, performer=False)])
    assert Enqueuer(store, dest, get_registry(), clinic_ctx()).add_file(path).added == 1
    (item,) = store.items_in("pending")

    pending = json.loads(cli("outbox", "show", str(item.id), "--db", db).stdout)
    assert (pending["state"], pending["attempts"], pending["history"]) == ("pending", 0, [])
    assert pending["next_try"] is not None and pending["kind"] == "vitals"

    worker = cli("worker", "--once", "--db", db, "--json", "--no-progress")
    assert worker.returncode == 1, worker.stderr  # as sync: a dead letter is a failure
    assert json.loads(worker.stdout.strip().splitlines()[-1])["dead"] == 1

    dead = json.loads(cli("outbox", "show", str(item.id), "--db", db).stdout)
    assert (dead["state"], dead["attempts"], dead["next_try"]) == ("dead", 1, None)
    assert "HTTP 400" in dead["reason"] and [h["result"] for h in dead["history"]] == ["dead"]
    assert all("diagnostics" not in i for i in dead["outcome"]["issue"])  # hidden by default

    replay = cli("outbox", "replay", "--all", "--db", db)
    assert replay.returncode == 0 and "1 item(s) back to pending" in replay.stdout
    again = cli("worker", "--once", "--db", db, "--json", "--no-progress")
    assert again.returncode == 0, again.stderr  # the fault was used up: delivered
    assert json.loads(cli("outbox", "show", str(item.id), "--db", db).stdout)["state"] == \
        "delivered"

    nothing = cli("outbox", "replay", "--all", "--db", db)
    assert nothing.returncode == 0 and "no dead letters" in nothing.stdout
    wrong = cli("outbox", "replay", str(item.id), "--db", db)
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == f"error: item {item.id} is not a dead letter: nothing " \
                                   f"replayed"
    missing = cli("outbox", "show", "999", "--db", db)
    assert missing.returncode == 2 and missing.stderr.strip() == "error: no outbox item 999"
    store.close()


def test_a_run_without_a_terminal_says_periodically_how_far_it_got(tmp_path, fault_proxy):
    """No progress bar in a pipe or a log: a one-line status every MAFHIR_STATUS_EVERY
    seconds instead of silence (issue 19, item 7)."""
    import os

    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    fault_proxy.add(Fault.slow(0.05), method="POST", times=10_000)  # each send ≥ 50 ms
    src = write_ndjson(tmp_path / "t.ndjson", [vitals_task(i, i, performer=False)
                                               for i in range(40)])
    proc = subprocess.run([str(MAFHIR), "sync", "--to", fault_proxy.base_url, "--db",
                           str(tmp_path / "o.db"), "--clinic", str(clinic), "--threads", "2",
                           str(src)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MAFHIR_STATUS_EVERY": "0.2"})
    assert proc.returncode == 0, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if " status: " in x]
    assert lines, proc.stderr  # 40 sends of ≥ 50 ms on 2 threads last ≥ 1 s
    assert all(x.split(" status: ")[1].count(",") == 4 for x in lines)
    assert lines[-1].split(" status: ")[1].split(" sent")[0].isdigit()
