"""What a dead letter's OperationOutcome may show: its error code, and its issues without
the free text (which may name the patient). The CLI and the dashboard show the same."""

from __future__ import annotations

import json
from typing import Any

from .model import Item

__all__ = ["error_code", "issues_only"]


def issues_only(outcome: Any) -> Any:
    """An OperationOutcome without its free text (diagnostics, details): it may name the
    patient. Severity, code and where stay: enough to see what kind of refusal it was."""
    if not isinstance(outcome, dict):
        return None
    issues = [{k: v for k, v in i.items() if k in ("severity", "code", "expression",
                                                    "location")}
              for i in outcome.get("issue") or [] if isinstance(i, dict)]
    return {"resourceType": outcome.get("resourceType"), "issue": issues,
            "hidden": "diagnostics and details may carry patient data: --show-phi shows "
                      "them (the viewing is audited)"}


def error_code(item: Item) -> str:
    """The error code of a dead letter (docs/errors.md): its OperationOutcome's first
    error issue (the server's, or the one the engine made of its own error)."""
    try:
        outcome = json.loads(item.outcome) if item.outcome else None
    except ValueError:
        outcome = None
    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    for issue in issues if isinstance(issues, list) else []:
        if isinstance(issue, dict) and issue.get("severity") in ("error", "fatal", None) \
                and isinstance(issue.get("code"), str):
            return str(issue["code"])
    return "processing"
