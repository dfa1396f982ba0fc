"""The immunization task model (to be written)."""
