"""The HL7 v2 layer's built-in plugin: the ``mllp`` connector through which the outbox
delivers v2 messages. (Its commands — ``convert``, ``listen``, ``hl7`` — are registered by
name in :mod:`mafhir.cli.builtin`, so that starting ``mafhir`` does not load this
package.)"""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from ..registry import ConnectorSpec

__all__ = ["register_connectors"]


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    from ..connectors.mllp import MLLPConnector

    register(ConnectorSpec("mllp", MLLPConnector,
                           "FHIR Bundles as HL7 v2 messages over MLLP: mllp:HOST:PORT/OML^O21"))
