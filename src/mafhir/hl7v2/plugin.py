"""The HL7 v2 layer's built-in plugin: the ``convert`` and ``listen`` commands."""

from __future__ import annotations

import click

from ..hookspecs import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .cli import convert_command, listen_command

    cli.add_command(convert_command)
    cli.add_command(listen_command)
