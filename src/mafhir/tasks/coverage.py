"""The coverage task model (to be written)."""
