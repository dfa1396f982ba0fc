"""The appointment task model (to be written)."""
