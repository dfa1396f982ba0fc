"""`mafhir listen` as one process for a clinic's inbound v2: a lab's result is converted and
delivered, a pharmacy's refill request goes onto the worklist (the pharmacy plugin's
handler, chosen by message type), and each enhanced-mode sender gets its application
ACK back on its own port. A real subprocess and real loopback sockets throughout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

from helpers_pharmacy import PharmacyStandIn, clinic, prescription, rde_o25

from mafhir.hl7v2 import MessageStore, MLLPClient, MLLPListener, Outcome, Receiver, read_ack
from mafhir_pharmacy.tasks import PrescriptionTask
from mafhir_pharmacy.worklist import LocalWorklist

MAFHIR = Path(sys.executable).parent / "mafhir"

ORU = ("MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|L-1|P|2.5.1|||"
       "AL|AL\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane\rOBR|1|ord-1||4548-4^HbA1c^LN\r"
       "OBX|1|NM|4548-4^HbA1c^LN||6.9|%|||||F\r")


class Inbox:
    """A sender's own MLLP port: the application ACKs it is sent, as (MSA-1, MSA-2)."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, str]] = []
        self.cond = threading.Condition()

    def __call__(self, msg):
        with self.cond:
            self.acks.append((msg.first("MSA").get(1), msg.first("MSA").get(2)))
            self.cond.notify_all()
        return Outcome("processed")

    def wait(self, n: int) -> list[tuple[str, str]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.acks) >= n, 20)
            return sorted(self.acks)


def test_one_listener_routes_results_and_refill_requests(tmp_path):
    c = clinic()
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    worklist_path = tmp_path / "refills.sqlite"
    worklist = LocalWorklist(worklist_path)
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    worklist.close()
    inbox = Inbox()
    # the pharmacy stand-in lives until the answer is sent; a failed assert before then
    # still stops its socket and thread (and closes the stores)
    with ExitStack() as pharmacy_up:
        pharmacy = pharmacy_up.enter_context(PharmacyStandIn(tmp_path / "pharmacy.sqlite"))
        senders = MessageStore(tmp_path / "senders.sqlite")
        pharmacy_up.callback(senders.close)
        with MLLPListener("127.0.0.1", 0, Receiver(senders, inbox)) as sender_port:
            proc = subprocess.Popen(
                [str(MAFHIR), "listen", "--mllp", "127.0.0.1:0", "--store",
                 str(tmp_path / "in.sqlite"), "--to", f"dir:{tmp_path / 'out'}",
                 "--no-check-patient", "--set", f"pharmacy.worklist={worklist_path}",
                 "--set", f"pharmacy.answer-to.RXSYS^MAINST=pharmacy-v2:{pharmacy.target}",
                 "--ack-to", f"127.0.0.1:{sender_port.address[1]}",
                 "--clinic", str(tmp_path / "clinic.json"),
                 "--namespace", f"CLINIC={c.mrn_namespace}"],  # the lab echoes the MRN
                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                assert proc.stderr is not None
                line = proc.stderr.readline()
                while line.startswith("warning:"):  # e.g. no clinic configured
                    line = proc.stderr.readline()
                port = int(re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1))
                assert "RDE^O25" in line and "OMP^O09" in line  # the pharmacy's handler is routed
                refill = rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RF-1").replace(
                    b"|P|2.5.1\r", b"|P|2.5.1|||AL|AL\r")
                with MLLPClient("127.0.0.1", port, timeout=20) as client:
                    assert read_ack(client.send(refill)).code == "CA"
                    assert read_ack(client.send(ORU)).code == "CA"
                acks = inbox.wait(2)
            finally:
                proc.send_signal(signal.SIGTERM)
                rest = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0, rest
        assert acks == [("AA", "L-1"), ("AA", "RF-1")]  # each sender's application ACK, once
        assert "application ACKs pending: 0" in rest
        # the refill request is on the worklist (requested: its prescription is known) …
        worklist = LocalWorklist(worklist_path)
        (state, request), = worklist.items()
        worklist.close()
        assert (state, request.prescription) == ("requested", "rx-5001")
        # … and the result was converted and delivered, not put on the worklist
        delivered = [json.loads(p.read_text()) for p in (tmp_path / "out").rglob("*.json")]
        observations = [e["resource"] for b in delivered for e in b.get("entry", [])
                        if e["resource"]["resourceType"] == "Observation"] or \
                       [r for r in delivered if r.get("resourceType") == "Observation"]
        assert [o["code"]["coding"][0]["code"] for o in observations] == ["4548-4"]

        # the MA decides; the answer goes to the pharmacy the listener recorded, unasked
        decided = subprocess.run(
            [str(MAFHIR), "pharmacy", "decide", request.id, "--approve", "--worklist",
             str(worklist_path), "--clinic", str(tmp_path / "clinic.json")],
            capture_output=True, text=True, timeout=60)
    assert decided.returncode == 0, decided.stderr
    (answer,) = pharmacy.received
    assert answer.type == "RRE^O26"
    assert (answer.first("MSA").get(2), answer.first("ORC").get(1)) == ("RF-1", "AF")
    assert answer.first("ORC").get(2, 1) == "rx-5001"
