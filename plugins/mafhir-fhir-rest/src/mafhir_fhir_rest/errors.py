"""HTTP failures as mafhir errors that carry the server's OperationOutcome.

Whether retrying can help is decided here, once, from the status code (or from the kind
of network failure), so the retry loop, the CLI and an outbox all agree:

* transient — 408, 425, 429, 502, 503, 504, timeouts, refused or reset connections;
* permanent — 500 (a server bug answers the same input the same way) and every other
  4xx (400, 401/403, 404/410, 409/412, 422…), an answer that is
  not FHIR JSON, a Bundle that is not what was asked for, an incomplete search.

Messages never quote patient data: the server's ``diagnostics`` are shown with quoted
values blanked, and the request is named by method and resource type, not by URL. Nothing
a server answered keeps a credential: the OperationOutcome and the message are passed
through :mod:`mafhir.redact` here, once, so a 401 that echoes the ``Authorization``
header cannot carry it into an outbox, a log or the screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mafhir.errors import CODES, PermanentError, TransientError
from mafhir.redact import redact_json, redact_text

__all__ = [
    "TRANSIENT_STATUSES",
    "FhirHttpError",
    "Issue",
    "PartialDelivery",
    "PermanentHttpError",
    "PreconditionFailed",
    "ProtocolError",
    "TransactionRejected",
    "TransientHttpError",
    "Unsupported",
    "http_error",
    "outcome_issues",
    "redact",
]

JSON = dict[str, Any]

#: Statuses after which the same request may succeed later.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 502, 503, 504})

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def redact(text: str, limit: int = 300) -> str:
    """``text`` with quoted values blanked (they may be patient data) and bounded length."""
    out = _QUOTED.sub("'…'", text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Issue:
    """One ``OperationOutcome.issue``: what the server said was wrong, and where."""

    severity: str
    code: str
    expression: tuple[str, ...] = ()
    diagnostics: str = ""

    def __str__(self) -> str:
        where = f" at {', '.join(self.expression)}" if self.expression else ""
        why = f": {redact(self.diagnostics)}" if self.diagnostics else ""
        return f"{self.severity} {self.code}{where}{why}"


def outcome_issues(outcome: JSON | None) -> list[Issue]:
    """The issues of an OperationOutcome (empty when ``outcome`` is not one)."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    out = []
    for raw in outcome.get("issue") or []:
        if not isinstance(raw, dict):
            continue
        expr = raw.get("expression") or raw.get("location") or []
        out.append(Issue(str(raw.get("severity", "error")), str(raw.get("code", "unknown")),
                         tuple(str(e) for e in expr if isinstance(e, str)),
                         str(raw.get("diagnostics") or raw.get("details", {}).get("text") or "")))
    return out


#: The error code of a refusal by its HTTP status, when the OperationOutcome names none.
STATUS_CODES = {400: "invalid", 401: "security", 403: "security", 404: "not-found",
                405: "not-supported", 409: "conflict", 410: "not-found", 412: "conflict",
                413: "too-long", 415: "not-supported", 422: "business-rule",
                501: "not-supported"}


class FhirHttpError(Exception):
    """Mixin: what the server answered (status, OperationOutcome) to which request."""

    status: int | None
    outcome: JSON | None
    issues: list[Issue]
    request: str

    def _init(self, summary: str, status: int | None, outcome: JSON | None, request: str) -> str:
        outcome = redact_json(outcome) if isinstance(outcome, dict) else None
        self.status = status
        self.outcome = outcome
        self.issues = outcome_issues(outcome)
        self.request = request
        if not getattr(self, "transient", False):  # a refusal: the code the server gave
            self._code = next((i.code for i in self.issues if i.severity in ("fatal", "error")
                               and i.code in CODES), None) \
                or STATUS_CODES.get(status or 0, "processing")
        detail = "; ".join(str(i) for i in self.issues if i.severity in ("fatal", "error"))
        detail = detail or "; ".join(str(i) for i in self.issues)
        head = f"{request}: " if request else ""
        code = f"HTTP {status} " if status else ""
        return redact_text(f"{head}{code}{summary}" + (f" — {detail}" if detail else ""))


class TransientHttpError(FhirHttpError, TransientError):
    """The server or network failed in a way that may pass (429, 503, timeout…)."""

    def __init__(self, summary: str, status: int | None = None, outcome: JSON | None = None,
                 request: str = "", retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(self._init(summary, status, outcome, request))


class PermanentHttpError(FhirHttpError, PermanentError):
    """The server refused the request; sending it again will not help."""

    def __init__(self, summary: str, status: int | None = None, outcome: JSON | None = None,
                 request: str = "") -> None:
        super().__init__(self._init(summary, status, outcome, request))


class PreconditionFailed(PermanentHttpError):
    """412: the resource changed since it was read (``If-Match``) — read it again first."""


class ProtocolError(PermanentHttpError):
    """The answer is not what a FHIR server must send (HTML, wrong type, bad Bundle, paging)."""


class TransactionRejected(PermanentHttpError):
    """The server rejected a transaction; ``entries`` are the indexes it blamed."""

    def __init__(self, summary: str, status: int | None, outcome: JSON | None, request: str,
                 entries: tuple[int, ...], labels: tuple[str, ...]) -> None:
        self.entries = entries
        which = ", ".join(labels) if labels else "entry unknown"
        super().__init__(f"{summary} ({which})", status, outcome, request)


_SUMMARIES = {
    400: "bad request", 401: "not authenticated", 403: "forbidden", 404: "not found",
    405: "method not allowed", 409: "conflict", 410: "gone", 412: "precondition failed "
    "(the resource changed since it was read)", 422: "unprocessable", 429: "too many requests",
    500: "server error", 502: "bad gateway", 503: "service unavailable", 504: "gateway timeout",
}


def http_error(status: int, outcome: JSON | None, request: str,
               retry_after: float | None = None, note: str = "") -> FhirHttpError:
    """The error for an HTTP failure status, classed transient or permanent."""
    summary = _SUMMARIES.get(status, "request failed") + (f" ({note})" if note else "")
    if status in TRANSIENT_STATUSES:
        return TransientHttpError(summary, status, outcome, request, retry_after)
    if status == 412:
        return PreconditionFailed(summary, status, outcome, request)
    return PermanentHttpError(summary, status, outcome, request)


class Unsupported(PermanentHttpError):
    """The server's CapabilityStatement says it cannot do what was asked."""


class PartialDelivery(PermanentHttpError):
    """A batch or single-request delivery where some entries failed.

    Unlike a transaction these are not atomic: ``accepted`` lists the indexes the server
    did store (so nothing is reported as sent that was not), ``failed`` those it refused
    or that were not sent because an entry they reference failed.
    """

    def __init__(self, summary: str, accepted: tuple[int, ...], failed: tuple[int, ...],
                 outcome: JSON | None = None, status: int | None = None,
                 request: str = "") -> None:
        self.accepted = accepted
        self.failed = failed
        super().__init__(f"{summary}: {len(accepted)} entr(y/ies) stored, "
                         f"{len(failed)} not (entries {', '.join(map(str, failed))})",
                         status, outcome, request)
