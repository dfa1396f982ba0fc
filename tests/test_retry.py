"""The one retry policy (mafhir.retry): Retry-After in both forms, backoff bounds, seeded
jitter, and the same rules for a client's sleep, the outbox's reschedule and MLLP."""

from __future__ import annotations

import calendar
import random
import socket
import time
from dataclasses import astuple

import pytest

from mafhir.errors import TransientError
from mafhir.hl7v2.mllp import MLLPClient
from mafhir.outbox import RetryPolicy as OutboxRetry
from mafhir.retry import RetryPolicy, parse_retry_after

# 1994-11-06 08:49:37 GMT, RFC 9110 §5.6.7's example instant, computed without mafhir
EXAMPLE = calendar.timegm((1994, 11, 6, 8, 49, 37, 0, 0, 0))


@pytest.mark.parametrize("header", [
    "Sun, 06 Nov 1994 08:49:37 GMT",   # IMF-fixdate
    "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
    "Sun Nov  6 08:49:37 1994",        # obsolete asctime: no zone, and it means GMT
])
def test_retry_after_dates_are_gmt_in_every_form(header, monkeypatch):
    # a clinic machine not on UTC: asctime must not be read as local time (it was, 5 h off)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_retry_after(header, now=EXAMPLE - 90) == 90.0
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_retry_after_seconds_past_dates_and_nonsense():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 7 ") == 7.0
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=EXAMPLE + 60) == 0.0
    for bad in (None, "", "soon", "-5", "1.5", "Sun, 06 Nov 1994"):
        assert parse_retry_after(bad) is None, bad


def test_retry_after_is_a_floor_with_at_most_base_of_jitter():
    policy = RetryPolicy(max_attempts=5, base=0.5, cap=30.0, max_retry_after=120.0)
    rng = random.Random(4)
    waits = [policy.delay(1, 10.0, rng) for _ in range(300)]
    assert all(10.0 <= w <= 10.5 for w in waits) and max(waits) - min(waits) > 0.4
    assert policy.delay(1, 120.0, rng) is not None
    assert policy.delay(1, 120.5, rng) is None  # longer than a worker should sleep
    assert policy.delay(5, 1.0, rng) is None    # max_attempts reached


def test_outbox_reschedule_applies_retry_after_the_same_way():
    policy = OutboxRetry(max_attempts=8, base=1.0, cap=300.0, max_age=3600.0)
    a, b = random.Random(9), random.Random(9)
    for attempts in range(1, 8):
        # the outbox does not sleep, so even a long Retry-After is kept (as a floor)
        assert policy.next_delay(attempts, 3600.0, 0.0, a) == policy.wait(attempts, 3600.0, b)
        assert 3600.0 <= policy.wait(attempts, 3600.0, random.Random(attempts)) <= 3601.0
    assert policy.next_delay(8, None, 0.0, a) is None      # attempts used up
    assert policy.next_delay(1, None, 3600.0, a) is None   # too old
    assert astuple(OutboxRetry()) == astuple(RetryPolicy(max_attempts=8, base=1.0, cap=300.0))
    assert isinstance(OutboxRetry(), RetryPolicy)


def test_backoff_is_full_jitter_under_the_doubling_cap():
    policy = RetryPolicy(max_attempts=10, base=0.5, cap=3.0)
    rng = random.Random(2)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        waits = [policy.delay(attempt, None, rng) for _ in range(300)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8


def test_a_seed_makes_the_jitter_reproducible():
    policy = RetryPolicy(base=1.0, cap=8.0, seed=1234)
    first = [policy.delay(n, None, policy.rng()) for n in (1, 2, 3)]
    assert first == [policy.delay(n, None, policy.rng()) for n in (1, 2, 3)]
    # the seed's own stream, drawn independently: full jitter under base·2ⁿ⁻¹
    stream = random.Random(1234)
    assert policy.delay(1, None, policy.rng()) == stream.uniform(0, 1.0)
    rng = policy.rng()
    assert [policy.delay(n, None, rng) for n in (1, 2)] == \
        [(r := random.Random(1234)).uniform(0, 1.0), r.uniform(0, 2.0)]
    assert RetryPolicy().rng().random() != RetryPolicy().rng().random()  # unseeded: OS entropy


def test_mllp_client_backs_off_by_the_policy_then_reports_transient():
    with socket.socket() as s:  # a port with nobody listening: every connect is refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    slept: list[float] = []
    client = MLLPClient("127.0.0.1", port, timeout=1, retries=3, sleep=slept.append,
                        rng=random.Random(5))
    with pytest.raises(TransientError, match=f"MLLP 127.0.0.1:{port}: no reply"):
        client.send(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r")
    # 4 attempts, 3 waits: full jitter under 50 ms doubling (cap 1 s)
    assert len(slept) == 3
    assert all(0 <= w <= lim for w, lim in zip(slept, [0.05, 0.1, 0.2], strict=True))
    seeded = MLLPClient("127.0.0.1", port, retry=RetryPolicy(max_attempts=2, base=0.05,
                                                             seed=8), sleep=slept.append)
    slept.clear()
    with pytest.raises(TransientError):
        seeded.send(b"x")
    assert slept == [random.Random(8).uniform(0, 0.05)]

