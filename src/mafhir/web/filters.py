"""Query parameters of the queue and the inbound list, read once for pages and API alike:
each bad value is a :class:`mafhir.errors.Problem` naming the parameter and the reason."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InputError, Problem
from ..hl7v2.store import FINAL
from .views import ITEM_STATES

__all__ = ["MAX_ID", "MAX_LIMIT", "inbound_filters", "item_id", "queue_filters"]

MAX_LIMIT = 500
MAX_ID = 2**63 - 1
_KEY = re.compile(r"[0-9a-f]{1,128}")
INBOUND_STATUSES = (*FINAL, "retry", "received")


def _text(params: Mapping[str, str], name: str, problems: list[Problem],
          max_len: int = 500) -> str | None:
    value = params.get(name) or None
    if value is not None and len(value) > max_len:
        problems.append(Problem(name, f"at most {max_len} characters", "value"))
        return None
    return value


def _int(params: Mapping[str, str], name: str, low: int, high: int, default: int,
         problems: list[Problem]) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append(Problem(name, "not a whole number", "value"))
        return default
    if not low <= value <= high:
        problems.append(Problem(name, f"from {low} to {high}", "value"))
        return default
    return value


def _time(params: Mapping[str, str], name: str, problems: list[Problem]) -> float | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
        if at.tzinfo is None:  # a date or a local time without zone: taken as UTC, stated
            at = at.replace(tzinfo=UTC)
        return at.timestamp()
    except (ValueError, OverflowError):  # OverflowError: year 1 east of UTC
        problems.append(Problem(name, "not an ISO 8601 date or date-time "
                                      "(2026-12-03 or 2026-12-03T08:00:00Z)", "value"))
        return None


def queue_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The queue's filters (state, destination, kind, patient_key, since, until) and page
    (limit, offset), checked; an :class:`InputError` names every bad one."""
    problems: list[Problem] = []
    state = params.get("state") or None
    if state is not None and state not in ITEM_STATES:
        problems.append(Problem("state", f"one of {', '.join(ITEM_STATES)}", "code-invalid"))
    okey = params.get("patient_key") or None
    if okey is not None and not _KEY.fullmatch(okey):
        problems.append(Problem("patient_key", "the patient key is lowercase hex (as shown "
                                               "with each item)", "value"))
    out = {"state": state, "destination": _text(params, "destination", problems),
           "kind": _text(params, "kind", problems, 64), "okey": okey,
           "since": _time(params, "since", problems), "until": _time(params, "until", problems),
           "limit": _int(params, "limit", 1, MAX_LIMIT, 100, problems),
           "offset": _int(params, "offset", 0, 10**9, 0, problems)}
    if problems:
        raise InputError(problems)
    return out


def inbound_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The inbound list's filters (status, sender, type, pending) and page."""
    problems: list[Problem] = []
    status = params.get("status") or None
    if status is not None and status not in INBOUND_STATUSES:
        problems.append(Problem("status", f"one of {', '.join(INBOUND_STATUSES)}",
                                "code-invalid"))
    pending = params.get("pending") or ""
    if pending not in ("", "0", "1", "true", "false"):
        problems.append(Problem("pending", "1 or 0", "value"))
    out = {"status": status, "sender": _text(params, "sender", problems),
           "message_type": _text(params, "type", problems, 64),
           "replies_pending": pending in ("1", "true"),
           "limit": _int(params, "limit", 1, MAX_LIMIT, 100, problems),
           "offset": _int(params, "offset", 0, 10**9, 0, problems)}
    if problems:
        raise InputError(problems)
    return out


def item_id(raw: str, name: str = "id") -> int:
    """A row id from a path or a form: 1 to 2^63-1, else an InputError naming it."""
    try:
        value = int(raw)
    except ValueError:
        raise InputError([Problem(name, "not a whole number", "value")]) from None
    if not 1 <= value <= MAX_ID:
        raise InputError([Problem(name, f"from 1 to {MAX_ID}", "value")])
    return value
