"""A loopback IIS stand-in: the CDC SOAP service and MLLP, VXU checks, realistic ACKs.

For tests and for a clinic's conformance testing before it is connected to its state's
registry. :mod:`.registry` documents the registry it keeps (``Registry.history`` is what
the query side reads).
"""

from .registry import DoseRecord, PatientQuery, PatientRecord, Receipt, Registry
from .server import FAULT_KINDS, StandinIIS

__all__ = ["FAULT_KINDS", "DoseRecord", "PatientQuery", "PatientRecord", "Receipt", "Registry",
           "StandinIIS"]
