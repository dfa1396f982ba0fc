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
    from .cli import serve_command, users_group

    cli.add_command(serve_command)
    cli.add_command(users_group)
