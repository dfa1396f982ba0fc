"""One finding of the profile validator, shaped like an OperationOutcome issue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Issue", "Severity"]

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """``severity``, IssueType ``code``, FHIRPath-like ``expression``
    (``Patient.name[0].family``), a ``message`` naming the profile and the rule, the
    ``rule`` itself (``us-core-6``, ``binding``, ``cardinality``...) and the ``element``
    id of the definition that was broken."""

    severity: Severity
    code: str
    expression: str
    message: str
    rule: str = ""
    element: str = ""

    @property
    def diagnostics(self) -> str:
        """The message, under the name ``mafhir.validation.Issue`` uses."""
        return self.message

    @property
    def location(self) -> str:
        """The path, under the name ``mafhir.errors.Problem`` uses."""
        return self.expression

    def __str__(self) -> str:
        return f"{self.severity}: {self.expression}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "diagnostics": self.message,
                "expression": [self.expression]}
