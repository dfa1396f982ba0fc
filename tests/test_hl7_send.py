"""``mafhir hl7 send``: files of many HL7 v2 messages (split at MSH, batch envelopes taken
apart, MLLP framing and line endings as senders leave them) sent over a real MLLP socket to
a real ``mafhir listen``; one line per ACK, no patient data, honest exit status (issue 19,
item 6)."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mafhir.clinic import load_clinic
from mafhir.errors import InputError
from mafhir.hl7v2.batch import split_messages

MAFHIR = Path(sys.executable).parent / "mafhir"
CLINIC = Path(__file__).resolve().parents[1] / "fixtures" / "clinic-day" / "clinic.json"


def _oru(control: str, mrn: str = "MRN-7731", family: str = "Quixote") -> bytes:
    return (f"MSH|^~\\&|LAB|QUEST|EHR|CLINIC|20261127083000-0500||ORU^R01^ORU_R01|{control}|P|"
            f"2.5.1\rPID|1||{mrn}^^^CLINIC^MR||{family}^Ana||19800101|F\r"
            "OBR|1|ord-1|L-1|2345-7^Glucose^LN|||20261127080000-0500\r"
            "OBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-99|N|||F\r").encode()


def test_split_keeps_every_message_and_takes_batches_apart():
    a, b, c = _oru("A-1"), _oru("B-2"), _oru("C-3")
    lf = a.replace(b"\r", b"\n")  # an archive with LF line ends
    batch = (b"\xef\xbb\xbfFHS|^~\\&|LAB\rBHS|^~\\&|LAB\r" + lf + b"\x0b" + b + b"\x1c\r" + c
             + b"BTS|3\rFTS|1\r")
    parts = split_messages(batch)
    assert [p.data for p in parts] == [a, b, c]  # each whole, CR-terminated, unchanged
    assert [p.line for p in parts] == [3, 7, 12]  # line 11 is the CR after the frame end


def test_split_refuses_what_it_would_otherwise_lose():
    with pytest.raises(InputError, match="line 1: text before the first MSH"):
        split_messages(b"hello\r" + _oru("A-1"))
    with pytest.raises(InputError, match="BTS-1: the batch says 3 message"):
        split_messages(b"BHS|^~\\&\r" + _oru("A-1") + b"BTS|3\r")


@pytest.fixture
def listener(tmp_path):
    store = tmp_path / "in.sqlite"
    proc = subprocess.Popen([str(MAFHIR), "listen", "--mllp", "127.0.0.1:0", "--store",
                             str(store), "--no-check-patient", "--clinic", str(CLINIC),
                             "--namespace", f"CLINIC={load_clinic(str(CLINIC)).mrn_namespace}"],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "MAFHIR_TZ": "UTC"})
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line.startswith("warning:"):
        line = proc.stderr.readline()
    port = int(re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1))
    yield f"127.0.0.1:{port}", store, proc
    if proc.poll() is None:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_file_of_three_messages_is_sent_and_each_ack_printed(tmp_path, listener):
    to, store, server = listener
    src = tmp_path / "three.hl7"
    src.write_bytes(_oru("A-1") + _oru("B-2").replace(b"\r", b"\n") + _oru("C-3"))
    proc = subprocess.run([str(MAFHIR), "hl7", "send", "--to", to, "--json", str(src)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [(x["control_id"], x["ack"], x["acknowledges"]) for x in lines] == \
        [("A-1", "AA", "A-1"), ("B-2", "AA", "B-2"), ("C-3", "AA", "C-3")]
    assert [x["message"] for x in lines] == [f"{src}#1", f"{src}#2", f"{src}#3"]
    assert "Quixote" not in proc.stdout + proc.stderr and "MRN-7731" not in proc.stdout
    with sqlite3.connect(store) as conn:  # the listener stored all three
        (n,) = conn.execute("SELECT count(*) FROM messages").fetchone()
    assert n == 3
    server.terminate()
    _, log = server.communicate(timeout=30)
    said = [line for line in log.splitlines() if "ORU^R01" in line and "→" in line]
    assert len(said) == 3, log  # the listener's line per message: type, id, sender, ACK
    assert all(re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in said)
    assert "ORU^R01 B-2 from LAB|QUEST → processed, ACK AA" in said[1], said
    assert "Quixote" not in log and "MRN-7731" not in log


def test_no_receiver_is_exit_75_with_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = tmp_path / "one.hl7"
    src.write_bytes(_oru("A-1"))
    proc = subprocess.run([str(MAFHIR), "hl7", "send", "--to", f"127.0.0.1:{port}", "--timeout",
                           "2", str(src)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 75, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{src}: ORU^R01^ORU_R01 A-1 → no ACK" in proc.stdout


def test_a_refused_message_is_exit_1(tmp_path, listener):
    to, _, _ = listener
    src = tmp_path / "bad.hl7"
    bad = _oru("Z-9").replace(b"|2.5.1\r", b"|9.9\r")  # a version nobody speaks
    src.write_bytes(_oru("A-1") + bad)
    proc = subprocess.run([str(MAFHIR), "hl7", "send", "--to", to, "--json", str(src)],
                          capture_output=True, text=True, timeout=120)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["ack"] for x in lines] == ["AA", "AR"], lines
    assert proc.returncode == 1
