"""One item on the MA's worklist, and the order the list is shown in.

Kept free of heavy imports: plugins build these in their ``worklist_items`` hook.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

__all__ = ["KINDS", "PRIORITY_RANK", "WorklistItem", "due_filter", "most_urgent_first"]

#: What an item can be, for ``--kind``.
KINDS = ("follow_up", "result_call", "refill", "recall", "no_show", "slot", "outreach")
#: R4 request-priority, most urgent first.
PRIORITY_RANK = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}


@dataclass(frozen=True)
class WorklistItem:
    """One open item: ``id`` is what ``mafhir worklist done`` takes.

    ``patient`` is the MRN (``patient_system`` its namespace; the EHR's reference when no
    MRN is known); ``summary`` a
    short line for the MA; ``source`` where the item was read (``local``, a plugin's
    name, or the EHR's URL); ``ref`` the FHIR reference of what closing it points at.
    """

    id: str
    kind: str
    patient: str
    summary: str
    patient_system: str = ""
    due: datetime | None = None
    priority: str = "routine"
    status: str = "requested"
    source: str = "local"
    ref: str = ""

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["due"] = self.due.isoformat() if self.due else None
        return out

    def overdue(self, now: datetime) -> bool:
        return self.due is not None and self.due < now


def most_urgent_first(items: list[WorklistItem], now: datetime) -> list[WorklistItem]:
    """Overdue items first, then by priority (stat … routine), then by due time (items
    without one last), then by id so the order is stable."""
    far = datetime.max.replace(tzinfo=now.tzinfo)

    def key(item: WorklistItem) -> tuple[int, int, datetime, str]:
        return (0 if item.overdue(now) else 1, PRIORITY_RANK.get(item.priority, 3),
                item.due or far, item.id)

    return sorted(items, key=key)


def due_filter(spec: str, now: datetime) -> Any:
    """``today``, ``overdue`` or an ISO date → a predicate over items (by the due time's
    own calendar date, in its own offset)."""
    if spec == "overdue":
        return lambda item: item.overdue(now)
    day = now.date() if spec == "today" else date.fromisoformat(spec)
    return lambda item: item.due is not None and item.due.date() == day
