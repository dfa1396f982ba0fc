"""The pharmacy plugin's hooks: task kinds, profile rules, v2 converters, channels, commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mafhir import Mapper, Profile, hookimpl
from mafhir.registry import ConnectorSpec, Converter, MessageHandler

from . import __version__

if TYPE_CHECKING:
    import click

__all__ = ["__version__", "register_commands", "register_connectors", "register_converters",
           "register_handlers", "register_mappers", "register_profiles", "worklist_path"]

#: Where the refill worklist lives unless ``--set pharmacy.worklist=PATH`` says otherwise.
WORKLIST_ENV = "MAFHIR_PHARMACY_WORKLIST"
DEFAULT_WORKLIST = "mafhir-pharmacy.sqlite"


def worklist_path(settings: dict[str, str] | None = None) -> str:
    """The worklist file: the listener's setting, else ``$MAFHIR_PHARMACY_WORKLIST``."""
    import os

    return (settings or {}).get("pharmacy.worklist") or os.environ.get(WORKLIST_ENV) or \
        DEFAULT_WORKLIST


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    from .mappers import mappers

    for mapper in mappers():
        register(mapper)


@hookimpl
def register_profiles(register: Callable[[Profile], None]) -> None:
    from .profiles import PROFILES

    for profile in PROFILES:
        register(profile)


@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    from .v2in import rde_o11_to_fhir, refill_requests_to_fhir
    from .v2out import rde_o11, rre_o26

    register(Converter("hl7v2", "RDE^O11", to_fhir=rde_o11_to_fhir, from_fhir=rde_o11,
                       description="prescriptions (pharmacy encoded order) ⇄ US Core "
                                   "MedicationRequest"))
    register(Converter("hl7v2", "RDE^O25", to_fhir=refill_requests_to_fhir,
                       description="refill authorization requests → worklist Tasks"))
    register(Converter("hl7v2", "OMP^O09", to_fhir=refill_requests_to_fhir,
                       description="pharmacy treatment orders sent as refill requests → "
                                   "worklist Tasks"))
    register(Converter("hl7v2", "RRE^O26", from_fhir=rre_o26,
                       description="refill decisions → refill authorization acknowledgment"))


class _WorklistHandler:
    """The refill handler with the worklist it opened (closed with the listener)."""

    def __init__(self, setup: Any) -> None:
        from .worklist import LocalWorklist, RefillHandler

        self.worklist = LocalWorklist(worklist_path(dict(setup.settings)))
        self.handle = RefillHandler(setup.registry, setup.ctx, self.worklist, setup.deliver)

    def __call__(self, msg: Any) -> Any:
        return self.handle(msg)

    def close(self) -> None:
        self.worklist.close()


@hookimpl
def register_handlers(register: Callable[[MessageHandler], None]) -> None:
    register(MessageHandler("hl7v2", ("RDE^O25", "OMP^O09"), _WorklistHandler,
                            "refill requests → the pharmacy worklist"))


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    from .channels import FhirPharmacy, V2Pharmacy

    register(ConnectorSpec("pharmacy-fhir", FhirPharmacy,
                           "a pharmacy's FHIR endpoint: MedicationRequests posted, "
                           "MedicationDispense followed"))
    register(ConnectorSpec("pharmacy-v2", V2Pharmacy,
                           "a pharmacy system over HL7 v2 MLLP (HOST:PORT): RDE^O11 per "
                           "prescription, RRE^O12/ACK checked"))


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .cli import pharmacy_group

    cli.add_command(pharmacy_group)
