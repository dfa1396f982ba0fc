"""A fault-injecting HTTP proxy on loopback, in front of a real FHIR server.

Real servers do not answer 429 or drop a connection on demand; this proxy does, for the
requests you choose, and forwards everything else unchanged (rewriting the upstream base
URL in bodies and ``Location`` headers to its own, as a reverse proxy does, so ``next``
links and locations come back through it). It records every request it saw.

    with FaultProxy(upstream) as proxy:
        proxy.add(Fault.status(429, retry_after="1"), method="POST")
        client = MyClient(proxy.base_url)
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Fault", "FaultProxy", "Seen"]


@dataclass
class Fault:
    """One misbehaviour. Build with the class methods."""

    kind: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    transform: Callable[[Any], Any] | None = None

    @classmethod
    def status_code(cls, status: int, retry_after: str | None = None, body: bytes | None = None,
                    content_type: str = "application/fhir+json") -> Fault:
        """Answer ``status`` (with an OperationOutcome unless ``body`` is given)."""
        if body is None:
            body = json.dumps({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "transient" if status >= 500 or status == 429
                 else "processing", "diagnostics": f"injected {status}"}]}).encode()
        headers = {"Content-Type": content_type}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        return cls("status", status, headers, body)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering."""
        return cls("drop")

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Wait, then forward (a slow server, or a timeout when longer than the client's)."""
        return cls("slow", delay=seconds)

    @classmethod
    def html(cls, status: int = 200) -> Fault:
        """An HTML page where FHIR JSON belongs (a login page, a proxy's error page)."""
        return cls("status", status, {"Content-Type": "text/html; charset=utf-8"},
                   b"<html><body><h1>Service</h1><p>Please sign in</p></body></html>")

    @classmethod
    def content_type(cls, media: str) -> Fault:
        """Forward, but label the answer with another content type."""
        return cls("retype", headers={"Content-Type": media})

    @classmethod
    def rewrite_json(cls, transform: Callable[[Any], Any]) -> Fault:
        """Forward, passing the JSON answer through ``transform`` (e.g. drop a next link)."""
        return cls("rewrite", transform=transform)


@dataclass(frozen=True)
class Seen:
    """One request the proxy received (``at``: when it arrived, monotonic seconds)."""

    method: str
    path: str
    headers: dict[str, str]
    at: float
    status: int | None
    fault: str | None


@dataclass
class _Rule:
    fault: Fault
    method: str | None
    path: str | None
    times: int


def strip_next_link(page: Any) -> Any:
    """A searchset page with its ``next`` link removed (an incomplete page)."""
    if isinstance(page, dict):
        page["link"] = [lk for lk in page.get("link", []) if lk.get("relation") != "next"]
    return page


class FaultProxy:
    """Threaded loopback HTTP proxy to ``upstream`` (a base URL) with scripted faults.

    :param auth_check: when given, a request whose headers it refuses gets a 401
        OperationOutcome (a protected server, for auth tests).
    :param tls: ``(certfile, keyfile)``: serve HTTPS with that certificate (its base URL
        is then ``https://…``), for tests of TLS verification.
    """

    def __init__(self, upstream: str, auth_check: Callable[[dict[str, str]], bool] | None = None,
                 tls: tuple[str, str] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        parts = urlsplit(self.upstream)
        self._up_host = parts.hostname or "127.0.0.1"
        self._up_port = parts.port or 80
        self._up_path = parts.path
        self.auth_check = auth_check
        self.seen: list[Seen] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        scheme = "http"
        if tls is not None:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.base_url = f"{scheme}://127.0.0.1:{self.port}{self._up_path}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ control
    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, fault: Fault, method: str | None = None, path: str | None = None,
            times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests matching method and path part."""
        with self._lock:
            self._rules.append(_Rule(fault, method, path, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self.seen.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self._lock:
            found = [s for s in self.seen if (method is None or s.method == method)
                     and (path is None or path in s.path)]
        return sorted(found, key=lambda s: s.at)  # in order of arrival

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if (rule.method is None or rule.method == method) and \
                        (rule.path is None or rule.path in path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule.fault
        return None

    # ------------------------------------------------------------------ forwarding
    def _upstream(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self._up_host, self._up_port,
                                                                 timeout=120)
        return conn

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        fwd = {k: v for k, v in headers.items()
               if k.lower() not in ("host", "connection", "keep-alive", "transfer-encoding")}
        for attempt in (1, 2):
            conn = self._upstream()
            try:
                conn.request(method, path, body=body or None, headers=fwd)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _rebase(self, data: bytes) -> bytes:
        return data.replace(self.upstream.encode(), self.base_url.encode())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def _record(self, status: int | None) -> None:
                method, path, headers, arrived, fault = self._meta
                with proxy._lock:  # before answering, so a client never sees it missing
                    proxy.seen.append(Seen(method, path, headers, arrived, status,
                                           fault.kind if fault else None))

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self._record(status)
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                         "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.close_connection = True

            def _handle(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()}
                method, path = self.command, self.path
                fault = proxy._take(method, path)
                self._meta = (method, path, headers, arrived, fault)
                if proxy.auth_check is not None and not proxy.auth_check(headers):
                    oo = json.dumps({"resourceType": "OperationOutcome", "issue": [
                        {"severity": "error", "code": "login",
                         "diagnostics": "invalid or expired token"}]}).encode()
                    self._reply(401, [("Content-Type", "application/fhir+json"),
                                      ("WWW-Authenticate", "Bearer")], oo)
                    return
                if fault is not None and fault.kind == "drop":
                    self._record(None)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault is not None and fault.kind == "status":
                    self._reply(fault.status, list(fault.headers.items()), fault.body)
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.delay)
                status, up_headers, data = proxy._forward(method, path, headers, body)
                data = proxy._rebase(data)
                up_headers = [(k, proxy._rebase(v.encode()).decode()) for k, v in up_headers]
                if fault is not None and fault.kind == "retype":
                    up_headers = [(k, v) for k, v in up_headers if k.lower() != "content-type"]
                    up_headers += list(fault.headers.items())
                if fault is not None and fault.kind == "rewrite" and fault.transform:
                    data = json.dumps(fault.transform(json.loads(data))).encode()
                self._reply(status, up_headers, data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        return Handler
