"""The hooks of mafhir: every plugin, the built-in ones included, implements some of these.

Hooks receive a ``register`` callback rather than returning lists, so that mafhir checks
what each plugin registers in one place and can say which plugin got it wrong. Each hook
is documented with a runnable example in ``docs/plugins.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from .registry import ConnectorSpec, Mapper, Profile

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "mafhir"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------- task kinds and mapping
@hookspec
def register_mappers(register: Callable[[Mapper], None]) -> None:
    """Register task kinds: a task model and its pure mappers to and from FHIR.

    :param register: call once per :class:`mafhir.registry.Mapper`.
    """


# ---------------------------------------------------------------- validation
@hookspec
def register_profiles(register: Callable[[Profile], None]) -> None:
    """Register the rules of FHIR profiles (e.g. US Core) that ``mafhir validate`` checks.

    :param register: call once per :class:`mafhir.registry.Profile`.
    """


# ---------------------------------------------------------------- delivery
@hookspec
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    """Register destinations that transaction Bundles can be delivered to.

    :param register: call once per :class:`mafhir.registry.ConnectorSpec`.
    """


# ---------------------------------------------------------------- command line
@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``mafhir`` command line.

    :param cli: the top-level click group; use ``@cli.command()``.
    """
