"""Destinations and the delivery hook.

A destination is a string stored with each item, enough to rebuild its connector in any
worker process: ``local`` / ``local:PATH`` (the embedded store), an ``http(s)://`` URL
(the FHIR REST connector), ``NAME:TARGET`` for any registered connector, or a bare
name from ``mafhir.toml`` (a FHIR server with its auth settings).

Every send goes through the ``deliver_bundle`` hook with a :class:`Delivery`, so plugins
can wrap it (``@hookimpl(wrapper=True)``) to audit it or adjust the Bundle for a vendor.
The outbox's own implementation, called innermost, hands the Bundle to the connector.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError, PermanentError, Problem
from ..plugins import get_manager, get_registry
from ..redact import CREDENTIALS_IN_URL, carries_credentials
from ..registry import Connector, Delivery, capabilities_of  # Delivery: re-exported
from ..storage import is_postgres
from .local import DEFAULT_STORE, LocalStore

__all__ = ["MAX_DESTINATION", "Delivery", "LocalConnector", "connect",
           "deliver", "resolve_destination"]

JSON = dict[str, Any]

#: The outbox column that keeps a destination (``outbox_items.destination``).
MAX_DESTINATION = 500



class LocalConnector:
    """The ``local`` connector: :class:`LocalStore` behind the Connector interface."""

    def __init__(self, target: str = "") -> None:
        self.store = LocalStore(target or DEFAULT_STORE)

    def send(self, bundle: JSON) -> JSON:
        return self.store.send(bundle)

    def close(self) -> None:
        self.store.close()


def resolve_destination(to: str | None) -> str:
    """The canonical destination string for ``--to`` (default: the local store).

    Refused here, before anything is stored: a destination with ``user:password@`` (any
    form, ``mllp:`` included) and one longer than the outbox keeps.
    """
    to = (to or "local").strip()
    if to == "local" or to.startswith("local:"):
        path = to.partition(":")[2] or DEFAULT_STORE
        if not is_postgres(path):
            resolved = f"local:{Path(path).resolve()}"  # a file name, not a URL: no userinfo
        elif carries_credentials(path):  # the user and password come from PGUSER/PGPASSWORD
            raise InputError([Problem("--to", CREDENTIALS_IN_URL, "security")])
        else:
            resolved = f"local:{path}"
    else:
        if carries_credentials(to):
            raise InputError([Problem("--to", CREDENTIALS_IN_URL, "security")])
        resolved = to.rstrip("/") if to.startswith(("http://", "https://")) else to
        # else CONNECTOR:TARGET, or a named destination of mafhir.toml (the FHIR REST
        # plugin reads it)
    if len(resolved) > MAX_DESTINATION:
        raise InputError([Problem("--to", f"is {len(resolved)} characters long; a destination "
                                          f"has at most {MAX_DESTINATION}", "too-long")])
    return resolved


def connect(destination: str, timeout: float | None = None) -> Connector:
    """A connector for ``destination``, built through the plugin registry.

    ``NAME:TARGET`` goes to the connector registered as NAME; a URL to the connector that
    claims its scheme (``ConnectorSpec.schemes``); a bare name (a server of mafhir.toml)
    to the one that claims ``https``. A connector that declares ``configure`` is told the
    timeout and to try each request once: the outbox reschedules failures itself, so a
    slow server never holds a worker in a sleep.
    """
    registry = get_registry()
    name, sep, target = destination.partition(":")
    scheme = name.lower() if sep and target.startswith("//") else None
    if sep and scheme is None and name in registry.connectors:
        connector = registry.connectors[name].factory(target)
    else:
        spec = registry.connector_for_scheme(scheme or "https")
        if spec is None:
            raise PermanentError(f"no connector can deliver to '{destination}': install "
                                 "mafhir-fhir-rest for FHIR servers", code="not-supported")
        try:
            connector = spec.factory(destination)
        except InputError:
            raise
        except Exception as exc:
            raise InputError([Problem("--to", f"cannot use this destination ({exc})",
                                      "value")]) from None
    if "configure" in capabilities_of(connector):
        connector.configure(timeout=timeout, max_attempts=1)  # type: ignore[attr-defined]
    return connector


def deliver(delivery: Delivery) -> JSON:
    """Send through the ``deliver_bundle`` hook; the connector's answer."""
    get_manager().hook.deliver_bundle(delivery=delivery)
    if delivery.response is None:
        raise PermanentError("no plugin delivered the Bundle (is mafhir.outbox.plugin "
                             "disabled?)", code="processing")
    return delivery.response
