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


#: name → (module:attribute, short help): loaded when run (SQLAlchemy is not needed before)
COMMANDS = {
    "sync": ("mafhir.outbox.cli:sync_command", "Enqueue tasks or transaction Bundles (JSON, "
             "NDJSON; '-' for stdin) and deliver them."),
    "outbox": ("mafhir.outbox.cli:outbox_group",
               "Inspect the outbox: counts, dead letters, replay and discard."),
    "worker": ("mafhir.outbox.cli:worker_command",
               "Run one worker process on the outbox (start several on PostgreSQL)."),
}


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
    from ..cli.lazy import add_lazy_command

    for name, (target, short_help) in COMMANDS.items():
        add_lazy_command(cli, name, target, short_help)
