"""The MA's worklist: open front-office items from the local store, the EHR and plugins."""

from .item import PRIORITY_RANK, WorklistItem, due_filter, most_urgent_first

__all__ = ["PRIORITY_RANK", "WorklistItem", "due_filter", "most_urgent_first"]
