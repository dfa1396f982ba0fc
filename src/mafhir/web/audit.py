"""The dashboard's audit trail as FHIR AuditEvents: who did what, when, to which thing.

Every action of ``mafhir serve`` (a login, a failed one, a logout, a replay, a discard, a
reprocess, a raw message or Bundle shown, a user or token made) is one AuditEvent kept in
the dashboard's store (:mod:`.webstore`) before the action's answer is sent. The DICOM
event types say what kind of event it is; the subtype names the dashboard's own action.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["ACTIONS", "ACTION_SYSTEM", "web_event"]

JSON = dict[str, Any]

_DCM = "http://dicom.nema.org/resources/ontology/DCM"
#: The dashboard's actions (AuditEvent.subtype codes in this system).
ACTION_SYSTEM = "urn:mafhir:dashboard:action"
#: action → (DICOM event type, its display, FHIR AuditEvent.action C/R/U/D/E).
ACTIONS: dict[str, tuple[str, str, str]] = {
    "login": ("110114", "User Authentication", "E"),
    "logout": ("110114", "User Authentication", "E"),
    "show": ("110110", "Patient Record", "R"),
    "replay": ("110110", "Patient Record", "U"),
    "discard": ("110110", "Patient Record", "U"),
    "reprocess": ("110110", "Patient Record", "U"),
    "user-add": ("110136", "Security Roles Changed", "C"),
    "user-remove": ("110136", "Security Roles Changed", "D"),
    "token-add": ("110137", "User Security Attributes Changed", "C"),
}
#: FHIR AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure.
OUTCOMES = {"ok": "0", "refused": "4", "failed": "8"}


def _instant(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def web_event(action: str, who: str, when: float, *, outcome: str = "ok",
              entity: tuple[str, str] | None = None, address: str | None = None,
              detail: str | None = None) -> JSON:
    """One AuditEvent: ``who`` did ``action`` at ``when`` (to ``entity``: (system, value)),
    from ``address``. ``detail`` is a short description without patient data."""
    code, display, verb = ACTIONS[action]
    agent: JSON = {"requestor": True, "who": {"display": who[:200]}}
    if address:
        agent["network"] = {"address": address[:200], "type": "2"}  # 2: IP address
    event: JSON = {
        "resourceType": "AuditEvent",
        "type": {"system": _DCM, "code": code, "display": display},
        "subtype": [{"system": ACTION_SYSTEM, "code": action}],
        "action": verb,
        "recorded": _instant(when),
        "outcome": OUTCOMES[outcome],
        "agent": [agent],
        "source": {"observer": {"display": "mafhir serve"}},
    }
    if entity is not None or detail:
        ent: JSON = {}
        if entity is not None:
            ent["what"] = {"identifier": {"system": entity[0], "value": entity[1][:200]}}
        if detail:
            ent["description"] = detail[:500]
        event["entity"] = [ent]
    return event
