"""Resources every task refers to: Patient, Practitioner, Location, the clinic.

Pure functions. Each returns the reference to use and the entries to add; the same
person or place always gets the same fullUrl, so a Bundle holds each one once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from .. import systems
from ..bundle import Entry, create
from ..context import Clinic, MapContext
from ..errors import InputError, Problem
from ..fhirtypes import codeable, coding, fhir_date, identifier, reference
from ..identity import identifier_from_reference, identifier_query
from ..resourceset import ResourceSet
from ..tasks.common import Address, ClinicianRef, LocationRef, PatientRef, PractitionerRef

__all__ = [
    "Refs",
    "address_json",
    "code_in",
    "encounter_ref",
    "location_entry",
    "organization_entry",
    "patient_from_fhir",
    "patient_refs",
    "practitioner_entry",
    "practitioner_from_fhir",
    "practitioner_from_ref",
    "read_back",
    "visit_from_fhir",
]

JSON = dict[str, Any]
T = TypeVar("T")

MRN_TYPE = codeable(
    coding(systems.V2_0203, "MR", "Medical Record Number"), text="Medical Record Number"
)
NPI_TYPE = codeable(coding(systems.V2_0203, "NPI", "National provider identifier"))


@dataclass(frozen=True, slots=True)
class Refs:
    """A reference to use in other resources, and the entries that make it resolvable."""

    ref: JSON
    entries: tuple[Entry, ...] = ()


def address_json(addr: Address) -> JSON:
    out: JSON = {}
    if addr.line:
        out["line"] = list(addr.line)
    for key, value in (("city", addr.city), ("state", addr.state),
                       ("postalCode", addr.postal_code), ("country", addr.country)):
        if value:
            out[key] = value
    return out


def address_from_json(data: JSON) -> Address:
    return Address(
        line=data.get("line", []), city=data.get("city"), state=data.get("state"),
        postal_code=data.get("postalCode"), country=data.get("country", "US"),
    )


def patient_refs(patient: PatientRef, ctx: MapContext) -> Refs:
    """A US Core Patient for a new patient, else a conditional reference by MRN."""
    system = patient.system or ctx.clinic.mrn_namespace
    ref = reference(f"Patient?{identifier_query(system, patient.mrn)}")
    if not patient.has_demographics:
        return Refs(ref)
    resource: JSON = {
        "resourceType": "Patient",
        "meta": {"profile": [systems.profile("us-core-patient")]},
        "identifier": [identifier(system, patient.mrn, use="usual", type=MRN_TYPE)],
        "active": True,
    }
    name: JSON = {}
    if patient.family:
        name["family"] = patient.family
    if patient.given:
        name["given"] = list(patient.given)
    if patient.unnamed:  # a newborn not yet named: say so, never invent a name
        name["extension"] = [{"url": systems.DATA_ABSENT_EXTENSION, "valueCode": "unknown"}]
    resource["name"] = [name]
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    if telecom:
        resource["telecom"] = telecom
    resource["gender"] = patient.gender
    if patient.birth_date:
        resource["birthDate"] = fhir_date(patient.birth_date)
    if patient.address:
        resource["address"] = [address_json(patient.address)]
    if patient.language:
        resource["communication"] = [
            {"language": codeable(coding("urn:ietf:bcp:47", patient.language))}
        ]
    return Refs(ref, (create(resource),))


def encounter_ref(visit: str, ctx: MapContext) -> JSON:
    """A reference to the Encounter of a visit (the appointment id that opened it).

    Check-in makes that Encounter with this identifier; in the same Bundle the reference
    becomes its fullUrl, otherwise the server resolves it.
    """
    return reference(f"Encounter?{identifier_query(ctx.clinic.task_system('encounter'), visit)}")


def visit_from_fhir(ref: JSON | None, resources: ResourceSet) -> str | None:
    """The visit (appointment id) an ``encounter`` reference points at, or None.

    Read from the Encounter's ``…/encounter`` identifier when the Encounter is in the
    set (a server answers ``Encounter/<id>``), else from a conditional reference.
    """
    if not isinstance(ref, dict):
        return None
    encounter = resources.resolve(ref)
    if encounter is not None:
        idents = encounter.get("identifier") or []
        chosen = next((i for i in idents if str(i.get("system", "")).endswith("/encounter")),
                      idents[0] if idents else None)
        return None if chosen is None else chosen.get("value")
    parsed = identifier_from_reference(str(ref.get("reference", "")))
    return parsed[2] if parsed and parsed[0] == "Encounter" else None


def patient_from_fhir(resource: JSON | None, ref: JSON | None = None) -> PatientRef:
    """The PatientRef behind a Patient resource, or behind a conditional reference."""
    if resource is None:
        if ref is None or "?identifier=" not in ref.get("reference", ""):
            raise ValueError("no Patient and no identifier reference to read the MRN from")
        parsed = identifier_from_reference(ref["reference"])
        if parsed is None:
            raise ValueError("the patient reference is not Patient?identifier=system|value")
        _, system, mrn = parsed
        return PatientRef(mrn=mrn, system=system)
    mrn_ident = next(
        (i for i in resource.get("identifier", [])
         if any(c.get("code") == "MR" for c in i.get("type", {}).get("coding", []))),
        resource.get("identifier", [{}])[0],
    )
    name = (resource.get("name") or [{}])[0]
    telecom = {t.get("system"): t.get("value") for t in resource.get("telecom", [])}
    language = None
    for comm in resource.get("communication", []):
        for c in comm.get("language", {}).get("coding", []):
            language = language or c.get("code")
    addresses = resource.get("address") or []
    return PatientRef(
        mrn=mrn_ident["value"],
        system=mrn_ident.get("system"),
        family=name.get("family"),
        given=name.get("given", []),
        birth_date=resource.get("birthDate"),
        gender=resource.get("gender"),
        phone=telecom.get("phone"),
        email=telecom.get("email"),
        address=address_from_json(addresses[0]) if addresses else None,
        language=language,
    )


def practitioner_entry(person: ClinicianRef) -> Refs:
    """A US Core Practitioner keyed on NPI; for an NPI alone, a reference by identifier.

    The EHR that knows a clinician by NPI resolves ``{"identifier": …}`` itself; writing a
    Practitioner would need a name the clinic did not give.
    """
    if person.npi_only:
        return Refs({"type": "Practitioner", "identifier": identifier(systems.NPI, person.npi)})
    name: JSON = {"family": person.family}
    if person.given:
        name["given"] = list(person.given)
    if person.prefix:
        name["prefix"] = [person.prefix]
    if person.suffix:
        name["suffix"] = [person.suffix]
    resource: JSON = {
        "resourceType": "Practitioner",
        "meta": {"profile": [systems.profile("us-core-practitioner")]},
        "identifier": [identifier(systems.NPI, person.npi)],
        "name": [name],
    }
    entry = create(resource)
    return Refs(reference(entry.full_url), (entry,))


def practitioner_from_fhir(resource: JSON) -> PractitionerRef:
    npi = next(i["value"] for i in resource["identifier"] if i.get("system") == systems.NPI)
    name = resource["name"][0]
    return PractitionerRef(
        npi=npi, family=name["family"], given=name.get("given", []),
        prefix=(name.get("prefix") or [None])[0], suffix=(name.get("suffix") or [None])[0],
    )


def practitioner_from_ref(ref: JSON | None, resources: ResourceSet) -> ClinicianRef | None:
    """The practitioner a reference names: the Practitioner it resolves to in
    ``resources``, or the NPI of a reference by identifier; None otherwise."""
    if not isinstance(ref, dict):
        return None
    target = resources.resolve(ref)
    if target is not None:
        if target.get("resourceType") != "Practitioner":
            return None
        return ClinicianRef.model_validate(practitioner_from_fhir(target).model_dump())
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("system") == systems.NPI and ident.get("value"):
        return ClinicianRef(npi=ident["value"])
    return None


def location_entry(place: LocationRef, ctx: MapContext) -> Refs:
    """A US Core Location, keyed on the clinic's location id."""
    resource: JSON = {
        "resourceType": "Location",
        "meta": {"profile": [systems.profile("us-core-location")]},
        "identifier": [identifier(ctx.clinic.task_system("location"), place.id)],
        "status": "active",
        "name": place.name,
    }
    if place.address:
        resource["address"] = address_json(place.address)
    entry = create(resource)
    return Refs(reference(entry.full_url, place.name), (entry,))


def location_from_fhir(resource: JSON) -> LocationRef:
    addr = resource.get("address")
    return LocationRef(
        id=resource["identifier"][0]["value"], name=resource["name"],
        address=address_from_json(addr) if addr else None,
    )


def organization_entry(clinic: Clinic) -> Refs:
    """The clinic as a US Core Organization (NPI when known, else the clinic's own id)."""
    ident = (
        identifier(systems.NPI, clinic.npi)
        if clinic.npi
        else identifier(clinic.task_system("organization"), "clinic")
    )
    resource: JSON = {
        "resourceType": "Organization",
        "meta": {"profile": [systems.profile("us-core-organization")]},
        "identifier": [ident],
        "active": True,
        "name": clinic.name,
    }
    if clinic.phone:
        resource["telecom"] = [{"system": "phone", "value": clinic.phone}]
    if clinic.address_line or clinic.city:
        resource["address"] = [address_json(Address(
            line=[clinic.address_line] if clinic.address_line else [],
            city=clinic.city, state=clinic.state, postal_code=clinic.postal_code,
        ))]
    entry = create(resource)
    return Refs(reference(entry.full_url, clinic.name), (entry,))


def code_in(concept: Any, system: str) -> str | None:
    """The code of the first coding from ``system`` in a CodeableConcept, or None."""
    for c in (concept or {}).get("coding", []) if isinstance(concept, dict) else []:
        if c.get("system") == system:
            return c.get("code")
    return None


def read_back(label: str, build: Callable[[], T]) -> T:
    """``build()`` — one task rebuilt from FHIR — with its refusals raised as an
    :class:`InputError` naming ``label`` (``vitals 'v-1'``), never a bare pydantic error."""
    from ..pipeline import problems_from_validation

    try:
        return build()
    except ValidationError as exc:
        raise InputError(problems_from_validation(exc, label)) from None
    except (ValueError, KeyError, StopIteration) as exc:
        raise InputError([Problem(label, str(exc), "value")]) from None
