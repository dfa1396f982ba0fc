"""Shared pieces of the iis plugin's tests: the clinic, dose tasks, a patient, the corpus,
the stand-in and a mafhir.toml naming it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mafhir_iis.standin import StandinIIS

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context
from mafhir.pipeline import Pipeline
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.testing.plugin import skip_or_fail

CORPUS = Path(os.environ.get("MAFHIR_CORPUS",
                             Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
CLINIC = Clinic(name="Maple Street Family Clinic",
                system="https://maple-clinic.example.org/fhir/id", npi="1234567893")
MRN_SYSTEM = CLINIC.mrn_namespace
NOW = datetime(2025, 10, 1, 18, 30, tzinfo=UTC)
V2CTX = V2Context(map=MapContext(clinic=CLINIC), now=NOW)
NURSE = {"npi": "1234567893", "family": "Rivera", "given": ["Ana"]}
DOCTOR = {"npi": "1245319599", "family": "Okafor"}
FACILITY = "MAPLE-0042"


def corpus_dir() -> Path:
    """The public corpus (a test module's ``corpus`` fixture); skip when it is absent."""
    if not (CORPUS / "MANIFEST.md").exists():
        skip_or_fail(f"public corpus not found at {CORPUS} (set MAFHIR_CORPUS)")
    return CORPUS


def child(mrn: str = "MRN-42", **over: Any) -> dict[str, Any]:
    """A child patient's demographics as the MA enters them (a new patient)."""
    ref = {"mrn": mrn, "system": MRN_SYSTEM, "family": "Doe", "given": ["Jane", "Q"],
           "birth_date": "2015-03-04", "gender": "female", "phone": "(555) 201-3344",
           "address": {"line": ["12 Elm St"], "city": "Madison", "state": "WI",
                       "postal_code": "53703"}}
    ref.update(over)
    return {k: v for k, v in ref.items() if v is not None}


def flu_shot(task_id: str = "imm-2025-001", patient: dict[str, Any] | None = None,
             **over: Any) -> dict[str, Any]:
    task = {
        "task": "immunization", "id": task_id, "patient": patient or child(),
        "vaccine": {"cvx": "140", "ndc": "49281-0425-50"},
        "occurred": "2025-10-01T09:15:00-04:00",
        "manufacturer": "PMC", "lot_number": "UT8531AA", "expiration_date": "2026-06-30",
        "dose_ml": 0.5, "site": "LD", "route": "IM",
        "administered_by": NURSE, "ordered_by": DOCTOR,
        "vis": [{"document": "253088698300010311250131", "published": "2025-01-31",
                 "presented": "2025-10-01"}],
        "funding_source": "VXC51", "eligibility": "V03",
    }
    task.update(over)
    return {k: v for k, v in task.items() if v is not None}


def refusal(task_id: str = "imm-2025-002", **over: Any) -> dict[str, Any]:
    task = {"task": "immunization", "id": task_id, "patient": child(), "status": "not-given",
            "vaccine": {"cvx": "140"}, "occurred": "2025-10-01T09:20:00-04:00",
            "reason_not_given": "PATOBJ", "ordered_by": DOCTOR}
    task.update(over)
    return task


def bundle_of(*tasks: dict[str, Any]) -> dict[str, Any]:
    """The transaction Bundle the core's mappers make of ``tasks``."""
    pipe = Pipeline(get_registry(), MapContext(clinic=CLINIC))
    entries = [e for n, t in enumerate(tasks) for e in pipe.map_task(n, pipe.parse(n, t)).entries]
    return transaction(entries)


def resources_of(*tasks: dict[str, Any]) -> ResourceSet:
    return ResourceSet.from_bundle(bundle_of(*tasks))


@contextmanager
def running_standin(**options: Any) -> Iterator[StandinIIS]:
    """The stand-in, knowing the test clinic's facility and credentials."""
    with StandinIIS(username="clinic-user", password="s3cret-pw", facilities={FACILITY},
                    **options) as running:
        yield running


def write_config(path: Path, standin: StandinIIS, name: str = "state",
                 transport: str = "soap") -> Path:
    """A mafhir.toml with registry ``name`` pointing at the stand-in."""
    host, port = standin.mllp_address or ("", 0)
    target = f'url = "{standin.soap_url}"' if transport == "soap" else \
        f'mllp = "{host}:{port}"'
    path.write_text(f"""
[iis]
facility_id = "{FACILITY}"
sending_organisation = "Maple Street Family Clinic"

[iis.{name}]
transport = "{transport}"
{target}
receiving_application = "WIR"
receiving_facility = "WIR"
username = "${{IIS_TEST_USER}}"
password = "${{IIS_TEST_PASSWORD}}"
timeout = 10.0
""")
    return path


CREDENTIALS_ENV = {"IIS_TEST_USER": "clinic-user", "IIS_TEST_PASSWORD": "s3cret-pw"}
