"""Options shared by several commands."""

from __future__ import annotations

import click

from ..clinic import load_clinic  # re-exported: older imports keep working

__all__ = ["clinic_option", "load_clinic"]


clinic_option = click.option(
    "--clinic", "clinic_path", type=click.Path(exists=True, dir_okay=False),
    help="Clinic settings (JSON, or TOML with a [clinic] table); env MAFHIR_CLINIC.",
)
