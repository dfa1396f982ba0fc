"""Issue 11 (hardening) and issue 10 (inbound you can trust), the listener's part, over
real loopback sockets and a real SQLite store: framing, size limits, kept rejections,
character sets, duplicate keys, acknowledgment modes and slow senders."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import hl7
import pytest

from mafhir.errors import Problem
from mafhir.hl7v2 import MessageStore, MLLPListener, Outcome, Receiver, frame, read_ack
from mafhir.hl7v2.mllp import KEEP_BYTES, FrameReader
from test_hl7v2_transport import message


class Seen:
    """A handler that records each message's control id and PID-5 as it read them."""

    def __init__(self, outcome: Outcome | None = None) -> None:
        self.ids: Counter[str] = Counter()
        self.names: list[str] = []
        self.outcome = outcome or Outcome("processed")
        self.lock = threading.Lock()

    def __call__(self, msg):
        with self.lock:
            self.ids[msg.msh.raw(10)] += 1
            pid = msg.first("PID")
            self.names.append(pid.text(5) if pid is not None else "")
        return self.outcome


@pytest.fixture
def store(tmp_path, store_at):
    s = MessageStore(store_at("in.sqlite"))
    yield s
    s.close()


def replies(sock: socket.socket, n: int) -> list[bytes]:
    """Read ``n`` framed replies (blocking on the socket: no sleeps)."""
    reader = FrameReader(10_000_000)
    out: list[bytes] = []
    while len(out) < n:
        data = sock.recv(65536)
        assert data, f"the listener closed after {len(out)} of {n} replies"
        out += list(reader.feed(data))
    return out


def until(condition, what: str, limit: float = 20.0) -> None:
    """Wait for observable state (bounded, so a bug fails instead of hanging)."""
    end = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def msa(reply: bytes) -> tuple[str, str]:
    """MSA-1 and MSA-2 of a reply, read with python-hl7 (independent of our parser)."""
    seg = hl7.parse(reply.decode("utf-8")).segment("MSA")
    return str(seg[1]), str(seg[2]) if len(seg) > 2 else ""


def err3(reply: bytes) -> list[tuple[str, str]]:
    """(ERR-3.1, ERR-4) of every ERR in a reply, read with python-hl7."""
    out = []
    for seg in hl7.parse(reply.decode("utf-8")):
        if str(seg[0]) == "ERR":
            out.append((str(seg[3][0][0]) if len(seg) > 3 else "", str(seg[4])
                        if len(seg) > 4 else ""))
    return out


# ------------------------------------------------------------------ 1. frame + junk
def test_a_valid_frame_followed_by_junk_in_one_write_is_stored_and_the_junk_rejected(store):
    seen = Seen()
    with MLLPListener("127.0.0.1", 0, Receiver(store, seen)) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(frame(message("J-1")) + b"some junk" + frame(message("J-2")))
        first, junk, second = replies(sock, 3)
    assert msa(first) == ("AA", "J-1") and msa(second) == ("AA", "J-2")
    assert msa(junk) == ("AR", "")  # the junk's own rejection, covering no message
    assert store.find("LAB|QUEST", "J-1").raw == message("J-1")
    assert store.find("LAB|QUEST", "J-2").raw == message("J-2")
    (rejected,) = store.messages("rejected")
    assert rejected.raw == b"some junk" and rejected.problems.startswith("MLLP:")


# ------------------------------------------------------------------ 2. oversized frames
def test_an_oversized_frame_gets_one_ar_naming_the_limit_and_nothing_after_it_is_lost(store):
    seen = Seen()
    limit = 64 * 1024
    big = message("BIG-1", extra="NTE|1||" + "x" * (1024 * 1024) + "\r")
    with MLLPListener("127.0.0.1", 0, Receiver(store, seen, max_bytes=limit)) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(frame(big) + frame(message("A-1")))
        sock.sendall(frame(message("A-2")))
        sock.sendall(frame(message("A-3")))
        got = replies(sock, 4)
    assert [msa(r) for r in got] == [("AR", "BIG-1"), ("AA", "A-1"), ("AA", "A-2"),
                                     ("AA", "A-3")]
    assert f"{limit}-byte limit" in read_ack(got[0]).text
    assert err3(got[0]) == [("102", "E")]  # too-long: a data type error in 0357
    assert sorted(seen.ids) == ["A-1", "A-2", "A-3"]
    (rejected,) = store.messages("rejected")  # one row, not dozens
    assert rejected.raw == big[:KEEP_BYTES]  # kept, bounded
    assert f"bytes received; the first {KEEP_BYTES} are kept" in rejected.problems
    assert store.counts() == {"processed": 3, "rejected": 1}


def test_the_frame_reader_holds_bounded_memory_and_reads_20_mb_once():
    limit = 4 * 1024 * 1024
    reader = FrameReader(limit)
    data = frame(b"MSH|" + b"y" * (20 * 1024 * 1024)) + frame(b"MSH|after")
    events = []
    peak = 0
    for i in range(0, len(data), 65536):
        events += list(reader.events(data[i:i + 65536]))
        peak = max(peak, reader.buffered)
    assert [getattr(e, "code", e) for e in events] == ["too-long", b"MSH|after"]
    assert peak <= limit + 65536 + KEEP_BYTES


# ------------------------------------------------------------------ 3. rejected input kept
def test_a_message_without_its_start_block_is_kept_and_answered(store):
    unframed = message("U-1")
    with MLLPListener("127.0.0.1", 0, Receiver(store, Seen())) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(unframed + b"\x1c\r")
        (reply,) = replies(sock, 1)
    assert msa(reply) == ("AR", "U-1")
    assert "start block" in read_ack(reply).text
    (row,) = store.messages("rejected")
    assert row.raw == unframed and len(row.raw) > 0


def test_unframed_input_left_at_close_is_kept(store):
    with MLLPListener("127.0.0.1", 0, Receiver(store, Seen())) as listener:
        with socket.create_connection(listener.address, timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            (reply,) = replies(sock, 1)
        assert msa(reply)[0] == "AR"
    (row,) = store.messages("rejected")
    assert row.raw == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


# ------------------------------------------------------------------ 4. character sets
def latin(control_id: str, charset: str, name: str, codec: str) -> bytes:
    return (f"MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|"
            f"{control_id}|P|2.5.1||||||{charset}\rPID|1||MS-1^^^CLINIC^MR||{name}^Jane\r"
            ).encode(codec)


@pytest.mark.parametrize(("charset", "codec", "name"), [
    ("8859/2", "iso8859-2", "Łódź"),
    ("8859/15", "iso8859-15", "Eur€"),
    ("8859/1", "iso8859-1", "Müller"),
    # Latin-1 whose bytes (C3 A9) also happen to be valid UTF-8: still read as declared
    ("8859/1", "iso8859-1", "LEÃ©"),
    ("8859/5", "iso8859-5", "Иванова"),
    ("UNICODE UTF-8", "utf-8", "Łódź€"),
])
def test_text_is_read_in_the_character_set_msh18_declares(store, charset, codec, name):
    seen = Seen()
    raw = latin("CS-1", charset, name, codec)
    with MLLPListener("127.0.0.1", 0, Receiver(store, seen)) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(frame(raw))
        (reply,) = replies(sock, 1)
    assert read_ack(reply.decode(codec)).code == "AA"
    assert seen.names == [f"{name}^Jane"]
    assert store.find("LAB|QUEST", "CS-1").raw == raw  # byte for byte


@pytest.mark.parametrize(("charset", "raw_name", "why"), [
    ("ASCII", "M\xfcller".encode("iso8859-1"), "not valid in the declared"),
    ("UNICODE UTF-8", "M\xfcller".encode("iso8859-1"), "not valid in the declared"),
    ("KLINGON", b"Muller", "not one HL7 table 0211 names"),
    ("CNS 11643-1992", b"Muller", "not supported"),
    ("", "\u20ac".encode("cp1252"), "neither UTF-8 nor ISO 8859-1"),
])
def test_bytes_the_declared_set_cannot_read_are_refused_naming_msh18(store, charset, raw_name,
                                                                      why):
    seen = Seen()
    raw = latin("CS-2", charset, "X", "ascii").replace(b"|X^", b"|" + raw_name + b"^")
    ack = read_ack(Receiver(store, seen).receive(raw))
    assert ack.code == "AR" and ack.errors[0].startswith("MSH-18") and why in ack.errors[0]
    assert ack.acked_id == "CS-2" and not seen.ids
    (row,) = store.messages("rejected")
    assert row.raw == raw


def test_iso_2022_japanese_named_in_a_later_repetition_is_decoded(store):
    seen = Seen()
    name = "山田"  # Yamada, in JIS X 0208 behind an ISO 2022 escape
    raw = latin("JP-1", "~ISO IR87", name, "iso2022_jp")
    assert b"\x1b$B" in raw  # the escape sequence is really there
    assert read_ack(Receiver(store, seen).receive(raw)).code == "AA"
    assert seen.names == [f"{name}^Jane"]  # not the escape sequence left in the text


def test_without_msh18_utf8_is_read_and_latin1_is_the_documented_fallback(store):
    seen = Seen()
    receiver = Receiver(store, seen)
    assert read_ack(receiver.receive(latin("NO-1", "", "Łódź", "utf-8"))).code == "AA"
    assert read_ack(receiver.receive(latin("NO-2", "", "Müller", "iso8859-1"))).code == "AA"
    assert seen.names == ["Łódź^Jane", "Müller^Jane"]


# ------------------------------------------------------------------ 5. whole ids
@pytest.mark.parametrize(("first", "second"), [
    (message("A^1"), message("A^2")),
    (message("ID-1", sender="LABSYS^A"), message("ID-1", sender="LABSYS^B")),
    (message("ID-2").replace(b"|QUEST|", b"|QUEST^X|"),
     message("ID-2").replace(b"|QUEST|", b"|QUEST^Y|")),
])
def test_control_ids_and_senders_are_compared_whole(store, first, second):
    seen = Seen()
    receiver = Receiver(store, seen)
    assert read_ack(receiver.receive(first)).code == "AA"
    assert read_ack(receiver.receive(second)).code == "AA"
    assert sum(seen.ids.values()) == 2
    rows = list(store.messages("processed"))
    assert [r.raw for r in rows] == [first, second]
    assert all(r.conflicts_with is None for r in rows)


@pytest.mark.parametrize(("control_id", "components"), [
    ("A^1", ["A", "1"]),
    ("B^2&x^\\F\\", ["B", "2&x", "|"]),  # a subcomponent, and an escaped field separator
])
def test_msa2_echoes_the_whole_msh10_over_a_socket(store, control_id, components):
    raw = message(control_id)
    with MLLPListener("127.0.0.1", 0, Receiver(store, Seen())) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(frame(raw))
        (reply,) = replies(sock, 1)
    parsed = hl7.parse(reply.decode("utf-8"))  # read by python-hl7
    seg = parsed.segment("MSA")
    assert str(seg[2]) == control_id  # exactly what the sender wrote in MSH-10
    assert [parsed.unescape(str(c)) for c in seg[2][0]] == components
    assert read_ack(reply).acked_id == control_id.replace("\\F\\", "|")


# ------------------------------------------------------------------ issue 10.1 content key
def test_other_content_under_a_used_control_id_is_kept_processed_and_flagged(store):
    seen = Seen()
    original = message("RE-1")
    changed = original.replace(b"||6.9|%|", b"||7.9|%|")
    receiver = Receiver(store, seen)
    first = receiver.receive(original)
    second = receiver.receive(changed)
    assert msa(first) == ("AA", "RE-1") and err3(first) == []
    assert msa(second) == ("AA", "RE-1")
    assert err3(second) == [("205", "W")]  # the reuse is told to the sender
    assert "used before for other content" in read_ack(second).errors[0]
    assert seen.ids["RE-1"] == 2  # both processed: the AA covers what was stored
    one, two = store.find_all("LAB|QUEST", "RE-1")
    assert (one.raw, two.raw) == (original, changed)
    assert two.conflicts_with == one.id and "used before" in two.problems
    # an identical re-send of either gets its own original ACK, not processed again
    assert receiver.receive(changed) == second
    assert receiver.receive(original) == first
    assert seen.ids["RE-1"] == 2


def test_an_older_store_file_is_rebuilt_under_the_content_key(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT, control_id TEXT,
          message_type TEXT, received_at TEXT NOT NULL, raw BLOB NOT NULL,
          status TEXT NOT NULL, ack BLOB, app_ack BLOB, problems TEXT,
          attempts INTEGER NOT NULL DEFAULT 1, duplicates INTEGER NOT NULL DEFAULT 0,
          UNIQUE (sender, control_id));""")
    db.execute("INSERT INTO messages (sender, control_id, message_type, received_at, raw, "
               "status, ack) VALUES ('LAB|QUEST', 'OLD-1', 'ORU^R01', '2026-01-01', ?, "
               "'processed', ?)", (message("OLD-1"), b"MSH|old ack"))
    db.commit()
    db.close()
    store = MessageStore(path)
    try:
        seen = Seen()
        receiver = Receiver(store, seen)
        assert receiver.receive(message("OLD-1")) == b"MSH|old ack"  # identical: replayed
        changed = message("OLD-1").replace(b"||6.9|", b"||8.0|")
        assert read_ack(receiver.receive(changed)).code == "AA"
        assert seen.ids["OLD-1"] == 1
        assert [r.raw for r in store.find_all("LAB|QUEST", "OLD-1")] == \
            [message("OLD-1"), changed]
    finally:
        store.close()


# ------------------------------------------------------------------ 6 and 8. ack modes
@pytest.mark.parametrize(("mode", "expected"), [
    ("XX|", "AA"),     # unknown MSH-15, no MSH-16: the default (original mode)
    ("al|al", "CA"),   # case is not significant
    (" |", "AA"),      # a blank is absent
    ('""|', "AA"),     # HL7's explicit null is absent
    ("XX|AL", "CA"),   # unknown MSH-15 in enhanced mode: the default, AL
])
def test_unknown_blank_or_lowercase_ack_conditions_still_get_an_answer(store, mode, expected):
    with MLLPListener("127.0.0.1", 0, Receiver(store, Seen())) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(frame(message("M-1", mode=mode)))
        (reply,) = replies(sock, 1)
    assert msa(reply) == (expected, "M-1")


def test_a_finished_ne_message_sent_again_is_not_told_it_is_still_being_processed(store):
    seen = Seen()
    receiver = Receiver(store, seen, wait_for_duplicate=5.0)
    assert receiver.receive(message("NE-1", mode="NE|NE")) is None
    started = time.monotonic()
    again = receiver.receive(message("NE-1", mode="NE|NE"))
    assert again is None  # the same (no) answer as the first time, not CE
    assert time.monotonic() - started < 5.0  # answered as finished, not after waiting
    assert seen.ids["NE-1"] == 1
    assert store.find("LAB|QUEST", "NE-1").duplicates == 1


# ------------------------------------------------------------------ 8. ERR-3 from the code
@pytest.mark.parametrize(("problem", "code"), [
    (Problem("OBX[1]-3", "observation identifier is missing", "required"), "101"),
    (Problem("OBX[1]-5", "not a number", "value"), "102"),
    (Problem("OBX[1]-8", "abnormal flag not in table 0078", "code-invalid"), "103"),
    (Problem("PID-3", "patient not known", "not-found"), "204"),
    (Problem("", "internal error: KeyError", "processing"), "207"),
    # the English text says "missing"; the code says internal: the code wins
    (Problem("", "a required lookup table is missing on the server", "processing"), "207"),
])
def test_err3_comes_from_the_problem_code(store, problem, code):
    ack = Receiver(store, Seen(Outcome("error", (problem,)))).receive(message("E-1"))
    assert msa(ack)[0] == "AE" and err3(ack) == [(code, "E")]


def test_header_problems_carry_their_0357_codes(store):
    receiver = Receiver(store, Seen())
    no_type = receiver.receive(message("H-1").replace(b"ORU^R01^ORU_R01", b""))
    assert ("101", "E") in err3(no_type)
    old = receiver.receive(message("H-2").replace(b"|2.5.1|", b"|2.1|"))
    assert err3(old) == [("203", "E")]


# ------------------------------------------------------------------ 7. slow senders
def test_a_frame_not_finished_by_its_deadline_is_rejected_and_the_connection_closed(store):
    with MLLPListener("127.0.0.1", 0, Receiver(store, Seen()), frame_timeout=0.5) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        partial = b"\x0b" + message("SLOW-1")[:40]
        sock.sendall(partial)
        (reply,) = replies(sock, 1)  # comes when the listener's deadline passes
        assert sock.recv(10) == b""  # and the connection is closed
    assert msa(reply) == ("AR", "")
    assert "not finished" in read_ack(reply).text
    (row,) = store.messages("rejected")
    assert row.raw == partial[1:]


def test_connections_beyond_the_cap_are_refused_clearly_and_drip_feeders_let_go(store):
    before = threading.active_count()
    with MLLPListener("127.0.0.1", 0, Receiver(store, Seen()), frame_timeout=1.0,
                      max_connections=4) as listener:
        drips = []
        for _i in range(4):  # each starts a frame and never finishes it
            s = socket.create_connection(listener.address, timeout=10)
            s.sendall(b"\x0bMSH|^~\\&|DRIP")
            drips.append(s)
        until(lambda: listener.connections == 4, "four connections served")
        extra = [socket.create_connection(listener.address, timeout=10) for _ in range(6)]
        refusals = [replies(s, 1)[0] for s in extra]
        assert all(msa(r)[0] == "AR" and "limit of 4 connections" in read_ack(r).text
                   for r in refusals)
        assert all(s.recv(10) == b"" for s in extra)  # closed after the refusal
        for s in drips:  # each drip-feeder is answered and let go at its deadline
            assert msa(replies(s, 1)[0])[0] == "AR"
            assert s.recv(10) == b""
        until(lambda: listener.connections == 0, "the drip-feeders' threads to end")
        with socket.create_connection(listener.address, timeout=10) as ok:
            ok.sendall(frame(message("AFTER-1")))
            assert msa(replies(ok, 1)[0]) == ("AA", "AFTER-1")
        for s in drips + extra:
            s.close()
    until(lambda: threading.active_count() <= before, "every listener thread to end")
    assert store.counts() == {"processed": 1, "rejected": 4}


def test_the_ack_is_written_in_the_declared_character_set(store):
    from mafhir.hl7v2.ack import Response

    raw = latin("ENC-1", "8859/2", "Łódź", "iso8859-2")
    reply = Response(("ORL", "O22", "ORL_O22"), [["PID", "1", None, None, None, ("Łódź",)]])
    ack = Receiver(store, Seen(Outcome("processed", response=reply))).receive(raw)
    text = ack.decode("iso8859-2")  # in the set its MSH-18 declares, as the sender reads it
    assert "|8859/2" in text.split("\r", 1)[0]
    assert "PID|1||||Łódź" in text


def test_mafhir_listen_takes_the_limits_from_its_options(tmp_path):
    """The command itself (a real process): --max-bytes names the limit in the AR and the
    connection goes on; --max-connections refuses the next connection."""
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    mafhir = Path(sys.executable).parent / "mafhir"
    proc = subprocess.Popen(
        [str(mafhir), "listen", "--mllp", "127.0.0.1:0", "--store", str(tmp_path / "in.sqlite"),
         "--no-check-patient", "--max-bytes", "2048", "--max-connections", "1",
         "--frame-timeout", "20"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line.startswith("warning:"):  # e.g. no clinic configured
            line = proc.stderr.readline()
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            big = message("CLI-BIG", extra="NTE|1||" + "z" * 4000 + "\r")
            sock.sendall(frame(big) + frame(message("CLI-1").replace(b"ORU^R01", b"ACK")))
            too_big, after = replies(sock, 2)
            assert msa(too_big) == ("AR", "CLI-BIG") and "2048-byte limit" in \
                read_ack(too_big).text
            assert msa(after)[1] == "CLI-1"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
                (refusal,) = replies(second, 1)
            assert "limit of 1 connections" in read_ack(refusal).text
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest


# ------------------------------------------------- review findings: framing that glues or cuts
def test_a_start_block_inside_an_unfinished_frame_rejects_it_and_reads_the_next(store):
    """A frame that never got its end block, then a whole frame: gluing them would file the
    second message's results under the first message's patient (and answer AA)."""
    seen = Seen()
    first = message("V-1").replace(b"Doe^Jane", b"Roe^Richard")
    with MLLPListener("127.0.0.1", 0, Receiver(store, seen)) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(b"\x0b" + first + frame(message("V-2")))
        rejected, accepted = replies(sock, 2)
    assert msa(rejected) == ("AR", "V-1") and "not finished" in read_ack(rejected).text
    assert msa(accepted) == ("AA", "V-2")
    assert seen.names == ["Doe^Jane"]  # V-2's own patient, nothing of V-1's
    assert store.find("LAB|QUEST", "V-2").raw == message("V-2")
    (row,) = list(store.messages("rejected"))
    assert row.raw == first


def test_utf16_is_read_from_a_file_but_refused_on_mllp():
    """parse() (mafhir convert, a file) reads UTF-16 as declared; MLLP cannot carry it."""
    from mafhir.hl7v2 import parse
    raw = latin("CS-16", "UNICODE UTF-16", "Łódź€", "utf-16")
    assert parse(raw).first("PID").text(5) == "Łódź€^Jane"


def test_utf16_is_refused_on_mllp_because_its_bytes_can_hold_the_end_block(store):
    """U+0D1C is the bytes 1C 0D in UTF-16LE: the frame ends inside the text. No part of
    such a message may be acknowledged positively."""
    text = ("MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|U16|P|"
            "2.5.1||||||UNICODE UTF-16\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane\r"
            "OBX|1|TX|8251-1^Note^LN||\u0d1c\u0d3e CRITICAL: repeat HbA1c||||||F\r")
    data = "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")
    assert b"\x1c\r" in data  # the hazard itself
    seen = Seen()
    with MLLPListener("127.0.0.1", 0, Receiver(store, seen)) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        sock.sendall(frame(data))
        sock.shutdown(socket.SHUT_WR)
        got, reader = [], FrameReader(10_000_000)
        while chunk := sock.recv(65536):
            got += list(reader.feed(chunk))
    assert got and all(msa(r)[0] == "AR" for r in got)
    assert "UTF-16/UTF-32 cannot be carried over MLLP" in read_ack(got[0]).text
    assert not seen.ids and not list(store.messages("processed"))


def test_a_frame_that_began_with_the_previous_one_gets_its_own_deadline(store, monkeypatch):
    """Frame 1 and the start of frame 2 in one read; processing frame 1 takes longer than
    the frame deadline. Frame 2's deadline runs from when it could be read, not from frame
    1's start. The listener's clock is moved on by the handler (no waiting on real time)."""
    import types

    from mafhir.hl7v2 import listener as listener_module

    skew = [0.0]
    clock = types.SimpleNamespace(monotonic=lambda: time.monotonic() + skew[0])
    monkeypatch.setattr(listener_module, "time", clock)

    class Slow(Seen):
        def __call__(self, msg):
            if msg.msh.raw(10) == "D-1":
                skew[0] += 60.0  # frame 1 "took" a minute, far past the 1 s deadline
            return super().__call__(msg)

    one, two = frame(message("D-1")), frame(message("D-2"))
    with MLLPListener("127.0.0.1", 0, Receiver(store, Slow()), frame_timeout=1.0) as listener, \
            socket.create_connection(listener.address, timeout=10) as sock:
        # frame 1 begins in a read of its own: its ACK-before says that read was taken
        sock.sendall(frame(message("D-0")) + one[:30])
        (zero,) = replies(sock, 1)
        sock.sendall(one[30:] + two[:30])  # frame 1 ends, frame 2 begins, in one read
        (first,) = replies(sock, 1)
        sock.sendall(two[30:])
        (second,) = replies(sock, 1)
    assert [msa(r) for r in (zero, first, second)] == [("AA", "D-0"), ("AA", "D-1"),
                                                        ("AA", "D-2")]
