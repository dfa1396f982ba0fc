"""Pharmacy resources as FHIR JSON: the pharmacy Organization, a US Core MedicationRequest.

Pure builders shared by the task mappers and read back by the v2 writers. R4 element
names only (mapping-reference §10.1); codes from :mod:`.codes`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mafhir import systems
from mafhir.bundle import Entry, create
from mafhir.context import MapContext
from mafhir.fhirtypes import codeable, coding, fhir_datetime, identifier, reference
from mafhir.identity import identifier_query
from mafhir.mappers.common import Refs, address_json, encounter_ref

from .codes import CONTROLLED_TAG, FREQUENCIES, MR_CATEGORY, NCPDP, ROUTES, RXNORM, V2_0162
from .tasks import Medication, Pharmacy, Quantity, Sig

__all__ = [
    "DATA_ABSENT_EXT",
    "ICD10CM",
    "MR_PROFILE",
    "PLACER_TYPE",
    "absent",
    "is_absent",
    "medication_concept",
    "medication_request",
    "number",
    "pharmacy_entry",
    "prescription_ref",
    "ucum",
]

JSON = dict[str, Any]
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
MR_PROFILE = systems.profile("us-core-medicationrequest")
PLACER_TYPE = codeable(coding(systems.V2_0203, "PLAC", "Placer Identifier"))
DAYS = "d"


def number(value: float) -> int | float:
    """1.0 → 1: FHIR decimals keep what the clinic meant, without a spurious ``.0``."""
    return int(value) if float(value).is_integer() else value


def ucum(value: float, code: str) -> JSON:
    return {"value": number(value), "unit": code, "system": systems.UCUM, "code": code}


#: The R4 extension that says why an element the profile wants is not there.
DATA_ABSENT_EXT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def absent(reason: str = "unknown") -> JSON:
    """An element (a Reference, a HumanName…) that is there only to say it is missing:
    what US Core accepts where the source truly has no value (kept, not invented)."""
    return {"extension": [{"url": DATA_ABSENT_EXT, "valueCode": reason}]}


def is_absent(element: Any) -> bool:
    """Does ``element`` carry a data-absent-reason instead of a value?"""
    return isinstance(element, dict) and any(
        e.get("url") == DATA_ABSENT_EXT for e in element.get("extension", []) or [])


def pharmacy_entry(pharmacy: Pharmacy) -> Refs:
    """The pharmacy as a US Core Organization, keyed on its NCPDP id (else its NPI)."""
    idents = []
    if pharmacy.ncpdp_id:
        idents.append(identifier(NCPDP, pharmacy.ncpdp_id))
    if pharmacy.npi:
        idents.append(identifier(systems.NPI, pharmacy.npi))
    local_id, local_system = getattr(pharmacy, "local_id", None), \
        getattr(pharmacy, "local_system", None)
    if local_id and local_system:  # a ReportedPharmacy known only by the sender's own id
        idents.append(identifier(local_system, local_id))
    resource: JSON = {
        "resourceType": "Organization",
        "meta": {"profile": [systems.profile("us-core-organization")]},
        "identifier": idents,
        "active": True,
        "type": [codeable(coding(systems.THO + "organization-type", "prov",
                                 "Healthcare Provider"), text="Pharmacy")],
        "name": pharmacy.name,
    }
    if pharmacy.phone:
        resource["telecom"] = [{"system": "phone", "value": pharmacy.phone}]
    if pharmacy.address:
        resource["address"] = [address_json(pharmacy.address)]
    entry = create(resource)
    return Refs(reference(entry.full_url, pharmacy.name), (entry,))


def prescription_ref(rx_id: str, ctx: MapContext) -> JSON:
    """A reference to the clinic's MedicationRequest for prescription ``rx_id``."""
    query = identifier_query(ctx.clinic.task_system("prescription"), rx_id)
    return reference(f"MedicationRequest?{query}")


def medication_concept(med: Medication) -> JSON:
    codings = [coding(RXNORM, med.rxnorm, med.name)]
    if med.ndc:
        codings.append(coding(systems.NDC, med.ndc))
    return codeable(*codings, text=med.name)


def _dosage(sig: Sig) -> JSON:
    out: JSON = {"text": sig.text}
    repeat: JSON = {}
    if sig.duration_days:
        repeat["boundsDuration"] = {"value": sig.duration_days, "unit": "days",
                                    "system": systems.UCUM, "code": DAYS}
    if sig.frequency:
        freq, period, unit, when = FREQUENCIES[sig.frequency]
        repeat.update({"frequency": freq, "period": number(period), "periodUnit": unit})
        if when:
            repeat["when"] = [when]
    if repeat:
        out["timing"] = {"repeat": repeat}
    if sig.as_needed and sig.as_needed_reason:
        out["asNeededCodeableConcept"] = codeable(text=sig.as_needed_reason)
    elif sig.as_needed:
        out["asNeededBoolean"] = True
    if sig.route:
        sct, sct_display, v2, v2_display = ROUTES[sig.route]
        out["route"] = codeable(coding(systems.SNOMED, sct, sct_display),
                                coding(V2_0162, v2, v2_display))
    if sig.dose:
        out["doseAndRate"] = [{"doseQuantity": ucum(sig.dose.value, sig.dose.unit)}]
    return out


def medication_request(*, rx_id: str, ctx: MapContext, patient: JSON, requester: JSON,
                       pharmacy: JSON, medication: Medication, sig: Sig, quantity: Quantity,
                       days_supply: int, refills: int, substitution_allowed: bool,
                       authored: datetime, schedule: str | None = None,
                       diagnoses: list[str] | tuple[str, ...] = (), visit: str | None = None,
                       note: str | None = None, prior: JSON | None = None) -> Entry:
    """A US Core MedicationRequest (intent order, community), a conditional create."""
    meta: JSON = {"profile": [MR_PROFILE]}
    if schedule:
        meta["tag"] = [coding(CONTROLLED_TAG, schedule, f"DEA schedule {schedule[1:]}")]
    mr: JSON = {
        "resourceType": "MedicationRequest",
        "meta": meta,
        "identifier": [identifier(ctx.clinic.task_system("prescription"), rx_id,
                                  use="official", type=PLACER_TYPE)],
        "status": "active",
        "intent": "order",
        "category": [codeable(coding(MR_CATEGORY, "community", "Community"))],
        "medicationCodeableConcept": medication_concept(medication),
        "subject": patient,
    }
    if visit:
        mr["encounter"] = encounter_ref(visit, ctx)
    mr["authoredOn"] = fhir_datetime(authored)
    mr["requester"] = requester
    if diagnoses:
        mr["reasonCode"] = [codeable(coding(ICD10CM, code)) for code in diagnoses]
    if note:
        mr["note"] = [{"text": note}]
    mr["dosageInstruction"] = [_dosage(sig)]
    mr["dispenseRequest"] = {
        "numberOfRepeatsAllowed": refills,
        "quantity": ucum(quantity.value, quantity.unit),
        "expectedSupplyDuration": {"value": days_supply, "unit": "days",
                                   "system": systems.UCUM, "code": DAYS},
        "performer": pharmacy,
    }
    mr["substitution"] = {"allowedBoolean": substitution_allowed}
    if prior is not None:
        mr["priorPrescription"] = prior
    return create(mr)
