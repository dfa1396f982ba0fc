"""The HL7 v2 layer's built-in plugin: the ``convert``, ``listen`` and ``hl7`` commands, and the
``mllp`` connector through which the outbox delivers v2 messages."""

from __future__ import annotations

from collections.abc import Callable

import click

from ..hookspecs import hookimpl
from ..registry import ConnectorSpec

__all__ = ["register_commands", "register_connectors"]


#: name → (module:attribute, short help): loaded when run
COMMANDS = {
    "convert": ("mafhir.hl7v2.cli:convert_command", "Convert an HL7 v2 message to FHIR "
                "(--from hl7v2) or FHIR to HL7 v2 (--to hl7v2)."),
    "listen": ("mafhir.hl7v2.cli:listen_command", "Receive HL7 v2 over MLLP: store, convert "
               "or hand to a plugin, acknowledge (Ctrl-C stops)."),
    "hl7": ("mafhir.hl7v2.send_cli:hl7_group",
            "Raw HL7 v2 over MLLP: send files of messages, listen for them."),
}


@hookimpl
def register_commands(cli: click.Group) -> None:
    from ..cli.lazy import add_lazy_command

    for name, (target, short_help) in COMMANDS.items():
        add_lazy_command(cli, name, target, short_help)


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    from ..connectors.mllp import MLLPConnector

    register(ConnectorSpec("mllp", MLLPConnector,
                           "FHIR Bundles as HL7 v2 messages over MLLP: mllp:HOST:PORT/OML^O21"))
