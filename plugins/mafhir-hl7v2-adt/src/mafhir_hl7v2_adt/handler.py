"""The listener's handlers for the schedule and registration feeds.

:class:`ScheduleHandler` (SIU) decides, per appointment id, whether an event is applied:
a booking (S12) or any event for a booked appointment that is newer than the last one
applied is converted and delivered; an older one is kept in the store and not applied
(AA with a warning: a newer state stands); an event for an id never booked is held for
**review** (AE, ERR ``business-rule``, kept in the store and in the feed's table) and
applied, in time order, once its booking arrives — so an S14 before its S12 still ends
as one Appointment in the S14's state.

:class:`RegistrationHandler` (ADT) converts and delivers without the "patient known"
check (the registration feed is where patients become known); on an A40 it then
re-points the local store and the outbox's pending work from the merged-away patient to
the survivor (``--set adt.local-store=PATH|URL``, ``--set adt.outbox=PATH|URL``, else
``$MAFHIR_OUTBOX``; with neither, the ACK says nothing was re-pointed).
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from mafhir.errors import InputError, MafhirError, Problem
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.convert import ConvertHandler
from mafhir.hl7v2.datatypes import DtmError, read_dtm
from mafhir.hl7v2.message import Message, parse
from mafhir.hl7v2.receiver import Outcome
from mafhir.identity import identifier_query

from .siu import BOOKING, appointment_key
from .state import ScheduleState

__all__ = ["STATE_ENV", "RegistrationHandler", "ScheduleHandler", "event_time", "state_path"]

log = logging.getLogger(__name__)
#: Where the schedule feed's table lives unless ``--set adt.state=PATH|URL`` says.
STATE_ENV = "MAFHIR_ADT_STATE"
DEFAULT_STATE = "mafhir-hl7v2-adt.sqlite"


def state_path(settings: dict[str, str] | None = None) -> str:
    return (settings or {}).get("adt.state") or os.environ.get(STATE_ENV) or DEFAULT_STATE


def event_time(msg: Message, ctx: V2Context) -> str:
    """MSH-7 as UTC (``YYYY-MM-DDTHH:MM:SS.ffffff``, ordered as text); InputError naming
    MSH-7 when it is missing or cannot be read (events could not be ordered)."""
    text = msg.msh.get(7)
    if not text:
        raise InputError([Problem("MSH-7", "the message time is missing: events of an "
                                           "appointment are ordered by it", "required")])
    zone = ctx.zone(msg.msh.get(3), msg.msh.get(4))
    try:
        value = read_dtm(text, zone.tz if zone is not None else None)
    except DtmError as exc:
        raise InputError([Problem("MSH-7", exc.reason, exc.code)]) from exc
    when = datetime.fromisoformat(value if "T" in value else f"{value}T00:00:00+00:00")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


class ScheduleHandler:
    """SIU^S12–S26 in order per appointment (see the module docstring)."""

    def __init__(self, setup: Any) -> None:
        self.ctx: V2Context = setup.ctx
        self.state = ScheduleState(state_path(dict(setup.settings)))
        # the schedule feed is where appointments (and their patients) come from: no
        # "patient known" check; identity is still checked (the PID's MRN authority)
        self.convert = ConvertHandler(setup.registry, setup.ctx, setup.deliver, None,
                                      strict=bool(setup.strict), settings=setup.settings)

    def __call__(self, msg: Message) -> Outcome:
        try:
            ident, _ = appointment_key(msg, self.ctx)
            when = event_time(msg, self.ctx)
        except InputError as exc:
            return Outcome("error", exc.problems)
        key = identifier_query(ident["system"], ident["value"])
        trigger = msg.msh.get(9, 2).upper()
        sch = msg.first("SCH")
        where = "SCH-2" if sch is not None and sch.get(2) else "SCH-1"
        with self.state.locked(key):
            known = self.state.get(key)
            if known is None and trigger != BOOKING:
                self.state.hold(key, when, trigger, msg.control_id, msg.text.encode("utf-8"))
                return Outcome("review", (Problem(
                    where, f"no booking (S12) has been received for this appointment id; "
                           f"the {trigger} is held for review and applied if its booking "
                           f"arrives", "business-rule"),))
            if known is not None and when < known.event_time:
                return Outcome("processed", warnings=(Problem(
                    "MSH-7", f"older than the last event applied to this appointment "
                             f"({known.trigger}); kept in the store, not applied",
                    "conflict"),))
            outcome = self.convert(msg)
            if outcome.status != "processed":
                return outcome
            self.state.applied(key, when, trigger, msg.control_id)
            self._apply_held(key, when)
            return outcome

    def _apply_held(self, key: str, latest: str) -> None:
        """The events held for ``key``, newer than ``latest``, applied oldest first;
        older ones are superseded (released, still in the message store)."""
        for held in self.state.held_for(key):
            if held.event_time < latest:
                log.info("held %s superseded by a newer event (kept in the store)",
                         held.trigger)
                self.state.release(held.id)
                continue
            outcome = self.convert(parse(held.message.decode("utf-8")))
            if outcome.status == "processed":
                self.state.applied(key, held.event_time, held.trigger, held.control_id)
                self.state.release(held.id)
                latest = held.event_time
            else:
                log.warning("held %s not applied (%s); it stays held", held.trigger,
                            outcome.status)

    def close(self) -> None:
        self.state.close()


class RegistrationHandler:
    """ADT in: convert and deliver; on an A40 also re-point the local store and outbox."""

    def __init__(self, setup: Any) -> None:
        self.ctx: V2Context = setup.ctx
        self.settings = dict(setup.settings)
        self.convert = ConvertHandler(setup.registry, setup.ctx, setup.deliver, None,
                                      strict=bool(setup.strict), settings=setup.settings)

    def __call__(self, msg: Message) -> Outcome:
        outcome = self.convert(msg)
        if outcome.status != "processed" or msg.msh.get(9, 2).upper() != "A40":
            return outcome
        from dataclasses import replace

        from .merge import repoint

        local = self.settings.get("adt.local-store")
        outbox = self.settings.get("adt.outbox") or os.environ.get("MAFHIR_OUTBOX")
        if not (local or outbox):  # said, not silently skipped
            return replace(outcome, warnings=(*outcome.warnings, Problem(
                "MRG-1", "no local store or outbox is configured (--set adt.local-store=…, "
                         "adt.outbox=… or MAFHIR_OUTBOX): nothing kept here was re-pointed",
                "incomplete")))
        try:
            moved = repoint(msg, self.ctx, local, outbox)
        except MafhirError as exc:
            problem = Problem("MRG-1", f"the merge was delivered but its re-pointing "
                                       f"failed ({type(exc).__name__})",
                              "transient" if exc.transient else "processing")
            return Outcome("retry" if exc.transient else "error", (problem,))
        log.info("A40: %d stored resources and %d pending outbox items re-pointed", *moved)
        return outcome
