"""The ``mafhir iis`` command group, whole: ping, the stand-in and query (loaded only when
``mafhir iis`` is run; see ``plugin.register_commands``)."""

from __future__ import annotations

from .cli import iis_group
from .query_cli import query_command

iis_group.add_command(query_command)

__all__ = ["iis_group"]
