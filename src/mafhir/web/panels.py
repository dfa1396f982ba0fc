"""Pages that plugins add to the dashboard (``register_dashboard_panels``), e.g. the
pharmacy plugin's refill worklist: a title, columns and rows, nothing else to import.

Rows are shown to every signed-in user, so a panel gives no patient data (no names, MRNs
or birth dates): ids, states and dates of the work are what an MA's list needs here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Panel", "collect_panels"]


@dataclass(frozen=True)
class Panel:
    """One page of the dashboard, at ``/panels/<name>``."""

    name: str
    title: str
    columns: tuple[str, ...]
    #: The rows now (each as many strings as ``columns``); empty when there is nothing.
    rows: Callable[[], Sequence[Sequence[str]]]
    description: str = ""


def collect_panels() -> list[Panel]:
    """Every panel the installed plugins register, by name (a name registered twice is
    an error naming it, as for connectors)."""
    from ..errors import PluginError
    from ..plugins import get_manager

    panels: dict[str, Panel] = {}

    def register(panel: Panel) -> None:
        if panel.name in panels:
            raise PluginError(f"dashboard panel {panel.name!r} is registered twice")
        panels[panel.name] = panel

    get_manager().hook.register_dashboard_panels(register=register)
    return [panels[n] for n in sorted(panels)]
