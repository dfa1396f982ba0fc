"""OML^O21 / ORM^O01 → US Core ServiceRequest (+ Specimen, AOE Observations) (pure).

Orders arriving from another system (or the clinic's own, read back): one
ServiceRequest per ORC/OBR group, keyed on the placer order number; ORC-1/ORC-5 give
its status (mapping-reference §7.6); DG1 → reasonCode; SPM → Specimen; OBX (answers
asked at order entry) → Observations in ``supportingInfo``; IN1 → Coverage in
``insurance`` (:mod:`.insurance`).
"""

from __future__ import annotations

from typing import Any

from mafhir.bundle import create, transaction, update
from mafhir.errors import InputError, Problem
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.insurance import coverages
from mafhir.hl7v2.message import Message

from .results import _ref, result_identifier, split_order_group
from .v2in import Reader, order_identifiers

__all__ = ["order_status", "orders_to_fhir"]

JSON = dict[str, Any]

#: ORC-1 order control → ServiceRequest.status (V2F); SC/RE/OK defer to ORC-5.
CONTROL_STATUS = {"NW": "active", "CA": "active", "OC": "revoked", "CR": "revoked",
                  "DC": "revoked", "DR": "revoked", "OD": "revoked", "HD": "active",
                  "HR": "on-hold", "OH": "on-hold", "RL": "active", "XO": "active"}
#: ORC-5 order status (HL70038) → ServiceRequest.status.
ORDER_STATUS = {"A": "active", "CA": "revoked", "CM": "completed", "DC": "revoked",
                "ER": "entered-in-error", "HD": "on-hold", "IP": "active", "RP": "revoked",
                "SC": "active"}


def order_status(control: str, status: str) -> str:
    if status in ORDER_STATUS and control not in ("NW", "CA", "OC", "CR", "DC"):
        return ORDER_STATUS[status]
    return CONTROL_STATUS.get(control, ORDER_STATUS.get(status, "active"))


def orders_to_fhir(msg: Message, ctx: V2Context) -> JSON | Converted:
    reader = Reader(msg, ctx)
    patient = reader.patient()
    leading_dg1 = []
    for seg in msg.segments[1:]:
        if seg.name in ("ORC", "OBR"):
            break
        if seg.name == "DG1":
            leading_dg1.append(seg)
    groups = list(msg.groups(("ORC", "OBR"), within=("OBR",)))
    if not groups:
        raise InputError([Problem("ORC", "the message has no order (ORC/OBR)", "structure")])
    entries, insurance = coverages(reader, msg, patient)
    if reader.patient_entry:
        entries.insert(0, reader.patient_entry)
    for k, group in enumerate(groups, start=1):
        parts = split_order_group(group)
        orc, obr = parts["orc"], parts["obr"]
        idents = reader.unique(order_identifiers(orc, obr, ctx) or [
            {"system": f"{ctx.map.clinic.system}/v2/order",
             "value": f"{msg.sender_name}|{msg.control_id}|{k}"}], k)
        status = order_status(orc.get(1) if orc else "", orc.get(5) if orc else "")
        sr = reader.service_request(orc, obr, idents, patient, status, leading_dg1,
                                    parts["dg1"], parts["notes"])
        if insurance:
            sr["insurance"] = insurance
        sr_ref = _ref(sr)
        specimens = []
        for n, sp in enumerate(parts["spm"], start=1):
            fallback = {"system": f"{ctx.map.clinic.system}/v2/specimen",
                        "value": f"{idents[0]['value']}-{sp['spm'].get(1) or n}"}
            spec = reader.specimen(sp["spm"], patient, sr_ref, fallback)
            sp["ref"] = _ref(spec)
            specimens.append(spec)
        if specimens:
            sr["specimen"] = [_ref(s) for s in specimens]
        elif obr is not None and obr.get(15):
            sr["specimen_text"] = obr.get(15, 1)  # removed below: ORM OBR-15 kept as a note
        supporting = []
        seen: dict[tuple[str, str], int] = {}
        for obx, notes, sp in parts["obx"]:
            key = (obx.get(3), obx.get(4))
            seen[key] = seen.get(key, 0) + 1
            ident = result_identifier(f"{ctx.map.clinic.system}/v2/order-observation",
                                      idents[0], key, seen[key])
            obs = reader.observation(obx, ident, patient, notes, sr.get("authoredOn"), None)
            if sp and sp.get("ref"):
                obs["specimen"] = sp["ref"]
            obs["basedOn"] = [sr_ref]
            supporting.append(obs)
        if supporting:
            sr["supportingInfo"] = [_ref(o) for o in supporting]
        source = sr.pop("specimen_text", None)
        if source:
            sr.setdefault("note", []).append({"text": f"Specimen source (OBR-15): {source}"})
        entries.append(update(sr))
        entries.extend(create(s) for s in specimens)
        entries.extend(update(o) for o in supporting)
    return reader.finish(transaction(entries))
