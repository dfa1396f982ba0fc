"""mafhir-fhir-rest: MA work to any FHIR R4 server over REST, and the EHR's data back."""

from __future__ import annotations

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
