"""The x12_eligibility plugin's hooks: the ``x12`` destination, the ``x12:271``/``x12:270``
converters and the ``mafhir eligibility`` commands.

Imports are inside the hooks: loading the plugin (every ``mafhir`` command does) must not
pull in pyx12, requests or defusedxml until the plugin is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mafhir import ConnectorSpec, hookimpl
from mafhir.registry import Converter

from . import __version__

if TYPE_CHECKING:
    import click

__all__ = ["__version__", "register_commands", "register_connectors", "register_converters"]


def _connector(target: str) -> Any:
    from .connector import X12Connector

    return X12Connector(target)


def _from_271(message: Any, ctx: Any) -> dict[str, Any]:
    from .fhir import bundle_from_271

    text = message.decode("utf-8") if isinstance(message, bytes) else str(message)
    return bundle_from_271(text, ctx)


def _to_270(resources: Any, ctx: Any) -> str:
    from .convert import convert_to_270

    return convert_to_270(resources, ctx)


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("x12", _connector, "payer eligibility: 270 out, 271 in, over "
                                              "CAQH CORE (x12:NAME, a [x12.NAME] partner)"))


@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    register(Converter("x12", "271", to_fhir=_from_271,
                       description="eligibility answer → CoverageEligibilityResponse (+ card)"))
    register(Converter("x12", "270", from_fhir=_to_270,
                       description="CoverageEligibilityRequest → 270 (005010X279A1)"))


@hookimpl
def register_commands(cli: click.Group) -> None:
    from mafhir.cli.lazy import add_lazy_command

    # by name: pyx12 and the CORE transport load only when the command runs
    add_lazy_command(cli, "eligibility", "mafhir_x12_eligibility.cli:eligibility_group",
                     "Payer eligibility (X12 270/271 over CAQH CORE): check, standin, show.")
