"""``mafhir messages``: the listener's inbound store browsed and a held message
reprocessed, against real listeners on loopback (issue 19, item 7)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mafhir.clinic import load_clinic
from mafhir.hl7v2.mllp import MLLPClient

MAFHIR = Path(sys.executable).parent / "mafhir"
CLINIC = Path(__file__).resolve().parents[1] / "fixtures" / "clinic-day" / "clinic.json"
ORU = ("MSH|^~\\&|LAB|QUEST|EHR|CLINIC|20261127083000-0500||ORU^R01^ORU_R01|{id}|P|2.5.1\r"
       "PID|1||MRN-7731^^^CLINIC^MR||Quixote^Ana||19800101|F\r"
       "OBR|1|ord-1|L-1|2345-7^Glucose^LN|||20261127080000-0500\r"
       "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-99|N|||F\r")


def listen(store: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([str(MAFHIR), "listen", "--mllp", "127.0.0.1:0", "--store",
                             str(store), "--no-check-patient", "--clinic", str(CLINIC), *extra],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line.startswith("warning:"):
        line = proc.stderr.readline()
    port = re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1)  # type: ignore[union-attr]
    return proc, f"127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAFHIR), "messages", *args], capture_output=True, text=True,
                          timeout=120)


def test_a_message_held_for_review_is_found_and_reprocessed(tmp_path):
    store = tmp_path / "in.sqlite"
    first, address = listen(store)  # no namespace for the lab's MRN authority yet
    try:
        host, port = address.split(":")
        with MLLPClient(host, int(port)) as client:
            client.send(ORU.format(id="R-1").encode())
    finally:
        stop(first)
    held = [json.loads(x) for x in cli("list", "--store", str(store), "--status", "review",
                                       "--json").stdout.splitlines()]
    assert [(h["control_id"], h["sender"], h["type"], h["ack"]) for h in held] == \
        [("R-1", "LAB|QUEST", "ORU^R01", "AE")]
    assert held[0]["problems"] >= 1
    listed = cli("list", "--store", str(store))
    assert listed.returncode == 0 and "R-1" in listed.stdout
    assert "Quixote" not in listed.stdout and "MRN-7731" not in listed.stdout  # no PHI

    shown = json.loads(cli("show", str(held[0]["id"]), "--store", str(store)).stdout)
    assert shown["status"] == "review" and any("CLINIC" in p or "authority" in p
                                               for p in shown["problems"])
    assert "raw" not in shown

    # the clinic maps the authority, restarts the listener, and reprocesses the message
    second, address = listen(store, "--namespace",
                             f"CLINIC={load_clinic(str(CLINIC)).mrn_namespace}")
    try:
        done = cli("reprocess", str(held[0]["id"]), "--store", str(store), "--listener",
                   address)
    finally:
        stop(second)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"message {held[0]['id']} reprocessed: now processed, ACK AA"
    whole = cli("show", str(held[0]["id"]), "--store", str(store), "--raw")
    assert json.loads(whole.stdout)["status"] == "processed"
    assert "PID|1||MRN-7731" in json.loads(whole.stdout)["raw"]
    assert "holds patient data" in whole.stderr

    again = cli("reprocess", str(held[0]["id"]), "--store", str(store))
    assert again.returncode == 2 and "is processed" in again.stderr


def test_a_missing_store_or_message_is_one_error_line(tmp_path):
    none = cli("list", "--store", str(tmp_path / "nope.sqlite"))
    assert none.returncode == 2 and none.stderr.startswith("error: ")
    assert not (tmp_path / "nope.sqlite").exists()  # not created by looking
