"""The lab plugin's hooks: task kinds, US Core profile rules, and the v2 converters."""

from __future__ import annotations

from collections.abc import Callable

from mafhir import Mapper, Profile, hookimpl
from mafhir.registry import Converter

from . import __version__

# Each hook imports what it registers: loading the plugin (as ``mafhir --help`` does) must
# not load the v2 layer, the task models and the profile rules.

__all__ = ["__version__", "register_converters", "register_mappers", "register_profiles"]


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    from .mappers import (
        lab_order_from_fhir,
        lab_order_to_fhir,
        specimen_from_fhir,
        specimen_to_fhir,
    )
    from .tasks import LabOrder, SpecimenCollection

    # an order and the specimens collected for it go out together (one OML with its SPMs)
    register(Mapper("lab_order", LabOrder, lab_order_to_fhir, lab_order_from_fhir,
                    "tests ordered from the reference lab (US Core ServiceRequest)",
                    unit=lambda task: f"lab:{task.id}"))
    register(Mapper("specimen_collection", SpecimenCollection, specimen_to_fhir,
                    specimen_from_fhir, "a specimen collected and labelled (US Core Specimen)",
                    unit=lambda task: f"lab:{task.order}" if task.order else None))


@hookimpl
def register_profiles(register: Callable[[Profile], None]) -> None:
    from .profiles import PROFILES

    for profile in PROFILES:
        register(profile)


@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    from .orders_in import orders_to_fhir
    from .orders_out import oml_o21, orm_o01
    from .responses import orl_o22, orr_o02
    from .results import oru_to_fhir

    register(Converter("hl7v2", "ORU^R01", to_fhir=oru_to_fhir,
                       description="lab results → US Core DiagnosticReport, Observations, "
                                   "Specimen"))
    register(Converter("hl7v2", "OML^O21", to_fhir=orders_to_fhir, from_fhir=oml_o21,
                       description="lab orders (v2.5.1) ⇄ US Core ServiceRequest, Specimen; "
                                   "answered with ORL^O22",
                       respond=orl_o22))
    register(Converter("hl7v2", "ORM^O01", to_fhir=orders_to_fhir, from_fhir=orm_o01,
                       description="lab orders (legacy) ⇄ US Core ServiceRequest, Specimen; "
                                   "answered with ORR^O02",
                       respond=orr_o02))
