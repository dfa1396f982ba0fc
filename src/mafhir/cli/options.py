"""Options shared by several commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..lazyexports import exporter

if TYPE_CHECKING:
    from ..clinic import load_clinic

__all__ = ["clinic_option", "load_clinic"]

#: ``load_clinic`` is re-exported for older imports, and loaded when first read: the clinic
#: module pulls in the pipeline, which a command that only declares the option does not need.
__getattr__ = exporter(__name__, globals(), {"load_clinic": "mafhir.clinic"})


clinic_option = click.option(
    "--clinic", "clinic_path", type=click.Path(exists=True, dir_okay=False),
    help="Clinic settings (JSON, or TOML with a [clinic] table); env MAFHIR_CLINIC.",
)
