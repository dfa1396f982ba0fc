"""When a failed delivery is tried again, and when it becomes a dead letter.

Exponential backoff with full jitter (``uniform(0, min(cap, base·2ⁿ⁻¹))``); a server's
``Retry-After`` is a floor. After ``max_attempts`` failures, or when the item is older
than ``max_age`` seconds, it is dead-lettered with its reason instead. Permanent errors
(a 400 with an OperationOutcome) never come here: they go straight to dead letters.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Outbox-level retries: they reschedule the item, they never block a worker."""

    max_attempts: int = 8
    base: float = 1.0
    cap: float = 300.0
    max_age: float = 24 * 3600.0

    def next_delay(self, attempts: int, retry_after: float | None, age: float,
                   rng: random.Random) -> float | None:
        """Seconds until the next try after ``attempts`` failures, or None: dead-letter."""
        if attempts >= self.max_attempts or age >= self.max_age:
            return None
        delay = rng.uniform(0, min(self.cap, self.base * 2 ** (attempts - 1)))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay
