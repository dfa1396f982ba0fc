"""What an MA reads from the EHR: the day's schedule, a patient, and their history.

Each function streams the search pages. To map back to tasks (``pull --tasks``) the
resources a reverse mapper needs are gathered with their includes (patients,
practitioners, locations, the visit's Encounter, the payer) into one set per patient or
day, and mapped through the registry like any other task kind (see :mod:`.totasks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import requests

from mafhir.errors import InputError, Problem
from mafhir.fhirtypes import local_references
from mafhir.identity import identifier_query
from mafhir.io import loads

from .client import JSON_TYPES, FhirClient

__all__ = [
    "RESULT_SETS",
    "allergies",
    "coverage",
    "coverage_set",
    "ekg_set",
    "find_patient",
    "follow_up_set",
    "immunization_set",
    "immunizations",
    "injection_set",
    "injections",
    "intake",
    "intake_set",
    "keeping_decimals",
    "patient_reference",
    "phone_call_set",
    "poc_test_set",
    "reminder_set",
    "schedule",
    "schedule_tasks",
    "skin_test_set",
    "vitals",
    "vitals_set",
]

JSON = dict[str, Any]
NPI = "http://hl7.org/fhir/sid/us-npi"


def keeping_decimals(client: FhirClient) -> FhirClient:
    """``client``, reading the server's JSON with :func:`mafhir.io.loads`, so that what pull
    writes keeps each decimal as the server sent it (13.40 stays 13.40; a float makes it
    13.4). A body that reader refuses goes to the client's own checks (media type, invalid
    JSON, NaN), which raise as before. Sending keeps the faster float reader: its answers
    are read for ids and outcomes, not written out."""
    checked = client._parse

    def parse(r: requests.Response, method: str, label: str) -> Any:
        if r.content and client._media(r) in JSON_TYPES:
            try:
                return loads(r.content)
            except ValueError:  # not JSON, or NaN/Infinity: the client says which
                pass
        return checked(r, method, label)

    client._parse = parse  # type: ignore[method-assign]  # one instance: pull's
    return client


def _when(value: date | datetime) -> str:
    return value.isoformat()


def _token(value: str, system: str) -> str:
    """A reference (``Type/id``) as is, else an identifier token in ``system``."""
    return value if "|" in value else f"{system}|{value}"


def schedule(client: FhirClient, start: date | datetime, end: date | datetime | None = None,
             practitioner: str | None = None, location: str | None = None,
             status: str | None = None) -> Iterator[JSON]:
    """Appointments from ``start`` (inclusive) to ``end`` (exclusive; default a day later),
    earliest first, with their patients, practitioners and locations included, and the
    Encounters that refer to them (``_revinclude``): a checked-in or fulfilled Appointment
    maps back to a task only with its Encounter (check-in, start and end times live there).

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
    params += [("_sort", "date"), ("_include", "Appointment:patient"),
               ("_include", "Appointment:practitioner"), ("_include", "Appointment:location"),
               ("_revinclude", "Encounter:appointment")]
    for entry in client.search_entries("Appointment", params):
        yield entry["resource"]


def schedule_tasks(resources: list[JSON]) -> list[Any]:
    """The schedule as ``appointment`` tasks; raises on the first one that cannot be mapped
    (use :func:`mafhir_fhir_rest.totasks.to_tasks` to get the others and the reasons)."""
    from .totasks import Unmapped, to_tasks

    out = []
    for item in to_tasks("appointment", resources):
        if isinstance(item, Unmapped):
            raise InputError([Problem(item.reference, item.reason, "not-supported")])
        out.append(item)
    return out


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
            raise InputError([Problem("patient", "give an MRN, or family name and birth date",
                                      "required")])
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
        raise InputError([Problem("patient", f"the MRN matches {len(found)} patients, not one",
                                  "conflict")])
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


# ---------------------------------------------------------------------- sets for --tasks
def _ids(refs: list[str], rtype: str) -> list[str]:
    out = []
    for ref in refs:
        parts = ref.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2 and parts[-2] == rtype and "?" not in parts[-1]:
            out.append(parts[-1])
    return list(dict.fromkeys(out))


def _by_id(client: FhirClient, rtype: str, ids: list[str], chunk: int = 50) -> list[JSON]:
    """Resources by id, ``chunk`` per search (``_id=a,b,c``)."""
    found: list[JSON] = []
    for i in range(0, len(ids), chunk):
        found.extend(client.search(rtype, [("_id", ",".join(ids[i:i + chunk]))]))
    return found


def _visit_by_identifier(resources: list[JSON], rtype: str, key: str = "encounter") -> None:
    """Point ``rtype.encounter`` back at the visit's business identifier.

    mafhir writes the visit as a conditional reference (``Encounter?identifier=…``) and the
    server stores it resolved (``Encounter/<id>``); the reverse mapper reads the visit id
    from the identifier, so the reference is restored from the Encounter fetched with it.
    """
    encounters = {f"Encounter/{r['id']}": r for r in resources
                  if r.get("resourceType") == "Encounter" and r.get("id")}
    for r in resources:
        if r.get("resourceType") != rtype or not isinstance(r.get(key), dict):
            continue
        ref = str(r[key].get("reference", ""))
        enc = encounters.get("/".join(ref.split("/_history/")[0].rstrip("/").split("/")[-2:]))
        ident = next((i for i in (enc or {}).get("identifier", [])
                      if str(i.get("system", "")).endswith("/encounter") and i.get("value")),
                     None)
        if ident is not None:
            query = identifier_query(ident["system"], ident["value"])
            r[key] = {**r[key], "reference": f"Encounter?{query}"}


def immunization_set(client: FhirClient, patient: str) -> list[JSON]:
    """The patient's Immunizations with the patient, performers, locations and visits."""
    found = [e["resource"] for e in client.search_entries("Immunization", [
        ("patient", patient), ("_sort", "-date"), ("_include", "Immunization:patient"),
        ("_include", "Immunization:performer"), ("_include", "Immunization:location")])]
    refs = [str((r.get("encounter") or {}).get("reference", "")) for r in found
            if r.get("resourceType") == "Immunization"]
    found += _by_id(client, "Encounter", _ids(refs, "Encounter"))
    _visit_by_identifier(found, "Immunization")
    return found


def vitals_set(client: FhirClient, patient: str, since: date | datetime | None = None
               ) -> list[JSON]:
    """Vital-sign (and pain: category survey) Observations with patient, performer, visit."""
    params = [("patient", patient), ("category", "vital-signs,survey"), ("_sort", "-date"),
              ("_include", "Observation:patient"), ("_include", "Observation:performer"),
              ("_include", "Observation:encounter")]
    if since is not None:
        params.append(("date", f"ge{_when(since)}"))
    return [e["resource"] for e in client.search_entries("Observation", params)]


def coverage_set(client: FhirClient, patient: str) -> list[JSON]:
    """Active Coverages with beneficiary, payer and subscriber, and the eligibility checks."""
    found = [e["resource"] for e in client.search_entries("Coverage", [
        ("beneficiary", patient), ("status", "active"), ("_include", "Coverage:beneficiary"),
        ("_include", "Coverage:payor"), ("_include", "Coverage:subscriber")])]
    found += [e["resource"] for e in client.search_entries("CoverageEligibilityRequest", [
        ("patient", patient), ("_include", "CoverageEligibilityRequest:provider")])]
    found += list(client.search("CoverageEligibilityResponse", [("patient", patient)]))
    return found


def _entries(client: FhirClient, rtype: str, params: list[tuple[str, str]]) -> list[JSON]:
    return [e["resource"] for e in client.search_entries(rtype, params)]


#: What an intake records, by resource type, and the search that finds it for a patient
#: (the reported med list is ``intent=plan``: orders and prescriptions are not intake).
_INTAKE_SEARCHES: tuple[tuple[str, list[tuple[str, str]]], ...] = (
    ("AllergyIntolerance", []),
    ("MedicationRequest", [("intent", "plan")]),
    ("Condition", []),
    ("Observation", [("category", "social-history,survey")]),
)


def intake(client: FhirClient, patient: str) -> Iterator[JSON]:
    """Allergies, the reported med list, problems, social history and screenings."""
    for rtype, params in _INTAKE_SEARCHES:
        yield from client.search(rtype, [("patient", patient), *params])


def _refs(resources: list[JSON], *keys: str) -> list[str]:
    out = []
    for r in resources:
        for key in keys:
            value = r.get(key)
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, dict) and ref.get("reference"):
                    out.append(str(ref["reference"]))
    return out


def intake_set(client: FhirClient, patient: str) -> list[JSON]:
    """What intakes recorded for a patient, with the patient, recorders and visits."""
    found = list(intake(client, patient))
    found += _by_id(client, "Patient", _ids([patient], "Patient"))
    found += _by_id(client, "Practitioner",
                    _ids(_refs(found, "recorder", "performer"), "Practitioner"))
    found += _by_id(client, "Encounter", _ids(_refs(found, "encounter"), "Encounter"))
    for rtype, _ in _INTAKE_SEARCHES:
        _visit_by_identifier(found, rtype)
    return found


def injections(client: FhirClient, patient: str) -> Iterator[JSON]:
    """In-office medication administrations, newest first."""
    return client.search("MedicationAdministration", [("patient", patient),
                                                      ("_sort", "-effective-time")])


def injection_set(client: FhirClient, patient: str) -> list[JSON]:
    """MedicationAdministrations with the patient, the MA, the order and its prescriber."""
    found = _entries(client, "MedicationAdministration", [
        ("patient", patient), ("_include", "MedicationAdministration:patient"),
        ("_include", "MedicationAdministration:performer"),
        ("_include", "MedicationAdministration:request")])
    found += _by_id(client, "Practitioner", _ids(_refs(found, "requester"), "Practitioner"))
    found += _by_id(client, "Encounter", _ids(_refs(found, "context"), "Encounter"))
    _visit_by_identifier(found, "MedicationAdministration", key="context")
    return found


def poc_test_set(client: FhirClient, patient: str) -> list[JSON]:
    """Laboratory Observations (point-of-care results among them) with the patient,
    performers, kits (Device) and visits."""
    found = _entries(client, "Observation", [
        ("patient", patient), ("category", "laboratory"), ("_sort", "-date"),
        ("_include", "Observation:patient"), ("_include", "Observation:performer"),
        ("_include", "Observation:device"), ("_include", "Observation:encounter")])
    have = {f"Device/{r.get('id')}" for r in found if r.get("resourceType") == "Device"}
    refs = [str((r.get("device") or {}).get("reference", "")) for r in found
            if r.get("resourceType") == "Observation"]
    # not every server follows _include=Observation:device: the kits are fetched by id
    found += _by_id(client, "Device", [i for i in _ids(refs, "Device")
                                       if f"Device/{i}" not in have])
    _visit_by_identifier(found, "Observation")
    return found


def ekg_set(client: FhirClient, patient: str) -> list[JSON]:
    """EKG Procedures (SNOMED CT 29303009), their reports (11524-6) with the tracing and
    interpreter, and their measurements (category procedure)."""
    found = _entries(client, "Procedure", [
        ("patient", patient), ("code", "http://snomed.info/sct|29303009"),
        ("_include", "Procedure:patient"), ("_include", "Procedure:performer"),
        ("_include", "Procedure:encounter")])
    found += _entries(client, "DiagnosticReport", [
        ("patient", patient), ("code", "http://loinc.org|11524-6"),
        ("_include", "DiagnosticReport:results-interpreter")])
    found += _entries(client, "Observation", [("patient", patient),
                                              ("category", "procedure")])
    _visit_by_identifier(found, "Procedure")
    return found


def skin_test_set(client: FhirClient, patient: str) -> list[JSON]:
    """TB skin test placements (CPT 86580) and readings (LOINC 1648-5), with the patient,
    who placed and read them, and their visits."""
    found = _entries(client, "Procedure", [
        ("patient", patient), ("code", "http://www.ama-assn.org/go/cpt|86580"),
        ("_include", "Procedure:patient"), ("_include", "Procedure:performer"),
        ("_include", "Procedure:encounter")])
    found += _entries(client, "Observation", [
        ("patient", patient), ("code", "http://loinc.org|1648-5"),
        ("_include", "Observation:performer"), ("_include", "Observation:encounter")])
    _visit_by_identifier(found, "Procedure")
    _visit_by_identifier(found, "Observation")
    return found


#: pull WHAT → the resources of that result kind (without --tasks)
RESULT_SETS = {"poc-tests": poc_test_set, "ekgs": ekg_set, "skin-tests": skin_test_set}
# --- issue 18 part B (w10): the front office, read back ---
def _with_referenced(client: FhirClient, found: list[JSON]) -> list[JSON]:
    """``found`` and every resource it names by ``Type/id`` that is not in it yet (the
    server stores conditional references resolved; the reverse mappers read identifiers
    from the resources they point at)."""
    have = {f"{r.get('resourceType')}/{r.get('id')}" for r in found}
    wanted: dict[str, list[str]] = {}
    for ref in sorted(local_references(found) - have):
        rtype, rid = ref.split("/")
        wanted.setdefault(rtype, []).append(rid)
    extra = [r for rtype, ids in sorted(wanted.items()) for r in _by_id(client, rtype, ids)]
    if extra:
        extra = _with_referenced(client, [*found, *extra])[len(found):]
    return [*found, *extra]


def phone_call_set(client: FhirClient, patient: str) -> list[JSON]:
    """The patient's Communications (calls among them), the follow-up Tasks, and what
    they name."""
    found = [*client.search("Communication", [("patient", patient)]),
             *client.search("Task", [("patient", patient)])]
    return _with_referenced(client, found)


def reminder_set(client: FhirClient, patient: str) -> list[JSON]:
    """The patient's CommunicationRequests, the Communications that sent and answered
    them, and what they name (the Appointment a reply moved, with its people)."""
    found = [*client.search("CommunicationRequest", [("patient", patient)]),
             *client.search("Communication", [("patient", patient)])]
    return _with_referenced(client, found)


def follow_up_set(client: FhirClient, patient: str) -> list[JSON]:
    """The patient's Tasks with what they name."""
    return _with_referenced(client, list(client.search("Task", [("patient", patient)])))
# --- end issue 18 part B ---
