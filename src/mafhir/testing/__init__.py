"""mafhir.testing: the conformance kits for connector and mapper plugins.

One line in a plugin's tests generates a suite that runs the connector against a real
FHIR R4 server (SEKMET, started on a free loopback port, or ``MAFHIR_TEST_FHIR_URL``)::

    from mafhir.testing import connector_suite

    TestConformance = connector_suite("my-connector")

See ``docs/connectors.md``; for task kinds, :func:`check_mapper` / :func:`mapper_suite`
(``docs/plugins.md``). The pieces are usable on their own: :func:`fhir_server`,
:func:`check_contract` (the declared capabilities, no server needed),
:class:`FaultProxy` (429/503/dropped/slow/HTML answers on demand) and :class:`TokenServer`
(a SMART Backend Services token endpoint that verifies client assertions).
"""

from __future__ import annotations

from .certs import self_signed_certificate
from .contract import check_contract
from .mapper_kit import check_mapper, mapper_suite
from .proxy import Fault, FaultProxy, Seen, strip_next_link
from .server import FhirServer, ServerUnavailable, fhir_server, free_port, start_fhir_server
from .suite import AuthSpec, connector_suite
from .tokenserver import TokenServer

__all__ = [
    "AuthSpec",
    "Fault",
    "FaultProxy",
    "FhirServer",
    "Seen",
    "ServerUnavailable",
    "TokenServer",
    "check_contract",
    "check_mapper",
    "connector_suite",
    "fhir_server",
    "free_port",
    "mapper_suite",
    "self_signed_certificate",
    "start_fhir_server",
    "strip_next_link",
]
