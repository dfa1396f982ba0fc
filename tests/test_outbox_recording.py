"""Recording results can neither fail forever nor loop (issue 12 item 3), on SQLite and
PostgreSQL: a batch where two rows share a ledger key is recorded (PostgreSQL refused
that upsert: "cannot affect row a second time"), and an item whose result cannot be
recorded ends in a dead letter with the reason — its type and where it was raised —
after a bounded number of attempts instead of being claimed and resent forever."""

from __future__ import annotations

import json
import random
import threading

import pytest

from mafhir.errors import unexpected
from mafhir.outbox import Engine, Enqueuer, RetryPolicy, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.outbox.engine import classify
from mafhir.outbox.model import NewItem, Outcome
from mafhir.plugins import get_registry
from outbox_helpers import clinic_ctx, outbox_url, vitals_task, write_ndjson

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with outbox_url(request.param, tmp_path) as url:
        s = open_store(url)
        yield s
        s.close()


def _row(server_id: str, content_hash: str) -> dict:
    return {"destination": "dest", "rtype": "Substance", "ident": "a" * 64,
            "server_id": server_id, "version": "1", "content_hash": content_hash}


def test_a_batch_with_two_rows_sharing_a_ledger_key_is_recorded(store):
    store.enqueue([NewItem("dest", okey=f"p{i}", idem_key=f"k{i}", payload=b"{}")
                   for i in range(2)])
    first, second = store.claim("w", limit=2)
    store.record([Outcome(first, "w", 0.0, "sent", 1, [_row("Substance/1", "h1")]),
                  Outcome(second, "w", 0.0, "sent", 1, [_row("Substance/1", "h2")])])
    assert store.get(first.id).state == "delivered"
    assert store.get(second.id).state == "delivered"
    # the later write is the server's latest state: its hash and item are kept
    row = store.ledger_get("dest", [("Substance", "a" * 64)])[("Substance", "a" * 64)]
    assert (row["server_id"], row["content_hash"], row["item_id"]) == \
        ("Substance/1", "h2", second.id)


def test_ledger_put_with_two_rows_sharing_a_key_keeps_the_last(store):
    store.ledger_put([_row("Substance/1", "h1"), _row("Substance/1", "h2")], item_id=7)
    row = store.ledger_get("dest", [("Substance", "a" * 64)])[("Substance", "a" * 64)]
    assert row["content_hash"] == "h2"


class FailingRecord:
    """The store's record step fails (``times`` times, or always) the way a bug does."""

    def __init__(self, store, times: int | None, engine_box: list) -> None:
        self.real = store.record
        self.times = times
        self.calls = 0
        self.engine_box = engine_box

    def __call__(self, outcomes):
        self.calls += 1
        if self.calls > 20 and self.engine_box:  # a loop: stop it, the test then fails
            self.engine_box[0].stop()
        if self.times is None or self.calls <= self.times:
            return {}["ledger row"]  # a KeyError raised here, in the record step
        return self.real(outcomes)


def _engine(store, record_attempts: int = 3) -> Engine:
    return Engine(store, threads=1, batch=8, poll=0.02, rng=random.Random(3),
                  retry=RetryPolicy(max_attempts=10, base=0.01, cap=0.02),
                  record_attempts=record_attempts)


def _enqueue_one(store, tmp_path) -> str:
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    path = write_ndjson(tmp_path / "in.ndjson", [vitals_task(1, 1, performer=False)])
    assert Enqueuer(store, dest, get_registry(), clinic_ctx()).add_file(path).added == 1
    return dest


def test_a_record_step_that_always_fails_ends_in_a_dead_letter_not_a_loop(
        store, tmp_path, monkeypatch, caplog):
    _enqueue_one(store, tmp_path)
    box: list = []
    failing = FailingRecord(store, None, box)
    monkeypatch.setattr(store, "record", failing)
    engine = _engine(store, record_attempts=3)
    box.append(engine)
    with caplog.at_level("ERROR", logger="mafhir.outbox"):
        tally = engine.run(once=True)
    assert failing.calls == 3  # one record attempt per delivery, then the dead letter
    assert (tally.dead, tally.sent, tally.retried) == (1, 0, 2)
    (dead,) = store.items_in("dead")
    assert dead.attempts == 3
    assert dead.reason.startswith("its result could not be recorded 3 time(s): could not "
                                  "record the result: KeyError at ")
    # where it was raised, not only the exception's type
    assert "test_outbox_recording.py" in dead.reason and "in __call__" in dead.reason
    assert [a["result"] for a in store.attempts_of(dead.id)] == ["unrecorded"] * 3
    assert any("dead-lettered" in r.getMessage() and r.levelname == "ERROR"
               for r in caplog.records)
    # replayed (the operator fixed the store): it gets its three recordings again
    assert store.replay(dead.id) == 1
    failing.calls = 0
    assert _engine(store, record_attempts=3).run(once=True).dead == 1
    assert failing.calls == 3
    assert [a["result"] for a in store.attempts_of(dead.id)] == ["unrecorded"] * 6


def test_a_record_step_that_fails_twice_then_works_delivers_the_item(store, tmp_path,
                                                                      monkeypatch):
    _enqueue_one(store, tmp_path)
    box: list = []
    failing = FailingRecord(store, 2, box)
    monkeypatch.setattr(store, "record", failing)
    engine = _engine(store, record_attempts=3)
    box.append(engine)
    tally = engine.run(once=True)
    assert (tally.sent, tally.dead, tally.retried) == (1, 0, 2)
    (item,) = store.items_in("delivered")
    assert [a["result"] for a in store.attempts_of(item.id)] == \
        ["unrecorded", "unrecorded", "sent"]


def test_an_unexpected_failure_keeps_where_it_was_raised_not_its_text():
    def lookup(row):
        return row["Doe^Jane"]  # a key that is patient data

    try:
        lookup({})
    except KeyError as exc:
        transient, status, _, outcome, message = classify(exc)
        assert message == f"{unexpected(exc)} (unexpected)"
    assert not transient and status is None
    assert "Doe" not in outcome and json.loads(outcome)["issue"][0]["code"] == "processing"
    assert message.startswith("KeyError at tests/test_outbox_recording.py:")
    assert "in lookup ← tests/test_outbox_recording.py:" in message
    assert "Doe" not in message and "Jane" not in message


def test_the_engine_stops_a_recording_loop_even_with_many_threads(store, tmp_path,
                                                                  monkeypatch):
    """Several workers, several patients: every item ends dead after its own three
    failed recordings; none is left active and nothing loops."""
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    path = write_ndjson(tmp_path / "in.ndjson",
                        [vitals_task(i, i, performer=False) for i in range(1, 6)])
    Enqueuer(store, dest, get_registry(), clinic_ctx()).add_file(path)
    lock = threading.Lock()
    calls = []

    def failing(outcomes):
        with lock:
            calls.append(len(outcomes))
        raise RuntimeError("cannot affect row a second time")

    monkeypatch.setattr(store, "record", failing)
    engine = Engine(store, threads=3, batch=2, poll=0.02, rng=random.Random(3),
                    retry=RetryPolicy(max_attempts=10, base=0.01, cap=0.02),
                    record_attempts=3)
    tally = engine.run(once=True)
    assert tally.dead == 5 and store.active() == 0
    assert sum(calls) == 15  # three recordings per item, no more
    for item in store.items_in("dead"):
        assert [a["result"] for a in store.attempts_of(item.id)] == ["unrecorded"] * 3


def test_dead_letters_show_their_error_code(store, tmp_path):
    """``outbox dead`` reads the code (docs/errors.md), not the English reason: a Bundle
    the local store refuses (resource.id differs from request.url: ``invariant``)."""
    from click.testing import CliRunner

    from mafhir.cli.main import build_cli

    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    obs = {"resourceType": "Observation", "id": "other", "status": "final",
           "code": {"text": "note"}, "identifier": [{"system": "urn:t", "value": "1"}]}
    wrong = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0f0f0f0f-0000-4000-8000-000000000002", "resource": obs,
         "request": {"method": "PUT", "url": "Observation/abc"}}]}
    path = write_ndjson(tmp_path / "b.ndjson", [wrong])
    Enqueuer(store, dest, get_registry(), clinic_ctx()).add_file(path)
    assert _engine(store).run().dead == 1
    out = CliRunner().invoke(build_cli(), ["outbox", "dead", "--json", "--db", store.url])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert row["code"] == "invariant"
    assert "differs from the id in request.url" in row["reason"]
