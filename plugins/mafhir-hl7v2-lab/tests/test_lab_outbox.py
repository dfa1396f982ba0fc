"""Lab orders through the outbox: ``mafhir sync --to mllp:HOST:PORT/OML^O21``.

A real MLLP listener on loopback stands in for the lab; what it receives is read back
from the wire, and the ACK it chooses decides delivered, retried or dead-lettered.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from helpers_hl7v2_lab import clinic, lab_order

from mafhir.errors import Problem
from mafhir.hl7v2 import MessageStore, MLLPListener, Receiver
from mafhir.hl7v2.receiver import Outcome

MAFHIR = str(Path(sys.executable).parent / "mafhir")


def write_inputs(tmp: Path) -> tuple[Path, Path, object]:
    c = clinic()
    (tmp / "clinic.json").write_text(c.model_dump_json())
    orders = [lab_order(mrn="MS-1", order_id="ord-1"),
              lab_order(mrn="MS-2", order_id="ord-2", tests=[{"name": "lipid-panel"}])]
    (tmp / "orders.ndjson").write_text("".join(json.dumps(o) + "\n" for o in orders))
    return tmp / "clinic.json", tmp / "orders.ndjson", c


def wait_for_failed_attempt(db: Path, proc: subprocess.Popen[str], limit: float = 120.0) -> None:
    """Until the outbox at ``db`` holds a retried attempt (the lab refused the connection);
    fails if ``sync`` exits first. ``limit`` only bounds a hang: the wait ends on state."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, "sync exited before the lab was up"
        if db.exists():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                    if conn.execute("SELECT count(*) FROM outbox_attempts WHERE result = 'retry'"
                                    ).fetchone()[0]:
                        return
            except sqlite3.OperationalError:  # the schema is not written yet
                pass
        time.sleep(0.05)
    raise AssertionError("no failed attempt recorded")


def sync(tmp: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    clinic_file, orders = tmp / "clinic.json", tmp / "orders.ndjson"
    return subprocess.run(
        [MAFHIR, "sync", "--to", f"mllp:127.0.0.1:{port}/OML^O21", "--db", str(tmp / "o.db"),
         "--clinic", str(clinic_file), "--json", "--retry-base", "0.05", *extra, str(orders)],
        capture_output=True, text=True, timeout=120)


def test_orders_leave_through_the_outbox_once(tmp_path):
    _, _, c = write_inputs(tmp_path)
    received = []

    def lab(msg):
        received.append(msg)
        return Outcome("processed")

    with MLLPListener("127.0.0.1", 0, Receiver(MessageStore(tmp_path / "lab.db"), lab)) as side:
        port = side.address[1]
        first = sync(tmp_path, port)
        again = sync(tmp_path, port)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["sent"] == 2
    assert [m.type for m in received] == ["OML^O21", "OML^O21"]
    placers = sorted(m.first("ORC").raw(2).split("^")[0] for m in received)
    assert placers == ["ord-1", "ord-2"]
    assert sorted(m.first("PID").raw(3).split("^")[0] for m in received) == ["MS-1", "MS-2"]
    assert {m.msh.get(4) for m in received} == {c.name}
    assert again.returncode == 0 and json.loads(again.stdout)["sent"] == 0
    assert len(received) == 2  # the re-run sent nothing


def test_an_application_error_is_dead_lettered_with_the_labs_reason(tmp_path):
    write_inputs(tmp_path)

    def lab(msg):
        return Outcome("error", (Problem("OBR-4", "test not offered here", "not-supported"),))

    with MLLPListener("127.0.0.1", 0, Receiver(MessageStore(tmp_path / "lab.db"), lab)) as side:
        proc = sync(tmp_path, side.address[1])
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["dead"] == 2
    shown = subprocess.run([MAFHIR, "outbox", "dead", "--db", str(tmp_path / "o.db"),
                            "--show", "1"], capture_output=True, text=True, timeout=60)
    reason = json.loads(shown.stdout[:shown.stdout.rindex("}") + 1])["reason"]
    assert reason == ("the receiver answered AE to the OML^O21: OBR-4: test not offered here")


def test_a_lab_that_is_down_is_retried_until_it_answers(tmp_path):
    write_inputs(tmp_path)
    with socket.socket() as probe:  # a free port nobody listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received = []

    def lab(msg):
        received.append(msg)
        return Outcome("processed")

    proc = subprocess.Popen(
        [MAFHIR, "sync", "--to", f"mllp:127.0.0.1:{port}/OML^O21", "--db",
         str(tmp_path / "o.db"), "--clinic", str(tmp_path / "clinic.json"), "--json",
         "--retry-base", "0.2", "--max-attempts", "50", str(tmp_path / "orders.ndjson")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait on what the outbox records, not on time: the first attempt failed (refused)
    wait_for_failed_attempt(tmp_path / "o.db", proc)
    with MLLPListener("127.0.0.1", port, Receiver(MessageStore(tmp_path / "lab.db"), lab)):
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["sent"] == 2 and summary["retried"] >= 1 and summary["dead"] == 0
    assert len(received) == 2
