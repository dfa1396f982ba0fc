"""The schedule and registration feeds' hooks: v2 converters (``mafhir convert``) and
the listener's handlers (``mafhir listen``: order per appointment, merges re-pointed).

Each hook imports what it registers: mafhir loads every plugin at start-up, and
``mafhir --help`` must not load the v2 layer.
"""

from __future__ import annotations

from collections.abc import Callable

from mafhir import hookimpl
from mafhir.registry import Converter, MessageHandler

from . import __version__

__all__ = ["ADT_TYPES", "SIU_TYPES", "__version__", "register_converters",
           "register_handlers"]

#: The SIU triggers taken (S12 book … S26 no-show).
SIU_TYPES = tuple(f"SIU^S{n}" for n in range(12, 27))
#: The ADT triggers taken: registration (A04/A08/A28/A31), visits (A01/A03), merge (A40).
ADT_TYPES = ("ADT^A01", "ADT^A03", "ADT^A04", "ADT^A08", "ADT^A28", "ADT^A31", "ADT^A40")


@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    from .adt import adt_to_fhir, merge_to_fhir
    from .siu import siu_to_fhir

    for message_type in SIU_TYPES:
        register(Converter("hl7v2", message_type, to_fhir=siu_to_fhir,
                           description="the EHR's schedule → Appointment (conditional on "
                                       "the EHR's appointment id)"))
    for message_type in ADT_TYPES[:-1]:
        register(Converter("hl7v2", message_type, to_fhir=adt_to_fhir,
                           description="registration → US Core Patient, RelatedPerson, "
                                       "Coverage; visits → US Core Encounter"))
    register(Converter("hl7v2", "ADT^A40", to_fhir=merge_to_fhir,
                       description="patient merge → Patient.link replaces / replaced-by"))


def _schedule(setup: object) -> Callable[[object], object]:
    from .handler import ScheduleHandler

    return ScheduleHandler(setup)  # type: ignore[return-value]


def _registration(setup: object) -> Callable[[object], object]:
    from .handler import RegistrationHandler

    return RegistrationHandler(setup)  # type: ignore[return-value]


@hookimpl
def register_handlers(register: Callable[[MessageHandler], None]) -> None:
    register(MessageHandler("hl7v2", SIU_TYPES, _schedule,
                            "the EHR's schedule → Appointments, in event order per "
                            "appointment id"))
    register(MessageHandler("hl7v2", ADT_TYPES, _registration,
                            "the EHR's registrations, visits and merges"))
