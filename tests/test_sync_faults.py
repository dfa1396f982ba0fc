"""Faults between the outbox and the real FHIR server, injected by the loopback proxy:
429 with Retry-After, 503s, timeouts, connection resets, a server down for a while.
Everything is eventually delivered exactly once, or dead-lettered with its reason."""

from __future__ import annotations

import itertools
import random

import pytest

from mafhir.outbox import Engine, Enqueuer, RetryPolicy, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.plugins import get_registry
from mafhir.testing import Fault
from outbox_helpers import clinic_ctx, outbox_url, server_identifiers, vitals_task, write_ndjson


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    with outbox_url(request.param, tmp_path) as url:
        s = open_store(url)
        yield s
        s.close()


def fill(store, tmp_path, dest, n, patients):
    ctx = clinic_ctx()
    path = write_ndjson(tmp_path / "in.ndjson", [vitals_task(i, i % patients)
                                                 for i in range(n)])
    assert Enqueuer(store, dest, get_registry(), ctx).add_file(path).added == n
    return ctx


def test_every_fault_ends_in_exactly_one_delivery(store, tmp_path, fault_proxy):
    dest = resolve_destination(fault_proxy.base_url)
    ctx = fill(store, tmp_path, dest, 40, 8)
    fault_proxy.add(Fault.status_code(429, retry_after="1"), method="POST", times=2)
    fault_proxy.add(Fault.status_code(503), method="POST", times=3)
    fault_proxy.add(Fault.slow(2.5), method="POST", times=2)  # the answer comes too late
    fault_proxy.add(Fault.drop(), method="POST", times=3)  # connection reset
    fault_proxy.add(Fault.drop(), method="POST", times=15)  # the server is down a while
    engine = Engine(store, threads=4, timeout=1.0, poll=0.05, rng=random.Random(1),
                    retry=RetryPolicy(max_attempts=12, base=0.05, cap=0.5))
    tally = engine.run()
    assert (tally.sent, tally.dead) == (40, 0)
    assert tally.retried >= 25  # every injected fault cost one attempt
    assert store.counts() == {dest: {"delivered": 40}}
    found = server_identifiers(fault_proxy.upstream, "Observation", ctx.clinic.system)
    assert len(found) == 40 and set(found.values()) == {1}  # the late answers made no copy
    patients = server_identifiers(fault_proxy.upstream, "Patient", ctx.clinic.system)
    assert len(patients) == 8 and set(patients.values()) == {1}

    history = [a for item in store.items_in("delivered") for a in store.attempts_of(item.id)]
    statuses = [a["status"] for a in history if a["result"] == "retry"]
    assert statuses.count(429) == 2 and statuses.count(503) == 3
    # 2 timeouts + 18 resets: network failures; on a loaded machine a normal answer can be
    # late too (one more timeout), so every injected fault is counted, never fewer
    assert statuses.count(None) >= 20
    assert any("network failure" in (a["error"] or "") for a in history)
    # Retry-After: 1 is honoured: the next try of that item waits at least a second
    for item in store.items_in("delivered"):
        tries = store.attempts_of(item.id)
        for prev, nxt in itertools.pairwise(tries):
            if prev["status"] == 429:
                assert nxt["started_at"] - prev["finished_at"] >= 1.0


def test_a_server_that_stays_down_dead_letters_with_the_reason(store, tmp_path, fault_proxy):
    dest = resolve_destination(fault_proxy.base_url)
    ctx = fill(store, tmp_path, dest, 6, 3)
    fault_proxy.add(Fault.status_code(503), method="POST", times=1000)
    engine = Engine(store, threads=2, poll=0.02, rng=random.Random(2),
                    retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.05))
    tally = engine.run()
    assert (tally.sent, tally.dead) == (0, 6)
    for item in store.items_in("dead"):
        assert item.reason.startswith("gave up after 3 attempt(s): ")
        assert "HTTP 503" in item.reason
        assert [a["result"] for a in store.attempts_of(item.id)] == ["retry", "retry", "dead"]
    # nothing was lost: once the server is back, a replay delivers all of it
    fault_proxy.clear()
    assert store.replay(None) == 6
    assert Engine(store, poll=0.02).run().sent == 6
    found = server_identifiers(fault_proxy.upstream, "Observation", ctx.clinic.system)
    assert len(found) == 6 and set(found.values()) == {1}


def test_too_old_work_is_dead_lettered(store, tmp_path, fault_proxy):
    dest = resolve_destination(fault_proxy.base_url)
    fill(store, tmp_path, dest, 2, 2)
    fault_proxy.add(Fault.status_code(503), method="POST", times=10)
    engine = Engine(store, poll=0.02, retry=RetryPolicy(max_attempts=100, max_age=0.0))
    assert engine.run().dead == 2
    assert all("gave up" in i.reason for i in store.items_in("dead"))
