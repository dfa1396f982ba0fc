"""mafhir-fhir-rest: MA work to any FHIR R4 server over REST, and the EHR's data back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mafhir.lazyexports import exporter

if TYPE_CHECKING:  # the names for type checkers; at run time they load on first use
    from .auth import BasicAuth, BearerAuth, Secret, SigningKey, SmartBackendAuth
    from .client import Capabilities, EntryResult, FhirClient, RetryPolicy, SendResult
    from .connector import FhirRestConnector
    from .errors import (
        FhirHttpError,
        PartialDelivery,
        PermanentHttpError,
        PreconditionFailed,
        ProtocolError,
        TransactionRejected,
        TransientHttpError,
        Unsupported,
    )

    __version__ = "0.1.0"

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "Capabilities",
    "EntryResult",
    "FhirClient",
    "FhirHttpError",
    "FhirRestConnector",
    "PartialDelivery",
    "PermanentHttpError",
    "PreconditionFailed",
    "ProtocolError",
    "RetryPolicy",
    "Secret",
    "SendResult",
    "SigningKey",
    "SmartBackendAuth",
    "TransactionRejected",
    "TransientHttpError",
    "Unsupported",
    "__version__",
]

#: Each public name and the module it lives in: importing the package costs nothing;
#: a name loads its module when first used (``mafhir --help`` need not load SQLAlchemy).
_EXPORTS = {
    "BasicAuth": ".auth",
    "BearerAuth": ".auth",
    "Secret": ".auth",
    "SigningKey": ".auth",
    "SmartBackendAuth": ".auth",
    "Capabilities": ".client",
    "EntryResult": ".client",
    "FhirClient": ".client",
    "RetryPolicy": ".client",
    "SendResult": ".client",
    "FhirRestConnector": ".connector",
    "FhirHttpError": ".errors",
    "PartialDelivery": ".errors",
    "PermanentHttpError": ".errors",
    "PreconditionFailed": ".errors",
    "ProtocolError": ".errors",
    "TransactionRejected": ".errors",
    "TransientHttpError": ".errors",
    "Unsupported": ".errors",
}


__getattr__ = exporter(__name__, globals(), _EXPORTS)
