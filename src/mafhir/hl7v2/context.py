"""What a v2 converter needs besides the message: the clinic, the senders' zones and
namespaces, the time.

Times without an offset are the *sender's* local time and identifiers are the sender's
namespaces; neither can be guessed, so both come from configuration (per sender, else
the clinic's settings). With no zone configured a converter refuses such a time instead
of pinning it to UTC (design: "Principles for what comes in", rule 3).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..context import MapContext
from ..errors import InputError, Problem

__all__ = ["V2Context", "Zone", "default_tz", "zone_named"]


@dataclass(frozen=True, slots=True)
class Zone:
    """A zone applied to times sent without an offset, and where it came from (stated in
    the conversion's warnings so nobody has to guess which zone was used)."""

    tz: tzinfo
    name: str
    source: str
    per_sender: bool = False


def zone_named(name: str, where: str = "--tz") -> ZoneInfo:
    """The IANA zone ``name``; InputError naming ``where`` when there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError([Problem(where, f"{name!r} is not an IANA time zone (e.g. "
                                         "America/Chicago)", "value")]) from exc


def default_tz(name: str | None = None) -> tzinfo | None:
    """The zone of times sent without an offset: ``name``, else ``$MAFHIR_TZ``, else None
    (no zone configured: such times are refused, never pinned to UTC)."""
    name = name or os.environ.get("MAFHIR_TZ")
    return zone_named(name) if name else None


@dataclass(frozen=True)
class V2Context:
    """Inputs to v2 converters: pure functions get the clock and the zone as data.

    ``tz`` is the receiver's zone for times without an offset (``--tz``); ``sender_tz``
    names a zone per sender (``APP^FACILITY``, ``FACILITY`` or ``APP`` → IANA name) and
    wins over it; the clinic's ``time_zone`` comes last. ``namespaces`` maps an
    assigning authority (CX-4 namespace id or universal id) to an identifier system;
    the clinic's MRN authority maps to the clinic's MRN system. ``patient_update`` lets
    an inbound PID overwrite the Patient (default: create only if none exists).
    ``now`` stamps outbound messages (MSH-7); ``application`` and ``facility`` fill
    MSH-3/MSH-4 and the namespace of outbound placer order numbers.
    """

    map: MapContext = field(default_factory=MapContext)
    tz: tzinfo | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    application: str = "MAFHIR"
    facility: str = ""
    receiving: tuple[str, str] = ("", "")
    processing_id: str = "P"
    sender_tz: Mapping[str, str] = field(default_factory=dict)
    namespaces: Mapping[str, str] = field(default_factory=dict)
    patient_update: bool = False

    def zone(self, application: str, facility: str) -> Zone | None:
        """The configured zone of a sender's times without an offset (None: none set)."""
        for key in (f"{application}^{facility}", facility, application):
            if key and key != "^" and key in self.sender_tz:
                name = self.sender_tz[key]
                return Zone(zone_named(name, f"sender_tz[{key}]"), name,
                            f"the zone configured for sender {key}", per_sender=True)
        if self.tz is not None:
            return Zone(self.tz, str(getattr(self.tz, "key", self.tz)),
                        "the receiver's configured zone")
        clinic_tz = getattr(self.map.clinic, "time_zone", None)
        if clinic_tz:
            return Zone(zone_named(clinic_tz, "clinic.time_zone"), clinic_tz,
                        "the clinic's time zone")
        return None

    def namespaces_for(self, sender: str) -> Mapping[str, str]:
        """The assigning-authority table for one sender (``APP|FACILITY``, first components):
        entries scoped to it (``APP^FACILITY|AUTH``, ``FACILITY|AUTH`` or ``APP|AUTH``; the
        v2 field separator cannot be part of an authority) over unscoped ones (``AUTH``,
        which the operator has said hold for every sender). Entries scoped to another
        sender never apply: its ``MRN`` is not this one's."""
        app, _, facility = sender.partition("|")
        scopes = [f"{app}^{facility}", facility, app]
        table = {k: v for k, v in self.namespaces.items() if "|" not in k}
        for scope in reversed(scopes):  # the most specific wins
            if not scope or scope == "^":
                continue
            prefix = f"{scope}|"
            table.update({k[len(prefix):]: v for k, v in self.namespaces.items()
                          if k.startswith(prefix)})
        return table

    def authority_system(self, *names: str) -> str | None:
        """The identifier system configured for an assigning authority (first name found)."""
        for name in names:
            if name and name in self.namespaces:
                return self.namespaces[name]
        return None
