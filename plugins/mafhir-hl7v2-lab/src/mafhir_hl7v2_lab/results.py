"""ORU^R01 → US Core Laboratory DiagnosticReport + Observations + Specimen (pure).

One OBR group = one DiagnosticReport; each OBX = one Observation in ``result``; each
SPM = one Specimen. The order it answers is a conditional create keyed on the placer
order number: when the clinic sent that order, the server finds the ServiceRequest
already there and ``basedOn`` points at it; otherwise the order is recorded from the
result. Reports and observations are conditional updates keyed on the filler order
number, the test code and the OBX sub-id, so a corrected result (OBR-25/OBX-11 ``C``)
replaces the earlier one instead of adding a second.

Rows that share an OBX-4 sub-id within one context, the OBR's own rows or one SPM's (an
isolate and its colony count, a specimen's findings), are one result group: when the
OBR's test has a code with a system, a parent Observation coded as that test holds them
in ``hasMember`` (the IG leaves the structure to local use of OBX-4; every row also keeps
its sub-id in the IG's sub-id extension). ``DiagnosticReport.result`` lists every row
itself, so no value is reachable only through a parent. An ED value (a PDF, an image) also
goes to ``presentedForm``.
"""

from __future__ import annotations

import uuid
from typing import Any

from mafhir import systems
from mafhir.bundle import Entry, create, transaction, update
from mafhir.fhirtypes import codeable as fhir_codeable
from mafhir.fhirtypes import coding
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.datatypes import codeable
from mafhir.hl7v2.message import Message, Segment
from mafhir.identity import identifier_query

from .codes import DR_STATUS, V2_0074
from .v2in import VALUE_ATTACHMENT, Reader, order_identifiers

__all__ = ["oru_to_fhir", "result_identifier", "split_order_group"]

JSON = dict[str, Any]
LAB_OBS = systems.profile("us-core-observation-lab")


def _ref(resource: JSON) -> JSON:
    ident = resource["identifier"][0]
    return {"reference": f"{resource['resourceType']}?"
                         f"{identifier_query(ident['system'], ident['value'])}"}


def result_identifier(system: str, report: JSON, key: tuple[str, str], n: int) -> JSON:
    """A stable, URL-safe id of one result: its report, test code, sub-id and repeat.

    Derived (uuid5), so the same OBX of a corrected report gets the same id and its
    conditional update replaces the earlier Observation; no character of the sender's
    ids can break the conditional URL.
    """
    name = f"{report['system']}|{report['value']}|{key[0]}|{key[1]}|{n}"
    return {"system": system, "value": uuid.uuid5(uuid.NAMESPACE_URL, name).hex}


def split_order_group(group: list[Segment]) -> JSON:
    """An order group's parts: ORC, OBR, its NTEs and DG1s, OBX with their NTEs, SPMs."""
    parts: JSON = {"orc": None, "obr": None, "notes": [], "dg1": [], "obx": [], "spm": []}
    last: list[Segment] | None = None
    current_spm: JSON | None = None
    for seg in group:
        if seg.name == "ORC":
            parts["orc"] = seg
        elif seg.name == "OBR":
            parts["obr"] = seg
            last = parts["notes"]
        elif seg.name == "NTE" and last is not None:
            last.append(seg)
        elif seg.name == "DG1":
            parts["dg1"].append(seg)
        elif seg.name == "OBX":
            notes: list[Segment] = []
            parts["obx"].append((seg, notes, current_spm))
            last = notes
        elif seg.name == "SPM":
            current_spm = {"spm": seg}
            parts["spm"].append(current_spm)
            last = None
    return parts


def oru_to_fhir(msg: Message, ctx: V2Context) -> JSON | Converted:
    reader = Reader(msg, ctx)
    patient = reader.patient()
    entries: list[Entry] = [reader.patient_entry] if reader.patient_entry else []
    groups = list(msg.groups(("ORC", "OBR"), within=("OBR",)))
    if not groups:
        from mafhir.errors import InputError, Problem

        raise InputError([Problem("OBR", "the message has no OBR (a result needs an order "
                                         "group)", "structure")])
    # OBX sent before any order (after PID): kept, as results of the first order
    leading: list[Any] = []
    for seg in msg.segments[1:]:
        if seg.name in ("ORC", "OBR"):
            break
        if seg.name == "OBX" or (seg.name == "NTE" and leading):
            leading.append(seg)
    if leading:
        groups[0] = leading + groups[0]
    issued_fallback = reader.instant(msg.msh.get(7), "MSH-7")
    for k, group in enumerate(groups, start=1):
        parts = split_order_group(group)
        orc, obr = parts["orc"], parts["obr"]
        if obr is None:
            from mafhir.errors import Problem

            reader.problems.append(Problem(orc.where(), "an order group without an OBR",
                                           "structure"))
            continue
        idents = reader.unique(order_identifiers(orc, obr, ctx), k)
        fillers = [i for i in idents if i["type"]["coding"][0]["code"] == "FILL"]
        report_ids = fillers + [i for i in idents if i not in fillers]
        if not report_ids:
            report_ids = [{"system": f"{ctx.map.clinic.system}/v2/report",
                           "value": f"{msg.sender_name}|{msg.control_id}|{obr.get(1) or k}"}]
        status = DR_STATUS.get(obr.get(25).upper(), "unknown")
        order_ref = None
        if idents:
            sr = reader.service_request(
                orc, obr, idents, patient,
                "completed" if status in ("final", "corrected", "amended") else "active",
                [], parts["dg1"], [])
            entries.append(create(sr))
            order_ref = _ref(sr)
        effective = reader.time(obr.get(7), obr.where(7))
        effective_end = reader.time(obr.get(8), obr.where(8))
        specimens: list[JSON] = []
        for n, sp in enumerate(parts["spm"], start=1):
            spm = sp["spm"]
            fallback = {"system": f"{ctx.map.clinic.system}/v2/specimen",
                        "value": f"{report_ids[0]['value']}-{spm.get(1) or n}"}
            spec = reader.specimen(spm, patient, order_ref, fallback)
            sp["ref"] = _ref(spec)
            specimens.append(spec)
            entries.append(create(spec))
        default_time = effective or next(
            (t for s in specimens if (t := s.get("collection", {}).get("collectedDateTime"))),
            None)
        results: list[JSON] = []
        # a group's context: 0 for the OBR's own rows, else its SPM's place in the order
        # group (positions, not id(): they also key the parent's identifier, which must be
        # the same when a corrected report is sent again)
        spm_no = {id(sp): n for n, sp in enumerate(parts["spm"], start=1)}
        grouped: dict[tuple[str, int], list[JSON]] = {}
        presented: list[JSON] = []
        seen: dict[tuple[str, str], int] = {}
        base = report_ids[0]
        for obx, notes, sp in parts["obx"]:
            key = (obx.get(3), obx.get(4))
            seen[key] = seen.get(key, 0) + 1
            ident = result_identifier(f"{ctx.map.clinic.system}/lab-result", base, key,
                                      seen[key])
            obs = reader.observation(obx, ident, patient, notes, default_time, LAB_OBS)
            spec_ref = (sp or {}).get("ref") or (_ref(specimens[0]) if specimens else None)
            if spec_ref:
                obs["specimen"] = spec_ref
            if order_ref:
                obs["basedOn"] = [order_ref]
            results.append(obs)
            entries.append(update(obs))
            presented += [x["valueAttachment"] for x in obs.get("extension", [])
                          if x["url"] == VALUE_ATTACHMENT and "data" in x["valueAttachment"]]
            if obx.get(4):  # grouped within its context: the OBR's own rows or one SPM's
                grouped.setdefault((obx.raw(4), spm_no.get(id(sp), 0)), []).append(obs)
        parents: dict[int, JSON] = {}
        for (sub, context), rows in grouped.items():
            # a parent stands for its rows only under a code that says what they are
            if len(rows) > 1 and _meaningful(codeable(obr.v(4))):
                parent = result_group(reader, obr, rows, f"{sub}|{context}", base,
                                      f"{ctx.map.clinic.system}/lab-result", order_ref)
                parents[id(rows[0])] = parent
                entries.append(update(parent))
        if not effective:
            effective = next((o["effectiveDateTime"] for o in results
                              if "effectiveDateTime" in o), default_time)
        dr: JSON = {
            "resourceType": "DiagnosticReport",
            "meta": {"profile": [systems.profile("us-core-diagnosticreport-lab")]},
            "identifier": report_ids,
        }
        if order_ref:
            dr["basedOn"] = [order_ref]
        dr["status"] = status
        categories = [fhir_codeable(coding(V2_0074, "LAB", "Laboratory"))]
        section = obr.get(24)
        if section and section != "LAB":
            categories.append(fhir_codeable(coding(V2_0074, section)))
        dr["category"] = categories
        dr["code"] = reader_code(reader, obr)
        dr["subject"] = patient
        if effective and effective_end:
            dr["effectivePeriod"] = {"start": effective, "end": effective_end}
        elif effective:
            dr["effectiveDateTime"] = effective
        issued = reader.instant(obr.get(22), obr.where(22)) or issued_fallback
        if issued:
            dr["issued"] = issued
        performer = next((o.get(23) for o, _, _ in parts["obx"] if o.get(23)), "") or \
            msg.msh.get(4)
        if performer:
            dr["performer"] = [{"display": performer}]
        interpreter = obr.v(32)
        if interpreter:
            subs = [*interpreter.subs(1), "", "", ""]
            name = " ".join(p for p in (subs[2], subs[1]) if p) or subs[0]
            if name:
                dr["resultsInterpreter"] = [{"display": name}]
        if specimens:
            dr["specimen"] = [_ref(s) for s in specimens]
        # every row is listed itself (a reader that does not follow hasMember still sees
        # each value); a group's parent comes just before its first row
        listed = [x for o in results for x in ((parents[id(o)], o) if id(o) in parents
                                               else (o,))]
        if listed:
            dr["result"] = [_ref(o) for o in listed]
        conclusion = "\n".join(t for n in parts["notes"] if (t := reader.note_text(n)))
        if conclusion:
            dr["conclusion"] = conclusion
        if presented:
            dr["presentedForm"] = presented
        entries.append(update(dr))
    return reader.finish(transaction(entries))


def _meaningful(code: JSON | None) -> bool:
    """A code a receiver can read: at least one coding with a system."""
    return any(c.get("system") and c.get("code") for c in (code or {}).get("coding", []))


def result_group(reader: Reader, obr: Segment, rows: list[JSON], group: str, report: JSON,
                 system: str, order_ref: JSON | None) -> JSON:
    """The parent of rows sharing an OBX-4 sub-id in one context: coded as the OBR's
    test, its members in ``hasMember``; final only when every member says the same.

    ``group`` is ``"<OBX-4>|<context>"`` (0 = the OBR's rows, n = its n-th SPM): two
    specimens may both use sub-id 1, and a parent keyed on the sub-id alone would share
    one identifier (one fullUrl), so a Bundle would keep one and lose the other's rows.
    """
    statuses = {o["status"] for o in rows}
    parent: JSON = {
        "resourceType": "Observation",
        "meta": {"profile": [LAB_OBS]},
        "identifier": [result_identifier(system, report, ("OBX-4 group", group), 1)],
        "status": statuses.pop() if len(statuses) == 1 else "preliminary",
        "category": rows[0]["category"],
        "code": reader_code(reader, obr),
        "subject": rows[0]["subject"],
    }
    when = next((o["effectiveDateTime"] for o in rows if "effectiveDateTime" in o), None)
    if when:
        parent["effectiveDateTime"] = when
    if order_ref:
        parent["basedOn"] = [order_ref]
    if "specimen" in rows[0]:
        parent["specimen"] = rows[0]["specimen"]
    parent["hasMember"] = [_ref(o) for o in rows]
    return parent


def reader_code(reader: Reader, obr: Segment) -> JSON:
    from mafhir.errors import Problem
    from mafhir.fhirtypes import data_absent
    from mafhir.hl7v2.datatypes import codeable

    code = codeable(obr.v(4))
    if code is None:
        reader.problems.append(Problem(obr.where(4), "the universal service identifier (the "
                                                     "test) is missing", "required"))
        return data_absent("unknown")
    return code
