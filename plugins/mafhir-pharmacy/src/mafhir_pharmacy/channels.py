"""The transport seam: how a prescription leaves the clinic, and how it is followed.

A *channel* is an ordinary mafhir connector (``register_connectors``): ``send(bundle)``
delivers a transaction Bundle's MedicationRequests, ``close()`` lets go, and the class
attribute ``carries_controlled`` says whether it may carry a controlled substance. Two
ship here:

* ``pharmacy-fhir`` (:class:`FhirPharmacy`) — the pharmacy's FHIR R4 endpoint: the Bundle
  is posted with :class:`mafhir_fhir_rest.FhirClient`; :meth:`FhirPharmacy.follow` reads
  the ``MedicationDispense`` of a prescription (polled) so the MA sees "dispensed" or "not
  picked up".
* ``pharmacy-v2`` (:class:`V2Pharmacy`) — a pharmacy system over HL7 v2 MLLP: one RDE^O11
  per patient, sent with the shared :class:`mafhir.hl7v2.MLLPClient`; the RRE^O12 (or
  plain ACK) must be AA/CA, else the send fails with the pharmacy's ERR text.

NCPDP SCRIPT (NewRx, RxRenewalRequest/Response through Surescripts) is licensed and not
implemented. It fits the same seam: a plugin registers a ``ConnectorSpec("pharmacy-script",
…)`` whose ``send`` writes NewRx from the same MedicationRequests and sets
``carries_controlled = True`` once its route is EPCS-certified; refill requests it
receives become ``refill_request`` tasks like the v2 ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mafhir.cli.options import load_clinic
from mafhir.context import MapContext
from mafhir.errors import InputError, PermanentError, Problem
from mafhir.hl7v2 import MLLPClient, V2Context, read_ack
from mafhir.identity import identifier_query
from mafhir.resourceset import ResourceSet

from .codes import CONTROLLED_TAG, RXNORM, known_drug

__all__ = ["DispenseStatus", "FhirPharmacy", "V2Pharmacy", "controlled_entries"]

JSON = dict[str, Any]


def controlled_entries(bundle: JSON) -> list[Problem]:
    """Every MedicationRequest of ``bundle`` that is a controlled substance, located."""
    problems = []
    for i, entry in enumerate(bundle.get("entry", []) or []):
        mr = entry.get("resource") or {}
        if mr.get("resourceType") != "MedicationRequest":
            continue
        tag = next((t.get("code") for t in (mr.get("meta") or {}).get("tag", [])
                    if t.get("system") == CONTROLLED_TAG), None)
        rx = next((c.get("code") for c in (mr.get("medicationCodeableConcept") or {})
                   .get("coding", []) if c.get("system") == RXNORM), None)
        drug = known_drug(rx) if rx else None
        schedule = tag or (drug.schedule if drug else None)
        if schedule:
            problems.append(Problem(f"entry[{i}]", f"a schedule {schedule[1:]} controlled "
                                                   "substance cannot go by this channel; send "
                                                   "it by EPCS (NCPDP SCRIPT) or on paper"))
    return problems


@dataclass(frozen=True)
class DispenseStatus:
    """What became of a prescription at the pharmacy."""

    state: str  # pending | in-progress | dispensed | not-picked-up | not-dispensed
    prescription: str | None = None  # the server's MedicationRequest/<id>
    dispense: str | None = None  # MedicationDispense/<id>
    handed_over: str | None = None


def _dispense_state(md: JSON, now: datetime, pickup_days: int) -> str:
    status = md.get("status")
    if status == "completed" and md.get("whenHandedOver"):
        return "dispensed"
    if status in ("declined", "stopped", "cancelled", "entered-in-error"):
        return "not-picked-up" if md.get("whenPrepared") else "not-dispensed"
    prepared = md.get("whenPrepared")
    if prepared:
        when = datetime.fromisoformat(str(prepared).replace("Z", "+00:00"))
        if when.tzinfo and now - when > timedelta(days=pickup_days):
            return "not-picked-up"
    return "in-progress"


class FhirPharmacy:
    """A pharmacy's FHIR endpoint (a URL or a mafhir.toml destination name)."""

    carries_controlled = False

    def __init__(self, target: Any, clinic_system: str | None = None,
                 pickup_days: int = 14) -> None:
        from mafhir_fhir_rest import FhirClient
        from mafhir_fhir_rest.config import client_for

        self.client = target if isinstance(target, FhirClient) else client_for(str(target))
        self.clinic_system = clinic_system
        self.pickup_days = pickup_days

    def use_clinic(self, clinic: Any) -> None:
        """Follow prescriptions in this clinic's identifier namespace."""
        self.clinic_system = clinic.system

    def send(self, bundle: JSON) -> JSON:
        problems = controlled_entries(bundle)
        if problems:
            raise InputError(problems)
        return self.client.send(bundle).summary()

    def search(self, resource_type: str, params: Any = None):
        return self.client.search(resource_type, params)

    def follow(self, rx_id: str, now: datetime | None = None) -> DispenseStatus:
        """The latest MedicationDispense of the clinic's prescription ``rx_id``."""
        system = self.clinic_system or f"{load_clinic(None).system}"
        query = identifier_query(f"{system}/prescription", rx_id).split("=", 1)[1]
        found = list(self.client.search("MedicationRequest", {"identifier": query}))
        if not found:
            raise InputError([Problem("prescription", f"no MedicationRequest for prescription "
                                                      f"'{rx_id}' at the pharmacy")])
        ref = f"MedicationRequest/{found[0]['id']}"
        dispenses = list(self.client.search("MedicationDispense", {"prescription": ref}))
        if not dispenses:
            return DispenseStatus("pending", ref)
        now = now or datetime.now(UTC)
        states = [(_dispense_state(md, now, self.pickup_days), md) for md in dispenses]
        order = ("dispensed", "in-progress", "not-picked-up", "not-dispensed")
        state, md = min(states, key=lambda s: order.index(s[0]))
        return DispenseStatus(state, ref, f"MedicationDispense/{md['id']}",
                              md.get("whenHandedOver"))

    def wait_for_dispense(self, rx_id: str, timeout: float = 30.0, interval: float = 0.5,
                          sleep: Callable[[float], None] = time.sleep) -> DispenseStatus:
        """Poll :meth:`follow` until the pharmacy has acted or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.follow(rx_id)
            if status.state != "pending" or time.monotonic() >= deadline:
                return status
            sleep(interval)

    def close(self) -> None:
        self.client.close()


class V2Pharmacy:
    """A pharmacy system over MLLP at ``HOST:PORT``: RDE^O11 out, RRE^O12/ACK checked."""

    carries_controlled = False
    whole_bundles = True  # the outbox sends each Bundle whole, as one message

    def __init__(self, target: str, ctx: V2Context | None = None, timeout: float = 30.0) -> None:
        host, _, port = str(target).rpartition(":")
        if not port.isdigit():
            raise PermanentError(f"pharmacy-v2 needs HOST:PORT, got {target!r}")
        self.fixed_time = ctx is not None  # a given context keeps its clock (tests)
        self.ctx = ctx or V2Context(map=MapContext(clinic=load_clinic(None)))
        self.client = MLLPClient(host or "127.0.0.1", int(port), timeout=timeout)

    def use_clinic(self, clinic: Any) -> None:
        """Write MSH-4 and the order namespaces for this clinic."""
        self.ctx = V2Context(map=MapContext(clinic=clinic), tz=self.ctx.tz,
                             receiving=self.ctx.receiving)

    def send(self, bundle: JSON) -> JSON:
        from .v2out import rde_o11

        problems = controlled_entries(bundle)
        if problems:
            raise InputError(problems)
        by_patient: dict[str, list[tuple[str | None, JSON]]] = {}
        others: list[tuple[str | None, JSON]] = []
        for entry in bundle.get("entry", []) or []:
            res = entry.get("resource") or {}
            if res.get("resourceType") == "MedicationRequest":
                by_patient.setdefault(str(res.get("subject")), []).append(
                    (entry.get("fullUrl"), res))
            else:
                others.append((entry.get("fullUrl"), res))
        acks = []
        for orders in by_patient.values():
            ctx = V2Context(map=self.ctx.map, tz=self.ctx.tz, receiving=self.ctx.receiving,
                            now=self.ctx.now if self.fixed_time else datetime.now(UTC))
            text = rde_o11(ResourceSet([*others, *orders]), ctx)
            ack = read_ack(self.client.send(text))
            if not ack.accepted:
                raise PermanentError(f"the pharmacy answered {ack.code} to {len(orders)} "
                                     f"prescription(s): {'; '.join(ack.errors) or 'no reason'}")
            acks.append({"ack": ack.code, "acknowledges": ack.acked_id})
        return {"messages": len(acks), "acks": acks}

    def close(self) -> None:
        self.client.close()
