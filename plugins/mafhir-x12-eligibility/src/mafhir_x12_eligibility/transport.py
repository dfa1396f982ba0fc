"""One CORE real-time exchange over HTTPS: send a 270, get the partner's X12 answer.

Failures are classified once, here: a timeout, a reset, a refused connection, HTTP 5xx
or 429, and a CORE ``ErrorCode`` that says the receiver is down or busy are transient
(the outbox retries); any other 4xx and any other ``ErrorCode`` are permanent, with the
reason the partner gave (its SOAP Fault text or ErrorMessage, credentials blanked,
shortened), never our payload. TLS is verified (``verify`` may name a CA bundle);
credentials come from the environment (``config.Partner.secret``) or a client
certificate. Log lines name the payload id, status and duration — never the X12.
"""

from __future__ import annotations

import logging
import time

import requests

from mafhir.errors import InputError, MafhirError, PermanentError, Problem, TransientError
from mafhir.redact import redact_text
from mafhir.retry import RetryPolicy, parse_retry_after

from .config import Partner
from .core import PAYLOAD_270, CoreMessage, build_mime, build_soap, parse_mime, parse_soap

__all__ = ["TRANSIENT_CORE_ERRORS", "CoreClient"]

log = logging.getLogger("mafhir.x12")
#: CORE ErrorCodes that mean "try later" (the rest are permanent).
TRANSIENT_CORE_ERRORS = frozenset({"ReceiverDown", "Receiver Down", "ServerBusy",
                                   "Busy", "ReceiverBusy", "Timeout"})


def _reason(resp: requests.Response) -> str:
    """The partner's reason for a refusal: SOAP Fault / ErrorMessage, else the text."""
    data = resp.content[:20_000]
    ctype = resp.headers.get("Content-Type", "")
    try:
        msg = parse_mime(data, ctype) if ctype.startswith("multipart/") else parse_soap(data)
        text = f"{msg.error_code}: {msg.error_message}" if msg.error_code else ""
    except InputError as exc:
        text = exc.problems[0].message if exc.problems and "Fault" in \
            exc.problems[0].location else ""
    if not text:
        text = resp.text[:200] if "html" not in ctype else ""
    return redact_text(" ".join(text.split()))[:300] or resp.reason or "no reason given"


class CoreClient:
    """Sends CORE envelopes (SOAP or MIME, as the partner is configured) to its URL."""

    def __init__(self, partner: Partner, *, timeout: float | None = None,
                 max_attempts: int | None = None) -> None:
        if not partner.url:
            raise InputError([_problem(partner)])
        self.partner = partner
        self.url: str = partner.url
        self.timeout = timeout or partner.timeout
        self.retry = RetryPolicy(max_attempts=max_attempts or partner.max_attempts,
                                 base=0.2, cap=5.0)
        self.session = requests.Session()
        self.session.verify = partner.verify
        self.secret = partner.secret() if partner.auth == "basic" else None
        if partner.auth == "certificate":
            if not partner.client_cert:
                raise InputError([_problem(partner, "client_cert")])
            self.session.cert = (partner.client_cert, partner.client_key) \
                if partner.client_key else partner.client_cert

    def _envelope(self, x12: str) -> tuple[CoreMessage, bytes, dict[str, str]]:
        msg = CoreMessage(PAYLOAD_270, x12, self.partner.sender_id, self.partner.receiver_id)
        if self.secret is not None:
            msg.username, msg.password = self.partner.username, self.secret.reveal()
        if self.partner.envelope == "soap":
            return msg, build_soap(msg), {
                "Content-Type": 'application/soap+xml; charset=utf-8; '
                                'action="RealTimeTransaction"'}
        body, ctype = build_mime(msg)
        return msg, body, {"Content-Type": ctype}

    def exchange(self, x12: str) -> CoreMessage:
        """The partner's answer envelope (its ``payload`` the X12), retried as configured."""
        rng = self.retry.rng()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(x12)
            except MafhirError as exc:
                if not exc.transient:
                    raise
                wait = self.retry.delay(attempt, exc.retry_after, rng)
                if wait is None:
                    raise
                time.sleep(wait)  # a real backoff between tries of a live request

    def _once(self, x12: str) -> CoreMessage:
        msg, body, headers = self._envelope(x12)
        started = time.monotonic()
        try:
            # verify named on the call: requests lets REQUESTS_CA_BUNDLE override the
            # session's setting, and a CA bundle configured for this partner must win
            resp = self.session.post(self.url, data=body, headers=headers,
                                     timeout=self.timeout, verify=self.partner.verify)
        except requests.exceptions.SSLError as exc:
            raise PermanentError(f"TLS to the clearinghouse failed ({type(exc).__name__}); "
                                 "its certificate is not trusted, or it refused our client "
                                 "certificate (none, or one it does not trust)",
                                 code="security") from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise TransientError(f"the clearinghouse did not answer "
                                 f"({type(exc).__name__})") from None
        log.info("x12 %s payload %s: HTTP %d in %.2fs", self.partner.envelope,
                 msg.payload_id, resp.status_code, time.monotonic() - started)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransientError(f"the clearinghouse answered HTTP {resp.status_code}: "
                                 f"{_reason(resp)}", status=resp.status_code,
                                 retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        if resp.status_code >= 400:
            raise PermanentError(f"the clearinghouse refused the 270 (HTTP "
                                 f"{resp.status_code}): {_reason(resp)}",
                                 status=resp.status_code,
                                 code="security" if resp.status_code in (401, 403)
                                 else "invalid")
        ctype = resp.headers.get("Content-Type", "")
        try:
            answer = parse_mime(resp.content, ctype) if ctype.startswith("multipart/") \
                else parse_soap(resp.content)
        except InputError as exc:
            raise PermanentError(f"the clearinghouse's answer is not a CORE envelope: {exc}",
                                 code="structure", status=resp.status_code) from None
        if answer.error_code not in (None, "", "Success"):
            reason = redact_text(f"{answer.error_code}: {answer.error_message or ''}")[:300]
            if answer.error_code in TRANSIENT_CORE_ERRORS:
                raise TransientError(f"the clearinghouse cannot answer now ({reason})")
            raise PermanentError(f"the clearinghouse refused the envelope ({reason})",
                                 code="invalid")
        return answer

    def close(self) -> None:
        self.session.close()


def _problem(partner: Partner, key: str = "url") -> Problem:
    return Problem(f"x12.{partner.name}.{key}", "is needed to reach the clearinghouse",
                   "required")
