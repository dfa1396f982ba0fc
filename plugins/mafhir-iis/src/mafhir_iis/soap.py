"""The CDC IIS SOAP 1.2 client: ``submitSingleMessage`` and ``connectivityTest``.

Built on ``requests`` (already a dependency of mafhir) and the WSDL's envelope
(:mod:`.envelope`) rather than zeep: the service has two operations with flat string
parts, zeep would need the WSDL file at run time (states publish it at different URLs,
some not at all) and brings lxml; the envelope is ten lines. TLS verification stays on
(``verify`` may name a CA bundle, never ``False`` silently).

What comes back decides retrying, explicitly:

================================  ================================================
SecurityFault                     PermanentError ``security`` (wrong credentials or
                                  facility: sending again cannot help)
MessageTooLargeFault              PermanentError ``too-long``
UnsupportedOperationFault         PermanentError ``not-supported``
UnknownFault                      TransientError (the registry's own trouble)
HTTP 5xx without a fault, 429     TransientError (``Retry-After`` honoured)
connection refused/reset, timeout TransientError
TLS verification failure          PermanentError ``security``
other HTTP 4xx                    PermanentError (401/403 ``security``)
================================  ================================================

Credentials come from the environment (:class:`Credentials`), travel only in the SOAP
body, and appear in no ``repr``, log line or error message.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from mafhir.errors import InputError, MafhirError, PermanentError, Problem, TransientError
from mafhir.retry import RetryPolicy, parse_retry_after

from . import envelope
from .envelope import Envelope, EnvelopeError, Fault

__all__ = ["Credentials", "SoapClient", "fault_error"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credentials:
    """The registry's username and password, read from environment variables."""

    username: str = field(repr=False)
    password: str = field(repr=False)

    @classmethod
    def from_env(cls, username_env: str, password_env: str) -> Credentials:
        """Both variables must be set (an InputError naming the missing ones otherwise)."""
        missing = [n for n in (username_env, password_env) if not os.environ.get(n)]
        if missing:
            raise InputError([Problem(name, "is not set; the registry's credentials come "
                                            "from the environment", "required")
                              for name in missing])
        return cls(os.environ[username_env], os.environ[password_env])


_FAULT_CODES = {"SecurityFault": "security", "MessageTooLargeFault": "too-long",
                "UnsupportedOperationFault": "not-supported"}


def fault_error(f: Fault, status: int | None = None) -> MafhirError:
    """The error a SOAP fault means (see the module table)."""
    words = f.reason or "no reason given"
    text = f"the registry answered {f.name}" + (f" {f.code}" if f.code else "") + \
        f": {words}" + (f" ({f.detail})" if f.detail else "")
    if f.name == "UnknownFault":
        return TransientError(text, status=status)
    return PermanentError(text, code=_FAULT_CODES.get(f.name, "processing"), status=status)


class SoapClient:
    """One registry's SOAP endpoint (``url``), with its facility id and credentials."""

    def __init__(self, url: str, credentials: Credentials, facility_id: str,
                 timeout: float = 30.0, verify: bool | str = True,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.url = url
        self.facility_id = facility_id
        self.timeout = timeout
        self.verify = verify
        self._credentials = credentials
        #: transient failures are tried again here (the outbox sets one attempt: it
        #: reschedules itself rather than sleep in a worker)
        self.retry = retry or RetryPolicy(max_attempts=3, base=0.2, cap=5.0)
        self.sleep = sleep
        self.rng = rng or self.retry.rng()
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"SoapClient({self.url!r}, facility_id={self.facility_id!r})"

    def submit(self, message: str) -> str:
        """``submitSingleMessage``: the registry's answer (ACK or RSP) as text."""
        body = envelope.request("submitSingleMessage", [
            ("username", self._credentials.username), ("password", self._credentials.password),
            ("facilityID", self.facility_id), ("hl7Message", message)])
        return self._call("submitSingleMessage", body)

    def connectivity_test(self, echo: str = "mafhir") -> str:
        """``connectivityTest``: the registry's echo (no credentials involved)."""
        return self._call("connectivityTest",
                          envelope.request("connectivityTest", [("echoBack", echo)]))

    def _call(self, operation: str, body: bytes) -> str:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                return self._once(operation, body)
            except TransientError as exc:
                delay = self.retry.delay(attempt, exc.retry_after, self.rng)
                log.info("IIS %s attempt %d failed after %.2fs (%s)%s", operation, attempt,
                         time.monotonic() - started, type(exc).__name__,
                         "" if delay is None else f"; again in {delay:.2f}s")
                if delay is None:
                    raise
                self.sleep(delay)

    def _once(self, operation: str, body: bytes) -> str:
        try:
            reply = self.session.post(self.url, data=body, timeout=self.timeout,
                                      verify=self.verify,
                                      headers={"Content-Type": envelope.content_type(operation)})
        except requests.exceptions.SSLError:
            raise PermanentError(f"TLS verification of {self.url} failed: the registry's "
                                 f"certificate is not trusted (set verify to its CA bundle)",
                                 code="security") from None
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:  # reset mid-answer too
            raise TransientError(f"the registry at {self.url} did not answer "
                                 f"({type(exc).__name__})") from None
        status = reply.status_code
        try:
            answer = envelope.read(reply.content) if reply.content else None
        except EnvelopeError as exc:
            answer = None
            reason = str(exc)
        else:
            reason = "an empty body"
        if isinstance(answer, Fault):
            raise fault_error(answer, status)
        if status == 429 or status >= 500:
            raise TransientError(f"the registry answered HTTP {status}", status=status,
                                 retry_after=parse_retry_after(reply.headers.get("Retry-After")))
        if status >= 400:
            raise PermanentError(f"the registry answered HTTP {status} to {operation}",
                                 status=status,
                                 code="security" if status in (401, 403) else "invalid")
        if not isinstance(answer, Envelope) or answer.operation != f"{operation}Response" \
                or "return" not in answer.fields:
            why = reason if answer is None else "another element"
            raise PermanentError(f"the registry's answer to {operation} is not a "
                                 f"{operation}Response ({why})", status=status,
                                 code="structure")
        return answer.fields["return"]

    def close(self) -> None:
        self.session.close()
