"""A loopback clearinghouse stand-in: answers CORE 270s with 271s from a member table.

For tests, the conformance kit and ``mafhir eligibility standin --port P``. It speaks both
CORE envelopes (SOAP 1.2 and MIME multipart; it answers in the one it was asked in),
checks a username/password when given one (401 otherwise), and can serve TLS.

Members (the 2100C member id decides; names and birth dates are not checked except for
``CORRECT01``):

=============  ==============================================================================
member id      answer
=============  ==============================================================================
ACTIVE01       active; office copay 25.00 (98, in network); coinsurance 0.2; deductible
               1500.00 calendar year, 150.00 remaining (IND, in network); family deductible
               3000.00 / 2000.00 remaining; out of network deductible 3000.00; out of pocket
               5000.00 / 4200.00 remaining; a MSG line; plan dates 2026-01-01 – 2026-12-31
INACTIVE01     inactive (EB 6), plan ended 2025-12-31
DEPEND01       a subscriber whose dependent (2100D) is active with a 40.00 specialist copay
MET01          active, deductible 1500.00 with 0.00 remaining
BUSY01         AAA 42 (unable to respond now) the first time, then as ACTIVE01
CORRECT01      active, but the payer's member id is CORRECT01A and the name differs
(other ids)    AAA 75 subscriber not found; an id that is not 5–20 capital letters/digits: AAA 72
=============  ==============================================================================

Faults, for the fault tests: :meth:`Standin.fail_next` (HTTP status, N times),
:meth:`Standin.slow_next` (seconds before answering). A broken envelope is answered with a
TA1 (ISA/IEA) or a 999 (a 270 without a subscriber or member id).
"""

from __future__ import annotations

import contextlib
import re
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mafhir.errors import InputError

from .acks import write_999, write_ta1
from .core import (
    PAYLOAD_271,
    PAYLOAD_999,
    PAYLOAD_TA1,
    CoreMessage,
    build_mime,
    build_soap,
    parse_mime,
    parse_soap,
)
from .loops import Party, read_parties
from .segments import Delimiters, Interchange, Segment, build_segment, parse_interchange

__all__ = ["MEMBERS", "Standin", "answer_270"]

_VALID_ID = re.compile(r"^[A-Z0-9]{5,20}$")


@dataclass(frozen=True)
class Member:
    """What the stand-in's payer knows of one member: EB segments (as element lists)."""

    benefits: tuple[tuple[str, ...], ...]
    dates: tuple[tuple[str, str, str], ...] = ()
    messages: tuple[str, ...] = ()
    dependent_benefits: tuple[tuple[str, ...], ...] = ()
    corrected_id: str | None = None
    corrected_name: tuple[str, str] | None = None


_ACTIVE = Member(
    benefits=(
        ("1", "IND", "30", "PR", "GOLD PPO 1500"),
        ("B", "IND", "98", "", "", "27", "25.00", "", "", "", "", "Y"),
        ("A", "IND", "30", "", "", "", "", "0.2", "", "", "", "Y"),
        ("C", "IND", "30", "", "", "23", "1500.00", "", "", "", "", "Y"),
        ("C", "IND", "30", "", "", "29", "150.00", "", "", "", "", "Y"),
        ("C", "FAM", "30", "", "", "23", "3000.00", "", "", "", "", "Y"),
        ("C", "FAM", "30", "", "", "29", "2000.00", "", "", "", "", "Y"),
        ("C", "IND", "30", "", "", "23", "3000.00", "", "", "", "", "N"),
        ("G", "IND", "30", "", "", "23", "5000.00", "", "", "", "", "Y"),
        ("G", "IND", "30", "", "", "29", "4200.00", "", "", "", "", "Y"),
    ),
    dates=(("346", "D8", "20260101"), ("347", "D8", "20261231")),
    messages=("PRIOR AUTHORIZATION REQUIRED FOR IMAGING",),
)

#: The member table (see the module docstring).
MEMBERS: dict[str, Member] = {
    "ACTIVE01": _ACTIVE,
    "BUSY01": _ACTIVE,
    "INACTIVE01": Member(benefits=(("6", "IND", "30"),),
                         dates=(("346", "D8", "20250101"), ("347", "D8", "20251231"))),
    "DEPEND01": Member(
        benefits=(("1", "FAM", "30", "HM", "SILVER HMO"),),
        dates=(("346", "D8", "20260101"),),
        dependent_benefits=(
            ("1", "IND", "30", "HM", "SILVER HMO"),
            ("B", "IND", "98", "", "", "27", "40.00", "", "", "", "", "Y"),
        )),
    "MET01": Member(benefits=(
        ("1", "IND", "30", "PR", "BRONZE PPO"),
        ("C", "IND", "30", "", "", "23", "1500.00", "", "", "", "", "Y"),
        ("C", "IND", "30", "", "", "29", "0.00", "", "", "", "", "Y"),
    ), dates=(("346", "D8", "20260101"),)),
    "CORRECT01": Member(benefits=(("1", "IND", "30", "PR", "GOLD PPO 1500"),),
                        corrected_id="CORRECT01A", corrected_name=("RIVERA-LOPEZ", "ANA")),
}


def _reject(interchange: Interchange | None, note: str) -> str:
    return write_ta1(interchange, note, "STANDIN", "CLINIC", datetime.now(UTC))


def answer_270(text: str, seen: Counter[str] | None = None) -> tuple[str, str]:
    """(payload type, X12) answering the 270 ``text``: a 271, or a TA1/999 when broken."""
    try:
        ic = parse_interchange(text)
    except InputError as exc:
        where = exc.problems[0].location if exc.problems else ""
        note = "022" if where.startswith(("SEG", "IEA")) else "024" if "GS" in where else "004"
        if where.startswith("ISA"):
            note = "022"
        return PAYLOAD_TA1, _reject(None, note)
    if ic.warnings:  # control numbers or counts that disagree: the envelope is refused
        return PAYLOAD_TA1, _reject(ic, "001" if any("ISA13" in w.message
                                                       for w in ic.warnings) else "021")
    tx = next((t for t in ic.transactions if t.code == "270"), None)
    if tx is None:
        return PAYLOAD_TA1, _reject(ic, "024")
    gs = ic.gs[0]
    try:
        parties = read_parties(tx, "EQ")
    except InputError:
        parties = []
    subscriber = next((p for p in parties if p.loop == "2000C"), None)
    if subscriber is None or subscriber.nm1 is None or not subscriber.nm1.get(9):
        seg = subscriber.hl if subscriber is not None else (tx.segments[0] if tx.segments
                                                             else None)
        pos = str(seg.position - 2) if seg is not None else "1"
        return PAYLOAD_999, write_999(gs.get(6), tx.control,
                                      [("NM1", pos, "2100C", "3")], "STANDIN", "CLINIC",
                                      datetime.now(UTC))
    return PAYLOAD_271, _write_271(ic, tx.control, parties, seen)


def _write_271(ic: Interchange, control: str, parties: list[Party],
               seen: Counter[str] | None) -> str:
    d = Delimiters()
    now = datetime.now(UTC)
    by = {p.loop: p for p in parties}
    subscriber = by["2000C"]
    dependent = by.get("2000D")
    assert subscriber.nm1 is not None
    member_id = subscriber.nm1.get(9)
    out: list[str] = []

    def seg(sid: str, *elements: str) -> None:
        out.append(build_segment(sid, elements, d))

    def echo(s: Segment | None) -> None:
        if s is not None:
            seg(s.id, *s.elements)

    seg("ST", "271", control, "005010X279A1")
    seg("BHT", "0022", "11", "", f"{now:%Y%m%d}", f"{now:%H%M}")
    seg("HL", "1", "", "20", "1")
    echo(by["2000A"].nm1 if "2000A" in by else None)
    seg("HL", "2", "1", "21", "1")
    echo(by["2000B"].nm1 if "2000B" in by else None)
    seg("HL", "3", "2", "22", "1" if dependent else "0")
    count = (seen or Counter()).get(member_id, 0)
    if seen is not None:
        seen[member_id] += 1
    member = MEMBERS.get(member_id)
    trace_from = dependent if dependent is not None else subscriber
    for t in trace_from.trn if dependent is None else []:
        seg("TRN", "2", t.get(2), t.get(3))
    nm1 = subscriber.nm1
    if member is not None and member.corrected_id:
        family, given = member.corrected_name or (nm1.get(3), nm1.get(4))
        seg("NM1", "IL", "1", family, given, "", "", "", "MI", member.corrected_id)
    else:
        echo(nm1)
    if member_id == "BUSY01" and count == 0:
        seg("AAA", "Y", "", "42", "R")
    elif not _VALID_ID.match(member_id):
        seg("AAA", "N", "", "72", "C")
    elif member is None:
        seg("AAA", "N", "", "75", "C")
    else:
        echo(subscriber.dmg)
        for qual, fmt, value in member.dates:
            seg("DTP", qual, fmt, value)
        if dependent is None:
            for n, eb in enumerate(member.benefits):
                seg("EB", *eb)
                if n == 0:  # the payer's notes go with the active-coverage EB
                    for text in member.messages:
                        seg("MSG", text)
    if dependent is not None:
        seg("HL", "4", "3", "23", "0")
        for t in dependent.trn:
            seg("TRN", "2", t.get(2), t.get(3))
        echo(dependent.nm1)
        echo(dependent.dmg)
        echo(dependent.ins)
        if member is not None and not (member_id == "BUSY01" and count == 0):
            for eb in member.dependent_benefits or member.benefits:
                seg("EB", *eb)
    seg("SE", str(len(out) + 1), control)
    gs_control = str(int(control)) if control.isdigit() else "1"
    isa_control = f"{int(gs_control):09d}"
    head = (f"ISA*00*{' ' * 10}*00*{' ' * 10}*ZZ*{ic.receiver:<15.15}*ZZ*{ic.sender:<15.15}*"
            f"{now:%y%m%d}*{now:%H%M}*^*00501*{isa_control}*0*P*:~")
    gs = build_segment("GS", ["HB", ic.receiver, ic.sender, f"{now:%Y%m%d}", f"{now:%H%M}",
                              gs_control, "X", "005010X279A1"], d)
    tail = [build_segment("GE", ["1", gs_control], d),
            build_segment("IEA", ["1", isa_control], d)]
    return "\n".join([head, gs, *out, *tail]) + "\n"


@dataclass
class _Faults:
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[int | None, float]:
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else None
            delay = self.delays.pop(0) if self.delays else 0.0
        return status, delay


class Standin:
    """The stand-in server on ``127.0.0.1:port`` (0: a free port), in a thread.

    ``requests`` lists what arrived (envelope, payload type, the 270's control number),
    so tests observe the exchange instead of sleeping. Use as a context manager. With
    ``tls`` (cert, key) it speaks HTTPS; with ``client_ca`` too it requires a client
    certificate that CA signed (mutual TLS) and records its common name as ``client``.
    """

    def __init__(self, port: int = 0, *, username: str | None = None,
                 password: str | None = None, tls: tuple[str, str] | None = None,
                 client_ca: str | None = None) -> None:
        self.faults = _Faults()
        self.seen: Counter[str] = Counter()
        self.requests: list[dict[str, Any]] = []
        self.username, self.password = username, password
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # no PHI on stderr
                return

            def do_POST(self) -> None:
                standin._handle(self)

            def handle(self) -> None:
                # the client was killed or gave up (the crash and fault tests)
                with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                    super().handle()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            if client_ca is not None:  # mutual TLS: a client certificate this CA signed
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(client_ca)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="x12-standin")

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}/core"

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (503, 500, 400…)."""
        with self.faults.lock:
            self.faults.statuses.extend([status] * times)

    def slow_next(self, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before answering the next ``times`` requests."""
        with self.faults.lock:
            self.faults.delays.extend([seconds] * times)

    def start(self) -> Standin:
        self.thread.start()
        return self

    def __enter__(self) -> Standin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        data = h.rfile.read(length)
        status, delay = self.faults.take()
        ctype = h.headers.get("Content-Type", "")
        mime = ctype.lower().startswith("multipart/")
        record: dict[str, Any] = {"envelope": "mime" if mime else "soap", "status": 200}
        peer = h.connection.getpeercert() if isinstance(h.connection, ssl.SSLSocket) else None
        if peer:  # the client certificate's common name, as mutual TLS verified it
            names = [pair for rdn in peer.get("subject", ()) for pair in rdn]
            record["client"] = next((str(p[1]) for p in names if p[0] == "commonName"), None)
        self.requests.append(record)  # seen on arrival, before any delay
        if delay:
            time.sleep(delay)  # the slow answer the fault tests ask for
        if status is not None:
            record["status"] = status
            self._reply(h, status, b"the stand-in was told to fail", "text/plain")
            return
        try:
            msg = parse_mime(data, ctype) if mime else parse_soap(data)
        except InputError as exc:
            record["status"] = 400
            self._reply(h, 400, str(exc).encode(), "text/plain")
            return
        record["payload_type"] = msg.payload_type
        if self.password is not None and (msg.username != self.username
                                          or msg.password != self.password):
            record["status"] = 401
            self._reply(h, 401, b"UnAuthorized: wrong username or password", "text/plain")
            return
        if msg.payload_type != "X12_270_Request_005010X279A1":
            answer = CoreMessage(msg.payload_type, "", msg.receiver_id, msg.sender_id,
                                 error_code="PayloadTypeIncorrect",
                                 error_message="the stand-in answers 270s only")
        else:
            try:
                record["control"] = parse_interchange(msg.payload).control
            except InputError:
                record["control"] = None
            kind, x12 = answer_270(msg.payload, self.seen)
            record["answer"] = kind
            answer = CoreMessage(kind, x12, msg.receiver_id, msg.sender_id,
                                 payload_id=msg.payload_id, error_code="Success",
                                 error_message="")
        if mime:
            body, out_type = build_mime(answer)
        else:
            body, out_type = build_soap(answer, response=True), "application/soap+xml"
        self._reply(h, 200, body, out_type)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
        # the client may have given up waiting (the slow-answer fault): nothing to tell
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
