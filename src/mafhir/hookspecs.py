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

    from .registry import ConnectorSpec, Converter, Delivery, Mapper, MessageHandler, Profile
    from .web.panels import Panel
    from .worklist import WorklistItem

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


# ---------------------------------------------------------------- delivery: each send
@hookspec
def deliver_bundle(delivery: Delivery) -> None:
    """Deliver one Bundle of the outbox; wrap it (``@hookimpl(wrapper=True)``) to audit it
    or adjust the Bundle for a vendor before it goes out.

    The outbox's own implementation runs innermost and sets ``delivery.response``; a
    wrapper changes ``delivery.bundle`` before its ``yield`` and sees the response (or
    the error, raised at the ``yield``) after it.

    :param delivery: a :class:`mafhir.registry.Delivery`.
    """


# ---------------------------------------------------------------- conversion
@hookspec
def register_converters(register: Callable[[Converter], None]) -> None:
    """Register message converters (HL7 v2 ORU^R01 in, OML^O21 out, …) for ``mafhir convert``.

    :param register: call once per :class:`mafhir.registry.Converter`.
    """


# ---------------------------------------------------------------- inbound messages
@hookspec
def register_handlers(register: Callable[[MessageHandler], None]) -> None:
    """Take inbound messages of some types on ``mafhir listen`` (a refill request onto the
    worklist…) instead of converting and delivering them.

    :param register: call once per :class:`mafhir.registry.MessageHandler`.
    """


# ---------------------------------------------------------------- the MA's worklist
@hookspec
def worklist_items() -> list[WorklistItem]:
    """The open items a plugin keeps for the MA (refill requests waiting…), shown by
    ``mafhir worklist`` beside the local store's and the EHR's: one list, not one per
    plugin. Return :class:`mafhir.worklist.WorklistItem`; closing them stays the
    plugin's own command (say which in ``summary``).
    """
    return []


# ---------------------------------------------------------------- command line
@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``mafhir`` command line.

    :param cli: the top-level click group; use ``@cli.command()``.
    """


# ---------------------------------------------------------------- the dashboard
@hookspec
def register_dashboard_panels(register: Callable[[Panel], None]) -> None:
    """Add a page to ``mafhir serve`` (the pharmacy plugin's refill worklist…): a title,
    columns and a function giving the rows, without patient data.

    :param register: call once per :class:`mafhir.web.panels.Panel`.
    """
