"""What the front-office mappers (phone_call, reminder, follow_up) share: references to the
things they are about, the code systems of mafhir's own words, and reading people back.

mafhir's own vocabularies (a call's party, topic and outcome; a reminder's purpose and
reply) live under ``urn:mafhir:…``: no standard code system has these values
(mapping reference §11), and a URN cannot be mistaken for a published one.
"""

from __future__ import annotations

from typing import Any

from .. import systems
from ..bundle import Entry
from ..context import MapContext
from ..fhirtypes import reference
from ..identity import identifier_from_reference, identifier_query
from ..resourceset import ResourceSet
from ..tasks.common import PatientRef, PractitionerRef
from ..tasks.outreach import ITEM_RESOURCES, ItemRef
from .appointment import _patient
from .common import practitioner_from_fhir

__all__ = ["CALL_OUTCOME", "CALL_PARTY", "CALL_TOPIC", "COMMUNICATION_CATEGORY",
           "COMMUNICATION_TOPIC", "PARTICIPATION_MODE", "REMINDER_ADDRESS",
           "REMINDER_PURPOSE", "REMINDER_REPLY", "item_from_reference", "item_reference",
           "once", "patient_of", "practitioner_of"]

JSON = dict[str, Any]

PARTICIPATION_MODE = systems.THO + "v3-ParticipationMode"
COMMUNICATION_CATEGORY = systems.THO + "communication-category"
COMMUNICATION_TOPIC = systems.THO + "communication-topic"
CALL_PARTY = "urn:mafhir:call-party"
CALL_TOPIC = "urn:mafhir:call-topic"
CALL_OUTCOME = "urn:mafhir:call-outcome"
REMINDER_PURPOSE = "urn:mafhir:reminder-purpose"
REMINDER_REPLY = "urn:mafhir:reminder-reply"
#: Where a reminder goes (a phone number or email address): CommunicationRequest has no
#: element for it and the Patient may not be in the Bundle (a known patient by MRN).
REMINDER_ADDRESS = "urn:mafhir:extension:reminder-address"


def item_reference(item: ItemRef, ctx: MapContext) -> JSON:
    """A conditional reference to what ``item`` names, by its business identifier."""
    rtype, namespace = ITEM_RESOURCES[item.type]
    system = item.system or ctx.clinic.task_system(namespace)
    return reference(f"{rtype}?{identifier_query(system, item.id)}")


def item_from_reference(ref: Any, resources: ResourceSet) -> ItemRef | None:
    """The ItemRef behind a reference (conditional, or to a resource in the set)."""
    if not isinstance(ref, dict):
        return None
    parsed = identifier_from_reference(str(ref.get("reference", "")))
    if parsed is None:
        target = resources.resolve(ref)
        idents = [i for i in (target or {}).get("identifier", []) if i.get("value")]
        if target is None or not idents:
            return None
        parsed = (str(target["resourceType"]), str(idents[0].get("system", "")),
                  str(idents[0]["value"]))
    rtype, system, value = parsed
    kinds = [k for k, (t, _) in ITEM_RESOURCES.items() if t == rtype]
    if not kinds:
        return None
    kind = next((k for k in kinds if system.endswith("/" + ITEM_RESOURCES[k][1])), kinds[0])
    return ItemRef(type=kind, id=value, system=system or None)  # type: ignore[arg-type]


def patient_of(ref: Any, resources: ResourceSet) -> PatientRef:
    """The patient a reference names: the Patient in the set, or its MRN reference."""
    return _patient(resources.resolve(ref), ref)


def practitioner_of(ref: Any, resources: ResourceSet) -> PractitionerRef | None:
    """The Practitioner a reference resolves to in the set, or None."""
    target = resources.resolve(ref) if isinstance(ref, dict) else None
    if target is None or target.get("resourceType") != "Practitioner":
        return None
    try:
        return practitioner_from_fhir(target)
    except (LookupError, StopIteration, ValueError, TypeError):
        return None


def once(entries: list[Entry]) -> list[Entry]:
    """``entries`` with each resource once (by fullUrl), first one kept."""
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.full_url not in seen:
            seen.add(e.full_url)
            out.append(e)
    return out
