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

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import InputError, PermanentError, Problem
from ..plugins import get_manager, get_registry
from ..redact import CREDENTIALS_IN_URL, carries_credentials
from ..registry import Connector, Delivery  # Delivery: re-exported, defined beside Connector
from .local import DEFAULT_STORE, LocalStore

__all__ = ["MAX_DESTINATION", "Delivery", "LocalConnector", "connect",
           "deliver", "resolve_destination"]

JSON = dict[str, Any]

#: The outbox column that keeps a destination (``outbox_items.destination``).
MAX_DESTINATION = 500

FHIR_CONNECTORS = ("fhir-rest", "fhir")


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
        resolved = f"local:{Path(path).resolve()}"  # a file name, not a URL: no userinfo
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

    A FHIR client is told to try each request once (``max_attempts=1``): the outbox
    reschedules failures itself, so a slow server never holds a worker in a sleep.
    """
    registry = get_registry()
    name, sep, target = destination.partition(":")
    if sep and name in registry.connectors and not destination.startswith(("http:", "https:")):
        return registry.connectors[name].factory(target)
    spec = next((registry.connectors[n] for n in FHIR_CONNECTORS if n in registry.connectors),
                None)
    if spec is None:
        raise PermanentError(f"no connector can deliver to '{destination}': install "
                             "mafhir-fhir-rest for FHIR servers")
    try:
        connector = spec.factory(destination)
    except InputError:
        raise
    except Exception as exc:
        raise InputError([Problem("--to", f"cannot use this destination ({exc})")]) from None
    client = getattr(connector, "client", None)
    retry = getattr(client, "retry", None)
    if retry is not None and dataclasses.is_dataclass(retry):
        client.retry = dataclasses.replace(retry, max_attempts=1)
    if timeout is not None and client is not None and hasattr(client, "timeout"):
        client.timeout = (min(5.0, timeout), timeout)
    return connector


def deliver(delivery: Delivery) -> JSON:
    """Send through the ``deliver_bundle`` hook; the connector's answer."""
    get_manager().hook.deliver_bundle(delivery=delivery)
    if delivery.response is None:
        raise PermanentError("no plugin delivered the Bundle (is mafhir.outbox.plugin "
                             "disabled?)")
    return delivery.response
