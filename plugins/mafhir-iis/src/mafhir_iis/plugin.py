"""The iis plugin's hooks (filled in as its parts land)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mafhir import hookimpl
from mafhir.registry import ConnectorSpec, Converter

from . import __version__

if TYPE_CHECKING:
    import click

__all__ = ["__version__", "register_commands", "register_connectors", "register_converters"]


# ---------------------------------------------------------------- part 1 (w3): VXU out,
# the outbox destination, ping and the stand-in. One Converter per message type: the
# VXU^V04 reader (VXU in) joins the same Converter as ``to_fhir``.
@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    from .vxu_in import vxu_to_fhir  # part 2 (w4): VXU in
    from .vxu_out import vxu_from_fhir

    register(Converter("hl7v2", "VXU^V04", to_fhir=vxu_to_fhir, from_fhir=vxu_from_fhir,
                       description="US Core Immunization ⇄ VXU^V04 (CDC IG profile Z22)"))


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    from .connector import IisConnector

    register(ConnectorSpec("iis", IisConnector,
                           "an immunization registry of mafhir.toml [iis.NAME]: each dose as "
                           "a VXU^V04 over the CDC SOAP service or MLLP, its ACK checked"))


@hookimpl
def register_commands(cli: click.Group) -> None:
    from mafhir.cli.lazy import add_lazy_command

    # loaded when run: the registry's SOAP and v2 code is not needed for `mafhir --help`
    add_lazy_command(cli, "iis", "mafhir_iis.commands:iis_group",
                     "Immunization registries (IIS): doses out (VXU), history and forecast "
                     "back (QBP).")
# ---------------------------------------------------------------- end of part 1
