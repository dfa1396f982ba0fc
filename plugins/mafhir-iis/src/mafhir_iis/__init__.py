"""mafhir immunization registry interface: VXU^V04 out, ACK^V04 and RSP^K11 in,
over the CDC SOAP transport and MLLP."""

__version__ = "0.1.0"

__all__ = ["__version__"]
