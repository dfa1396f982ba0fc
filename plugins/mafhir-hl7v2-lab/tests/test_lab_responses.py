"""Order responses on real loopback sockets.

In: an OML^O21 sent to mafhir's listener is answered with ORL^O22 (an ORM^O01 with
ORR^O02), ORC-1 ``OK`` per order when taken (also when held for review), ``UA`` when it
cannot be read, a bare AR ACK when delivery may succeed later — read back with python-hl7.
Out: a lab stand-in (a raw socket server, no mafhir code) answers mafhir's orders with an
ORL^O22 refusing one; the ``mllp`` connector and ``mafhir sync`` treat that order as a
permanent failure naming its placer number and the lab's ERR text.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hl7
import pytest
from helpers_hl7v2_lab import (
    Theirs,
    clinic,
    lab_order,
    registry_fixture,  # noqa: F401 - the fixture
    specimen,
    v2ctx,
)
from test_lab_tasks import mapped

from mafhir.connectors.mllp import MLLPConnector
from mafhir.errors import PermanentError, TransientError
from mafhir.hl7v2 import (
    ConvertHandler,
    MessageStore,
    MLLPClient,
    MLLPListener,
    Receiver,
    from_fhir,
    parse,
)
from mafhir.resourceset import ResourceSet
from mafhir_hl7v2_lab.responses import orl_o22, orr_o02

MAFHIR = str(Path(sys.executable).parent / "mafhir")
ERR_TEXT = "Test not offered at this site"


def names(theirs: Theirs) -> list[str]:
    return [str(s[0]) for s in theirs.msg]


def field(theirs: Theirs, seg: str, n: int, comp: int = 1, occurrence: int = 0) -> str:
    return theirs.comp_of(theirs.field(theirs.segments(seg)[occurrence], n), comp)


# ------------------------------------------------------------------ inbound: respond
def answer(registry, tmp_path, message: bytes, ctx: Any = None, **handler: Any) -> Theirs:
    """``message`` sent to a real loopback listener; ``handler`` goes to ConvertHandler
    (``deliver``, ``patient_known``)."""
    handler = ConvertHandler(registry, ctx or v2ctx(), **handler)
    with MLLPListener("127.0.0.1", 0, Receiver(MessageStore(tmp_path / "s.db"), handler)) \
            as listener, MLLPClient(*listener.address) as client:
        return Theirs(client.send(message))


def test_an_oml_is_answered_with_orl_o22_ok(registry, tmp_path):
    bundle, c = mapped(registry, lab_order(), specimen())
    oml = from_fhir(registry, "OML^O21", ResourceSet.from_bundle(bundle),
                    v2ctx(c))
    sent = Theirs(oml.encode())
    reply = answer(registry, tmp_path, oml.encode(), v2ctx(c))  # the clinic's own order
    assert names(reply) == ["MSH", "MSA", "PID", "ORC", "TQ1", "OBR", "SPM"]
    assert str(reply.msg.segment("MSH")[9]) == "ORL^O22^ORL_O22"
    assert field(reply, "MSA", 1) == "AA"
    assert field(reply, "MSA", 2) == str(sent.msg.segment("MSH")[10])
    assert field(reply, "ORC", 1) == "OK"
    # hand-checked: the task's order id, its test, its tube label, the patient's MRN
    assert field(reply, "ORC", 2) == "ord-7001"
    assert reply.field(reply.segments("ORC")[0], 2) == sent.field(sent.segments("ORC")[0], 2)
    assert field(reply, "OBR", 2) == "ord-7001" and field(reply, "OBR", 4) == "4548-4"
    assert str(reply.segments("SPM")[0][2]).split("&")[0] == "TUBE-000731"
    assert field(reply, "PID", 3) == "MS-10022"
    assert reply.field(reply.segments("PID")[0], 5) == sent.field(sent.segments("PID")[0], 5)
    assert reply.comp_of(reply.field(reply.segments("PID")[0], 5), 1) == "O'Brien|Smith"


OML_BAD = (
    "MSH|^~\\&|EHR|OTHERCLINIC|LAB|QUESTLAB|20261127091000-0500||OML^O21^OML_O21|OML-9|P|"
    "2.5.1\r"
    "PID|1||MRN-4^^^X^MR||Doe^Jane||19800101|F\r"
    "ORC|NW|P-100^EHR|||||||20261127091000-0500\r"
    "OBR|1|P-100^EHR||2345-7^Glucose^LN\r"
    "OBX|1|NM|49541-6^Fasting status^LN||QX-PENDING|||||F\r"
    "SPM|1|SP-1||119364003^Serum specimen^SCT\r"
    "ORC|NW|P-101^EHR\r"
    "OBR|2|P-101^EHR||4548-4^A1c^LN\r"
)


def test_an_oml_that_cannot_be_taken_is_answered_ua(registry, tmp_path):
    reply = answer(registry, tmp_path, OML_BAD.encode())
    assert names(reply) == ["MSH", "MSA", "ERR", "PID", "ORC", "OBR", "SPM", "ORC", "OBR"]
    assert str(reply.msg.segment("MSH")[9]) == "ORL^O22^ORL_O22"
    assert field(reply, "MSA", 1) == "AE" and field(reply, "MSA", 2) == "OML-9"
    assert str(reply.segments("ERR")[0][2]).startswith("OBX^1^5")
    assert [field(reply, "ORC", 1, occurrence=i) for i in (0, 1)] == ["UA", "UA"]
    assert [field(reply, "ORC", 2, occurrence=i) for i in (0, 1)] == ["P-100", "P-101"]
    assert "QX-PENDING" not in str(reply.msg)  # the reason, never the value


ORM = (
    "MSH|^~\\&|EHR|OTHERCLINIC|LAB|QUESTLAB|20261127091000-0500||ORM^O01^ORM_O01|ORM-1|P|"
    "2.3\r"
    "PID|1||MRN-4^^^X^MR||Doe^Jane||19800101|F\r"
    "ORC|NW|P-200^EHR|F-9^LAB||||^^^20261127091000^^R\r"
    "OBR|1|P-200^EHR|F-9^LAB|24323-8^CMP^LN|||20261127090000-0500||||||||SER\r"
)


def test_an_orm_is_answered_with_orr_o02(registry, tmp_path):
    reply = answer(registry, tmp_path, ORM.encode())
    assert names(reply) == ["MSH", "MSA", "PID", "ORC", "OBR"]
    assert str(reply.msg.segment("MSH")[9]) == "ORR^O02^ORR_O02"
    assert field(reply, "MSA", 1) == "AA" and field(reply, "MSA", 2) == "ORM-1"
    assert (field(reply, "ORC", 1), field(reply, "ORC", 2), field(reply, "ORC", 3)) == \
        ("OK", "P-200", "F-9")
    assert field(reply, "OBR", 4) == "24323-8"


OML_UNKNOWN = (
    "MSH|^~\\&|EHR|OTHERCLINIC|LAB|QUESTLAB|20261127091000-0500||OML^O21^OML_O21|OML-10|P|"
    "2.5.1\r"
    "PID|1||MRN-77^^^X^MR||Roe^Rita||19750505|F\r"
    "ORC|NW|P-300^EHR|||||||20261127091000-0500\r"
    "OBR|1|P-300^EHR||2345-7^Glucose^LN\r"
    "SPM|1|SP-3||119364003^Serum specimen^SCT\r"
)
ORM_UNKNOWN = ORM.replace("ORM-1", "ORM-2").replace("MRN-4", "MRN-77")


def unknown(system: str, value: str) -> bool:
    return False


@pytest.mark.parametrize(("message", "reply_type", "body", "sent_id", "placer"), [
    (OML_UNKNOWN, "ORL^O22^ORL_O22", ["PID", "ORC", "OBR", "SPM"], "OML-10", "P-300"),
    (ORM_UNKNOWN, "ORR^O02^ORR_O02", ["PID", "ORC", "OBR"], "ORM-2", "P-200"),
])
def test_an_order_held_for_review_is_taken_not_refused(registry, tmp_path, message,
                                                        reply_type, body, sent_id, placer):
    # an unknown patient: AE with a warning ERR on PID-3 says why it is held; ORC-1 OK
    # says the order was taken (UA would make the sender give it up for good)
    reply = answer(registry, tmp_path, message.encode(), patient_known=unknown)
    assert names(reply) == ["MSH", "MSA", "ERR", *body]
    assert str(reply.msg.segment("MSH")[9]) == reply_type
    assert (field(reply, "MSA", 1), field(reply, "MSA", 2)) == ("AE", sent_id)
    assert field(reply, "ERR", 4) == "W"
    assert str(reply.segments("ERR")[0][2]).startswith("PID^1^3")
    assert field(reply, "ORC", 1) == "OK"
    assert field(reply, "ORC", 2) == placer
    assert "MRN-77" not in reply.field(reply.segments("ERR")[0], 8)  # never the value


def busy(bundle: dict) -> None:
    raise TransientError("the FHIR server is busy")


@pytest.mark.parametrize(("message", "sent_id"), [(OML_UNKNOWN, "OML-10"),
                                                   (ORM_UNKNOWN, "ORM-2")])
def test_a_transient_delivery_failure_gets_a_bare_ar(registry, tmp_path, message, sent_id):
    # AR alone asks the sender to send again; an ORL/ORR with UA would refuse the order
    reply = answer(registry, tmp_path, message.encode(), deliver=busy)
    assert str(reply.msg.segment("MSH")[9]).split("^")[0] == "ACK"
    assert (field(reply, "MSA", 1), field(reply, "MSA", 2)) == ("AR", sent_id)
    assert not reply.segments("ORC") and not reply.segments("PID")


def test_a_delivered_order_is_answered_ok(registry, tmp_path):
    delivered: list[dict] = []
    reply = answer(registry, tmp_path, OML_UNKNOWN.encode(), deliver=delivered.append,
                   patient_known=lambda system, value: True)
    assert len(delivered) == 1
    assert names(reply) == ["MSH", "MSA", "PID", "ORC", "OBR", "SPM"]
    assert (field(reply, "MSA", 1), field(reply, "ORC", 1)) == ("AA", "OK")


# ack code, outcome status → ORC-1 of every order (None: no order response, a bare ACK)
CONTROLS = [
    ("AA", "processed", "OK"), ("AE", "review", "OK"), ("AE", "error", "UA"),
    ("AR", "rejected", "UA"), ("AR", "retry", None),
    # called with the ACK code alone (a core that passes no status): as before
    ("AA", None, "OK"), ("CA", None, "OK"), ("AE", None, "UA"), ("AR", None, "UA"),
]


@pytest.mark.parametrize(("respond", "reply_type"), [(orl_o22, ("ORL", "O22", "ORL_O22")),
                                                     (orr_o02, ("ORR", "O02", "ORR_O02"))])
@pytest.mark.parametrize(("code", "status", "control"), CONTROLS)
def test_orc_1_follows_the_outcome(respond, reply_type, code, status, control):
    msg = parse(OML_BAD.encode())
    response = respond(msg, code) if status is None else respond(msg, code, status)
    if control is None:
        assert response is None
        return
    assert response.message_type == reply_type
    orcs = [seg for seg in response.segments if seg[0] == "ORC"]
    assert [(o[1], o[2][0][0]) for o in orcs] == [(control, "P-100"), (control, "P-101")]


# ------------------------------------------------------------------ outbound: the lab says UA
class LabStandIn:
    """A raw MLLP socket server: reads each framed message, answers what ``reply`` writes."""

    def __init__(self, reply: Callable[[hl7.Message], str]) -> None:
        self.reply = reply
        self.received: list[hl7.Message] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LabStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\x1c\r" in buf:
                    frame, buf = buf.split(b"\x1c\r", 1)
                    msg = hl7.parse(frame.lstrip(b"\x0b").decode())
                    self.received.append(msg)
                    conn.sendall(b"\x0b" + self.reply(msg).encode() + b"\x1c\r")


def orl(msg: hl7.Message, refuse: Callable[[str], bool]) -> str:
    """The lab's ORL^O22, written by hand: AA, and per order OK or UA (+ ERR when UA)."""
    orders = list(msg.segments("ORC"))
    placers = [str(o[2]) for o in orders]
    lines = [f"MSH|^~\\&|LABSYS|QUESTLAB|MAFHIR|CLINIC|20261127101500||ORL^O22^ORL_O22|"
             f"L-{msg.segment('MSH')[10]}|P|2.5.1",
             f"MSA|AA|{msg.segment('MSH')[10]}"]
    if any(refuse(p.split("^")[0]) for p in placers):
        lines.append(f"ERR||ORC^1^2|207^Application internal error^HL70357|E||||{ERR_TEXT}")
    lines.append(f"PID|1||{msg.segment('PID')[3]}")
    for placer in placers:
        lines.append(f"ORC|{'UA' if refuse(placer.split('^')[0]) else 'OK'}|{placer}")
    return "\r".join(lines) + "\r"


def test_the_connector_refuses_what_the_lab_refuses(registry):
    bundle, c = mapped(registry, lab_order(tests=[{"name": "hba1c"}, {"name": "tsh"}]))
    with LabStandIn(lambda m: orl(m, lambda p: p.endswith("2"))) as lab:
        conn = MLLPConnector(f"127.0.0.1:{lab.port}/OML^O21", ctx=v2ctx(c))
        with pytest.raises(PermanentError) as err:
            conn.send(bundle)
        conn.close()
    (sent,) = lab.received
    placers = [str(o[2][0][0]) for o in sent.segments("ORC")]
    assert len(placers) == 2 and placers[1].endswith("2")
    text = str(err.value)
    assert f"order '{placers[1]}' (ORC-1 UA)" in text and ERR_TEXT in text
    assert f"'{placers[0]}'" not in text  # the order it took is not named
    assert "ORL^O22" in text
    assert err.value.code == "business-rule"  # the lab's refusal of an order, by its code


def test_the_connector_delivers_an_orl_that_takes_every_order(registry):
    bundle, c = mapped(registry, lab_order())
    with LabStandIn(lambda m: orl(m, lambda p: False)) as lab:
        conn = MLLPConnector(f"127.0.0.1:{lab.port}/OML^O21", ctx=v2ctx(c))
        out = conn.send(bundle)
        conn.close()
    assert out["ack"] == "AA" and out["orders"] == ["OK"]
    assert out["reply"] == "ORL^O22"
    assert out["acknowledges"] == str(lab.received[0].segment("MSH")[10])


def test_sync_dead_letters_the_refused_order_with_the_labs_reason(tmp_path):
    c = clinic()
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    orders = [lab_order(mrn="MS-1", order_id="ord-1"),
              lab_order(mrn="MS-2", order_id="ord-2", tests=[{"name": "lipid-panel"}])]
    (tmp_path / "orders.ndjson").write_text("".join(json.dumps(o) + "\n" for o in orders))
    with LabStandIn(lambda m: orl(m, lambda p: p.startswith("ord-2"))) as lab:
        proc = subprocess.run(
            [MAFHIR, "sync", "--to", f"mllp:127.0.0.1:{lab.port}/OML^O21", "--db",
             str(tmp_path / "o.db"), "--clinic", str(tmp_path / "clinic.json"), "--json",
             "--retry-base", "0.05", str(tmp_path / "orders.ndjson")],
            capture_output=True, text=True, timeout=120)
    summary = json.loads(proc.stdout)
    assert proc.returncode == 1, proc.stderr
    assert (summary["sent"], summary["dead"]) == (1, 1)
    assert len(lab.received) == 2  # a refused order is not re-sent
    dead = subprocess.run([MAFHIR, "outbox", "dead", "--db", str(tmp_path / "o.db"), "--json"],
                          capture_output=True, text=True, timeout=60)
    (item,) = json.loads(dead.stdout)
    shown = subprocess.run([MAFHIR, "outbox", "dead", "--db", str(tmp_path / "o.db"),
                            "--show", str(item["id"])], capture_output=True, text=True,
                           timeout=60)
    reason = json.loads(shown.stdout[:shown.stdout.rindex("}") + 1])["reason"]
    assert reason == (f"the receiver refused order 'ord-2' (ORC-1 UA) in its ORL^O22 "
                      f"to the OML^O21: {ERR_TEXT}")
