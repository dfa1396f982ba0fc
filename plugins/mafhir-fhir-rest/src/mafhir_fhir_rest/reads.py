"""What an MA reads from the EHR: the day's schedule, a patient, and their history.

Each function streams the search pages; only the schedule is gathered (a day's
appointments with their patients) so that it can be mapped back to ``appointment`` tasks
through the registry, like any other task kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

from mafhir.errors import InputError, Problem
from mafhir.resourceset import ResourceSet

from .client import FhirClient

__all__ = [
    "allergies",
    "coverage",
    "find_patient",
    "immunizations",
    "patient_reference",
    "schedule",
    "schedule_tasks",
    "vitals",
]

JSON = dict[str, Any]
NPI = "http://hl7.org/fhir/sid/us-npi"


def _when(value: date | datetime) -> str:
    return value.isoformat()


def _token(value: str, system: str) -> str:
    """A reference (``Type/id``) as is, else an identifier token in ``system``."""
    return value if "|" in value else f"{system}|{value}"


def schedule(client: FhirClient, start: date | datetime, end: date | datetime | None = None,
             practitioner: str | None = None, location: str | None = None,
             status: str | None = None) -> Iterator[JSON]:
    """Appointments from ``start`` (inclusive) to ``end`` (exclusive; default a day later),
    with their patients, practitioners and locations included.

    ``practitioner`` is ``Practitioner/id`` or an NPI; ``location`` is ``Location/id`` or
    an identifier token ``system|value``.
    """
    if end is None:
        end = start + timedelta(days=1)
    params: list[tuple[str, str]] = [("date", f"ge{_when(start)}"), ("date", f"lt{_when(end)}")]
    if practitioner:
        if practitioner.startswith("Practitioner/"):
            params.append(("practitioner", practitioner))
        else:
            params.append(("practitioner.identifier", _token(practitioner, NPI)))
    if location:
        if location.startswith("Location/"):
            params.append(("location", location))
        else:
            params.append(("location.identifier", location))
    if status:
        params.append(("status", status))
    params += [("_include", "Appointment:patient"), ("_include", "Appointment:practitioner"),
               ("_include", "Appointment:location")]
    for entry in client.search_entries("Appointment", params):
        yield entry["resource"]


def schedule_tasks(resources: list[JSON]) -> list[Any]:
    """The schedule as ``appointment`` tasks, through the registered reverse mapper."""
    from mafhir.plugins import get_registry

    mapper = get_registry().mapper("appointment")
    return mapper.from_fhir(ResourceSet.of(resources))


def find_patient(client: FhirClient, *, mrn: str | None = None, mrn_system: str | None = None,
                 family: str | None = None, given: str | None = None,
                 birthdate: date | None = None, gender: str | None = None) -> list[JSON]:
    """Patients by MRN (``system|value`` or value with ``mrn_system``) or demographics."""
    params: list[tuple[str, str]] = []
    if mrn:
        params.append(("identifier", mrn if "|" in mrn or not mrn_system
                       else f"{mrn_system}|{mrn}"))
    else:
        if not (family and birthdate):
            raise InputError([Problem("patient", "give an MRN, or family name and birth date")])
        params += [("family", family), ("birthdate", birthdate.isoformat())]
        if given:
            params.append(("given", given))
        if gender:
            params.append(("gender", gender))
    return list(client.search("Patient", params))


def patient_reference(client: FhirClient, patient: str, mrn_system: str | None = None) -> str:
    """``Patient/id`` for a reference or an MRN; exactly one match is required."""
    if patient.startswith("Patient/"):
        return patient
    found = find_patient(client, mrn=patient, mrn_system=mrn_system)
    if len(found) != 1:
        raise InputError([Problem("patient", f"the MRN matches {len(found)} patients, not one")])
    return f"Patient/{found[0]['id']}"


def immunizations(client: FhirClient, patient: str) -> Iterator[JSON]:
    """The patient's immunization history, newest first."""
    return client.search("Immunization", [("patient", patient), ("_sort", "-date")])


def vitals(client: FhirClient, patient: str, since: date | datetime | None = None
           ) -> Iterator[JSON]:
    """Vital-sign Observations, newest first (since ``since`` when given)."""
    params = [("patient", patient), ("category", "vital-signs"), ("_sort", "-date")]
    if since is not None:
        params.append(("date", f"ge{_when(since)}"))
    return client.search("Observation", params)


def coverage(client: FhirClient, patient: str) -> Iterator[JSON]:
    """The patient's active Coverage."""
    return client.search("Coverage", [("beneficiary", patient), ("status", "active")])


def allergies(client: FhirClient, patient: str) -> Iterator[JSON]:
    """Active allergies and intolerances."""
    return client.search("AllergyIntolerance", [("patient", patient),
                                                ("clinical-status", "active")])
