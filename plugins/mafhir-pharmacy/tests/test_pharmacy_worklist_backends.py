"""The refill worklist on SQLite and PostgreSQL (issue 12, item 5): the same state machine
on both, one answer wins when two people decide at once on a shared PostgreSQL worklist,
and a worklist file written by the previous release (raw sqlite3) still opens."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg
import pytest
from helpers_pharmacy import prescription, refill_request

from mafhir.testing.plugin import skip_or_fail
from mafhir_pharmacy.mappers import AlreadyAnswered
from mafhir_pharmacy.tasks import PrescriptionTask, RefillRequestTask
from mafhir_pharmacy.worklist import LocalWorklist, UnknownPrescription

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
AT = datetime.fromisoformat("2026-12-21T09:00:00-05:00")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway database (skipped without PostgreSQL; a failure under CI=true)."""
    name = f"mafhir_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({str(exc)[:120]})")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> Iterator[str]:
    if request.param == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield str(tmp_path / "worklist.sqlite")


def test_the_worklist_state_machine_is_the_same_on_both_backends(location):
    worklist = LocalWorklist(location)
    try:
        worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
        request = RefillRequestTask.model_validate(refill_request("rr-1"))
        assert worklist.add_request(request) == "requested"
        assert worklist.add_request(request) == "requested"  # a re-send changes nothing
        with pytest.raises(UnknownPrescription) as err:
            worklist.add_request(RefillRequestTask.model_validate(
                refill_request("rr-2", rx_id="rx-none")))
        assert (err.value.problems[0].location, err.value.problems[0].code) == \
            ("prescription", "business-rule")
        assert [(s, t.id) for s, t in worklist.items()] == [("requested", "rr-1"),
                                                            ("review", "rr-2")]
        worklist.decide("rr-1", "denied", AT, "d-1", reason="needs-appointment",
                        answer_to="pharmacy-v2:127.0.0.1:1")
        assert worklist.state("rr-1") == "denied"
        assert worklist.decision("rr-1").id == "d-1"
        with pytest.raises(AlreadyAnswered):
            worklist.decide("rr-1", "approved", AT, "d-2")
        assert worklist.answers() == [("rr-1", "pharmacy-v2:127.0.0.1:1", "pending", 0, None)]
        worklist.keep_payload("rr-1", "MSH|first")
        worklist.keep_payload("rr-1", "MSH|second")  # kept once: a re-send is the same
        assert worklist.answer_payload("rr-1") == "MSH|first"
        worklist.mark_answer("rr-1", "refused", "AR")
        assert worklist.answers(None) == [("rr-1", "pharmacy-v2:127.0.0.1:1", "refused", 1,
                                           "AR")]
        worklist.set_cursor("src", "a")
        worklist.set_cursor("src", "b")
        assert worklist.cursor("src") == "b"
        worklist.add_unreadable("rr-9", "src", "Task/9", "no patient", "v1")
        worklist.add_unreadable("rr-9", "src", "Task/9", "no patient", "v2")
        assert (worklist.unreadable(), worklist.unreadable_version("rr-9")) == \
            ([("rr-9", "src", "Task/9", "no patient")], "v2")
        worklist.clear_unreadable("rr-9")
        assert worklist.unreadable() == []
    finally:
        worklist.close()


def test_two_people_deciding_at_once_on_a_shared_postgres_worklist_one_wins():
    with postgres_database() as url:
        first, second = LocalWorklist(url), LocalWorklist(url)
        try:
            first.add_prescription(PrescriptionTask.model_validate(prescription()))
            first.add_request(RefillRequestTask.model_validate(refill_request("rr-1")))
            start = threading.Barrier(2)
            results: dict[str, str] = {}

            def decide(worklist: LocalWorklist, decision: str) -> None:
                start.wait()
                try:
                    worklist.decide("rr-1", decision, AT, f"d-{decision}",
                                    reason="needs-appointment", answer_to="pharmacy-v2:h:1")
                    results[decision] = "won"
                except AlreadyAnswered:
                    results[decision] = "already answered"

            threads = [threading.Thread(target=decide, args=(w, d))
                       for w, d in ((first, "approved"), (second, "denied"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results.values()) == ["already answered", "won"]
            winner = next(d for d, r in results.items() if r == "won")
            with psycopg.connect(url) as conn:  # read independently of the worklist
                assert conn.execute("SELECT status FROM requests").fetchall() == [(winner,)]
                assert conn.execute("SELECT count(*) FROM answers").fetchone() == (1,)
        finally:
            first.close()
            second.close()


#: The schema the previous release (raw sqlite3) wrote, verbatim (its comments left out).
PREVIOUS_RELEASE = """
CREATE TABLE IF NOT EXISTS prescriptions (id TEXT PRIMARY KEY, task TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY, prescription TEXT NOT NULL, status TEXT NOT NULL,
    task TEXT NOT NULL, decision TEXT
);
CREATE INDEX IF NOT EXISTS requests_status ON requests (status);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, task_ref TEXT NOT NULL, prior_ref TEXT
);
CREATE TABLE IF NOT EXISTS answers (
    id TEXT PRIMARY KEY, target TEXT NOT NULL, status TEXT NOT NULL, payload TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT
);
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS unreadable (
    id TEXT PRIMARY KEY, source TEXT NOT NULL, task_ref TEXT NOT NULL, reason TEXT NOT NULL,
    updated TEXT
);
"""


def test_a_worklist_file_of_the_previous_release_opens_and_is_decided_on(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(PREVIOUS_RELEASE)
    db.execute("INSERT INTO prescriptions VALUES (?, ?)",
               ("rx-5001", PrescriptionTask.model_validate(prescription()).model_dump_json()))
    db.execute("INSERT INTO requests VALUES (?, ?, 'requested', ?, NULL)",
               ("rr-1", "rx-5001", RefillRequestTask.model_validate(
                   refill_request("rr-1")).model_dump_json()))
    db.commit()
    db.close()
    worklist = LocalWorklist(path)
    try:
        assert [(s, t.id) for s, t in worklist.items()] == [("requested", "rr-1")]
        worklist.decide("rr-1", "approved", AT, "d-1", answer_to="pharmacy-v2:h:1")
    finally:
        worklist.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT status FROM requests").fetchall() == [("approved",)]
        assert db.execute("SELECT id, status, attempts FROM answers").fetchall() == \
            [("rr-1", "pending", 0)]
