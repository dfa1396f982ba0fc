"""Options shared by several commands."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import click
import orjson
from pydantic import ValidationError

from ..context import DEFAULT_CLINIC, Clinic
from ..errors import InputError
from ..pipeline import problems_from_validation

__all__ = ["clinic_option", "load_clinic"]


def load_clinic(path: str | None) -> Clinic:
    """The clinic from a JSON or TOML file (``[clinic]`` table), or the default."""
    path = path or os.environ.get("MAFHIR_CLINIC")
    if not path:
        return DEFAULT_CLINIC
    file = Path(path)
    if file.suffix == ".toml":
        data = tomllib.loads(file.read_text())
    else:
        data = orjson.loads(file.read_bytes())
    if "clinic" in data and isinstance(data["clinic"], dict):
        data = data["clinic"]
    try:
        return Clinic.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(exc, f"{file.name}: clinic")) from None


clinic_option = click.option(
    "--clinic", "clinic_path", type=click.Path(exists=True, dir_okay=False),
    help="Clinic settings (JSON, or TOML with a [clinic] table); env MAFHIR_CLINIC.",
)
