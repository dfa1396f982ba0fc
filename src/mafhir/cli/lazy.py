"""Commands that load when they are run, not when ``mafhir`` starts.

Every command module pulls in what it works with (SQLAlchemy for the outbox, requests and
PyJWT for FHIR servers, the models for validation); loading them all cost every command —
``--help`` and ``--version`` included — over a second of CPU. A plugin names its command
and where it lives; the module is imported only when that command is run (or its own
``--help`` is asked for). The group's ``--help`` lists each with the short help given here,
which a test keeps equal to the command's own.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

__all__ = ["LazyGroup", "add_lazy_command", "load_target"]


def load_target(target: str) -> click.Command:
    """``module:attribute`` → the click command it names."""
    module, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module), attr)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


class LazyGroup(click.Group):
    """A click group whose commands may be given as ``module:attribute`` to load later."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def add_lazy(self, name: str, target: str, short_help: str) -> None:
        self.lazy[name] = (target, short_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load_target(self.lazy[cmd_name][0]), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        rows = []
        for name in self.list_commands(ctx):
            if name in self.commands:
                cmd = self.commands[name]
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                rows.append((name, _shorten(self.lazy[name][1], limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


def add_lazy_command(cli: click.Group, name: str, target: str, short_help: str) -> None:
    """Add ``target`` (``module:attribute``) to ``cli`` as ``name``: loaded when run if the
    group can wait (the ``mafhir`` group), else now."""
    if isinstance(cli, LazyGroup):
        cli.add_lazy(name, target, short_help)
    else:
        cli.add_command(load_target(target), name)
