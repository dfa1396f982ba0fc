"""VXU^V04 (what an EHR or an IIS sends) → US Core Immunization + Patient (pure).

Used by ``mafhir convert --from hl7v2`` and ``mafhir listen``. The Patient comes from
PID by the shared rules (:func:`mafhir.hl7v2.patient.patient_from_pid`: only the clinic's
MRN authority is a match key, else the message is held for review), with NK1 as
``Patient.contact``. Each order group is one Immunization (:mod:`.doses`): a conditional
create on ORC-3, or a conditional update when RXA-21 says update (``U``) or delete
(``D`` → ``entered-in-error``), so a resent or corrected dose replaces, never doubles.
A Z22 VXU may carry only changed doses: nothing here assumes a complete history.
"""

from __future__ import annotations

from typing import Any

from mafhir.bundle import Entry, create, transaction, update
from mafhir.errors import InputError, Problem
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.datatypes import Times, codeable, xad_address, xpn_name, xtn_contact
from mafhir.hl7v2.message import Message, Segment
from mafhir.hl7v2.patient import PidPatient, patient_from_pid

from .doses import DoseReader, dose_groups, message_tz

__all__ = ["read_patient", "vxu_to_fhir"]

JSON = dict[str, Any]


def _contact(nk1: Segment, times: Times) -> JSON | None:
    """An NK1 (responsible person: mother, guardian…) as a Patient.contact."""
    out: JSON = {}
    relationship = codeable(nk1.v(3))
    if relationship:
        out["relationship"] = [relationship]
    name = xpn_name(nk1.v(2), times, nk1.where(2))
    if name:
        out["name"] = name
    telecom = [t for r in nk1.reps(5) if (t := xtn_contact(r))]
    if telecom:
        out["telecom"] = telecom
    address = xad_address(nk1.v(4), times, nk1.where(4))
    if address:
        out["address"] = address
    return out if out.get("name") or out.get("telecom") or out.get("address") else None


def read_patient(msg: Message, reader: DoseReader, pid: Segment | None = None) -> PidPatient:
    """The message's Patient (PID and its NK1 rows); InputError naming PID when absent."""
    pid = pid or msg.first("PID")
    if pid is None:
        raise InputError([Problem("PID", "the PID segment is missing", "required")])
    if not any(r.c(1) for r in pid.reps(3)):
        raise InputError([Problem("PID-3", "the patient identifier is missing", "required")])
    found = patient_from_pid(pid, reader.ctx, msg.sender_name, reader.tz)
    times = Times(reader.tz, reader.problems)
    after = msg.segments[pid.position:]
    nk1s = []
    for seg in after:
        if seg.name == "PID":
            break
        if seg.name == "NK1":
            nk1s.append(seg)
    contacts = [c for seg in nk1s if (c := _contact(seg, times))]
    if contacts:
        found.resource["contact"] = contacts
    return found


def vxu_to_fhir(msg: Message, ctx: V2Context) -> Converted:
    """The transaction Bundle of a VXU^V04, with what it was kept despite (warnings)."""
    reader = DoseReader(msg, ctx, message_tz(msg, ctx))
    found = read_patient(msg, reader)
    groups = dose_groups(msg, reader.warnings)
    if not groups:
        raise InputError([Problem("RXA", "the message has no RXA (a VXU reports at least "
                                         "one dose)", "required")])
    entries: list[Entry] = [found.entry]
    for k, group in enumerate(groups, start=1):
        imm = reader.immunization(group, k, found.reference)
        action = group.rxa.get(21).upper()
        entries.append(update(imm) if action in ("U", "D") else create(imm))
    if reader.problems:
        raise InputError(reader.problems)
    return Converted(transaction(entries), (*found.warnings, *reader.warnings))
