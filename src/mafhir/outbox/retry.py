"""The outbox's defaults for the one retry policy (:mod:`mafhir.retry`).

Outbox retries reschedule the item, they never block a worker, so they can afford more
attempts and longer waits than a client sleeping in-process: 8 attempts, backoff from 1 s
up to 5 minutes, dead-lettered after a day. Permanent errors (a 400 with an
OperationOutcome) never come here: they go straight to dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..retry import RetryPolicy as _Policy
from ..retry import parse_retry_after

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy(_Policy):
    """:class:`mafhir.retry.RetryPolicy` with the outbox's defaults (same rules)."""

    max_attempts: int = 8
    base: float = 1.0
    cap: float = 300.0
