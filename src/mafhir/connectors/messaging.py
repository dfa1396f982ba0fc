"""The ``messaging`` destination: reminders out to patients, through the outbox.

``mafhir sync --to messaging:FILE`` or ``--to messaging:https://…/hook``. Each Bundle's
*active* CommunicationRequests that the reminder kind wrote (they carry its purpose code)
become one message each — ``{"id", "to", "channel", "text", "when"}`` — handed to a
:class:`Sender`:

* :class:`FileSender` appends them to a delivery-ready NDJSON file (one message a line)
  that an SMS/mail/dialer service picks up; a message already in the file is not written
  again (a retried Bundle sends nothing twice);
* :class:`WebhookSender` POSTs each as JSON to a URL with ``requests`` (TLS verified;
  plain http only to loopback), the secret from ``$MAFHIR_MESSAGING_TOKEN`` as a bearer
  token, the message id as ``Idempotency-Key``. 408/425/429/5xx and network trouble are
  transient (the outbox retries, then dead-letters); other answers are permanent.

Real SMS and email providers are plugins: each registers a :class:`ConnectorSpec` of its
own whose factory returns ``MessagingConnector(target, sender=TheirSender(...))`` — no
extra hook. Other resources of the Bundle (the Patient, the sent Communication) are not
this destination's business and are passed over; a reminder that cannot be sent (no
address, no text) fails the Bundle, naming the field, and nothing is reported as sent.
The text is the reminder kind's own (when and who, never what for): a
CommunicationRequest without mafhir's purpose code is refused, not sent.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import InputError, PermanentError, Problem, TransientError
from ..hookspecs import hookimpl
from ..registry import ConnectorSpec

try:  # POSIX; elsewhere only writers of one process are coordinated
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["TOKEN_ENV", "FileSender", "Message", "MessagingConnector", "Sender",
           "WebhookSender", "messages_of", "register_connectors"]

JSON = dict[str, Any]
TOKEN_ENV = "MAFHIR_MESSAGING_TOKEN"
PURPOSE = "urn:mafhir:reminder-purpose"
ADDRESS = "urn:mafhir:extension:reminder-address"
MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
CHANNELS = {"SMSWRIT": "sms", "PHONE": "phone", "EMAILWRIT": "email", "MAILWRIT": "mail",
            "ONLINEWRIT": "portal"}
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Message:
    """One message to one patient: where to, on which channel, what, and when."""

    id: str
    to: str
    channel: str
    text: str
    when: str


class Sender(Protocol):
    """Hands messages to a delivery service; raises a TransientError or PermanentError."""

    def deliver(self, message: Message) -> None: ...

    def close(self) -> None: ...


def _fail(where: str, why: str) -> InputError:
    return InputError([Problem(where, why, "required")])


def messages_of(bundle: JSON) -> list[Message]:
    """The messages of the active reminder requests in ``bundle`` (see the module doc)."""
    out = []
    for i, entry in enumerate(bundle.get("entry") or []):
        res = entry.get("resource") or {}
        if res.get("resourceType") != "CommunicationRequest" or res.get("status") != "active":
            continue
        where = f"Bundle.entry[{i}].resource"
        if not any(c.get("system") == PURPOSE for rc in res.get("reasonCode", [])
                   for c in rc.get("coding", [])):
            raise InputError([Problem(f"{where}.reasonCode", "is not a mafhir reminder "
                                      "(no reminder purpose): only texts the reminder kind "
                                      "wrote go to patients", "business-rule")])
        ident = next((x for x in res.get("identifier", []) if x.get("value")), None)
        if ident is None:
            raise _fail(f"{where}.identifier", "is required (the message id)")
        channel = next((CHANNELS[c["code"]] for m in res.get("medium", [])
                        for c in m.get("coding", [])
                        if c.get("system") == MODE and c.get("code") in CHANNELS), None)
        if channel is None:
            raise _fail(f"{where}.medium", "names no channel (SMSWRIT, PHONE, EMAILWRIT, "
                        "MAILWRIT, ONLINEWRIT)")
        text = next((p.get("contentString") for p in res.get("payload", [])
                     if p.get("contentString")), None)
        if not text:
            raise _fail(f"{where}.payload", "has no text to send")
        address = next((x.get("valueContactPoint", {}).get("value")
                        for x in res.get("extension", []) if x.get("url") == ADDRESS), None)
        if address is None and channel in ("sms", "phone", "email"):
            raise _fail(f"{where}.extension", f"has no address for '{channel}'")
        to = address or str((res.get("subject") or {}).get("reference", ""))
        when = res.get("occurrenceDateTime")
        if not when:
            raise _fail(f"{where}.occurrenceDateTime", "is required (when to send)")
        out.append(Message(f"{ident.get('system', '')}|{ident['value']}", to, channel, text,
                           str(when)))
    return out


class FileSender:
    """Appends messages to an NDJSON file, each once (by id), under a file lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _ids(self) -> set[str]:
        ids: set[str] = set()
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    ids.add(str(json.loads(line).get("id")))
        return ids

    def deliver(self, message: Message) -> None:
        line = json.dumps(asdict(message), ensure_ascii=False) + "\n"
        with self._lock, open(self.path, "a+", encoding="utf-8") as fh:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_EX)
            if message.id in self._ids():
                return
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookSender:
    """POSTs each message as JSON to ``url`` (see the module doc)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError([Problem("--to", "messaging needs a FILE or an http(s) URL",
                                      "value")])
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise InputError([Problem("--to", "messages go to patients: a webhook off this "
                                      "machine must use https", "security")])
        if parts.username or parts.password:
            raise InputError([Problem("--to", f"no credentials in the URL: set {TOKEN_ENV}",
                                      "security")])
        import requests

        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = True
        token = os.environ.get(TOKEN_ENV)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def deliver(self, message: Message) -> None:
        import requests

        try:
            answer = self.session.post(self.url, json=asdict(message), timeout=self.timeout,
                                       headers={"Idempotency-Key": message.id})
        except requests.RequestException as exc:
            raise TransientError(f"the messaging webhook did not answer "
                                 f"({type(exc).__name__})") from None
        if 200 <= answer.status_code < 300:
            return
        retry_after = answer.headers.get("Retry-After", "")
        wait = float(retry_after) if retry_after.isdigit() else None
        why = f"the messaging webhook answered {answer.status_code}"
        if answer.status_code in TRANSIENT_STATUS:
            raise TransientError(why, status=answer.status_code, retry_after=wait)
        raise PermanentError(why, status=answer.status_code)

    def close(self) -> None:
        self.session.close()


class MessagingConnector:
    """Sends the reminders of each Bundle through a :class:`Sender`, all or none reported.

    Messages of one Bundle go out in order; when one fails, the ones before it have gone
    (the file and the webhook's ``Idempotency-Key`` keep the retry from repeating them).
    """

    capabilities = frozenset({"whole_bundles", "configure"})

    def __init__(self, target: str, sender: Sender | None = None) -> None:
        if sender is None:
            if not target:
                raise InputError([Problem("--to", "messaging needs a FILE or a URL "
                                          "(messaging:reminders.ndjson)", "required")])
            sender = WebhookSender(target) if target.startswith(("http://", "https://")) \
                else FileSender(target)
        self.sender = sender

    def configure(self, *, timeout: float | None = None,
                  max_attempts: int | None = None) -> None:
        """The webhook's timeout (the outbox retries, so one attempt per send)."""
        if timeout is not None and isinstance(self.sender, WebhookSender):
            self.sender.timeout = timeout

    def send(self, bundle: JSON) -> JSON:
        messages = messages_of(bundle)
        for message in messages:
            self.sender.deliver(message)
        return {"resourceType": "Bundle", "type": "transaction-response",
                "messages": len(messages)}

    def close(self) -> None:
        self.sender.close()


@hookimpl
def register_connectors(register: Callable[[ConnectorSpec], None]) -> None:
    register(ConnectorSpec("messaging", MessagingConnector,
                           "reminders to patients: a delivery-ready NDJSON file "
                           "(messaging:FILE) or a webhook (messaging:https://…)"))
