"""The audit trail in FHIR: an AuditEvent per delivery and a Provenance for what it made.

mapping-reference §12.3: the AuditEvent is a RESTful ``transaction`` (type ``rest``)
with its outcome, the requesting worker and the destination's address; the Provenance
names the clinic task (``entity`` with role ``source``) that made which resources
(``target``), when (``recorded``) and how (``activity`` CREATE / UPDATE). Both are kept
in the outbox; with ``send_provenance`` the Provenance also goes in the Bundle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..identity import resource_uuid

__all__ = ["ITEM_ID_SYSTEM", "ITEM_SYSTEM", "audit_event", "phi_view_event", "provenance",
           "provenance_entry"]

JSON = dict[str, Any]

ITEM_SYSTEM = "urn:mafhir:outbox:item"
#: The outbox row id of an item (what ``outbox dead --show ID`` names).
ITEM_ID_SYSTEM = "urn:mafhir:outbox:item-id"
_DCM = "http://dicom.nema.org/resources/ontology/DCM"
_DATA_OP = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
_AGENT_TYPE = "http://hl7.org/fhir/us/core/CodeSystem/us-core-provenance-participant-type"


def _instant(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def provenance(targets: list[str], source: str, item_key: str, when: float,
               updated: bool = False) -> JSON:
    """A Provenance: ``source`` (the clinic task) made ``targets`` at ``when``."""
    return {
        "resourceType": "Provenance",
        "target": [{"reference": t} for t in targets],
        "recorded": _instant(when),
        "activity": {"coding": [{"system": _DATA_OP,
                                 "code": "UPDATE" if updated else "CREATE"}]},
        "agent": [{"type": {"coding": [{"system": _AGENT_TYPE, "code": "transmitter"}]},
                   "who": {"display": "mafhir outbox"}}],
        "entity": [{"role": "source",
                    "what": {"identifier": {"system": ITEM_SYSTEM, "value": item_key},
                             "display": source or "clinic task"}}],
    }


def provenance_entry(bundle: JSON, source: str, item_key: str, when: float) -> JSON:
    """An entry writing a Provenance for every resource of ``bundle``.

    It is a PUT to an id derived from the item (update-as-create): a resend after a crash
    rewrites the same Provenance instead of adding one, on servers that cannot search
    Provenance by identifier for a conditional create.
    """
    targets = [e["fullUrl"] for e in bundle.get("entry") or [] if e.get("fullUrl")]
    full_url = resource_uuid("Provenance", ITEM_SYSTEM, item_key)
    rid = full_url.removeprefix("urn:uuid:")
    res = {**provenance(targets, source, item_key, when), "id": rid}
    return {"fullUrl": full_url, "resource": res,
            "request": {"method": "PUT", "url": f"Provenance/{rid}"}}


def audit_event(destination: str, worker: str, when: float, targets: list[str],
                outcome: str = "0", updated: bool = False,
                warnings: list[str] | None = None) -> JSON:
    """An AuditEvent for one delivery (``outcome`` 0 success, 4/8/12 failures); the
    receiver's ``warnings`` on a delivery it accepted go in ``outcomeDesc``."""
    address = destination if "://" in destination else f"local:{destination}"
    event: JSON = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction",
                     "code": "transaction"}],
        "action": "U" if updated else "C",
        "recorded": _instant(when),
        "outcome": outcome,
        "agent": [{"requestor": True, "who": {"display": f"mafhir worker {worker}"},
                   "network": {"address": address[:200], "type": "5"}}],
        "source": {"observer": {"display": "mafhir outbox"}},
        "entity": [{"what": {"reference": t}} for t in targets],
    }
    if warnings:
        event["outcomeDesc"] = "accepted with warnings: " + "; ".join(warnings)
    return event


def phi_view_event(item_id: int, who: str, when: float) -> JSON:
    """An AuditEvent: ``who`` was shown the patient data kept with dead letter ``item_id``.

    DICOM 110110 "Patient Record", action R (read): the access to PHI that
    ``outbox dead --show ID --show-phi`` makes, recorded before anything is printed.
    """
    return {
        "resourceType": "AuditEvent",
        "type": {"system": _DCM, "code": "110110", "display": "Patient Record"},
        "action": "R",
        "recorded": _instant(when),
        "outcome": "0",
        "agent": [{"requestor": True, "who": {"display": who[:200]}}],
        "source": {"observer": {"display": "mafhir outbox dead --show-phi"}},
        "entity": [{"what": {"identifier": {"system": ITEM_ID_SYSTEM, "value": str(item_id)}},
                    "description": "dead letter with the server's OperationOutcome"}],
    }
