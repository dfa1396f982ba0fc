"""ADT (the EHR's registration feed) → FHIR (pure).

- A04/A08/A28/A31 (register, update, add or update person) → the US Core Patient of PID
  as a **conditional update** on the clinic MRN (the EHR owns the demographics), with
  PD1-4 as ``generalPractitioner``, a US Core RelatedPerson per NK1, and a US Core
  Coverage (+ payer) per IN1 (the lab plugin's IN1 reader, mapping reference §5.4).
- A01 admit / A03 discharge (and A04's visit) → a US Core Encounter from PV1/PV2: class
  per PV1-2, period PV1-44/45, status per trigger, conditional update on the visit
  number PV1-19 so the discharge finishes the admission's Encounter.
- A40 merge → :func:`merge_to_fhir` (``Patient.link``), re-pointing in :mod:`.merge`.

Identity is never taken on trust: PID and MRG identifiers go through the sender's
namespaces (:mod:`mafhir.hl7v2.patient`); an MRN of no known authority holds the message
for review. :data:`MAPPED` / :data:`NOT_MAPPED` account for every field.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from typing import Any

from mafhir import systems
from mafhir.bundle import Entry, create, transaction, update
from mafhir.errors import InputError, Problem
from mafhir.fhirtypes import data_absent
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.datatypes import (
    Times,
    codeable,
    cx_full,
    readable,
    sender_system,
    xad_address,
    xpn_name,
    xtn_contact,
)
from mafhir.hl7v2.insurance import coverage
from mafhir.hl7v2.message import Message, Segment
from mafhir.hl7v2.patient import GENDER
from mafhir.identity import identifier_from_reference, identifier_query
from mafhir_hl7v2_lab.v2in import Reader

__all__ = ["ENCOUNTER_CLASS", "ENCOUNTER_STATUS", "MAPPED", "NOT_MAPPED", "PATIENT_TRIGGERS",
           "adt_to_fhir", "merge_to_fhir", "merged_away"]

JSON = dict[str, Any]
_CODE = re.compile(r"^[A-Za-z0-9._-]{1,20}$")
ACT_CODE = systems.THO + "v3-ActCode"
PARTICIPATION = systems.THO + "v3-ParticipationType"
NULL_FLAVOR = systems.THO + "v3-NullFlavor"
#: Triggers that register or update the person (no visit is recorded from them).
PATIENT_TRIGGERS = ("A04", "A08", "A28", "A31")
#: Triggers whose PV1 is a visit: → Encounter with this status.
ENCOUNTER_STATUS = {"A01": "in-progress", "A03": "finished", "A04": "arrived"}
#: PV1-2 patient class (HL7 table 0004) → Encounter.class (v3 ActEncounterCode; the
#: IG's PatientClass concept map): R recurring and B obstetrics are ambulatory and
#: inpatient visits; C commercial, N not applicable, U unknown have no ActCode.
ENCOUNTER_CLASS = {"O": ("AMB", "ambulatory"), "E": ("EMER", "emergency"),
                   "I": ("IMP", "inpatient encounter"), "P": ("PRENC", "pre-admission"),
                   "R": ("AMB", "ambulatory"), "B": ("IMP", "inpatient encounter")}
#: PV1-7/8/9/17 → Encounter.participant.type (v3 ParticipationType).
PARTICIPANTS = ((7, "ATND", "attender"), (8, "REF", "referrer"), (9, "CON", "consultant"),
                (17, "ADM", "admitter"))

MAPPED = {
    **{f"PID-{n}": "Patient (mafhir.hl7v2.patient.patient_from_pid)"
       for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 19, 20, 22, 23, 24, 25,
                 26, 28, 29, 30, 40)},
    "PD1-4": "Patient.generalPractitioner",
    "NK1-2": "RelatedPerson.name", "NK1-3": "RelatedPerson.relationship (table 0063)",
    "NK1-4": "RelatedPerson.address", "NK1-5": "RelatedPerson.telecom (home)",
    "NK1-6": "RelatedPerson.telecom (work)", "NK1-7": "RelatedPerson.relationship (0131)",
    "NK1-8": "RelatedPerson.period.start", "NK1-9": "RelatedPerson.period.end",
    "NK1-15": "RelatedPerson.gender", "NK1-16": "RelatedPerson.birthDate",
    "NK1-20": "RelatedPerson.communication", "NK1-30": "RelatedPerson.name",
    "NK1-31": "RelatedPerson.telecom", "NK1-32": "RelatedPerson.address",
    "NK1-33": "RelatedPerson.identifier",
    "PV1-2": "Encounter.class", "PV1-3": "Encounter.location",
    "PV1-4": "Encounter.type (admission type)", "PV1-7": "Encounter.participant ATND",
    "PV1-8": "Encounter.participant REF", "PV1-9": "Encounter.participant CON",
    "PV1-10": "Encounter.serviceType", "PV1-14": "Encounter.hospitalization.admitSource",
    "PV1-17": "Encounter.participant ADM", "PV1-18": "Encounter.type (patient type)",
    "PV1-19": "Encounter.identifier (visit number; the conditional-update key)",
    "PV1-36": "Encounter.hospitalization.dischargeDisposition",
    "PV1-44": "Encounter.period.start", "PV1-45": "Encounter.period.end",
    "PV2-3": "Encounter.reasonCode",
    "EVN-2": "Encounter.period start/end when PV1-44/45 are empty",
    "EVN-6": "Encounter.period start/end when PV1-44/45 are empty (wins over EVN-2)",
    "IN1": "Coverage + payer Organization (mafhir.hl7v2.insurance: IN1-2/3/4/8/9/12/13/"
           "15/17/36/49)",
    "MRG-1": "the merged-away Patient's identifier (A40)",
}
NOT_MAPPED = {
    "PID-1": "set id", "PID-12": "county code: the address carries the place",
    "PID-18": "patient account number: billing", "PID-21": "mother's identifier",
    "PID-27": "veterans military status", "PID-31": "identity unknown indicator",
    "PID-32": "identity reliability code", "PID-33": "last update date/time: the "
                                                     "Patient's own meta says it",
    "PID-34": "last update facility", "PID-35": "species (veterinary)",
    "PID-36": "breed (veterinary)", "PID-37": "strain (veterinary)",
    "PID-38": "production class (veterinary)", "PID-39": "tribal citizenship: no US Core "
                                                         "element is written for it yet",
    "PID-41": "past the last PID field of v2.8 (a sender's shifted field): not read",
    "SFT": "the sending software: not about the patient",
    "DB1": "disability information: no US Core Patient element carries it",
    "PR1": "procedures come from the clinical record, not the registration feed",
    "ACC": "accident information: billing and claims",
    "PDA": "patient death and autopsy: PID-29/30 carry the death itself",
    "RF1": "referral information: referrals are tracked as tasks, not from this feed",
    "EVN-1": "event type code: MSH-9 says it", "EVN-3": "planned event time",
    "EVN-4": "event reason", "EVN-5": "operator: who typed it", "EVN-7": "event facility",
    "PD1": "only PD1-4 (primary care provider) is kept; living arrangements, student and "
           "church are not registration data the MA uses",
    "ARV": "access restrictions: mafhir does not enforce them, so it does not claim to",
    "ROL": "roles of care-team members: not part of the registration the MA acts on",
    "NK1-1": "set id", "NK1-10": "job title", "NK1-11": "job code",
    "NK1-12": "employee number", "NK1-13": "organization name (a contact that is an "
                                           "organization is kept by its contact person)",
    "NK1-14": "marital status of the contact", "NK1-17": "living dependency",
    "NK1-18": "ambulatory status", "NK1-19": "citizenship", "NK1-21": "living arrangement",
    "NK1-22": "publicity code", "NK1-23": "protection indicator",
    "NK1-24": "student indicator", "NK1-25": "religion", "NK1-26": "mother's maiden name",
    "NK1-27": "nationality", "NK1-28": "ethnic group", "NK1-29": "contact reason",
    "NK1-34": "job status", "NK1-35": "race", "NK1-36": "handicap",
    "NK1-37": "social security number: never kept for a contact",
    "NK1-38": "birth place", "NK1-39": "VIP indicator", "NK1-40": "telecommunication",
    "NK1-41": "contact's address",
    "PV1-1": "set id", "PV1-5": "preadmit number", "PV1-6": "prior location",
    "PV1-11": "temporary location", "PV1-12": "preadmit test indicator",
    "PV1-13": "re-admission indicator", "PV1-15": "ambulatory status",
    "PV1-16": "VIP indicator: not a clinical fact",
    "PV1-20": "financial class: billing", "PV1-21": "charge price indicator",
    "PV1-22": "courtesy code", "PV1-23": "credit rating", "PV1-24": "contract code",
    "PV1-25": "contract effective date", "PV1-26": "contract amount",
    "PV1-27": "contract period", "PV1-28": "interest code",
    "PV1-29": "transfer to bad debt code", "PV1-30": "transfer to bad debt date",
    "PV1-31": "bad debt agency", "PV1-32": "bad debt transfer amount",
    "PV1-33": "bad debt recovery amount", "PV1-34": "delete account indicator",
    "PV1-35": "delete account date", "PV1-37": "discharged to location",
    "PV1-38": "diet type", "PV1-39": "servicing facility", "PV1-40": "bed status",
    "PV1-41": "account status", "PV1-42": "pending location",
    "PV1-43": "prior temporary location", "PV1-46": "current patient balance",
    "PV1-47": "total charges", "PV1-48": "total adjustments", "PV1-49": "total payments",
    "PV1-50": "alternate visit id", "PV1-51": "visit indicator",
    "PV1-52": "other healthcare provider", "PV1-53": "service episode description",
    "PV1-54": "service episode identifier",
    "PV1 (A08/A28/A31/A40)": "these triggers are about the person; the visit comes from "
                             "A01/A03/A04",
    "PV2": "only PV2-3 (admit reason) is kept; the rest is inpatient logistics",
    "OBX": "observations come from the results feed and intake, not registration",
    "AL1": "allergies are reconciled at intake (AllergyIntolerance), not taken from "
           "the registration feed",
    "DG1": "diagnoses come from the problem list, not the registration feed",
    "GT1": "guarantor: billing",
    "IN2": "insurance additional information: billing",
    "IN3": "insurance certification: billing",
}


def _visit_identifier(reader: Reader, pv1: Segment, times: Times) -> JSON | None:
    rep = pv1.v(19)
    if not rep.c(1):
        return None
    msg, ctx = reader.msg, reader.ctx
    return cx_full(rep, ctx.namespaces_for(msg.sender_name),
                   f"{ctx.map.clinic.system}/v2/visit",  # a key: no sender-quoted system
                   times, pv1.where(19), reader.warnings)


def encounter(reader: Reader, pv1: Segment, patient: JSON, trigger: str) -> JSON:
    """The US Core Encounter of one PV1 (+ PV2, EVN) for an A01/A03/A04."""
    msg = reader.msg
    times = Times(reader.tz, reader.problems)
    ident = _visit_identifier(reader, pv1, times)
    if ident is None:  # no visit number: this message's own visit (a re-send is the same)
        ident = {"system": f"{reader.ctx.map.clinic.system}/v2/encounter",
                 "value": uuid.uuid5(uuid.NAMESPACE_URL,
                                     f"{msg.sender_name}|{msg.control_id}").hex}
        reader.warnings.append(Problem(pv1.where(19), "no visit number: the Encounter is "
                                                      "keyed on this message, so a later "
                                                      "discharge cannot find it",
                                       "incomplete"))
    enc: JSON = {"resourceType": "Encounter",
                 "meta": {"profile": [systems.profile("us-core-encounter")]},
                 "identifier": [ident], "status": ENCOUNTER_STATUS[trigger]}
    klass = pv1.get(2).strip().upper()
    if klass in ENCOUNTER_CLASS:
        code, display = ENCOUNTER_CLASS[klass]
        enc["class"] = {"system": ACT_CODE, "code": code, "display": display}
    else:
        enc["class"] = {"system": NULL_FLAVOR, "code": "UNK", "display": "unknown"}
        reader.warnings.append(Problem(pv1.where(2), "the patient class is missing or has "
                                                     "no encounter class (HL7 table 0004: "
                                                     "O, E, I, P, R, B)", "incomplete"))
    types = [c for n in (4, 18) if (c := codeable(pv1.v(n))) is not None]
    if not types:
        types = [data_absent("unknown")]
        reader.warnings.append(Problem(pv1.where(4), "no admission type (PV1-4) nor patient "
                                                     "type (PV1-18): Encounter.type is "
                                                     "absent (unknown)", "incomplete"))
    enc["type"] = types
    service = codeable(pv1.v(10))
    if service:
        enc["serviceType"] = service
    enc["subject"] = patient
    people: list[JSON] = []
    for n, code, display in PARTICIPANTS:
        for k, rep in enumerate(pv1.reps(n), start=1):
            who = reader.clinician(rep, pv1.where(n) + (f"[{k}]" if k > 1 else ""))
            if who:
                kind: JSON = {"coding": [{"system": PARTICIPATION, "code": code,
                                          "display": display}]}
                individual: JSON = {"type": "Practitioner", **who}
                people.append({"type": [kind], "individual": individual})
    if people:
        enc["participant"] = people
    evn = msg.first("EVN")
    event = ""
    if evn is not None:
        event, where = (evn.get(6), evn.where(6)) if evn.get(6) else (evn.get(2), evn.where(2))
    start = reader.time(pv1.get(44), pv1.where(44)) if pv1.get(44) else None
    end = reader.time(pv1.get(45), pv1.where(45)) if pv1.get(45) else None
    if start is None and trigger in ("A01", "A04") and event:
        start = reader.time(event, where)
    if end is None and trigger == "A03" and event:
        end = reader.time(event, where)
    if start or end:
        enc["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    pv2 = msg.first("PV2")
    reason = codeable(pv2.v(3)) if pv2 is not None else None
    if reason:
        enc["reasonCode"] = [reason]
    hospitalization: JSON = {}
    source = codeable(pv1.v(14))
    if source:
        hospitalization["admitSource"] = source
    disposition = codeable(pv1.v(36))
    if disposition:
        hospitalization["dischargeDisposition"] = disposition
    if hospitalization:
        enc["hospitalization"] = hospitalization
    place = readable(pv1.v(3))
    if place:
        enc["location"] = [{"location": {"type": "Location", "display": place}}]
    return enc


def related_person(reader: Reader, nk1: Segment, patient: JSON, k: int) -> JSON | None:
    """The US Core RelatedPerson of one NK1 (None for an NK1 naming nobody)."""
    times = Times(reader.tz, reader.problems)
    names = [h for rep in nk1.reps(2) + nk1.reps(30)
             if (h := xpn_name(rep, times, nk1.where(2)))]
    telecom = []
    for n, use in ((5, "home"), (6, "work"), (31, "")):
        for rep in nk1.reps(n):
            point = xtn_contact(rep)
            if point:
                if use and point["system"] != "email":
                    point.setdefault("use", use)
                telecom.append(point)
    addresses = [a for rep in nk1.reps(4) + nk1.reps(32)
                 if (a := xad_address(rep, times, nk1.where(4)))]
    relationship = []
    for n in (3, 7):  # tables 0063 / 0131: short codes; a shifted field (an address) is not
        concept = codeable(nk1.v(n))
        if concept is not None and _CODE.match(nk1.get(n)):
            relationship.append(concept)
        elif concept is not None:
            reader.warnings.append(Problem(nk1.where(n), "is not a relationship code; not "
                                                         "mapped", "code-invalid"))
    if not (names or telecom or addresses):
        reader.warnings.append(Problem(nk1.where(2), "names nobody (no name, phone or "
                                                     "address); not mapped", "incomplete"))
        return None
    parsed = identifier_from_reference(patient["reference"])
    owner = f"{parsed[1]}|{parsed[2]}" if parsed else reader.msg.control_id
    who = "|".join(readable(v) for v in nk1.reps(2) + nk1.reps(3)) or str(k)
    key = {"system": f"{reader.ctx.map.clinic.system}/v2/related-person",
           "value": uuid.uuid5(uuid.NAMESPACE_URL, f"{owner}|{who}").hex}
    idents = [key]
    namespaces = reader.ctx.namespaces_for(reader.msg.sender_name)
    fallback = sender_system(reader.ctx.map.clinic.system, reader.msg.sender_name, "contact")
    for rep in nk1.reps(33):
        ident = cx_full(rep, namespaces, fallback, times, nk1.where(33), reader.warnings)
        if ident:
            idents.append(ident)
    rp: JSON = {"resourceType": "RelatedPerson",
                "meta": {"profile": [systems.profile("us-core-relatedperson")]},
                "identifier": idents, "active": True, "patient": patient}
    if relationship:
        rp["relationship"] = relationship
    if names:
        rp["name"] = names
    if telecom:
        rp["telecom"] = telecom
    sex = nk1.get(15).strip().upper()
    if sex in GENDER:
        rp["gender"] = GENDER[sex]
    elif sex:
        reader.warnings.append(Problem(nk1.where(15), "not in HL7 table 0001; not mapped",
                                       "code-invalid"))
    born = times.at(nk1.get(16), nk1.where(16))
    if born:
        rp["birthDate"] = born.split("T")[0]
    if addresses:
        rp["address"] = addresses
    start, end = times.at(nk1.get(8), nk1.where(8)), times.at(nk1.get(9), nk1.where(9))
    if start or end:
        rp["period"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    language = codeable(nk1.v(20))
    if language:
        rp["communication"] = [{"language": language}]
    return rp


def _registered_patient(msg: Message, ctx: V2Context) -> tuple[Reader, JSON]:
    """The Reader and the PID's Patient reference; the Patient itself a conditional
    update (the registration feed owns the demographics), PD1-4 its generalPractitioner."""
    reader = Reader(msg, replace(ctx, patient_update=True))
    patient = reader.patient()
    pd1 = msg.first("PD1")
    if pd1 is not None and reader.patient_entry is not None:
        doctors = [{"type": "Practitioner", **who} for k, rep in enumerate(pd1.reps(4), 1)
                   if (who := reader.clinician(rep, pd1.where(4) + (f"[{k}]" if k > 1
                                                                     else "")))]
        if doctors:
            reader.patient_entry.resource["generalPractitioner"] = doctors
    return reader, patient


def adt_to_fhir(msg: Message, ctx: V2Context) -> JSON | Converted:
    """ADT^A01/A03/A04/A08/A28/A31 → Patient (+ RelatedPerson, Coverage, Encounter)."""
    trigger = msg.msh.get(9, 2).upper()
    reader, patient = _registered_patient(msg, ctx)
    entries: list[Entry] = [reader.patient_entry] if reader.patient_entry else []
    for k, nk1 in enumerate(msg.all("NK1"), start=1):
        rp = related_person(reader, nk1, patient, k)
        if rp is not None:
            entries.append(update(rp))
    for in1 in msg.all("IN1"):
        payer, cov = coverage(reader, in1, patient)
        if payer is None:  # R4 Coverage.payor is 1..*: kept in the store, reported
            reader.warnings.append(Problem(in1.where(3), "names no insurance company (IN1-3 "
                                                         "or IN1-4): no Coverage written",
                                           "incomplete"))
            continue
        entries += [create(payer), update(cov)]
    pv1 = msg.first("PV1")
    if trigger in ENCOUNTER_STATUS:
        if pv1 is None:
            reader.problems.append(Problem("PV1", "the PV1 segment is missing (an admit, "
                                                  "discharge or registration of a visit "
                                                  "needs it)", "required"))
        else:
            entries.append(update(encounter(reader, pv1, patient, trigger)))
    return reader.finish(transaction(entries))


def merged_away(msg: Message, ctx: V2Context) -> JSON:
    """The merged-away patient's MRN (system, value) of an A40 (MRG-1); InputError naming
    MRG (or MRG-1) when it is missing, ``business-rule`` on MRG-1 when its authority is
    not the clinic's MRN (never merge on an id of unknown origin)."""
    mrg = msg.first("MRG")
    if mrg is None:
        raise InputError([Problem("MRG", "the MRG segment is missing: an A40 names the "
                                         "merged-away patient in MRG-1", "required")])
    if not mrg.get(1):
        raise InputError([Problem("MRG-1", "the prior patient identifier is missing",
                                  "required")])
    problems: list[Problem] = []
    times = Times(None, problems)
    mrn_system = ctx.map.clinic.mrn_namespace
    namespaces = ctx.namespaces_for(msg.sender_name)
    old = None
    for k, rep in enumerate(mrg.reps(1), start=1):
        where = "MRG-1" if k == 1 else f"MRG-1[{k}]"
        ident = cx_full(rep, namespaces, sender_system(ctx.map.clinic.system,
                                                        msg.sender_name, rep.c(4, 1)),
                        times, where)
        if ident and ident["system"] == mrn_system:
            old = {"system": ident["system"], "value": ident["value"]}
            break
    if old is None:
        raise InputError([Problem("MRG-1", "no identifier of the clinic's MRN authority: "
                                           "held for review (map the authority in this "
                                           "sender's namespaces)", "business-rule")])
    return old


def merge_to_fhir(msg: Message, ctx: V2Context) -> JSON | Converted:
    """ADT^A40: the survivor (PID) ``link`` ``replaces`` the merged-away patient (MRG-1),
    and that one, made inactive, ``link`` ``replaced-by`` the survivor. Both conditional
    updates, so a re-sent A40 writes the same thing again. The merged-away record keeps
    its identifiers and takes the survivor's name, sex and birth date (a merge says they
    are one person); the local store and outbox re-pointing is :mod:`.merge`'s job."""
    old = merged_away(msg, ctx)
    reader, patient = _registered_patient(msg, ctx)
    reader.fail()
    assert reader.patient_entry is not None
    survivor = reader.patient_entry.resource
    key = survivor["identifier"][0]
    if (key["system"], key["value"]) == (old["system"], old["value"]):
        raise InputError([Problem("MRG-1", "names the surviving patient itself (PID-3)",
                                  "conflict")])
    old_ref = {"reference": f"Patient?{identifier_query(old['system'], old['value'])}"}
    survivor["link"] = [{"other": old_ref, "type": "replaces"}]
    gone: JSON = {"resourceType": "Patient",
                  "meta": {"profile": [systems.profile("us-core-patient")]},
                  "identifier": [{"use": "old", "type": key.get("type"), **old}],
                  "active": False,
                  "name": survivor["name"], "gender": survivor["gender"]}
    if gone["identifier"][0]["type"] is None:
        del gone["identifier"][0]["type"]
    if "birthDate" in survivor:
        gone["birthDate"] = survivor["birthDate"]
    gone["link"] = [{"other": patient, "type": "replaced-by"}]
    return reader.finish(transaction([reader.patient_entry, update(gone)]))
