"""mafhir: a medical assistant's clinic work as US Core FHIR R4, carried by plugins."""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from .lazyexports import exporter

if TYPE_CHECKING:  # the names for type checkers; at run time they load on first use
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
    from .registry import (
        ConnectorSpec,
        Converter,
        Lifecycle,
        Mapper,
        MessageHandler,
        Profile,
        Registry,
    )
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

#: Each public name and the module it lives in: importing the package costs nothing;
#: a name loads its module when first used (``mafhir --help`` need not load SQLAlchemy).
_EXPORTS = {
    "Entry": ".bundle",
    "transaction": ".bundle",
    "Clinic": ".context",
    "MapContext": ".context",
    "InputError": ".errors",
    "MafhirError": ".errors",
    "PermanentError": ".errors",
    "PluginError": ".errors",
    "Problem": ".errors",
    "TransientError": ".errors",
    "TransitionError": ".errors",
    "ValidationFailed": ".errors",
    "hookimpl": ".hookspecs",
    "Failed": ".pipeline",
    "Mapped": ".pipeline",
    "Pipeline": ".pipeline",
    "get_registry": ".plugins",
    "ConnectorSpec": ".registry",
    "Converter": ".registry",
    "Lifecycle": ".registry",
    "Mapper": ".registry",
    "MessageHandler": ".registry",
    "Profile": ".registry",
    "Registry": ".registry",
    "ResourceSet": ".resourceset",
}


__getattr__ = exporter(__name__, globals(), _EXPORTS)
