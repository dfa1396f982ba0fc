"""One listener for every message type (plugin handlers by type), and enhanced-mode
application ACKs delivered back to their senders — all over real loopback MLLP sockets."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from mafhir import hookimpl, plugins
from mafhir.errors import Problem
from mafhir.hl7v2 import (
    HandlerSetup,
    MessageStore,
    MLLPClient,
    MLLPListener,
    Outcome,
    Receiver,
    ReplySender,
    RoutingHandler,
    V2Context,
    ack_for,
    parse,
    read_ack,
)
from mafhir.hl7v2.ack import Response
from mafhir.hl7v2.replies import parse_routes
from mafhir.hl7v2.store import StoredMessage
from test_hl7v2_transport import load_example, message


def callback(control_id: str, mrn: str = "MS-7", mode: str = "") -> bytes:
    return (f"MSH|^~\\&|PORTAL|CLINIC|MAFHIR|CLINIC|20261127093000-0500||ZCB^Z01|{control_id}"
            f"|P|2.5.1|||{mode}\rPID|1||{mrn}^^^CLINIC^MR||Doe^Jane\r").encode()


class Inbox:
    """The original sender's side: every message it is sent, recorded (MSA-1, MSA-2)."""

    def __init__(self) -> None:
        self.acks: list[tuple[str, str, str]] = []  # (MSH-9, MSA-1, MSA-2)
        self.cond = threading.Condition()

    def __call__(self, msg):
        msa = msg.first("MSA")
        with self.cond:
            self.acks.append((msg.msh.get(9, 1), msa.get(1) if msa else "",
                              msa.get(2) if msa else ""))
            self.cond.notify_all()
        return Outcome("processed")

    def wait(self, n: int, timeout: float = 15.0) -> list[tuple[str, str, str]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.acks) >= n, timeout)
            return list(self.acks)


def wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def fresh():
    plugins.reset()
    yield plugins
    plugins.reset()


# ------------------------------------------------------------------ routing by message type
def test_hook_register_handlers(fresh, tmp_path, store_at):
    example = load_example("register_handlers")
    example.QUEUE.clear()
    fresh.register(example, name="callback-example")
    registry = fresh.get_registry()
    assert registry.handlers["hl7v2:ZCB^Z01"].description == "call-back requests → the call list"
    handler = RoutingHandler(HandlerSetup(registry, V2Context(), settings={"calls.max": "1"}))
    store = MessageStore(store_at("in.sqlite"))
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address) as client:
        first = read_ack(client.send(callback("CB-1")))
        missing = read_ack(client.send(callback("CB-2", mrn="")))
        full = read_ack(client.send(callback("CB-3", mrn="MS-8")))
    assert (first.code, first.acked_id) == ("AA", "CB-1")
    assert missing.code == "AE" and parse(missing.text).first("ERR").get(2, 1) == "PID"
    assert full.code == "AR"  # retry: the call list is full (calls.max=1 from --set)
    assert example.QUEUE == [("CB-1", "MS-7")]
    assert store.find("PORTAL|CLINIC", "CB-3").status == "retry"
    store.close()


def test_a_routed_type_never_reaches_the_converter_and_others_still_do(fresh, tmp_path):
    example = load_example("register_handlers")
    example.QUEUE.clear()
    fresh.register(example, name="callback-example")
    from mafhir.context import MapContext

    # the clinic's MRN authority mapped, as a clinic configures it (else: held for review)
    ctx = V2Context(namespaces={"CLINIC": MapContext().clinic.mrn_namespace})
    handler = RoutingHandler(HandlerSetup(fresh.get_registry(), ctx))
    oru = handler(parse(message("R-1")))
    # the lab converter's verdict, not the queue's
    assert (oru.status, list(oru.problems)) == ("processed", [])
    assert example.QUEUE == []
    assert handler(parse(callback("CB-9"))).status == "processed"
    assert example.QUEUE == [("CB-9", "MS-7")]
    # an acknowledgment (a peer's application ACK) is kept, not converted or refused
    ack = parse(ack_for(parse(message("R-2")), "AA", datetime.now(UTC)))
    assert handler(ack).status == "processed"


def test_handlers_are_built_lazily_and_closed_with_the_listener(fresh):
    built: list[object] = []

    class Counting:
        def __init__(self, setup):
            built.append(self)
            self.closed = False

        def __call__(self, msg):
            return Outcome("processed")

        def close(self):
            self.closed = True

    class Plugin:
        @hookimpl
        def register_handlers(self, register):
            from mafhir.registry import MessageHandler

            register(MessageHandler("hl7v2", ("ZAA^Z01", "ZAA^Z02"), Counting))

    fresh.register(Plugin(), name="counting")
    handler = RoutingHandler(HandlerSetup(fresh.get_registry(), V2Context()))
    assert built == []  # nothing opened before a message of its types arrives
    for trigger in ("Z01", "Z02", "Z01"):
        text = callback("X").replace(b"ZCB^Z01", f"ZAA^{trigger}".encode())
        assert handler(parse(text)).status == "processed"
    assert len(built) == 1  # one handler for both of its types
    handler.close()
    assert built[0].closed


def test_two_plugins_cannot_claim_one_message_type(fresh):
    from mafhir.errors import PluginError
    from mafhir.registry import MessageHandler, Registry

    registry = Registry()
    registry.add_handler(MessageHandler("hl7v2", ("RDE^O25",), object), "one")
    with pytest.raises(PluginError, match=r"RDE\^O25.*already registered by 'one'"):
        registry.add_handler(MessageHandler("hl7v2", ("RDE^O25",), object), "two")
    with pytest.raises(PluginError, match="names no message type"):
        registry.add_handler(MessageHandler("hl7v2", (), object), "three")


# ------------------------------------------------------------------ application responses
def test_a_converter_response_replaces_the_bare_ack():
    msg = parse(message("O-1"))
    orl = ack_for(msg, "AA", datetime.now(UTC), response=Response(
        ("ORL", "O22", "ORL_O22"), [["ORC", "OK", ("ord-1",)], ["OBR", "1", ("ord-1",)]]))
    reply = parse(orl)
    assert reply.type == "ORL^O22" and reply.msh.get(9, 3) == "ORL_O22"
    assert [s.name for s in reply.segments] == ["MSH", "MSA", "ORC", "OBR"]
    ack = read_ack(orl)
    assert ack.accepted and ack.order_controls == ("OK",) and ack.message_type == "ORL^O22"
    refused = read_ack(ack_for(msg, "AA", datetime.now(UTC), response=Response(
        ("ORL", "O22", "ORL_O22"), [["ORC", "OK"], ["ORC", "UA"]])))
    assert refused.code == "AA" and not refused.accepted and refused.refused_orders == (2,)


# ------------------------------------------------------------------ enhanced-mode replies
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("outcome, expected", [
    (Outcome("processed"), "AA"),
    (Outcome("error", (Problem("OBX[1]-5", "not a number", "value"),)), "AE"),
])
def test_the_application_ack_goes_back_to_the_sender(tmp_path, store_at, outcome, expected):
    inbox = Inbox()
    sender_store = MessageStore(store_at("sender.sqlite"))
    store = MessageStore(store_at("mafhir.sqlite"))
    with MLLPListener("127.0.0.1", 0, Receiver(sender_store, inbox)) as sender, \
            MLLPListener("127.0.0.1", 0, Receiver(store, lambda m: outcome)) as mafhir:
        replies = ReplySender(store, {"*": sender.address}, poll=0.05).start()
        try:
            with MLLPClient(*mafhir.address) as client:
                commit = read_ack(client.send(message("E-1", mode="AL|AL")))
            assert (commit.code, commit.acked_id) == ("CA", "E-1")
            (got,) = inbox.wait(1)
        finally:
            replies.stop()
    assert got == ("ACK", expected, "E-1")
    row = store.find("LAB|QUEST", "E-1")
    assert isinstance(row, StoredMessage) and row.reply_status == "sent"
    assert parse(row.app_ack).msh.get(15) == "AL"  # the sender was asked to commit it
    if expected == "AE":
        assert parse(row.app_ack).first("ERR").get(2, 1) == "OBX"
    sender_store.close()
    store.close()


def test_an_unreachable_sender_gets_its_ack_later_once_even_after_a_restart(tmp_path, store_at):
    port = _free_port()
    store = MessageStore(store_at("mafhir.sqlite"))
    with MLLPListener("127.0.0.1", 0, Receiver(store, lambda m: Outcome("processed"))) as mafhir:
        replies = ReplySender(store, {"LAB|QUEST": ("127.0.0.1", port)}, poll=0.05,
                              timeout=2).start()
        with MLLPClient(*mafhir.address) as client:
            for cid in ("U-1", "U-2"):
                assert read_ack(client.send(message(cid, mode="AL|AL"))).code == "CA"
        assert wait_for(lambda: store.find("LAB|QUEST", "U-1").reply_attempts >= 1)
        replies.stop()  # mafhir stops while the sender is still down
    row = store.find("LAB|QUEST", "U-1")
    assert row.reply_status == "pending" and "TransientError" in row.reply_error
    store.close()

    inbox = Inbox()
    reopened = MessageStore(store_at("mafhir.sqlite"))  # a restart: same file
    sender_store = MessageStore(store_at("sender.sqlite"))
    with MLLPListener("127.0.0.1", port, Receiver(sender_store, inbox)):
        replies = ReplySender(reopened, {"LAB|QUEST": ("127.0.0.1", port)}, poll=0.05).start()
        try:
            assert wait_for(lambda: not reopened.pending_replies())
            time.sleep(0.3)  # further passes must not send again
        finally:
            replies.stop()
    assert sorted(a[2] for a in inbox.acks) == ["U-1", "U-2"]
    assert {a[1] for a in inbox.acks} == {"AA"}
    reopened.close()
    sender_store.close()


def test_acks_nobody_asked_for_are_not_sent(tmp_path, store_at):
    store = MessageStore(store_at("mafhir.sqlite"))
    receiver = Receiver(store, lambda m: Outcome("processed"))
    assert read_ack(receiver.receive(message("N-1", mode="AL|ER"))).code == "CA"  # ER: only
    assert read_ack(receiver.receive(message("N-2", mode="AL|NE"))).code == "CA"  # on error
    assert store.pending_replies() == []
    assert receiver.receive(message("N-3", mode="NE|AL")) is None  # no commit ACK wanted
    (pending,) = store.pending_replies()
    assert pending.sender == "LAB|QUEST" and read_ack(pending.app_ack).acked_id == "N-3"
    store.close()


def test_a_sender_that_refuses_the_ack_leaves_it_pending(tmp_path, store_at):
    refusing = MessageStore(store_at("sender.sqlite"))
    store = MessageStore(store_at("mafhir.sqlite"))
    receiver = Receiver(store, lambda m: Outcome("processed"))
    receiver.receive(message("R-1", mode="AL|AL"))
    with MLLPListener("127.0.0.1", 0, Receiver(refusing, lambda m: Outcome(
            "rejected", (Problem("MSH-9", "not now", "not-supported"),)))) as sender:
        sent = ReplySender(store, {"*": sender.address}).deliver_pending()
    assert sent == 0
    row = store.find("LAB|QUEST", "R-1")
    assert row.reply_status == "pending" and row.reply_error.startswith("the sender answered CR")
    store.close()
    refusing.close()


def test_an_older_store_file_gains_the_reply_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT,
        control_id TEXT, message_type TEXT, received_at TEXT NOT NULL, raw BLOB NOT NULL,
        status TEXT NOT NULL, ack BLOB, app_ack BLOB, problems TEXT,
        attempts INTEGER NOT NULL DEFAULT 1, duplicates INTEGER NOT NULL DEFAULT 0,
        UNIQUE (sender, control_id));
        INSERT INTO messages (sender, control_id, received_at, raw, status)
        VALUES ('LAB|QUEST', 'OLD-1', '2026-01-01', x'00', 'processed');""")
    db.commit()
    db.close()
    store = MessageStore(path)
    old = store.find("LAB|QUEST", "OLD-1")
    assert old.status == "processed" and old.reply_status is None
    Receiver(store, lambda m: Outcome("processed")).receive(message("NEW-1", mode="AL|AL"))
    assert [p.id for p in store.pending_replies()] == [store.find("LAB|QUEST", "NEW-1").id]
    store.close()


def test_ack_routes_name_senders_or_everyone():
    def split(text):
        host, _, port = text.rpartition(":")
        return host, int(port)

    routes = parse_routes(("127.0.0.1:7001", "LAB^QUEST=10.0.0.5:2575"), split)
    assert routes == {"*": ("127.0.0.1", 7001), "LAB|QUEST": ("10.0.0.5", 2575)}
    store = MessageStore(":memory:")
    sender = ReplySender(store, routes)
    assert sender.address_for("LAB|QUEST") == ("10.0.0.5", 2575)
    assert sender.address_for("PHARM|CVS") == ("127.0.0.1", 7001)
    assert ReplySender(store, {}).address_for("LAB|QUEST") is None
    store.close()


# ------------------------------------------------------------------ commit errors (CE)
def test_commit_codes_tell_an_error_from_a_refusal(tmp_path, store_at):
    """CR: the header is not acceptable (type, version); CE: read, but not committable."""
    store = MessageStore(store_at("in.sqlite"))
    receiver = Receiver(store, lambda m: Outcome("processed"))
    no_id = receiver.receive(message("", mode="AL|AL"))
    assert read_ack(no_id).code == "CE"
    assert parse(no_id).first("ERR").get(2, 1) == "MSH"
    bad_version = receiver.receive(message("V-1", mode="AL|AL").replace(b"|2.5.1|", b"|9.9|"))
    assert read_ack(bad_version).code == "CR"
    assert read_ack(receiver.receive(message("", mode=""))).code == "AR"  # original mode
    store.close()


def test_a_store_that_fails_answers_ce_in_enhanced_mode_and_the_listener_goes_on(tmp_path):
    class BrokenStore(MessageStore):
        def claim(self, *args, **kwargs):
            raise OSError("disk full")

    store = BrokenStore(tmp_path / "in.sqlite")
    with MLLPListener("127.0.0.1", 0, Receiver(store, lambda m: Outcome("processed"))) \
            as listener, MLLPClient(*listener.address) as client:
        enhanced = read_ack(client.send(message("S-1", mode="AL|AL")))
        original = read_ack(client.send(message("S-2")))
    assert (enhanced.code, enhanced.acked_id) == ("CE", "S-1")
    assert (original.code, original.acked_id) == ("AR", "S-2")
    store.close()


# ------------------------------------------------------------------ review fixes
def test_a_stale_delivery_result_never_marks_a_newer_ack_sent(tmp_path, store_at):
    """A transient failure is answered CE (send it again) and owes no application ACK, so
    no AR can be delivered late over the AA the re-send earns; a delivery result for an
    ACK that is no longer the one owed never marks the owed one sent."""
    store = MessageStore(store_at("in.sqlite"))
    outcomes = iter([Outcome("retry", (Problem("", "EHR down", "processing"),)),
                     Outcome("processed"), Outcome("processed")])
    receiver = Receiver(store, lambda m: next(outcomes))
    assert read_ack(receiver.receive(message("RS-1", mode="AL|AL"))).code == "CE"
    assert store.pending_replies() == []
    receiver.receive(message("RS-1", mode="AL|AL"))  # the re-send is processed again
    (owed,) = store.pending_replies()
    assert read_ack(owed.app_ack).code == "AA"
    stale = replace(owed, app_ack=owed.app_ack.replace(b"MSA|AA", b"MSA|AR"))
    assert store.reply_result(stale, True) is False
    assert [r.id for r in store.pending_replies()] == [owed.id]
    store.close()


def test_acks_for_unrouted_senders_do_not_crowd_out_routed_ones(tmp_path, store_at):
    store = MessageStore(store_at("in.sqlite"))
    receiver = Receiver(store, lambda m: Outcome("processed"))
    for n in range(120):
        receiver.receive(message(f"O-{n}", sender="OTHER", mode="AL|AL"))
    receiver.receive(message("L-1", mode="AL|AL"))
    inbox = Inbox()
    senders = MessageStore(store_at("sender.sqlite"))
    with MLLPListener("127.0.0.1", 0, Receiver(senders, inbox)) as lab:
        sent = ReplySender(store, {"LAB|QUEST": lab.address}).deliver_pending()
    assert sent == 1 and inbox.acks == [("ACK", "AA", "L-1")]
    assert store.pending_reply_count() == 120  # kept for OTHER, which has no route
    store.close()
    senders.close()


def test_a_dead_peer_costs_one_attempt_per_pass_and_waits_out_its_backoff(tmp_path, store_at):
    store = MessageStore(store_at("in.sqlite"))
    receiver = Receiver(store, lambda m: Outcome("processed"))
    for n in range(5):
        receiver.receive(message(f"D-{n}", mode="AL|AL"))
    replies = ReplySender(store, {"*": ("127.0.0.1", _free_port())}, timeout=2, backoff=600)
    assert replies.deliver_pending() == 0
    attempts = [store.find("LAB|QUEST", f"D-{n}").reply_attempts for n in range(5)]
    assert attempts == [1, 0, 0, 0, 0]  # the address was given up on for this pass
    assert replies.deliver_pending() == 0  # D-0 waits out its backoff; D-1 is tried
    attempts = [store.find("LAB|QUEST", f"D-{n}").reply_attempts for n in range(5)]
    assert attempts == [1, 1, 0, 0, 0]
    store.close()


def test_an_answer_for_another_message_does_not_count(tmp_path, store_at):
    class WrongId:
        def __call__(self, msg):
            return Outcome("processed")

    store = MessageStore(store_at("in.sqlite"))
    Receiver(store, lambda m: Outcome("processed")).receive(message("W-1", mode="AL|AL"))
    wrong = MessageStore(store_at("peer.sqlite"))

    class Peer(Receiver):  # a peer that answers every message with a CA for "other"
        def receive(self, raw):
            return ack_for(parse(message("other")), "CA", datetime.now(UTC)).encode()

    with MLLPListener("127.0.0.1", 0, Peer(wrong, WrongId())) as peer:
        assert ReplySender(store, {"*": peer.address}).deliver_pending() == 0
    row = store.find("LAB|QUEST", "W-1")
    assert row.reply_status == "pending" and "acknowledges 'other'" in row.reply_error
    store.close()
    wrong.close()


def test_acknowledgments_are_kept_and_never_acknowledged_in_turn(fresh, tmp_path, store_at):
    store = MessageStore(store_at("in.sqlite"))
    receiver = Receiver(store, RoutingHandler(HandlerSetup(fresh.get_registry(), V2Context())))
    head = "MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||"
    peer_ack = f"{head}ACK^R01^ACK|P-1|P|2.5.1|||AL\rMSA|AA|OURS-1\r".encode()  # MSH-16 empty
    assert read_ack(receiver.receive(peer_ack)).code == "CA"
    orl = f"{head}ORL^O22^ORL_O22|P-2|P|2.5.1|||AL|AL\rMSA|AA|OURS-2\rORC|OK|ord-1\r"
    assert read_ack(receiver.receive(orl.encode())).code == "CA"  # kept, not refused
    assert store.pending_replies() == []  # no application ACK to an acknowledgment
    assert store.counts() == {"processed": 2}
    store.close()


def test_refusing_order_controls_are_table_0119s():
    from mafhir.hl7v2.ack import Ack

    def ack(*controls):
        return Ack("AA", "1", "2", order_controls=controls)

    assert ack("OK", "UM").refused_orders == (2,)  # unable to replace
    assert ack("OK", "UN").accepted  # UN unlinks a care problem: not a refusal
    assert ack("UA", "UC", "UD", "UF", "UH", "UR", "UX").refused_orders == (1, 2, 3, 4, 5, 6, 7)


def test_a_message_stored_but_never_finished_is_processed_when_sent_again(tmp_path):
    """The process stopped between storing and answering: the sender's re-send must be
    processed (once), not met with silence."""
    from datetime import timedelta

    path = tmp_path / "in.sqlite"
    crashed = MessageStore(path)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    crashed.claim("LAB|QUEST", "C-1", "ORU^R01", message("C-1"), long_ago)
    crashed.close()
    seen: list[str] = []
    store = MessageStore(path)
    receiver = Receiver(store, lambda m: seen.append(m.control_id) or Outcome("processed"),
                        wait_for_duplicate=0.2)
    assert read_ack(receiver.receive(message("C-1"))).code == "AA"
    assert read_ack(receiver.receive(message("C-1"))).code == "AA"  # now a plain duplicate
    assert seen == ["C-1"] and store.find("LAB|QUEST", "C-1").status == "processed"
    # one still being worked on (stored just now) is not taken over: the sender is told
    # to send it again later
    store.claim("LAB|QUEST", "C-2", "ORU^R01", message("C-2", mode="AL|AL"), datetime.now(UTC))
    busy = read_ack(receiver.receive(message("C-2", mode="AL|AL")))
    assert busy.code == "CE" and seen == ["C-1"]
    store.close()
