"""The HL7 v2 layer's built-in plugin: the ``convert``, ``listen`` and ``hl7`` commands, and the
``mllp`` connector through which the outbox delivers v2 messages."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..hookspecs import hookimpl
from ..registry import ConnectorSpec

__all__ = ["register_commands", "register_connectors"]


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .cli import convert_command, listen_command
    from .send_cli import hl7_group

    cli.add_command(convert_command)
    cli.add_command(listen_command)
    cli.add_command(hl7_group)


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    from ..connectors.mllp import MLLPConnector

    register(ConnectorSpec("mllp", MLLPConnector,
                           "FHIR Bundles as HL7 v2 messages over MLLP: mllp:HOST:PORT/OML^O21"))
