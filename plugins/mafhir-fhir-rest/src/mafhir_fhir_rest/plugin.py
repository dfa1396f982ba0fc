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
    from .cli import pull_command, send_command

    cli.add_command(send_command)
    cli.add_command(pull_command)
