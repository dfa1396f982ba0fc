"""The ``mllp`` connector: FHIR Bundles leave as HL7 v2 messages over MLLP.

This is how v2 work goes through the outbox like any other: ``mafhir sync --to
mllp:HOST:PORT/OML^O21 orders.ndjson`` writes the work durably first, and the outbox's
retries, per-patient order and dead letters apply. The Bundle is written as the named
message type by the registered converter (``hl7v2:OML^O21``…); the receiver's ACK decides:
AA/CA delivered, AR/CR retried (the receiver could not take it now), AE/CE dead-lettered
with the receiver's reason. A lab may answer an order with ORL^O22 / ORR^O02 instead of a
bare ACK; an order it refuses there (ORC-1 ``UA``, ``UC``…) is dead-lettered too, naming
the order by its placer number (ORC-2) and giving the lab's ERR text: re-sending the same
order would be refused again. A retried message keeps its MSH-10, so a receiver with
duplicate detection answers it once.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from ..context import MapContext
from ..errors import PermanentError, TransientError
from ..hl7v2.ack import Ack, read_ack
from ..hl7v2.context import V2Context
from ..hl7v2.convert import from_fhir
from ..hl7v2.message import parse
from ..hl7v2.mllp import MLLPClient
from ..hl7v2.patients import close_lookup, default_lookup, with_patients
from ..plugins import get_registry
from ..resourceset import ResourceSet

__all__ = ["MLLPConnector"]

JSON = dict[str, Any]


class MLLPConnector:
    """Sends each Bundle as one ``message_type`` message to ``HOST:PORT``.

    ``target`` is ``HOST:PORT/MESSAGE_TYPE[?receiving=APP^FACILITY]`` (``^`` may be
    written ``%5E``); ``receiving`` fills MSH-5 and MSH-6. The clinic
    (MSH-4, order-number namespaces) comes from ``MAFHIR_CLINIC`` unless ``ctx`` is given.
    """

    #: See :data:`mafhir.registry.CAPABILITIES`: the outbox sends each Bundle whole, as
    #: one message (no FHIR-server bookkeeping), and tells it the clinic and the timeout.
    capabilities = frozenset({"whole_bundles", "use_clinic", "configure"})

    def __init__(self, target: str, ctx: V2Context | None = None, timeout: float = 30.0):
        target, _, query = str(target).partition("?")
        address, _, message_type = target.partition("/")
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit() or not message_type:
            raise PermanentError(f"mllp needs HOST:PORT/MESSAGE_TYPE[?receiving=APP^FACILITY] "
                                 f"(e.g. mllp:lab.example.org:2575/OML^O21), got {target!r}",
                                 code="value")
        options = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(options) - {"receiving"})
        if unknown:
            raise PermanentError(f"mllp: unknown option {unknown[0]!r} (known: receiving)",
                                 code="value")
        self.message_type = unquote(message_type)
        self.fixed_time = ctx is not None  # a given context keeps its clock (tests)
        if ctx is None:
            from ..clinic import load_clinic

            ctx = V2Context(map=MapContext(clinic=load_clinic(os.environ.get("MAFHIR_CLINIC"),
                                                                warn=False)))
        if "receiving" in options:  # MSH-5^MSH-6: the receiving application and facility
            app, _, facility = options["receiving"][-1].partition("^")
            ctx = replace(ctx, receiving=(app, facility))
        self.ctx = ctx
        self.client = MLLPClient(host or "127.0.0.1", int(port), timeout=timeout, retries=0)
        self.patients = default_lookup()  # where PID's demographics are read (patients.py)

    def use_clinic(self, clinic: Any) -> None:
        """Write MSH-4 and the order-number namespaces for this clinic (``sync --clinic``)."""
        self.ctx = replace(self.ctx, map=MapContext(clinic=clinic))

    def configure(self, *, timeout: float | None = None,
                  max_attempts: int | None = None) -> None:
        """How long to wait for the ACK, and how many connections to try per send."""
        if timeout is not None:
            self.client.timeout = timeout
        if max_attempts is not None:
            self.client.retry = replace(self.client.retry, max_attempts=max(1, max_attempts))

    def send(self, bundle: JSON) -> JSON:
        ctx = self.ctx if self.fixed_time else replace(self.ctx, now=datetime.now(UTC))
        resources = ResourceSet.from_bundle(bundle)  # + patients named only by MRN, for PID
        subjects = [r.get("subject") or r.get("for") for r in resources]
        with_patients(resources, subjects, self.patients)
        text = from_fhir(get_registry(), self.message_type, resources, ctx)
        ack = read_ack(self.client.send(text))  # network trouble: TransientError
        reason = "; ".join(ack.errors) or ack.text or "no reason given"
        if ack.accepted:
            out: dict[str, Any] = {"message": self.message_type, "ack": ack.code,
                                   "acknowledges": ack.acked_id}
            if ack.order_controls:
                out.update(reply=ack.message_type, orders=list(ack.order_controls))
            return out
        if ack.refused_orders and ack.code not in ("AR", "CR"):
            raise PermanentError(f"the receiver refused {_refused(ack)} in its "
                                 f"{ack.message_type} to the {self.message_type}: {reason}",
                                 code="business-rule")
        if ack.code in ("AR", "CR"):
            raise TransientError(f"the receiver rejected the {self.message_type} for now "
                                 f"({ack.code}): {reason}")
        raise PermanentError(f"the receiver answered {ack.code} to the {self.message_type}: "
                             f"{reason}")

    def close(self) -> None:
        self.client.close()
        close_lookup(self.patients)


def _refused(ack: Ack) -> str:
    """The refused orders by placer number (ORC-2.1, else OBR-2.1) and ORC-1 code."""
    try:
        reply = parse(ack.text)
        orcs = reply.all("ORC")
        obrs = reply.all("OBR")
    except Exception:  # the reply was readable once (read_ack); be safe all the same
        orcs, obrs = [], []
    named = []
    for n in ack.refused_orders:
        orc = orcs[n - 1] if n <= len(orcs) else None
        placer = (orc.get(2) if orc is not None else "") or \
            (obrs[n - 1].get(2) if n <= len(obrs) else "")
        named.append(f"order {placer!r} (ORC-1 {ack.order_controls[n - 1]})" if placer
                     else f"order {n} (ORC-1 {ack.order_controls[n - 1]})")
    return ", ".join(named)
