"""The outbox's built-in plugin: the ``local`` destination, the delivery hook, the commands.

Registered like any installed plugin (``mafhir.plugins.BUILTIN_PLUGINS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..hookspecs import hookimpl
from ..registry import ConnectorSpec

if TYPE_CHECKING:
    import click

    from .delivery import Delivery

__all__ = ["deliver_bundle", "register_commands", "register_connectors"]


def _local(target: str):
    from .delivery import LocalConnector

    return LocalConnector(target)


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("local", _local,
                           "embedded FHIR store in SQLite (type, id, version, identifier)"))


@hookimpl(trylast=True)
def deliver_bundle(delivery: Delivery) -> None:
    """Innermost: hand the Bundle to the destination's connector."""
    delivery.response = delivery.connector.send(delivery.bundle)


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .cli import outbox_group, sync_command, worker_command

    for command in (sync_command, outbox_group, worker_command):
        cli.add_command(command)
