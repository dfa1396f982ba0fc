"""The hooks of the FHIR REST plugin: the ``fhir-rest`` connector and two commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mafhir.hookspecs import hookimpl
from mafhir.registry import ConnectorSpec

if TYPE_CHECKING:
    import click

__all__ = ["register_commands", "register_connectors"]


def _factory(target: str):
    from .connector import FhirRestConnector

    return FhirRestConnector(target)


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("fhir-rest", _factory,
                           "FHIR R4 REST server: transaction Bundles, retries, SMART auth",
                           schemes=("http", "https")))


@hookimpl
def register_commands(cli: click.Group) -> None:
    from mafhir.cli.lazy import add_lazy_command

    add_lazy_command(cli, "send", "mafhir_fhir_rest.cli:send_command",
                     "Send a FHIR Bundle, or tasks (mapped and validated first), to a FHIR "
                     "server.")
    add_lazy_command(cli, "pull", "mafhir_fhir_rest.cli:pull_command",
                     "Read from a FHIR server: NDJSON on stdout, one resource (or task) per "
                     "line.")
