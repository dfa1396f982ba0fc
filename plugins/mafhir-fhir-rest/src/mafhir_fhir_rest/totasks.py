"""Resources read from a server, mapped back to tasks one item at a time.

The core's reverse mappers (``get_registry().mapper(kind).from_fhir(ResourceSet)``) map a
whole set and stop at the first resource they cannot read. A server holds data mafhir did
not write, so ``pull --tasks`` maps each item (an Appointment, an Immunization, a Coverage,
the Observations of one vitals task) with everything it may refer to, and reports the items
that cannot be mapped — by ``Type/id`` and reason, never with patient data — instead of
losing the rest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mafhir.errors import InputError, MafhirError
from mafhir.resourceset import ResourceSet

__all__ = ["KINDS", "Unmapped", "to_tasks"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Unmapped:
    """An item that could not be mapped back: ``reference`` (Type/id) and ``reason``."""

    reference: str
    reason: str

    def __str__(self) -> str:
        return f"{self.reference}: {self.reason}"


def _by_id(resource: JSON) -> str:
    return str(resource.get("id", ""))


def _task_key(suffix: str, whole: bool = False) -> Callable[[JSON], str]:
    """The task a resource belongs to: its identifier in a system ending ``suffix`` (the
    clinic's ``…/<kind>`` namespace) — ``<task id>/<slug>``, or with ``whole`` the task id
    itself (an intake's) — else the resource itself."""
    def key(resource: JSON) -> str:
        for ident in resource.get("identifier") or []:
            system, value = str(ident.get("system", "")), str(ident.get("value", ""))
            if not system.endswith(suffix) or not value:
                continue
            if whole:
                return f"{system}|{value}"
            if "/" in value:
                return f"{system}|{value.rsplit('/', 1)[0]}"
        return f"id:{resource.get('resourceType')}/{resource.get('id', '')}"

    return key


#: task kind → (the resource types an item is made of, how its resources are grouped)
KINDS: dict[str, tuple[tuple[str, ...], Callable[[JSON], str]]] = {
    "appointment": (("Appointment",), _by_id),
    "immunization": (("Immunization",), _by_id),
    "vitals": (("Observation",), _task_key("/observation")),
    "coverage": (("Coverage",), _by_id),
    "intake": (("AllergyIntolerance", "MedicationRequest", "Condition", "Observation"),
               _task_key("/intake", whole=True)),
    "injection": (("MedicationAdministration",), _by_id),
    "poc_test": (("Observation",), _task_key("/poc-test")),
    "ekg": (("Procedure", "DiagnosticReport", "Observation"), _task_key("/ekg")),
    "skin_test": (("Procedure", "Observation"), _task_key("/skin-test")),
    # issue 18 part B (w10): the front office
    "phone_call": (("Communication",), _by_id),
    "reminder": (("CommunicationRequest",), _by_id),
    "follow_up": (("Task",), _by_id),
}


def _reason(exc: Exception, kind: str) -> str:
    """Why an item failed, without echoing its data (no PHI)."""
    from mafhir.pipeline import problems_from_validation

    if isinstance(exc, ValidationError):
        return "; ".join(str(p) for p in problems_from_validation(exc, kind))
    if isinstance(exc, InputError):
        return "; ".join(str(p) for p in exc.problems)
    if isinstance(exc, (MafhirError, ValueError, LookupError)):
        return str(exc) or type(exc).__name__
    return f"the {kind} mapper failed ({type(exc).__name__})"


def to_tasks(kind: str, resources: Iterable[JSON]) -> Iterator[Any]:
    """Tasks of ``kind`` mapped back from ``resources``, in the order the items came;
    an :class:`Unmapped` in place of each item that cannot be mapped."""
    from mafhir.plugins import get_registry

    mapper = get_registry().mapper(kind)
    primaries, key = KINDS[kind]
    groups: dict[str, list[JSON]] = {}
    others: list[JSON] = []
    for r in resources:
        if r.get("resourceType") in primaries:
            groups.setdefault(key(r), []).append(r)
        else:
            others.append(r)
    for group in groups.values():
        try:
            tasks = mapper.from_fhir(ResourceSet.of([*group, *others]))
        except Exception as exc:  # one unreadable item must not lose the rest
            # the mapper names the item by its place in the set ("Appointment[0]"): the
            # reference replaces that
            first = str(group[0].get("resourceType"))
            reason = re.sub(rf"^{first}\[\d+\]:?\s*", "", _reason(exc, kind))
            yield Unmapped(f"{first}/{group[0].get('id', '?')}", reason)
            continue
        yield from tasks
