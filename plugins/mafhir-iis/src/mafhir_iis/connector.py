"""The ``iis`` connector: ``mafhir sync --to iis:NAME`` reports each dose to a registry.

Each Bundle the outbox holds (one ``immunization`` task, or any Bundle with Immunizations
of one patient) goes out whole as one VXU^V04, over the registry's transport from
``mafhir.toml [iis.NAME]``: the CDC SOAP service (:mod:`.soap`) or MLLP (the shared
:class:`mafhir.hl7v2.MLLPClient`). The outbox keeps it ordered per patient, retries what
is transient and dead-letters what is not; the registry's ACK decides (:mod:`.ack`):
AA delivered, AE with warnings only delivered with the warnings returned (the outbox
records them with the delivery), AE with an error and AR dead-lettered with the
registry's own text. A VXU the guide would refuse (no birth date, no CVX…) is not sent:
an InputError naming the fields, dead-lettered at once.

Patients named only by MRN are read from the clinic's store first
(:mod:`mafhir.hl7v2.patients`), as for every v2 channel.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mafhir.context import MapContext
from mafhir.hl7v2 import MLLPClient, V2Context, parse
from mafhir.hl7v2.patients import close_lookup, default_lookup, with_patients
from mafhir.resourceset import ResourceSet

from .ack import outcome, read_iis_ack
from .config import IisConfig, load_iis
from .soap import SoapClient
from .vxu_out import vxu_v04

__all__ = ["IisConnector"]

JSON = dict[str, Any]


class IisConnector:
    """Sends each Bundle's doses as one VXU^V04 to registry ``target`` (a name of
    ``mafhir.toml [iis.NAME]``), or to the registry ``config`` describes (tests)."""

    #: The outbox sends each Bundle whole (one VXU), tells it the clinic and the timeout.
    capabilities = frozenset({"whole_bundles", "use_clinic", "configure"})

    def __init__(self, target: str, config: IisConfig | None = None,
                 ctx: V2Context | None = None) -> None:
        self.config = config or load_iis(target)
        self.settings = self.config.settings()
        self.fixed_time = ctx is not None  # a given context keeps its clock (tests)
        if ctx is None:
            from mafhir.clinic import load_clinic

            # the command running it names the clinic (use_clinic) and warns if none
            ctx = V2Context(map=MapContext(clinic=load_clinic(os.environ.get("MAFHIR_CLINIC"),
                                                              warn=False)))
        self.ctx = ctx
        self.soap: SoapClient | None = None
        self.mllp: MLLPClient | None = None
        if self.config.transport == "soap":
            self.soap = SoapClient(self.config.url, self.config.credentials(),
                                   self.config.facility_id, timeout=self.config.timeout,
                                   verify=self.config.verify)
        else:
            host, _, port = self.config.mllp.rpartition(":")
            self.mllp = MLLPClient(host, int(port), timeout=self.config.timeout, retries=0)
        self.patients = default_lookup()

    def __repr__(self) -> str:
        return f"IisConnector({self.config.name!r}, {self.config.transport})"

    def use_clinic(self, clinic: Any) -> None:
        """The clinic whose identifiers PID-3 carries (``sync --clinic``)."""
        self.ctx = replace(self.ctx, map=MapContext(clinic=clinic))

    def configure(self, *, timeout: float | None = None,
                  max_attempts: int | None = None) -> None:
        """How long to wait for the registry, and how many tries per send."""
        if self.soap is not None:
            if timeout is not None:
                self.soap.timeout = timeout
            if max_attempts is not None:
                self.soap.retry = replace(self.soap.retry, max_attempts=max(1, max_attempts))
        if self.mllp is not None:
            if timeout is not None:
                self.mllp.timeout = timeout
            if max_attempts is not None:
                self.mllp.retry = replace(self.mllp.retry, max_attempts=max(1, max_attempts))

    def message(self, bundle: JSON) -> str:
        """The VXU^V04 this Bundle goes out as (InputError naming what the guide misses)."""
        ctx = self.ctx if self.fixed_time else replace(self.ctx, now=datetime.now(UTC))
        resources = ResourceSet.from_bundle(bundle)
        with_patients(resources, [r.get("patient") for r in resources.of_type("Immunization")],
                      self.patients)
        return vxu_v04(resources, ctx, self.settings)

    def send(self, bundle: JSON) -> JSON:
        text = self.message(bundle)
        control = parse(text).control_id
        if self.soap is not None:
            reply: str | bytes = self.soap.submit(text)
        else:
            assert self.mllp is not None
            reply = self.mllp.send(text)  # network trouble: TransientError
        return outcome(read_iis_ack(reply), control)

    def close(self) -> None:
        if self.soap is not None:
            self.soap.close()
        if self.mllp is not None:
            self.mllp.close()
        close_lookup(self.patients)
