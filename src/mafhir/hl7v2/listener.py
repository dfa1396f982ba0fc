"""The MLLP listener: one thread per connection, each message through a :class:`Receiver`.

Each complete frame is a message of its own, and whatever breaks the framing (junk, a
message without its start block, a frame over the size limit, a frame never finished)
is a rejection of its own: kept in the store (its first bytes, bounded) and answered
with one AR naming the reason; the connection goes on with the next frame. Nothing
stops the listener. Limits keep a slow or hostile sender from holding it:

- ``frame_timeout``: a frame (or junk) once started must end within this many seconds,
  else it is rejected as unfinished and the connection closed (a drip-feeder cannot
  hold a thread for ever); ``idle_timeout`` closes a connection with nothing started;
- ``max_connections``: beyond it a new connection gets one AR saying the listener is
  full (code ``transient``: try again later) and is closed;
- memory per connection is bounded by the frame size limit plus one read (see
  :class:`~mafhir.hl7v2.mllp.FrameReader`).

Threads rather than a selector: with the cap and the deadline a thread per connection
is bounded, and the receiver's store commit (``synchronous=FULL``) blocks anyway.
"""

from __future__ import annotations

import logging
import signal
import socket
import socketserver
import threading
import time
from datetime import UTC, datetime

from ..errors import Problem
from .ack import ack_for_unreadable
from .charset import wide_charset
from .message import parse
from .mllp import KEEP_BYTES, FrameReader, Rejected, frame
from .receiver import Receiver

__all__ = ["MLLPListener"]

log = logging.getLogger(__name__)


def _not_committed(payload: bytes) -> str:
    """The code for a message that could not be stored: CE in enhanced mode (a commit
    error; the sender re-sends), AR in original mode."""
    try:
        return "CE" if parse(payload).enhanced_mode else "AR"
    except Exception:  # unreadable as well
        return "AR"


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], receiver: Receiver, idle_timeout: float,
                 frame_timeout: float, max_connections: int):
        self.receiver = receiver
        self.idle_timeout = idle_timeout
        self.frame_timeout = frame_timeout
        self.max_connections = max_connections
        self.active = 0
        self._count = threading.Lock()
        super().__init__(address, _Connection)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._count:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if not full:
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._done()
                raise
            return
        log.warning("MLLP connection refused: %d connections open (the limit)",
                    self.max_connections)
        ack = ack_for_unreadable(b"", [Problem("MLLP", f"the listener is serving its limit "
                                               f"of {self.max_connections} connections; "
                                               f"try again later", "transient")],
                                 datetime.now(UTC))
        try:
            request.settimeout(1.0)
            request.sendall(frame(ack.encode()))
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: socket.socket,  # type: ignore[override]
                               client_address: object) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._count:
            self.active -= 1


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader(self.server.receiver.max_bytes)
        started: float | None = None  # when the frame (or junk) now open began
        current: float | None = None  # the socket's timeout (set only when it changes)
        while True:
            timeout = self.server.idle_timeout
            if reader.in_frame:
                started = started if started is not None else time.monotonic()
                left = started + self.server.frame_timeout - time.monotonic()
                if left <= 0:
                    log.warning("MLLP frame from port %s not finished within %.0f s: closing",
                                self.client_address[1], self.server.frame_timeout)
                    self._finish(sock, reader)
                    return
                timeout = min(timeout, left)
            else:
                started = None
            try:
                if timeout != current:
                    sock.settimeout(timeout)
                    current = timeout
                data = sock.recv(65536)
            except TimeoutError:
                if reader.in_frame:
                    continue  # the deadline is checked above
                return
            except OSError:
                return
            if not data:
                self._finish(sock, reader)
                return
            ended = False
            for event in reader.events(data):
                ended = True
                reply = self._reject(event) if isinstance(event, Rejected) \
                    else self._receive(event)
                if reply is not None and not self._send(sock, reply):
                    return
            if ended:  # a frame that began in this read has its own deadline, from now
                started = time.monotonic() if reader.in_frame else None

    def _finish(self, sock: socket.socket, reader: FrameReader) -> None:
        """The connection ends (or its deadline passed) with input unfinished: keep it."""
        left = reader.flush()
        if left is not None:
            self._send(sock, self._reject(left))

    def _receive(self, payload: bytes) -> bytes | None:
        receiver = self.server.receiver
        if wide_charset(payload) is not None:
            # UTF-16/32 text can hold the end block's bytes (U+0D1C is 1C 0D in UTF-16LE):
            # the frame it came in cannot be trusted to be the whole message
            return self._reject(Rejected(
                "not-supported", "MSH-18: UTF-16/UTF-32 cannot be carried over MLLP (its "
                "bytes can contain the end block); send UTF-8", payload[:KEEP_BYTES],
                len(payload)))
        try:
            return receiver.receive(payload)
        except Exception as exc:  # the store itself failed: say so, keep serving
            log.error("receiver failed: %s", type(exc).__name__)
            return ack_for_unreadable(payload, [Problem("", "the receiver could not store "
                                                            "the message", "processing")],
                                      datetime.now(UTC), code=_not_committed(payload)
                                      ).encode()

    def _reject(self, rejected: Rejected) -> bytes:
        log.warning("MLLP input from port %s rejected (%s, %d bytes)", self.client_address[1],
                    rejected.code, rejected.size)
        try:
            return self.server.receiver.reject(rejected)
        except Exception as exc:  # the store failed: still answer
            log.error("receiver failed: %s", type(exc).__name__)
            return ack_for_unreadable(rejected.raw, [Problem("MLLP", rejected.reason,
                                                             rejected.code)],
                                      datetime.now(UTC)).encode()

    @staticmethod
    def _send(sock: socket.socket, reply: bytes) -> bool:
        try:
            sock.sendall(frame(reply))
            return True
        except OSError:
            return False


class MLLPListener:
    """Serves MLLP on ``host:port`` (port 0 picks a free one; see :attr:`address`)."""

    def __init__(self, host: str, port: int, receiver: Receiver, idle_timeout: float = 300.0,
                 frame_timeout: float = 30.0, max_connections: int = 64):
        self._server = _Server((host, port), receiver, idle_timeout, frame_timeout,
                               max_connections)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        """Connections being served right now."""
        return self._server.active

    def start(self) -> MLLPListener:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name=f"mllp-{self.address[1]}")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def serve_until_stopped(self) -> None:
        """Serve in this thread until Ctrl-C or SIGTERM (a service manager's stop), then stop."""
        def _stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _stop)
        try:
            self.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MLLPListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
