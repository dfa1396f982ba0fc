"""The MLLP listener: one thread per connection, each message through a :class:`Receiver`.

Framing errors, unreadable messages and handler failures are answered (AR/AE) or
dropped with a log line naming the peer's port; they never stop the listener. A
connection idle longer than ``idle_timeout`` is closed (the sender reconnects).
"""

from __future__ import annotations

import logging
import signal
import socket
import socketserver
import threading
from datetime import UTC, datetime

from ..errors import Problem
from .ack import ack_for_unreadable
from .message import parse
from .mllp import FrameReader, FramingError, frame
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

    def __init__(self, address: tuple[str, int], receiver: Receiver, idle_timeout: float):
        self.receiver = receiver
        self.idle_timeout = idle_timeout
        super().__init__(address, _Connection)


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(self.server.idle_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        receiver = self.server.receiver
        reader = FrameReader(receiver.max_bytes)
        while True:
            try:
                data = sock.recv(65536)
            except (TimeoutError, OSError):
                return
            if not data:
                return
            try:
                payloads = list(reader.feed(data))
            except FramingError as exc:
                log.warning("MLLP framing error from port %s: %s", self.client_address[1], exc)
                ack = ack_for_unreadable(b"", [Problem("MLLP", str(exc))], datetime.now(UTC))
                receiver.store.quarantine(b"", [f"MLLP: {exc}"], ack.encode(),
                                          datetime.now(UTC))
                if not self._send(sock, ack.encode()):
                    return
                continue
            for payload in payloads:
                try:
                    reply = receiver.receive(payload)
                except Exception as exc:  # the store itself failed: say so, keep serving
                    log.error("receiver failed: %s", type(exc).__name__)
                    reply = ack_for_unreadable(payload, [Problem("", "the receiver could not "
                                                                     "store the message")],
                                               datetime.now(UTC), code=_not_committed(payload)
                                               ).encode()
                if reply is not None and not self._send(sock, reply):
                    return

    @staticmethod
    def _send(sock: socket.socket, reply: bytes) -> bool:
        try:
            sock.sendall(frame(reply))
            return True
        except OSError:
            return False


class MLLPListener:
    """Serves MLLP on ``host:port`` (port 0 picks a free one; see :attr:`address`)."""

    def __init__(self, host: str, port: int, receiver: Receiver, idle_timeout: float = 300.0):
        self._server = _Server((host, port), receiver, idle_timeout)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

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
