"""Coverage tasks and Bundles for the x12 tests (the core mapper writes the FHIR)."""

from __future__ import annotations

import uuid
from typing import Any

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.pipeline import Pipeline
from mafhir.plugins import get_registry

JSON = dict[str, Any]
NPI = "1234567893"  # a valid check digit (Luhn over 80840 + the first nine digits)


def clinic_ctx() -> MapContext:
    """A clinic whose identifier namespaces no other test uses."""
    return MapContext(clinic=Clinic(name="Maple Street Family Clinic",
                                    system=f"urn:mafhir:test:{uuid.uuid4()}", npi=NPI))


def coverage_task(member: str, relationship: str = "self", *, task_id: str | None = None,
                  service_type: str = "98", pending: bool = True, mrn: str = "M1") -> JSON:
    """A card and a check still to run (no answer yet) for patient Ana Rivera."""
    elig: JSON = {"checked_at": "2026-03-04T09:15:00-05:00", "service_date": "2026-03-04",
                  "service_type": service_type}
    if not pending:
        elig["active"] = True
    return {
        "task": "coverage", "id": task_id or f"cov-{member}-{uuid.uuid4().hex[:8]}",
        "patient": {"mrn": mrn, "family": "Rivera", "given": ["Ana"], "gender": "female",
                    "birth_date": "2019-05-04"},
        "payer": {"id": "60054", "name": "Aetna"}, "member_id": member,
        "subscriber": ({"relationship": "self"} if relationship == "self" else
                       {"relationship": relationship, "family": "Rivera", "given": ["Luis"],
                        "birth_date": "1985-02-03"}),
        "eligibility": elig,
    }


def bundle_of(task: JSON, ctx: MapContext | None = None) -> JSON:
    pipe = Pipeline(get_registry(), ctx or clinic_ctx())
    return transaction(pipe.map_task(0, pipe.parse(0, task)).entries)
