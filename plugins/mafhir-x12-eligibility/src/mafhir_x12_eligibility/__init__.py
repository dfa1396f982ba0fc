"""mafhir payer eligibility: X12 270 out, 271/TA1/999 in, over the CAQH CORE
connectivity rule."""

__version__ = "0.1.0"

__all__ = ["__version__"]
