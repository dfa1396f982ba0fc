"""The v2 message store on PostgreSQL as well as SQLite (issue 12, item 5): listeners
sharing one PostgreSQL database store a concurrent identical message once, `mafhir
listen --store postgresql://…` keeps what it receives there, and a SQLite file written
by the previous release opens with its duplicates still recognised."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg

from mafhir.hl7v2 import MessageStore, MLLPListener, Outcome, Receiver, frame, read_ack
from outbox_helpers import postgres_database
from test_hl7v2_listener_hardening import msa, replies
from test_hl7v2_transport import message


def send(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(frame(raw))
        (reply,) = replies(sock, 1)
    return reply


class HoldsUntilDuplicate:
    """Processes a message only once the same message has been claimed again (its row's
    ``duplicates`` is 1), so the second send certainly arrives while the first is in
    progress; records how often it processed anything."""

    def __init__(self, url: str) -> None:
        self.watch = MessageStore(url)
        self.calls = 0
        self.lock = threading.Lock()
        self.seen_duplicate = threading.Event()

    def __call__(self, msg) -> Outcome:
        with self.lock:
            self.calls += 1
        row = self.watch.find("LAB|QUEST", msg.msh.raw(10))
        assert row is not None
        for _ in range(600):  # waits on the row (bounded), not on time
            if self.watch.get(row.id).duplicates >= 1:
                self.seen_duplicate.set()
                break
            self.seen_duplicate.wait(0.05)
        return Outcome("processed")


def test_two_listeners_on_one_postgres_database_keep_a_concurrent_identical_send_once():
    with postgres_database() as url:
        handler = HoldsUntilDuplicate(url)
        first, second = MessageStore(url), MessageStore(url)
        raw = message("PG-SAME-1")
        try:
            with MLLPListener("127.0.0.1", 0, Receiver(first, handler)) as one, \
                    MLLPListener("127.0.0.1", 0, Receiver(second, handler)) as two, \
                    ThreadPoolExecutor(2) as pool:
                acks = list(pool.map(lambda port: send(port, raw),
                                     [one.address[1], two.address[1]]))
            assert handler.seen_duplicate.is_set()  # the sends overlapped
            assert handler.calls == 1
            assert acks[0] == acks[1]
            assert msa(acks[0]) == ("AA", "PG-SAME-1")
            rows = first.find_all("LAB|QUEST", "PG-SAME-1")
            assert [(r.status, r.duplicates, r.raw) for r in rows] == [("processed", 1, raw)]
            with psycopg.connect(url) as conn:  # read independently: the rows are in PostgreSQL
                assert conn.execute("SELECT count(*), sum(duplicates) FROM messages WHERE "
                                    "control_id = 'PG-SAME-1'").fetchone() == (1, 1)
        finally:
            for s in (first, second, handler.watch):
                s.close()


def test_mafhir_listen_stores_in_postgres_and_shows_no_password():
    mafhir = Path(sys.executable).parent / "mafhir"
    with postgres_database() as url:
        shown = url.replace("postgres@", "postgres:store-pw-41@")  # trust auth ignores it
        proc = subprocess.Popen(
            [str(mafhir), "listen", "--mllp", "127.0.0.1:0", "--store", shown,
             "--no-check-patient"],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            while line.startswith("warning:"):  # e.g. no clinic configured
                line = proc.stderr.readline()
            port = int(re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1))
            ack = send(port, message("PG-CLI-1").replace(b"ORU^R01^ORU_R01", b"ACK"))
            assert msa(ack)[1] == "PG-CLI-1"
        finally:
            proc.send_signal(signal.SIGTERM)
            rest = proc.communicate(timeout=30)[1]
        assert proc.returncode == 0, rest
        assert "store-pw-41" not in line + rest
        store = MessageStore(url)
        try:
            (row,) = store.find_all("LAB|QUEST", "PG-CLI-1")
            assert row.message_type == "ACK" and row.status == "processed"
        finally:
            store.close()


#: The schema the previous release (raw sqlite3) wrote, verbatim.
PREVIOUS_RELEASE = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, sender TEXT, control_id TEXT, message_type TEXT,
    received_at TEXT NOT NULL, raw BLOB NOT NULL, status TEXT NOT NULL, ack BLOB,
    app_ack BLOB, problems TEXT, attempts INTEGER NOT NULL DEFAULT 1,
    duplicates INTEGER NOT NULL DEFAULT 0, reply_status TEXT,
    reply_attempts INTEGER NOT NULL DEFAULT 0, reply_error TEXT,
    reply_next_at REAL NOT NULL DEFAULT 0, content_sha256 BLOB, conflicts_with INTEGER,
    UNIQUE (sender, control_id, content_sha256));
CREATE INDEX IF NOT EXISTS messages_status ON messages (status);
CREATE INDEX IF NOT EXISTS messages_reply ON messages (reply_status)
    WHERE reply_status = 'pending';
"""


def test_a_file_written_by_the_previous_release_opens_and_knows_its_messages(tmp_path):
    import hashlib

    path = tmp_path / "previous.sqlite"
    raw = message("PREV-1")
    db = sqlite3.connect(path)
    db.executescript(PREVIOUS_RELEASE)
    db.execute("INSERT INTO messages (sender, control_id, message_type, received_at, raw, "
               "status, ack, app_ack, reply_status, content_sha256) VALUES ('LAB|QUEST', "
               "'PREV-1', 'ORU^R01', '2026-11-01T00:00:00+00:00', ?, 'processed', ?, ?, "
               "'pending', ?)", (raw, b"MSH|prev ack", b"MSH|prev app ack",
                                 hashlib.sha256(raw).digest()))
    db.commit()
    db.close()
    store = MessageStore(path)
    try:
        calls: list[str] = []
        receiver = Receiver(store, lambda m: calls.append(m.msh.raw(10)) or Outcome("processed"))
        assert receiver.receive(raw) == b"MSH|prev ack"  # identical: the kept ACK
        assert calls == []
        (pending,) = store.pending_replies()
        assert pending.app_ack == b"MSH|prev app ack"
        assert read_ack(receiver.receive(message("PREV-2"))).code == "AA"
        assert calls == ["PREV-2"]
    finally:
        store.close()
