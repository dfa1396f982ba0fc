"""The stand-in IIS on loopback: the CDC SOAP 1.2 service over HTTP, and MLLP.

SOAP (``POST`` any path, standard library ``http.server`` in a thread): ``connectivityTest``
echoes; ``submitSingleMessage`` checks username and password (``SecurityFault``
otherwise), the facility id when a set of known ones is given (``SecurityFault``), the
size (``MessageTooLargeFault``), then answers the VXU (:func:`.answer.answer`); any other
operation is an ``UnsupportedOperationFault`` and an unreadable envelope an HTTP 400 with
a sender fault. MLLP is the project's own listener (:class:`mafhir.hl7v2.MLLPListener`)
with a receiver that answers the same way. ``tls=(certfile, keyfile)`` serves SOAP over
HTTPS (to check a client verifies the registry's certificate).

For error-path tests a fault can be queued for the next SOAP requests
(:meth:`StandinIIS.fail_next`): ``reset`` (the connection is reset after the request is
read: nothing answered, nothing kept), ``http503``, ``unknown-fault``. ``StandinIIS`` is
a context manager; ``mafhir iis standin`` runs one in the foreground.
"""

from __future__ import annotations

import hmac
import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mafhir.errors import Problem
from mafhir.hl7v2 import MLLPListener, Receiver
from mafhir.hl7v2.ack import ack_for_unreadable
from mafhir.hl7v2.message import MAX_MESSAGE_BYTES
from mafhir.hl7v2.mllp import Rejected

from .. import envelope
from ..envelope import Envelope, EnvelopeError, Fault
from .answer import Answerer, answer
from .registry import Registry

__all__ = ["FAULT_KINDS", "StandinIIS"]

log = logging.getLogger(__name__)

FAULT_KINDS = ("reset", "http503", "unknown-fault")


class _MllpAnswers(Receiver):
    """The listener's receiver: every frame answered by the stand-in (no message store:
    the registry is the stand-in's memory, and it keys doses by ORC-3)."""

    def __init__(self, standin: StandinIIS) -> None:
        self.standin = standin
        self.max_bytes = standin.max_bytes

    def receive(self, raw: bytes) -> bytes | None:
        return self.standin.answer(raw)

    def reject(self, rejected: Rejected) -> bytes:
        problem = Problem("MLLP", rejected.reason, rejected.code)
        return ack_for_unreadable(rejected.raw, [problem], self.standin.clock()).encode()


class _SoapHandler(BaseHTTPRequestHandler):
    server: _SoapServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle and the client's
        # delayed ACK hold each answer ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("stand-in SOAP: " + format, *args)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault(self, f: Fault) -> None:
        self._send(400 if f.sender else 500, envelope.fault(f))

    def do_POST(self) -> None:
        standin = self.server.standin
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        standin.soap_requests += 1
        injected = standin.take_fault()
        if injected == "reset":  # RST: the client sees "connection reset by peer"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if injected == "http503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if injected == "unknown-fault":
            self._fault(Fault("UnknownFault", "0", "the stand-in was told to fail once",
                              "injected"))
            return
        try:
            request = envelope.read(body)
        except EnvelopeError as exc:
            self._fault(Fault("UnknownFault", "0", str(exc), "", sender=True))
            return
        if not isinstance(request, Envelope):
            self._fault(Fault("UnknownFault", "0", "a fault is not a request", "", sender=True))
            return
        self._operation(request)

    def _operation(self, request: Envelope) -> None:
        standin = self.server.standin
        fields = request.fields
        if request.operation == "connectivityTest":
            self._send(200, envelope.response("connectivityTest", fields.get("echoBack", "")))
            return
        if request.operation != "submitSingleMessage":
            self._fault(Fault("UnsupportedOperationFault", "40", "Unsupported Operation",
                              f"{request.operation} is not an operation of this service",
                              sender=True))
            return
        if not standin.authorised(fields.get("username", ""), fields.get("password", ""),
                                  fields.get("facilityID", "")):
            self._fault(Fault("SecurityFault", "60", "Security Exception",
                              "the username, password or facility is not authorised"))
            return
        message = fields.get("hl7Message", "").encode("utf-8")
        if len(message) > standin.max_bytes:
            self._fault(Fault("MessageTooLargeFault", "30", "Request Message Too Large",
                              f"the message is {len(message)} bytes; the limit is "
                              f"{standin.max_bytes}"))
            return
        self._send(200, envelope.response("submitSingleMessage",
                                          standin.answer(message).decode("utf-8")))


class _SoapServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: StandinIIS) -> None:
        self.standin = standin
        super().__init__(address, _SoapHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("stand-in SOAP: a connection ended badly (reset or closed early)")


class StandinIIS:
    """A loopback IIS: SOAP on :attr:`soap_url`, MLLP on :attr:`mllp_address` (when
    ``mllp_port`` is not None), one :class:`Registry` behind both."""

    def __init__(self, registry: Registry | None = None, *, username: str = "mafhir",
                 password: str = "mafhir", facilities: set[str] | None = None,
                 host: str = "127.0.0.1", soap_port: int = 0, mllp_port: int | None = 0,
                 max_bytes: int = MAX_MESSAGE_BYTES, tls: tuple[str, str] | None = None,
                 answerers: Mapping[str, Answerer] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.registry = registry or Registry()
        #: by MSH-9.1 (see :data:`.answer.ANSWERERS`); None: that table as it is now
        self.answerers = answerers
        self._username, self._password = username, password
        self.facilities = facilities
        self.max_bytes = max_bytes
        self.clock = clock
        self.soap_requests = 0
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self._soap = _SoapServer((host, soap_port), self)
        self.tls = tls is not None
        if tls is not None:  # HTTPS with this certificate and key (PEM files)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._soap.socket = context.wrap_socket(self._soap.socket, server_side=True)
        self._soap_thread: threading.Thread | None = None
        self._mllp = MLLPListener(host, mllp_port, _MllpAnswers(self)) \
            if mllp_port is not None else None

    def __repr__(self) -> str:
        return f"StandinIIS({self.soap_url!r})"

    @property
    def soap_url(self) -> str:
        host, port = self._soap.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}/iis"

    @property
    def mllp_address(self) -> tuple[str, int] | None:
        return self._mllp.address if self._mllp is not None else None

    def authorised(self, username: str, password: str, facility: str) -> bool:
        ok = hmac.compare_digest(username.encode(), self._username.encode()) & \
            hmac.compare_digest(password.encode(), self._password.encode())
        return bool(ok) and (self.facilities is None or facility in self.facilities)

    def answer(self, raw: bytes) -> bytes:
        return answer(raw, self.registry, self.clock(), self.answerers)

    def fail_next(self, kind: str, times: int = 1) -> None:
        """Make the next ``times`` SOAP requests fail as ``kind`` (:data:`FAULT_KINDS`)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} (known: {', '.join(FAULT_KINDS)})")
        with self._lock:
            self._faults += [kind] * times

    def take_fault(self) -> str | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def start(self) -> StandinIIS:
        self._soap_thread = threading.Thread(target=self._soap.serve_forever,
                                             kwargs={"poll_interval": 0.1}, daemon=True,
                                             name="iis-standin-soap")
        self._soap_thread.start()
        if self._mllp is not None:
            self._mllp.start()
        return self

    def stop(self) -> None:
        self._soap.shutdown()
        self._soap.server_close()
        if self._soap_thread is not None:
            self._soap_thread.join(timeout=5)
        if self._mllp is not None:
            self._mllp.stop()

    def __enter__(self) -> StandinIIS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
