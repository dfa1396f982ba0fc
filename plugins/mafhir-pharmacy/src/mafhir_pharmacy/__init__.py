"""mafhir pharmacy interface: prescriptions out, refill requests in, answers back."""

__version__ = "0.1.0"

__all__ = ["__version__"]
