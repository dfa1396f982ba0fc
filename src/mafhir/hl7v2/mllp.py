"""MLLP framing (HL7 v2.5.1 Appendix C) and a blocking client that reconnects.

A frame is ``<VT> message <FS><CR>``. :class:`FrameReader` takes bytes as they come off
a socket and yields complete messages; a frame larger than its limit, or bytes outside
a frame, are reported as :class:`FramingError` rather than buffered without end.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

from ..errors import TransientError

__all__ = ["END", "START", "FrameReader", "FramingError", "MLLPClient", "frame"]

START = b"\x0b"
END = b"\x1c\r"


class FramingError(Exception):
    """Bytes that break MLLP framing (too large, or junk between frames)."""


def frame(message: str | bytes) -> bytes:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return START + data + END


class FrameReader:
    """Incremental MLLP decoder."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._buf += data
        while True:
            start = self._buf.find(START)
            if start < 0:
                junk = len(self._buf)
                self._buf.clear()
                if junk and data.strip(b"\r\n\x00 "):
                    raise FramingError("bytes outside an MLLP frame were dropped")
                return
            if start > 0:
                del self._buf[:start]
            end = self._buf.find(END, 1)
            if end < 0:
                if len(self._buf) > self.max_bytes + 3:
                    self._buf.clear()
                    raise FramingError(f"a frame exceeded the {self.max_bytes}-byte limit")
                return
            payload = bytes(self._buf[1:end])
            del self._buf[:end + 2]
            yield payload


class MLLPClient:
    """Sends a message and waits for its reply; reconnects once per send on a broken link.

    Network trouble is a :class:`~mafhir.errors.TransientError` (the outbox retries it).
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0, retries: int = 2,
                 max_bytes: int = 16 * 1024 * 1024) -> None:
        self.host, self.port, self.timeout, self.retries = host, port, timeout, retries
        self.max_bytes = max_bytes
        self._sock: socket.socket | None = None
        self._reader = FrameReader(max_bytes)

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._reader = FrameReader(self.max_bytes)
        return self._sock

    def send(self, message: str | bytes) -> bytes:
        """Send one message; return the reply's bytes (the ACK)."""
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                sock = self._connect()
                sock.sendall(frame(message))
                return self._read_reply(sock)
            except (OSError, FramingError, ConnectionError) as exc:
                last = exc
                self.close()
                if attempt < self.retries:
                    time.sleep(min(0.05 * 2 ** attempt, 1.0))
        raise TransientError(f"MLLP {self.host}:{self.port}: no reply ({type(last).__name__}: "
                             f"{last})")

    def _read_reply(self, sock: socket.socket) -> bytes:
        deadline = time.monotonic() + self.timeout
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the peer closed the connection before replying")
            for payload in self._reader.feed(data):
                return payload

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self) -> MLLPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
