"""The state of one validation run: the definitions, the issues found, the Bundle."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import Definitions
from .issue import Issue, Severity
from .tree import Elem, Structure

__all__ = ["Evaluate", "Run", "evaluator"]

JSON = dict[str, Any]
Evaluate = Callable[[str, Any, Any], "bool | None"]


def evaluator() -> Evaluate | None:
    """``mafhir.profiles.fhirpath.evaluate`` when that module is installed, else None."""
    try:
        module = importlib.import_module("mafhir.profiles.fhirpath")
    except ImportError:
        return None
    fn = getattr(module, "evaluate", None)
    return fn if callable(fn) else None


@dataclass
class Run:
    """The state of one validation: where issues go, what the Bundle holds."""

    defs: Definitions
    must_support: bool = False
    evaluate: Evaluate | None = None
    issues: list[Issue] = field(default_factory=list)
    resource: Any = None
    structure: Structure | None = None
    bundle: dict[str, JSON] = field(default_factory=dict)  # fullUrl / Type/id -> resource
    #: (id of a resource in ``bundle``, profile) -> conforms; the Bundle holds the
    #: resources, so their ids stay theirs while it is checked
    verdicts: dict[tuple[int, str], bool] = field(default_factory=dict)
    not_evaluated: set[str] = field(default_factory=set)
    elsewhere: frozenset[str] = frozenset()  # claimed profiles other rules check
    #: how often the compiled walk asked about what is around a value (an invariant, a
    #: reference's target, a contained resource): it remembers only verdicts that did not
    context_reads: int = 0

    def conforms(self, resource: JSON, url: str) -> bool:
        """Does ``resource`` (in this Bundle) meet profile ``url`` with no error?"""
        key = (id(resource), url)
        if key not in self.verdicts:
            self.verdicts[key] = bool(self.defs.validate_quietly(resource, url))
        return self.verdicts[key]

    def add(self, severity: Severity, code: str, path: str, elem: Elem | None,
            message: str, rule: str) -> None:
        where = self.structure.label if self.structure is not None else ""
        self.issues.append(Issue(severity, code, path, f"{rule}: {message} ({where})",
                                 rule, elem.id if elem is not None else ""))
