"""MLLP framing (HL7 v2.5.1 Appendix C) and a blocking client that reconnects.

A frame is ``<VT> message <FS><CR>``. :class:`FrameReader` takes bytes as they come off
a socket and turns them into events: each complete frame is a message of its own
(``bytes``), and whatever breaks the framing is a :class:`Rejected` of its own, so a
valid frame is never lost to junk that shares its write. The cost is linear in the
bytes read (the end block is searched only in what arrived since the last search) and
the memory is bounded: a frame over ``max_bytes`` is reported once and the rest of it
is skipped up to its end block or the next start block (the connection resynchronises
there), keeping only a bounded prefix for the operator to see.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import TransientError
from ..retry import RetryPolicy

__all__ = ["END", "KEEP_BYTES", "START", "FrameReader", "FramingError", "MLLPClient",
           "Rejected", "frame"]

START = b"\x0b"
END = b"\x1c\r"
#: How much of rejected input (junk, an oversized frame) is kept for the operator.
KEEP_BYTES = 64 * 1024
#: Bytes a sender may put between frames without it counting as junk.
_FILLER = b"\r\n\x00 \t"


class FramingError(Exception):
    """Bytes that break MLLP framing (too large, or junk between frames)."""


@dataclass(frozen=True)
class Rejected:
    """Input that is not a frame: ``code`` ``too-long`` (over the limit) or ``structure``
    (bytes outside a frame, a missing start block, a frame never finished); ``raw`` is
    its first bytes (at most :data:`KEEP_BYTES`) and ``size`` how many bytes it had."""

    code: str
    reason: str
    raw: bytes
    size: int


def frame(message: str | bytes) -> bytes:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return START + data + END


class FrameReader:
    """Incremental MLLP decoder: frames and rejections, in the order they arrived."""

    def __init__(self, max_bytes: int, keep: int = KEEP_BYTES) -> None:
        self.max_bytes = max_bytes
        self.keep = keep
        self._buf = bytearray()  # inside a frame: START + what came so far
        self._scanned = 0  # END does not start before this offset of _buf
        self._inside = False
        self._junk = bytearray()  # outside a frame: the kept prefix of junk
        self._junk_size = 0
        self._skipping = 0  # >0: bytes of an oversized frame skipped so far
        self._skip_tail = False  # the last byte skipped was FS (END may straddle reads)

    @property
    def buffered(self) -> int:
        """Bytes held right now (bounded by ``max_bytes`` plus one read and ``keep``)."""
        return len(self._buf) + len(self._junk)

    @property
    def in_frame(self) -> bool:
        """A frame (or junk) has started and not ended: the sender owes us bytes."""
        return self._inside or bool(self._skipping) or bool(self._junk_size)

    def events(self, data: bytes) -> Iterator[bytes | Rejected]:
        """The complete frames (payload bytes) and rejections that ``data`` finishes."""
        if not isinstance(data, bytes):
            data = bytes(data)
        view = memoryview(data)
        pos = 0
        n = len(data)
        while pos < n:
            if self._skipping:
                pos = self._skip(view, pos)
            elif self._inside:
                pos, out = self._in_frame(view, pos)
                if out is not None:
                    yield out
            else:
                pos, out = self._outside(view, pos)
                if out is not None:
                    yield out

    def flush(self) -> Rejected | None:
        """At the connection's end (or its read deadline): what was left unfinished."""
        if self._inside:
            size = len(self._buf) - 1
            raw = bytes(self._buf[1:1 + self.keep])
            self._reset_frame()
            return Rejected("structure", "the frame was not finished (no end block "
                            "before the connection closed or its read deadline)", raw, size)
        if self._skipping:
            size = self._skipping
            self._skipping = 0
            self._skip_tail = False
            return Rejected("structure", "the rest of an oversized frame never ended",
                            b"", size)
        return self._take_junk()

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The complete frames in ``data``; the first rejection raises FramingError
        (after the frames before it). For a client reading one reply at a time."""
        for event in self.events(data):
            if isinstance(event, Rejected):
                raise FramingError(event.reason)
            yield event

    # -- states -------------------------------------------------------------------
    def _outside(self, view: memoryview, pos: int) -> tuple[int, Rejected | None]:
        data = view.obj
        assert isinstance(data, bytes)
        start = data.find(START, pos)
        stop = data.find(END, pos, start if start >= 0 else len(data))
        if stop >= 0:  # a message without its start block ends here: its own rejection
            self._add_junk(view[pos:stop])
            return stop + 2, self._take_junk(missing_start=True)
        if start < 0:
            self._add_junk(view[pos:])
            return len(data), None
        self._add_junk(view[pos:start])
        junk = self._take_junk()
        self._inside = True
        self._buf += START
        self._scanned = 1
        return start + 1, junk

    def _in_frame(self, view: memoryview, pos: int) -> tuple[int, bytes | Rejected | None]:
        room = self.max_bytes + 2 - (len(self._buf) - 1)  # payload + END may still come
        chunk = view[pos:pos + max(room, 0) + 1]
        before = len(self._buf)
        self._buf += chunk
        end = self._buf.find(END, max(self._scanned, 1))
        # a start block before the end block: this frame was never finished, and the
        # sender began another. Gluing the two would file the second message's content
        # under the first one's header, so the first is rejected and the second read.
        vt = self._buf.find(START, max(before, 1), end if end >= 0 else len(self._buf))
        if vt >= 0:
            raw = bytes(self._buf[1:min(vt, 1 + self.keep)])
            self._reset_frame()
            return pos + (vt - before), Rejected(
                "structure", "the frame was not finished: a start block (0x0B) came before "
                "its end block", raw, vt - 1)
        if end >= 0:
            consumed = end + 2 - (len(self._buf) - len(chunk))
            if end - 1 > self.max_bytes:  # ended, but over the limit all the same
                raw = bytes(self._buf[1:1 + self.keep])
                self._reset_frame()
                return pos + consumed, self._too_long(raw, end - 1)
            payload = bytes(self._buf[1:end])
            self._reset_frame()
            return pos + consumed, payload
        self._scanned = max(1, len(self._buf) - 1)
        # an FS at the very end may be the first half of the end block: not payload yet
        if len(self._buf) - 1 - self._buf.endswith(b"\x1c") > self.max_bytes:
            raw = bytes(self._buf[1:1 + self.keep])
            size = len(self._buf) - 1
            self._skip_tail = self._buf.endswith(b"\x1c")
            self._reset_frame()
            self._skipping = size
            return pos + len(chunk), self._too_long(raw, size)
        return pos + len(chunk), None

    def _too_long(self, raw: bytes, size: int) -> Rejected:
        return Rejected("too-long", f"the frame is larger than the {self.max_bytes}-byte "
                        "limit; it was skipped up to its end block", raw, size)

    def _skip(self, view: memoryview, pos: int) -> int:
        """Skip the rest of an oversized frame: up to its end block, or up to a start
        block (a VT cannot be in a message, so the sender began the next frame)."""
        data = view.obj
        assert isinstance(data, bytes)
        if self._skip_tail and data[pos:pos + 1] == b"\r":
            self._skipping = 0
            self._skip_tail = False
            return pos + 1
        end = data.find(END, pos)
        start = data.find(START, pos, end if end >= 0 else len(data))
        if start >= 0:
            self._skipping = 0
            self._skip_tail = False
            return start
        if end < 0:
            self._skipping += len(data) - pos
            self._skip_tail = data.endswith(b"\x1c")
            return len(data)
        self._skipping = 0
        self._skip_tail = False
        return end + 2

    def _reset_frame(self) -> None:
        self._buf = bytearray()
        self._scanned = 0
        self._inside = False

    def _add_junk(self, part: memoryview) -> None:
        if not self._junk_size and not bytes(part).strip(_FILLER):
            return  # line ends or NULs between frames: not junk
        self._junk_size += len(part)
        room = self.keep - len(self._junk)
        if room > 0:
            self._junk += part[:room]

    def _take_junk(self, missing_start: bool = False) -> Rejected | None:
        if not self._junk_size:
            return None
        raw, size = bytes(self._junk), self._junk_size
        self._junk = bytearray()
        self._junk_size = 0
        if not raw.strip(_FILLER):
            return None
        reason = "a message without its MLLP start block (0x0B) was not read" \
            if missing_start else "bytes outside an MLLP frame were not read"
        return Rejected("structure", reason, raw, size)


class MLLPClient:
    """Sends a message and waits for its reply; reconnects once per send on a broken link.

    Network trouble is a :class:`~mafhir.errors.TransientError` (the outbox retries it).
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0, retries: int = 2,
                 max_bytes: int = 16 * 1024 * 1024, retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        #: ``retries`` reconnects after the first try, backing off 50 ms doubling to 1 s
        #: (the one policy of :mod:`mafhir.retry`); ``retry`` replaces it whole.
        self.retry = retry or RetryPolicy(max_attempts=retries + 1, base=0.05, cap=1.0)
        self.sleep = sleep
        self.rng = rng or self.retry.rng()
        self.max_bytes = max_bytes
        self._sock: socket.socket | None = None
        self._reader = FrameReader(max_bytes)
        self._pending: list[bytes] = []  # frames that came in the same read as a reply

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._reader = FrameReader(self.max_bytes)
            self._pending = []
        return self._sock

    def send(self, message: str | bytes) -> bytes:
        """Send one message; return the reply's bytes (the ACK)."""
        last: Exception | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                sock = self._connect()
                sock.sendall(frame(message))
                return self._read_reply(sock)
            except (OSError, FramingError, ConnectionError) as exc:
                last = exc
                self.close()
                delay = self.retry.delay(attempt, None, self.rng)
                if delay is None:
                    break
                self.sleep(delay)
        raise TransientError(f"MLLP {self.host}:{self.port}: no reply ({type(last).__name__}: "
                             f"{last})")

    def _read_reply(self, sock: socket.socket, timeout: float | None = None) -> bytes:
        if self._pending:
            return self._pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the peer closed the connection before replying")
            self._pending.extend(self._reader.feed(data))
            if self._pending:
                return self._pending.pop(0)

    def receive(self, timeout: float | None = None) -> bytes:
        """The next message the peer sends on this connection (after a reply: e.g. the
        application ACK that follows a commit ACK). ``TimeoutError`` when none comes."""
        if self._sock is None:
            raise ConnectionError("not connected: send a message first")
        return self._read_reply(self._sock, timeout)

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
