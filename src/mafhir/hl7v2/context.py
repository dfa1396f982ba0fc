"""What a v2 converter needs besides the message: the clinic, a time zone, the time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from ..context import MapContext

__all__ = ["V2Context", "default_tz"]


def default_tz(name: str | None = None) -> tzinfo:
    """The zone of times sent without an offset: ``name``, ``$MAFHIR_TZ``, else UTC."""
    name = name or os.environ.get("MAFHIR_TZ")
    return ZoneInfo(name) if name else UTC


@dataclass(frozen=True)
class V2Context:
    """Inputs to v2 converters: pure functions get the clock and the zone as data.

    ``tz`` applies to a time with no offset when MSH-7 has none either. ``now`` stamps
    outbound messages (MSH-7); ``application`` and ``facility`` fill MSH-3/MSH-4 and the
    namespace of outbound placer order numbers.
    """

    map: MapContext = field(default_factory=MapContext)
    tz: tzinfo = UTC
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    application: str = "MAFHIR"
    facility: str = ""
    receiving: tuple[str, str] = ("", "")
    processing_id: str = "P"
