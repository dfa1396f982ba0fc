"""A seeded, bounded fuzz run over the MLLP framer, the v2 parser and the listener:
no traceback, no hang (every socket read has a timeout), bounded memory, and every
accepted message stored byte for byte. ``derandomize`` makes each run the same."""

from __future__ import annotations

import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mafhir.errors import InputError
from mafhir.hl7v2 import MessageStore, MLLPListener, Outcome, Receiver, frame, parse, read_ack
from mafhir.hl7v2.mllp import END, START, FrameReader, Rejected
from test_hl7v2_transport import message

LIMIT = 200
KEEP = 16
SEEDED = settings(derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])


def _clean(data: bytes) -> bytes:
    """Bytes that can sit inside a frame: no VT, no end block, no trailing FS."""
    data = data.replace(START, b"")
    while END in data:
        data = data.replace(END, b"")
    return data.rstrip(b"\x1c")


payloads = st.binary(max_size=LIMIT).map(_clean)
oversized = st.binary(min_size=LIMIT + 1, max_size=3 * LIMIT).map(_clean).filter(
    lambda b: len(b) > LIMIT)
junk = st.binary(min_size=1, max_size=40).map(lambda b: _clean(b).replace(b"\x1c", b"")
                                              ).filter(lambda b: b.strip(b"\r\n\x00 \t"))
pieces = st.lists(st.one_of(payloads.map(lambda p: ("frame", p)),
                            oversized.map(lambda p: ("big", p)),
                            junk.map(lambda p: ("junk", p))), max_size=12)


def _wire(stream: list[tuple[str, bytes]]) -> tuple[bytes, list[object]]:
    wire = b""
    expected: list[object] = []
    previous = ""
    for kind, data in stream:
        if kind == "junk":
            wire += data
            if previous != "junk":
                expected.append("structure")
        else:
            wire += frame(data)
            expected.append(data if kind == "frame" else "too-long")
        previous = kind
    return wire, expected


@SEEDED
@given(pieces, st.lists(st.integers(1, 97), min_size=1, max_size=20))
def test_fuzz_framer_frames_byte_for_byte_with_bounded_memory(stream, cuts):
    wire, expected = _wire(stream)
    reader = FrameReader(LIMIT, keep=KEEP)
    events: list[object] = []
    pos = i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        events += list(reader.events(wire[pos:pos + step]))
        assert reader.buffered <= LIMIT + 3 + step + KEEP
        pos += step
        i += 1
    left = reader.flush()
    if left is not None:
        events.append(left)
    got = [e.code if isinstance(e, Rejected) else e for e in events]
    assert got == expected
    assert all(len(e.raw) <= KEEP for e in events if isinstance(e, Rejected))


@SEEDED
@given(st.one_of(st.binary(max_size=300),
                 st.builds(lambda head, tail: message("Z")[:head] + tail,
                           st.integers(0, 200), st.binary(max_size=80)),
                 st.text(max_size=200).map(lambda t: ("MSH|^~\\&|" + t).encode())))
def test_fuzz_parser_reads_or_names_the_problem(data):
    try:
        msg = parse(data)
    except InputError as exc:
        assert exc.problems and all(p.location for p in exc.problems)
    else:
        assert msg.segments[0].name == "MSH"


@pytest.fixture(scope="module")
def listener(tmp_path_factory):
    store = MessageStore(tmp_path_factory.mktemp("fuzz") / "in.sqlite", durable=False)
    with MLLPListener("127.0.0.1", 0, Receiver(store, lambda m: Outcome("processed"),
                                               max_bytes=4096)) as server:
        yield server, store
    store.close()


counter = iter(range(10**9))


@settings(SEEDED, max_examples=25)
@given(st.lists(st.one_of(st.just("msg"), junk.map(lambda j: j.replace(b"MSH", b"msh")),
                          st.just("big")), min_size=1, max_size=8),
       st.integers(1, 700))
def test_fuzz_listener_answers_everything_and_stores_accepted_messages_exactly(listener,
                                                                                 stream, cut):
    server, store = listener
    wire = b""
    sent: list[bytes] = []
    answers = 0
    previous = None
    for item in stream:
        if item == "msg":
            raw = message(f"FZ-{next(counter)}")
            sent.append(raw)
            wire += frame(raw)
            answers += 1
        elif item == "big":
            wire += frame(message(f"FZB-{next(counter)}", extra="NTE|1||" + "b" * 5000 + "\r"))
            answers += 1
        else:
            wire += item
            answers += previous != "junk"
        previous = "junk" if isinstance(item, bytes) else item
    with socket.create_connection(server.address, timeout=10) as sock:
        for i in range(0, len(wire), cut):
            sock.sendall(wire[i:i + cut])
        sock.shutdown(socket.SHUT_WR)  # trailing junk is answered when the input ends
        reader = FrameReader(1 << 20)
        replies: list[bytes] = []
        while True:
            data = sock.recv(65536)  # timeout=10: a hang fails, it does not block
            if not data:
                break
            replies += list(reader.feed(data))
    assert len(replies) == answers
    acks = [read_ack(r) for r in replies]
    accepted = [a.acked_id for a in acks if a.code == "AA"]
    assert accepted == [parse(raw).control_id for raw in sent]
    for raw in sent:
        assert store.find("LAB|QUEST", parse(raw).control_id).raw == raw
