"""Validation findings, shaped like OperationOutcome issues."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Issue", "Severity", "has_errors", "operation_outcome"]

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding at one FHIR path (``expression``), e.g. ``Observation.component[0].code``."""

    severity: Severity
    code: str  # OperationOutcome issue-type: required, value, invariant, structure, code-invalid…
    expression: str
    diagnostics: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.expression}: {self.diagnostics}"

    def at(self, prefix: str) -> Issue:
        """The same issue with its path placed under ``prefix`` (e.g. a Bundle entry)."""
        return Issue(self.severity, self.code, f"{prefix}{self.expression}", self.diagnostics)

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
            "expression": [self.expression],
        }


def has_errors(issues: Iterable[Issue]) -> bool:
    return any(i.severity in ("error", "fatal") for i in issues)


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    found = [i.as_json() for i in issues]
    if not found:
        found = [{"severity": "information", "code": "informational", "diagnostics": "no issues"}]
    return {"resourceType": "OperationOutcome", "issue": found}
