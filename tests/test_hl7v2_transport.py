"""MLLP framing, the message store, the receiver and the listener over real loopback
sockets: concurrent senders, duplicates, store-before-ACK, enhanced mode, bad input."""

from __future__ import annotations

import re
import socket
import sys
import threading
import types
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mafhir import plugins
from mafhir.errors import InputError, Problem, TransientError
from mafhir.hl7v2 import (
    ConvertHandler,
    FrameReader,
    MessageStore,
    MLLPClient,
    MLLPListener,
    Outcome,
    Receiver,
    V2Context,
    frame,
    parse,
    read_ack,
)
from mafhir.hl7v2.mllp import FramingError

ROOT = Path(__file__).resolve().parents[1]


def load_example(hook: str) -> types.ModuleType:
    """The runnable example under the hook's heading in docs/plugins.md, as a module."""
    section = (ROOT / "docs" / "plugins.md").read_text().split(f"### {hook}\n", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section.split("\n### ", 1)[0], flags=re.S)[0]
    module = types.ModuleType(f"example_{hook}")
    sys.modules[module.__name__] = module
    exec(compile(code, f"docs/plugins.md:{hook}", "exec"), module.__dict__)
    return module


def message(control_id: str, sender: str = "LAB", extra: str = "", mode: str = "") -> bytes:
    return (f"MSH|^~\\&|{sender}|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|"
            f"{control_id}|P|2.5.1|||{mode}\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane\r"
            f"OBR|1|ord-1||4548-4^HbA1c^LN\rOBX|1|NM|4548-4^HbA1c^LN||6.9|%|||||F\r{extra}"
            ).encode()


class Recorder:
    """A handler that records what it processed (a test double for a converter)."""

    def __init__(self, store: MessageStore | None = None, outcome: Outcome | None = None):
        self.seen: Counter[str] = Counter()
        self.store = store
        self.outcome = outcome or Outcome("processed")
        self.stored_first: list[bool] = []
        self.lock = threading.Lock()

    def __call__(self, msg):
        if self.store is not None:
            row = self.store.find(msg.sender, msg.control_id)
            self.stored_first.append(row is not None and row.status == "received")
        with self.lock:
            self.seen[msg.control_id] += 1
        if msg.first("ZBM"):
            raise RuntimeError("handler bug")
        return self.outcome


@pytest.fixture
def store(tmp_path, store_at):
    s = MessageStore(store_at("messages.sqlite"))
    yield s
    s.close()


# ------------------------------------------------------------------ framing
def test_frames_split_across_reads_and_several_in_one():
    reader = FrameReader(1000)
    data = frame(b"MSH|one") + frame(b"MSH|two")
    out = []
    for i in range(0, len(data), 3):
        out += list(reader.feed(data[i:i + 3]))
    assert out == [b"MSH|one", b"MSH|two"]
    assert list(FrameReader(1000).feed(data)) == [b"MSH|one", b"MSH|two"]


def test_oversized_frame_and_junk_are_framing_errors():
    reader = FrameReader(10)
    with pytest.raises(FramingError, match="limit"):
        list(reader.feed(b"\x0b" + b"x" * 20))
    assert list(reader.feed(frame(b"ok"))) == [b"ok"]  # and it recovers
    junk = FrameReader(10)
    assert list(junk.feed(b"GET / HTTP/1.1\r\n")) == []  # it may go on: reported when it ends
    left = junk.flush()
    assert left is not None and left.code == "structure" and "outside" in left.reason
    assert left.raw == b"GET / HTTP/1.1\r\n"


# ------------------------------------------------------------------ receiver and store
def test_message_is_stored_before_it_is_acknowledged(store):
    handler = Recorder(store)
    ack = read_ack(Receiver(store, handler).receive(message("S-1")))
    assert ack.code == "AA" and ack.acked_id == "S-1"
    assert handler.stored_first == [True]
    row = store.find("LAB|QUEST", "S-1")
    assert row.status == "processed" and row.raw == message("S-1")
    assert read_ack(row.ack).code == "AA"


def test_duplicate_gets_the_original_ack_and_is_not_processed_again(store):
    handler = Recorder()
    receiver = Receiver(store, handler)
    first = receiver.receive(message("D-1"))
    again = receiver.receive(message("D-1"))
    assert again == first
    assert handler.seen["D-1"] == 1
    assert store.find("LAB|QUEST", "D-1").duplicates == 1
    # the same control id from another sender is another message
    receiver.receive(message("D-1", sender="OTHERLAB"))
    assert handler.seen["D-1"] == 2


def test_ack_code_follows_the_outcome(store):
    problem = Problem("OBX[1]-5", "value type NM but the value is not a number", "value")
    receiver = Receiver(store, Recorder(outcome=Outcome("error", (problem,))))
    ack = read_ack(receiver.receive(message("E-1")))
    assert ack.code == "AE" and "OBX[1]-5" in ack.errors[0]
    err = parse(ack.text).first("ERR")
    assert (err.get(2, 1), err.get(2, 2), err.get(2, 3), err.get(3, 1)) == \
        ("OBX", "1", "5", "102")
    assert store.find("LAB|QUEST", "E-1").status == "error"


def test_handler_crash_is_an_ae_and_the_receiver_goes_on(store):
    handler = Recorder()
    receiver = Receiver(store, handler)
    assert read_ack(receiver.receive(message("B-1", extra="ZBM|1\r"))).code == "AE"
    assert read_ack(receiver.receive(message("B-2"))).code == "AA"


@pytest.mark.parametrize(("raw", "where"), [
    (b"not hl7 at all", "MSH"),
    (b"MSH||x", "MSH-2"),
    (b"", "MSH"),
])
def test_unreadable_input_is_quarantined_with_an_ar(store, raw, where):
    ack = read_ack(Receiver(store, Recorder()).receive(raw))
    assert ack.code == "AR" and ack.errors and ack.errors[0].startswith(where)
    (row,) = store.messages("rejected")
    assert row.raw == raw and row.problems.startswith(where)


def test_unsupported_type_or_version_is_rejected(store):
    receiver = Receiver(store, Recorder())
    ack = read_ack(receiver.receive(message("V-1").replace(b"|2.5.1|", b"|2.1|")))
    assert ack.code == "AR" and "MSH-12" in ack.errors[0]
    err = parse(ack.text).first("ERR")
    assert err.get(3, 1) == "203"
    no_id = read_ack(receiver.receive(message("").replace(b"ORU_R01||", b"ORU_R01||")))
    assert no_id.code == "AR" and "MSH-10" in no_id.errors[0]


def test_transient_failure_is_retried_when_resent(store):
    class Flaky:
        calls = 0

        def __call__(self, msg):
            self.calls += 1
            if self.calls == 1:
                return Outcome("retry", (Problem("", "delivery failed", "processing"),))
            return Outcome("processed")

    flaky = Flaky()
    receiver = Receiver(store, flaky)
    assert read_ack(receiver.receive(message("T-1"))).code == "AR"
    assert read_ack(receiver.receive(message("T-1"))).code == "AA"
    assert flaky.calls == 2 and store.find("LAB|QUEST", "T-1").attempts == 2


def test_enhanced_mode_commit_ack_and_stored_application_ack(store):
    receiver = Receiver(store, Recorder())
    reply = receiver.receive(message("N-1", mode="AL|AL"))
    assert read_ack(reply).code == "CA"
    row = store.find("LAB|QUEST", "N-1")
    assert read_ack(row.app_ack).code == "AA"  # kept for delivery back to the lab
    assert receiver.receive(message("N-2", mode="NE|AL")) is None  # no commit ACK wanted
    rejected = receiver.receive(message("N-3", mode="AL|NE").replace(b"|2.5.1|", b"|9.9|"))
    assert read_ack(rejected).code == "CR"


# ------------------------------------------------------------------ the listener
def test_concurrent_senders_no_loss_no_duplicates(store):
    handler = Recorder(store)
    senders, per_sender = 8, 25
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener:
        host, port = listener.address

        def send_all(s: int) -> list[str]:
            codes = []
            with MLLPClient(host, port, timeout=10) as client:
                for i in range(per_sender):
                    ack = read_ack(client.send(message(f"C-{s}-{i}")))
                    assert ack.acked_id == f"C-{s}-{i}"
                    codes.append(ack.code)
                # every sender re-sends its first message: a duplicate
                codes.append(read_ack(client.send(message(f"C-{s}-0"))).code)
            return codes

        with ThreadPoolExecutor(senders) as pool:
            results = list(pool.map(send_all, range(senders)))
    assert all(code == "AA" for codes in results for code in codes)
    assert len(handler.seen) == senders * per_sender
    assert set(handler.seen.values()) == {1}  # each processed exactly once
    assert store.counts() == {"processed": senders * per_sender}
    assert all(handler.stored_first)


def test_listener_survives_garbage_and_oversized_frames(store):
    receiver = Receiver(store, Recorder(), max_bytes=2000)
    with MLLPListener("127.0.0.1", 0, receiver) as listener:
        host, port = listener.address
        with socket.create_connection((host, port), timeout=5) as sock:
            reader = FrameReader(10_000)
            for payload in (frame(b"\xff\xfe garbage"), b"\x0b" + b"x" * 3000 + b"\x1c\r",
                            frame(b"MSH|^~\\&|A\rPID|1\r")):
                sock.sendall(payload)
                reply = b""
                while not reply:
                    reply = b"".join(reader.feed(sock.recv(65536)))
                assert read_ack(reply).code == "AR"
            sock.sendall(b"\x00junk between frames\x00")
            sock.sendall(frame(message("G-1")))
            acks: list = []
            while not any(a.acked_id == "G-1" for a in acks):
                acks += [read_ack(p) for p in reader.feed(sock.recv(65536))]
            assert [a.code for a in acks if a.acked_id == "G-1"] == ["AA"]
            assert all(a.code == "AR" for a in acks if a.acked_id != "G-1")  # the junk's
        with MLLPClient(host, port) as client:  # a new connection still works
            assert read_ack(client.send(message("G-2"))).code == "AA"


def test_client_reconnects_after_the_listener_restarts(tmp_path, store_at):
    store = MessageStore(store_at("m.sqlite"))
    listener = MLLPListener("127.0.0.1", 0, Receiver(store, Recorder())).start()
    host, port = listener.address
    client = MLLPClient(host, port, timeout=5, retries=3)
    assert read_ack(client.send(message("R-1"))).code == "AA"
    listener.stop()
    listener = MLLPListener(host, port, Receiver(store, Recorder())).start()
    try:
        assert read_ack(client.send(message("R-2"))).code == "AA"
    finally:
        client.close()
        listener.stop()
        store.close()


def test_client_reports_a_dead_peer_as_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransientError, match="MLLP"):
        MLLPClient("127.0.0.1", port, timeout=1, retries=1).send(message("X"))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.builds(lambda b: message("F") + b, st.binary(max_size=60)))
def test_fuzz_receiver_always_answers(store, data):
    """Whatever arrives, the receiver answers with an ACK and never raises."""
    reply = Receiver(store, Recorder()).receive(data)
    assert read_ack(reply).code in ("AA", "AE", "AR")


# ------------------------------------------------------------------ the hook
def test_hook_register_converters(monkeypatch):
    # the docs' example registers ADT^A04, which the installed ADT plugin registers too
    monkeypatch.setenv("MAFHIR_DISABLE_PLUGINS", "hl7v2_adt")
    plugins.reset()
    try:
        plugins.register(load_example("register_converters"), name="adt-example")
        registry = plugins.get_registry()
        conv = registry.converters["hl7v2:ADT^A04"]
        msg = parse(b"MSH|^~\\&|REG|X|MAFHIR|C|20261127||ADT^A04|1|P|2.5.1\r"
                    b"PID|1||MS-9^^^C^MR||Doe^Jane||19800101|F\r")
        bundle = conv.to_fhir(msg, V2Context())
        (entry,) = bundle["entry"]
        assert entry["resource"]["name"] == [{"family": "Doe", "given": ["Jane"]}]
        assert entry["resource"]["gender"] == "female"
        handler = ConvertHandler(registry, V2Context())
        assert handler(msg).status == "processed"
        with pytest.raises(InputError, match="PID-3"):
            conv.to_fhir(parse(b"MSH|^~\\&|R|X|M|C|2026||ADT^A04|2|P|2.5.1\rPID|1\r"),
                         V2Context())
    finally:
        plugins.reset()


def test_unknown_message_type_is_rejected_by_the_convert_handler(store):
    plugins.reset()
    try:
        handler = ConvertHandler(plugins.get_registry(), V2Context())
        ack = read_ack(Receiver(store, handler).receive(
            message("U-1").replace(b"ORU^R01^ORU_R01", b"ZZZ^Z99")))
        assert ack.code == "AR" and "ZZZ^Z99" in ack.errors[0]
        assert parse(ack.text).first("ERR").get(3, 1) == "200"
    finally:
        plugins.reset()


def test_clock_is_an_input(store):
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    ack = Receiver(store, Recorder(), clock=lambda: at).receive(message("K-1"))
    assert parse(ack).msh.get(7) == "20300102030405+0000"
