"""Plain values the outbox passes around: an item of work, what to enqueue, a run's tally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Item", "NewItem", "Outcome", "Tally"]


@dataclass(frozen=True, slots=True)
class NewItem:
    """Work to write to the outbox before anything is sent."""

    destination: str
    okey: str
    idem_key: str
    payload: bytes
    source: str = ""
    kind: str = ""


@dataclass(slots=True)
class Item:
    """One row of the outbox as a worker sees it."""

    id: int
    destination: str
    okey: str
    idem_key: str
    payload: bytes
    state: str
    attempts: int
    source: str = ""
    kind: str = ""
    last_error: str | None = None
    outcome: str | None = None
    result: str | None = None
    reason: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    next_at: float = 0.0

    @classmethod
    def from_row(cls, row: Any) -> Item:
        m = row._mapping
        return cls(m["id"], m["destination"], m["okey"], m["idem_key"], bytes(m["payload"]),
                   m["state"], m["attempts"], m["source"], m["kind"], m["last_error"],
                   m["outcome"], m["result"], m["reason"], m["created_at"], m["updated_at"],
                   m["next_at"])


@dataclass
class Tally:
    """What a run did: the final summary of ``mafhir sync``."""

    enqueued: int = 0
    skipped: int = 0  # already in the outbox (same input, same destination)
    quarantined: int = 0
    sent: int = 0
    unchanged: int = 0
    retried: int = 0
    dead: int = 0
    writes: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


@dataclass(slots=True)
class Outcome:
    """What became of one claimed item: ``result`` sent / unchanged, or failed."""

    item: Item
    worker: str
    started: float
    result: str
    writes: int = 0
    ledger_rows: list[dict[str, Any]] = field(default_factory=list)
    audit_rows: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    status: int | None = None
    retry_in: float | None = None
    outcome: str | None = None
