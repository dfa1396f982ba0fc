"""The one retry policy: exponential backoff with full jitter, ``Retry-After`` as a floor.

Used in two ways by the same rules, so a client and the outbox never disagree about
what a server asked for:

* :meth:`RetryPolicy.delay` — a client that waits in-process (the fhir-rest client, the
  MLLP client) before its next attempt; a ``Retry-After`` longer than ``max_retry_after``
  is not slept through (the error goes up, so an outbox can reschedule instead of
  blocking a worker);
* :meth:`RetryPolicy.next_delay` — the outbox, which reschedules an item instead of
  sleeping; the item becomes a dead letter after ``max_attempts`` or ``max_age``.

Attempt ``n`` (1-based) failed → wait ``uniform(0, min(cap, base·2ⁿ⁻¹))``; when the
server said how long (``Retry-After``, seconds or an HTTP date, read by
:func:`parse_retry_after`), wait that long plus up to ``base`` of jitter, so clients
told the same instant do not all come back at once. ``seed`` makes the jitter
reproducible (tests); without it every :meth:`RetryPolicy.rng` is seeded by the OS.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts (see the module docstring)."""

    max_attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    max_age: float = 24 * 3600.0
    seed: int | None = None

    def rng(self) -> random.Random:
        """The jitter source: seeded when ``seed`` is set, so a test sees the same waits."""
        return random.Random(self.seed)

    def wait(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1`` — the one place Retry-After is applied."""
        if retry_after is not None:
            return max(0.0, retry_after) + rng.uniform(0, self.base)
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))

    def delay(self, attempt: int, retry_after: float | None,
              rng: random.Random) -> float | None:
        """In-process: seconds to sleep before the next attempt, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        return self.wait(attempt, retry_after, rng)

    def next_delay(self, attempts: int, retry_after: float | None, age: float,
                   rng: random.Random) -> float | None:
        """Outbox: seconds until the next try after ``attempts`` failures, or None: dead."""
        if attempts >= self.max_attempts or age >= self.max_age:
            return None
        return self.wait(attempts, retry_after, rng)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent/invalid.

    A date in the past is 0 (retry now); anything else unreadable is ignored rather than
    guessed at (RFC 9110 §10.2.3).
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # asctime or "-0000": RFC 9110 dates are GMT, not local time
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
