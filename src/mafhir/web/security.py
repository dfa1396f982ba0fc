"""The dashboard's guards that are not about users: where it may listen, CSRF tokens,
login throttling per client address, and the response headers every page carries."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque

__all__ = ["HEADERS", "LoginThrottle", "check_csrf", "is_loopback", "new_csrf"]

#: Sent with every answer: no caching of patient data, no framing, no sniffing, and a
#: policy that allows no script at all and only this server's own styles and forms.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def is_loopback(host: str) -> bool:
    """Is ``host`` an address of this machine only (127.0.0.0/8, ::1, localhost)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def check_csrf(expected: object, given: object) -> bool:
    """The form's token is the session's (compared in constant time); a missing one is not."""
    return isinstance(expected, str) and isinstance(given, str) and bool(expected) and \
        hmac.compare_digest(expected.encode(), given.encode())


class LoginThrottle:
    """At most ``limit`` failed logins per client address in ``window`` seconds; past that
    its attempts are refused before any password is checked (the per-account lockout of
    :class:`mafhir.web.webstore.WebStore` stops guessing one account; this stops trying
    many)."""

    def __init__(self, limit: int = 20, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        seen = self._failures.setdefault(address, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        return seen

    def blocked(self, address: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            return len(self._recent(address, now)) >= self.limit

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(address, now).append(now)
            if len(self._failures) > 10_000:  # a flood of addresses: forget the oldest
                self._failures.pop(next(iter(self._failures)))
