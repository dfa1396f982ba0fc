"""The iis plugin's hooks (filled in as its parts land)."""

from __future__ import annotations

from collections.abc import Callable

from mafhir import hookimpl
from mafhir.registry import Converter

from . import __version__

__all__ = ["__version__", "register_converters"]


# --- w4: registry answers and doses coming in (VXU in, RSP^K11) -------------------------
@hookimpl
def register_converters(register: Callable[[Converter], None]) -> None:
    from .vxu_in import vxu_to_fhir

    register(Converter("hl7v2", "VXU^V04", to_fhir=vxu_to_fhir,
                       description="immunizations reported (VXU^V04) → US Core "
                                   "Immunization + Patient"))
