"""The ``fhir-rest`` connector: mafhir's :class:`~mafhir.registry.Connector` over FhirClient."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from .client import FhirClient, SendResult
from .config import client_for

__all__ = ["FhirRestConnector"]

JSON = dict[str, Any]


class FhirRestConnector:
    """Delivers transaction Bundles to a FHIR R4 server (a URL or a mafhir.toml name)."""

    #: See :data:`mafhir.registry.CAPABILITIES`.
    capabilities = frozenset({"configure", "search"})

    def __init__(self, target: str | FhirClient, config_path: str | None = None) -> None:
        self.client = target if isinstance(target, FhirClient) else client_for(target,
                                                                               config_path)
        self.last: SendResult | None = None

    def send(self, bundle: JSON) -> JSON:
        """Send; the summary counts only what the server accepted (else it raises)."""
        self.last = self.client.send(bundle)
        return {"resourceType": "Bundle", "type": f"{self.last.mode}-response",
                "entry": [{"response": {"status": e.status,
                                        **({"location": e.location} if e.location else {}),
                                        **({"etag": e.etag} if e.etag else {})}}
                          for e in self.last.entries]}

    def configure(self, *, timeout: float | None = None,
                  max_attempts: int | None = None) -> None:
        """Read timeout ``timeout`` (connecting takes at most 5 s of it); ``max_attempts``
        tries per request, the client's backoff between them."""
        if timeout is not None:
            self.client.timeout = (min(5.0, timeout), timeout)
        if max_attempts is not None:
            self.client.retry = dataclasses.replace(self.client.retry,
                                                    max_attempts=max(1, max_attempts))

    def search(self, resource_type: str, params: Any = None) -> Iterator[JSON]:
        return self.client.search(resource_type, params)

    def close(self) -> None:
        self.client.close()
