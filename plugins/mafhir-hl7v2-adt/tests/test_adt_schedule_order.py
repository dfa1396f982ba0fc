"""The schedule handler's ordering rules, with its table on SQLite and on PostgreSQL: what
is delivered, in which order, for each arrival order (the listener test proves the same
over a real socket; this one walks the cases)."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.routing import HandlerSetup, RoutingHandler
from mafhir.plugins import get_registry, reset

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from store_helpers import BACKENDS, locations

CLINIC = Clinic(name="Maple Street Family Clinic", system="urn:mafhir:test:order")
CTX = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("America/Chicago"),
                namespaces={"CLINIC": CLINIC.mrn_namespace})


def siu(trigger: str, minute: int, appt: str = "APT-7") -> str:
    """An SIU sent at 09:<minute> whose visit starts at 1<minute % 10>:00 (so each
    event's state is told apart by its start)."""
    hour = 10 + minute % 10
    return (f"MSH|^~\\&|EHR|CLINIC|MAFHIR|CLINIC|2026112709{minute:02d}00-0500||"
            f"SIU^{trigger}^SIU_S12|C-{trigger}-{minute}|P|2.5.1\r"
            f"SCH||{appt}^EHR|||||ROUTINE^^HL70276||20|min|"
            f"^^20^20261201{hour}0000-0500^20261201{hour}2000-0500||||||||||||||Booked\r"
            f"PID|1||M-7^^^CLINIC^MR||Roe^Ann||19700101|F\r")


@pytest.fixture(params=BACKENDS)
def handler(request, tmp_path):
    reset()
    delivered: list[dict] = []
    with ExitStack() as stack:
        at = locations(request.param, tmp_path, stack)
        routing = RoutingHandler(HandlerSetup(get_registry(), CTX, delivered.append,
                                              settings={"adt.state": at("state")}))
        routing.delivered = delivered  # type: ignore[attr-defined]
        yield routing
        routing.close()
    reset()


def states(handler) -> list[tuple[str, str]]:
    """(status, start hour) of each Appointment delivered, in delivery order."""
    out = []
    for bundle in handler.delivered:
        (appt,) = [e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Appointment"]
        out.append((appt["status"], appt["start"][11:13]))
    return out


def test_in_order_each_event_applies(handler):
    assert handler(parse(siu("S12", 1))).status == "processed"
    assert handler(parse(siu("S14", 2))).status == "processed"
    assert handler(parse(siu("S15", 3))).status == "processed"
    assert states(handler) == [("booked", "11"), ("booked", "12"), ("cancelled", "13")]


def test_an_older_event_is_kept_not_applied(handler):
    handler(parse(siu("S12", 1)))
    handler(parse(siu("S14", 5)))
    late = handler(parse(siu("S13", 3)))
    assert late.status == "processed"
    assert [(p.location, p.code) for p in late.warnings] == [("MSH-7", "conflict")]
    assert states(handler) == [("booked", "11"), ("booked", "15")]


def test_modification_then_cancel_before_the_booking_apply_after_it_in_order(handler):
    for trigger, minute in (("S15", 4), ("S14", 2)):  # both newer than the booking
        held = handler(parse(siu(trigger, minute)))
        assert held.status == "review"
        assert [(p.location, p.code) for p in held.problems] == [("SCH-2", "business-rule")]
    assert states(handler) == []  # nothing delivered for an id never booked
    assert handler(parse(siu("S12", 1))).status == "processed"
    assert states(handler) == [("booked", "11"), ("booked", "12"), ("cancelled", "14")]


def test_a_held_event_older_than_the_booking_is_superseded(handler):
    handler(parse(siu("S15", 1)))
    handler(parse(siu("S12", 3)))
    assert states(handler) == [("booked", "13")]
    assert handler(parse(siu("S26", 6))).status == "processed"  # later events still apply
    assert states(handler)[-1] == ("noshow", "16")


def test_ids_are_kept_apart(handler):
    handler(parse(siu("S12", 1, "APT-1")))
    assert handler(parse(siu("S14", 2, "APT-2"))).status == "review"
    assert states(handler) == [("booked", "11")]


def test_no_event_but_a_booking_starts_an_appointment(handler):
    """Every trigger other than S12 (S13 reschedule … S26 no-show) for an id never booked
    is held for review with its reason; nothing is delivered."""
    for n in range(13, 27):
        held = handler(parse(siu(f"S{n}", n % 60, f"APT-{n}")))
        assert held.status == "review", n
        (problem,) = held.problems
        assert (problem.location, problem.code) == ("SCH-2", "business-rule")
        assert problem.message.startswith("no booking (S12) has been received for this "
                                          "appointment id")
    assert states(handler) == []
