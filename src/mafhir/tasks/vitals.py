"""The vitals task model (to be written)."""
