"""The clinic's settings read from a file: shared by the CLI, the demo, the v2 layer and the
plugins, so it lives below the CLI layer (``context.py`` would close an import circle
through ``pipeline.py``, whose validation-problem reader it uses)."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .configfile import find_config
from .context import DEFAULT_CLINIC, Clinic
from .errors import InputError, Problem
from .io import read_json
from .pipeline import problems_from_validation
from .strictjson import BOM

__all__ = ["NO_CLINIC", "load_clinic"]


#: Said once per process when no clinic is configured (see :func:`load_clinic`).
NO_CLINIC = ("warning: no clinic is configured, so identifiers are written under "
             f"{DEFAULT_CLINIC.system} — a namespace nobody chose, which a later run with "
             "the real clinic will not find. Set --clinic FILE, MAFHIR_CLINIC, or a [clinic] "
             "table in mafhir.toml (`mafhir doctor` shows which is used).")
_warned = False


def load_clinic(path: str | None, *, warn: bool = True) -> Clinic:
    """The clinic from ``path`` or ``$MAFHIR_CLINIC`` (JSON, or TOML with a ``[clinic]``
    table), else the ``[clinic]`` table of the settings file (``mafhir.toml``), else the
    default — said loudly, once, because identifiers written under a namespace nobody
    chose are not found again by a later run with the real clinic. ``warn=False``: a
    connector's own default, which the command running it replaces (``use_clinic``) and
    warns about itself."""
    path = path or os.environ.get("MAFHIR_CLINIC")
    if not path:
        config = find_config()
        if config is not None and config.suffix == ".toml" and config.is_file() and \
                isinstance(_read_toml(config.read_bytes(), config.name).get("clinic"), dict):
            path = str(config)
        else:
            if warn:
                _warn_default()
            return DEFAULT_CLINIC
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise InputError([Problem(str(file), f"cannot be read ({exc.strerror})",
                                  "not-found")]) from None
    data = _read_toml(raw, file.name) if file.suffix == ".toml" else read_json(raw, file.name)
    if not isinstance(data, dict):
        raise InputError([Problem(file.name, "must hold a JSON object (the clinic's "
                                  "settings)", "structure")])
    if "clinic" in data and isinstance(data["clinic"], dict):
        data = data["clinic"]
    try:
        return Clinic.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(exc, f"{file.name}: clinic")) from None


def _warn_default() -> None:
    global _warned
    if not _warned:
        _warned = True
        sys.stderr.write(NO_CLINIC + "\n")


def _read_toml(raw: bytes, label: str) -> dict[str, Any]:
    """A TOML file as a dict, or an InputError naming it (tomllib recurses: bound it)."""
    try:
        return tomllib.loads(raw.removeprefix(BOM).decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError([Problem(label, "is not UTF-8 text", "structure")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError([Problem(label, f"not valid TOML ({exc})", "structure")]) from None
    except RecursionError:
        raise InputError([Problem(label, "is nested too deep to read", "too-long")]) from None
