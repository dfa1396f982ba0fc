"""mafhir lab interface: lab orders and specimen collection out, results in (HL7 v2.5.1)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
