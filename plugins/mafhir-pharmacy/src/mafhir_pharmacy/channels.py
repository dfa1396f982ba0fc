"""The transport seam: how a prescription leaves the clinic, and how it is followed.

A *channel* is an ordinary mafhir connector (``register_connectors``): ``send(bundle)``
delivers a transaction Bundle's MedicationRequests, ``close()`` lets go, and the class
attribute ``carries_controlled`` says whether it may carry a controlled substance. Two
ship here:

* ``pharmacy-fhir`` (:class:`FhirPharmacy`) — the pharmacy's FHIR R4 endpoint: the Bundle
  is posted with :class:`mafhir_fhir_rest.FhirClient`; :meth:`FhirPharmacy.follow` reads
  the ``MedicationDispense`` of a prescription so the MA sees "dispensed" or "not picked
  up" — polled, or woken by an R4 rest-hook ``Subscription``
  (:meth:`FhirPharmacy.wait_for_dispense` with ``subscribe=True``).
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

import ipaddress
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.errors import InputError, MafhirError, PermanentError, Problem
from mafhir.hl7v2 import Ack, MLLPClient, V2Context, parse, read_ack
from mafhir.hl7v2.patients import PatientLookup, close_lookup, default_lookup, with_patients
from mafhir.identity import identifier_query
from mafhir.resourceset import ResourceSet

from .codes import CONTROLLED_TAG, RXNORM, known_drug

__all__ = ["DispenseStatus", "FhirPharmacy", "NotificationReceiver", "V2Pharmacy",
           "controlled_entries", "notify_window", "on_this_machine"]

JSON = dict[str, Any]
log = logging.getLogger("mafhir_pharmacy.follow")
#: What one notification may weigh; a rest-hook payload is one resource.
MAX_NOTIFICATION_BYTES = 5_000_000


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
                                                   "it by EPCS (NCPDP SCRIPT) or on paper",
                                                   "business-rule"))
    return problems


@dataclass(frozen=True)
class DispenseStatus:
    """What became of a prescription at the pharmacy."""

    state: str  # pending | in-progress | dispensed | not-picked-up | not-dispensed
    prescription: str | None = None  # the server's MedicationRequest/<id>
    dispense: str | None = None  # MedicationDispense/<id>
    handed_over: str | None = None
    #: How the answer was learnt: ``read`` (one look), ``poll``, or ``subscription`` (a
    #: rest-hook notification woke the read).
    via: str = "read"


class NotificationReceiver:
    """A rest-hook endpoint on loopback (127.0.0.1, a free port) for one wait.

    It binds loopback only, so nothing beyond this machine can reach it (which is why
    :meth:`FhirPharmacy.wait_for_dispense` subscribes only to a server on this machine).
    The path carries a random token so a stray request to the port is not taken for a
    notification. What arrives only *wakes* the reader: the state is always read back
    from the server, so a forged or partial notification cannot report a dispense. Both
    R4 delivery styles are taken: POST of the resource (or an empty ping) to the
    endpoint, and PUT to ``<endpoint>/<type>/<id>``. A body is read only when its
    ``Content-Length`` is a number within :data:`MAX_NOTIFICATION_BYTES` (400 when it is
    not a number, 413 when negative or too large), and only a count and the last body
    are kept, so a chatty or hostile sender cannot grow memory.
    """

    def __init__(self) -> None:
        self.path = f"/mafhir/notify/{secrets.token_urlsafe(16)}"
        #: How many notifications came, and the last one's resource (None: an empty ping).
        self.count = 0
        self.last: JSON | None = None
        self._event = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _take(self) -> None:
                if not (self.path == receiver.path or
                        self.path.startswith(receiver.path + "/")):
                    self.send_error(404)
                    return
                given = self.headers.get("Content-Length")
                length = "0" if given is None else given.strip()  # none: an empty ping
                if not re.fullmatch(r"-?[0-9]+", length):
                    self.send_error(400, "Content-Length is not a number")
                    return
                if length.startswith("-") or len(length) > 12 or \
                        int(length) > MAX_NOTIFICATION_BYTES:
                    self.send_error(413, "Content-Length is negative or too large")
                    return
                size = int(length)
                raw = self.rfile.read(size) if size else b""
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError:
                    body = None
                with receiver._lock:
                    receiver.count += 1
                    receiver.last = body if isinstance(body, dict) else None
                receiver._event.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = _take  # http.server's naming
            do_PUT = _take

            def log_message(self, format: str, *args: Any) -> None:
                return  # no access log (paths carry the token)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):  # typeshed allows bytes (AF_UNIX); an AF_INET bind gives str
            host = host.decode()
        self.url = f"http://{host}:{port}{self.path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="mafhir-rest-hook")

    def __enter__(self) -> NotificationReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout: float) -> bool:
        """True when a notification came within ``timeout`` seconds (and re-arm)."""
        got = self._event.wait(max(0.0, timeout))
        self._event.clear()
        return got


def on_this_machine(base_url: str) -> bool:
    """Whether a FHIR base URL names this machine (localhost, 127.0.0.0/8, ::1).

    Only such a server can reach the loopback :class:`NotificationReceiver`; a server
    elsewhere given ``http://127.0.0.1:…`` would post to its own loopback.
    """
    host = urlsplit(base_url).hostname  # lower-cased, IPv6 brackets removed
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def notify_window(timeout: float, interval: float, notify_within: float | None) -> float:
    """How long to wait for a first notification before polling again.

    ``notify_within`` when given; else a few poll intervals, at least 5 s (a server
    notifies after its own short delay), so a Subscription that never fires costs the
    wait little more than polling would; never beyond ``timeout``.
    """
    if notify_within is not None:
        return max(0.0, min(timeout, notify_within))
    return max(0.0, min(timeout, max(5 * interval, 5.0)))


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
    capabilities = frozenset({"use_clinic", "search"})  # mafhir.registry.CAPABILITIES

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
                                                      f"'{rx_id}' at the pharmacy", "not-found")])
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
                          sleep: Callable[[float], None] = time.sleep, *,
                          subscribe: bool = False,
                          notify_within: float | None = None) -> DispenseStatus:
        """Wait until the pharmacy has acted on ``rx_id`` or ``timeout`` seconds pass.

        By default :meth:`follow` is polled every ``interval``. With ``subscribe`` the
        pharmacy server is asked to *tell* us instead (an R4 rest-hook Subscription on
        ``MedicationDispense?prescription=…``, to a :class:`NotificationReceiver` on
        loopback), which costs one read per change rather than one per interval; the
        Subscription is deleted when done. Only a server on this machine can reach that
        receiver (one elsewhere would post to its *own* loopback), so for any other server
        the wait polls and says so in the log. When the server refuses the Subscription,
        or no notification comes within ``notify_within`` (default
        :func:`notify_window`: a few poll intervals), polling resumes and says so; a
        notification that comes later still wakes a read at once.
        """
        deadline = time.monotonic() + timeout
        if subscribe and not on_this_machine(str(getattr(self.client, "base_url", ""))):
            log.warning("the pharmacy server is not on this machine; following by polling")
            subscribe = False
        if subscribe:
            notified = self._wait_notified(rx_id, deadline, interval,
                                           notify_window(timeout, interval, notify_within))
            if notified is not None:
                return notified
        while True:
            status = self.follow(rx_id)
            if status.state != "pending" or time.monotonic() >= deadline:
                return _via(status, "poll")
            sleep(interval)

    def _wait_notified(self, rx_id: str, deadline: float, interval: float,
                       window: float) -> DispenseStatus | None:
        """The status, woken by notifications (polling after ``window`` seconds without
        one); None when the Subscription was refused, to poll without it."""
        status = self.follow(rx_id)  # also: the prescription exists (else InputError)
        if status.state != "pending":
            return status
        assert status.prescription is not None
        end = datetime.now(UTC) + timedelta(seconds=max(0.0, deadline - time.monotonic()) + 60)
        with NotificationReceiver() as receiver:
            sub_id = self._subscribe(status.prescription, receiver.url, end)
            if sub_id is None:
                return None
            try:
                # a dispense written while the Subscription was being set up sent no
                # notification: look once now that it is active
                status = self.follow(rx_id)
                if status.state != "pending":
                    return status
                notify_end = min(deadline, time.monotonic() + window)
                while receiver.wait(notify_end - time.monotonic()):
                    status = self.follow(rx_id)
                    if status.state != "pending":
                        return _via(status, "subscription")
                if time.monotonic() >= deadline:
                    log.warning("no notification from Subscription/%s in time; last look: %s",
                                sub_id, status.state)
                    return _via(self.follow(rx_id), "poll")
                log.warning("no notification from Subscription/%s within %.1fs; following "
                            "by polling instead (a later notification still wakes a read)",
                            sub_id, window)
                via = "poll"
                while True:
                    status = self.follow(rx_id)
                    if status.state != "pending":
                        return _via(status, via)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return _via(status, "poll")
                    # the poll interval, cut short by a notification
                    via = "subscription" if receiver.wait(min(interval, left)) else "poll"
            finally:
                self._unsubscribe(sub_id)

    def _subscribe(self, prescription: str, endpoint: str, end: datetime) -> str | None:
        """Create the rest-hook Subscription; its id, or None (logged) when refused."""
        sub: JSON = {
            "resourceType": "Subscription",
            "status": "requested",
            "end": end.isoformat(timespec="seconds"),  # the server stops it if we cannot
            "reason": "mafhir follows a prescription until it is dispensed",
            "criteria": f"MedicationDispense?prescription={prescription}",
            "channel": {"type": "rest-hook", "endpoint": endpoint,
                        "payload": "application/fhir+json"},
        }
        try:
            _, ref = self.client.create(sub)
            sub_id = ref.rpartition("/")[2]
            stored, _ = self.client.read("Subscription", sub_id)
        except MafhirError as exc:
            log.warning("the pharmacy server refused the Subscription (%s); following by "
                        "polling instead", exc)
            return None
        if stored.get("status") not in ("requested", "active"):
            log.warning("the pharmacy server set Subscription/%s to '%s' (%s); following by "
                        "polling instead", sub_id, stored.get("status"),
                        stored.get("error") or "no reason given")
            self._unsubscribe(sub_id)
            return None
        return sub_id

    def _unsubscribe(self, sub_id: str) -> None:
        try:
            self.client.request("DELETE", f"Subscription/{sub_id}")
        except MafhirError as exc:  # its ``end`` still stops it
            log.warning("could not delete Subscription/%s (%s); it ends by itself", sub_id,
                        exc)

    def close(self) -> None:
        self.client.close()


def _via(status: DispenseStatus, via: str) -> DispenseStatus:
    return DispenseStatus(status.state, status.prescription, status.dispense,
                          status.handed_over, via)


def _refused(sent: str, ack: Ack) -> str:
    """Which prescriptions an accepted RRE^O12 still refuses (ORC-1 ``UA``…), by the
    placer numbers we sent: MSA AA only says the message was read, ORC-1 says per order
    whether the pharmacy took it (table 0119), so an AA with a UA is not a success."""
    placers = [orc.get(2) for orc in parse(sent).all("ORC")]
    named = []
    for n in ack.refused_orders:
        rx = placers[n - 1] if n <= len(placers) else f"order {n}"
        named.append(f"prescription '{rx}' (ORC-1 {ack.order_controls[n - 1]})")
    reason = "; ".join(ack.errors) or "no reason given"
    return (f"the pharmacy's {ack.message_type} refuses {', '.join(named)}: {reason}")


class V2Pharmacy:
    """A pharmacy system over MLLP at ``HOST:PORT``: RDE^O11 out, RRE^O12/ACK checked."""

    carries_controlled = False
    #: the outbox sends each Bundle whole, as one message (mafhir.registry.CAPABILITIES)
    capabilities = frozenset({"whole_bundles", "use_clinic"})

    def __init__(self, target: str, ctx: V2Context | None = None, timeout: float = 30.0,
                 patients: PatientLookup | None = None) -> None:
        host, _, port = str(target).rpartition(":")
        if not port.isdigit():
            raise PermanentError(f"pharmacy-v2 needs HOST:PORT, got {target!r}")
        self.fixed_time = ctx is not None  # a given context keeps its clock (tests)
        # the command running this connector names the clinic (use_clinic) and warns if none
        self.ctx = ctx or V2Context(map=MapContext(clinic=load_clinic(None, warn=False)))
        self.client = MLLPClient(host or "127.0.0.1", int(port), timeout=timeout)
        #: where a patient named only by MRN is read for PID (name, birth date, sex…)
        self.patients = patients if patients is not None else default_lookup()

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
            resources = with_patients(ResourceSet([*others, *orders]),
                                      [orders[0][1].get("subject")], self.patients)
            text = rde_o11(resources, ctx)
            ack = read_ack(self.client.send(text))
            if ack.code not in ("AA", "CA"):
                raise PermanentError(f"the pharmacy answered {ack.code} to {len(orders)} "
                                     f"prescription(s): {'; '.join(ack.errors) or 'no reason'}")
            if ack.refused_orders:
                raise PermanentError(_refused(text, ack))
            acks.append({"ack": ack.code, "acknowledges": ack.acked_id})
        return {"messages": len(acks), "acks": acks}

    def close(self) -> None:
        self.client.close()
        close_lookup(self.patients)
