"""mafhir: a medical assistant's clinic work as US Core FHIR R4, carried by plugins."""

from __future__ import annotations

__version__ = "0.1.0"

from .bundle import Entry, transaction
from .context import Clinic, MapContext
from .errors import (
    InputError,
    MafhirError,
    PermanentError,
    PluginError,
    Problem,
    TransientError,
    TransitionError,
    ValidationFailed,
)
from .hookspecs import hookimpl
from .pipeline import Failed, Mapped, Pipeline
from .plugins import get_registry
from .registry import ConnectorSpec, Converter, Lifecycle, Mapper, MessageHandler, Profile, Registry
from .resourceset import ResourceSet

__all__ = [
    "Clinic",
    "ConnectorSpec",
    "Converter",
    "Entry",
    "Failed",
    "InputError",
    "Lifecycle",
    "MafhirError",
    "MapContext",
    "Mapped",
    "Mapper",
    "MessageHandler",
    "PermanentError",
    "Pipeline",
    "PluginError",
    "Problem",
    "Profile",
    "Registry",
    "ResourceSet",
    "TransientError",
    "TransitionError",
    "ValidationFailed",
    "__version__",
    "get_registry",
    "hookimpl",
    "transaction",
]
