"""The dashboard's built-in plugin: the ``serve`` and ``users`` commands (the web stack
itself is imported only when they run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    import click

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: click.Group) -> None:
    from ..cli.lazy import add_lazy_command

    # by name: the web stack (and the outbox's SQLAlchemy) load only when one of them runs
    add_lazy_command(cli, "serve", "mafhir.web.cli:serve_command",
                     "The web dashboard: outbox, dead letters, inbound messages, behind a "
                     "login.")
    add_lazy_command(cli, "users", "mafhir.web.cli:users_group",
                     "Users of the dashboard (mafhir serve): add, list, token, remove, "
                     "unlock.")
