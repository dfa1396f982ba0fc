"""Code tables shipped with mafhir (CDC CVX and MVX)."""

from .vaccines import Manufacturer, Vaccine, cvx, cvx_table, mvx, mvx_table

__all__ = ["Manufacturer", "Vaccine", "cvx", "cvx_table", "mvx", "mvx_table"]
