"""Entry point: build the click group, then let every plugin add its commands."""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import MafhirError, exit_code
from ..plugins import get_manager
from .logs import configure_logging

__all__ = ["build_cli", "main"]


def build_cli() -> click.Group:
    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="mafhir")
    def cli() -> None:
        """mafhir: a medical assistant's clinic work as US Core FHIR R4.

        Tasks (vitals, immunization, appointment, coverage, and what plugins add) are
        mapped to FHIR, validated, and delivered through plugins.
        """

    get_manager().hook.register_commands(cli=cli)
    return cli


def main(argv: list[str] | None = None) -> None:
    try:
        configure_logging()  # before any plugin or library can log: redacted, libraries held
        cli = build_cli()
    except MafhirError as exc:
        click.echo(f"mafhir: {exc}", err=True)
        sys.exit(exit_code(exc))  # a broken plugin: PluginError, 2
    cli.main(args=argv, prog_name="mafhir")
