"""What a product given to a patient carries, shared by vaccines and other injections.

One rule lives here so that it is the same everywhere: a lot that had expired on the day
it was given is refused (a dose from an expired lot may not work, and the record would
hide it). The lot number itself is an identifier as the clinic writes it.
"""

from __future__ import annotations

from datetime import date, datetime

from .common import Lot

__all__ = ["EXPIRED_LOT", "Lot", "lot_expired"]

#: The refusal, in the clinic's words, at ``expiration_date``.
EXPIRED_LOT = "the lot had expired on the administration date"


def lot_expired(expiration: date | None, given: datetime | None) -> bool:
    """Had the lot expired on the day ``given`` (local date)? Good through its expiry day."""
    return expiration is not None and given is not None and expiration < given.date()
