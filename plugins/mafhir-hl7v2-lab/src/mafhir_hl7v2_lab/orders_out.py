"""US Core ServiceRequest (+ Patient, Coverage, Specimen, Practitioner) → OML^O21 / ORM^O01.

Pure: the resources and a :class:`~mafhir.hl7v2.context.V2Context` (clock, sending
application) in, the message text out, built by :func:`mafhir.hl7v2.build.build_message`
(python-hl7 containers, every value escaped). Placer order numbers go out as EI with
the clinic's namespace URI in EI-3 (type ``URI``), so the number a lab echoes back in
its ORU^R01 resolves to the same ServiceRequest identifier.
"""

from __future__ import annotations

import uuid
from typing import Any

from mafhir import systems
from mafhir.errors import InputError, Problem
from mafhir.hl7v2.build import Reps, build_message, msh
from mafhir.hl7v2.context import V2Context
from mafhir.hl7v2.datatypes import system_name
from mafhir.hl7v2.segments import dtm_of_fhir, pid_segment
from mafhir.resourceset import ResourceSet

from .codes import PRIORITY_TO_V2, V2_0487, V2_0488, V2_0916

__all__ = ["oml_o21", "orm_o01"]

JSON = dict[str, Any]
#: Coverage.relationship (the patient to the subscriber) → IN1-17 (the *insured* to the
#: patient, table 0063): a patient who is the subscriber's child has a parent insured.
RELATIONSHIP = {"self": "SEL", "spouse": "SPO", "child": "PAR", "parent": "CHD",
                "common": "DOM", "other": "OTH", "injured": "OTH"}


def _coding(concept: JSON | None, system: str | None = None) -> JSON | None:
    for c in (concept or {}).get("coding", []) or []:
        if system is None or c.get("system") == system:
            return c
    return None


def _cwe(concept: JSON | None, alt_system: str | None = None) -> tuple | None:
    first = _coding(concept)
    if first is None:
        text = (concept or {}).get("text")
        return ("", "", "", "", "", "", "", "", text) if text else None
    out = [first.get("code", ""), first.get("display", ""), system_name(first.get("system", ""))]
    alt = _coding(concept, alt_system) if alt_system else None
    if alt is not None and alt is not first:
        out += [alt.get("code", ""), alt.get("display", ""), system_name(alt_system or "")]
    return tuple(out)


def _ei(ident: JSON | None, ctx: V2Context) -> tuple | None:
    if not ident:
        return None
    return (ident["value"], ctx.application, ident.get("system", ""), "URI")


def _in1(coverage: JSON, resources: ResourceSet, n: int) -> list:
    payer = resources.resolve((coverage.get("payor") or [None])[0]) or {}
    payer_id = ((payer.get("identifier") or [{}])[0]).get("value", "")
    classes = {(_coding(c.get("type")) or {}).get("code"): c for c in coverage.get("class", [])}
    member = next((i["value"] for i in coverage.get("identifier", []) or []
                   if (_coding(i.get("type")) or {}).get("code") == "MB"),
                  coverage.get("subscriberId", ""))
    period = coverage.get("period") or {}
    rel = (_coding(coverage.get("relationship")) or {}).get("code", "")
    plan = classes.get("plan") or {}
    group = classes.get("group") or {}
    return ["IN1", str(n), (plan.get("value", ""), plan.get("name", "")), payer_id,
            payer.get("name", "") or ((coverage.get("payor") or [{}])[0]).get("display", ""),
            None, None, None, group.get("value", ""), group.get("name", ""), None, None,
            dtm_of_fhir(period.get("start")), dtm_of_fhir(period.get("end")), None, None, None,
            (RELATIONSHIP.get(rel, ""), rel, "HL70063") if rel else None, None, None, None,
            None, None, None, None, None, None, None, None, None, None, None, None, None, None,
            None, member]


def _xcn(resources: ResourceSet, ref: JSON | None) -> tuple | None:
    who = resources.resolve(ref) if ref else None
    if who is None:
        return None
    npi = next((i["value"] for i in who.get("identifier", []) or []
                if i.get("system") == systems.NPI), "")
    name = (who.get("name") or [{}])[0]
    given = name.get("given", [])
    return (npi, name.get("family", ""), given[0] if given else "",
            " ".join(given[1:]), "", "", "", "", ("NPI", "2.16.840.1.113883.4.6", "ISO"),
            "L", "", "", "NPI")


def _spm(spec: JSON, n: int, ctx: V2Context) -> list:
    ident = (spec.get("identifier") or [{}])[-1]
    coll = spec.get("collection") or {}
    collected = coll.get("collectedDateTime") or (coll.get("collectedPeriod") or {}).get("start")
    return ["SPM", str(n),
            ((ident.get("value", ""), ctx.application, ident.get("system", ""), "URI"),),
            None, _cwe(spec.get("type"), V2_0487), None, None,
            _cwe(coll.get("method"), V2_0488), _cwe(coll.get("bodySite")), None, None, None,
            None, None, ((spec.get("note") or [{}])[0]).get("text"), None, None,
            dtm_of_fhir(collected)]


def _build(resources: ResourceSet, ctx: V2Context, structure: str) -> str:
    orders = [sr for sr in resources.of_type("ServiceRequest")]
    if not orders:
        raise InputError([Problem("ServiceRequest", "there is no ServiceRequest to send",
                                   "required")])
    subjects = {str(sr.get("subject")) for sr in orders}
    if len(subjects) > 1:
        raise InputError([Problem("ServiceRequest.subject", "one message carries one "
                                                            "patient's orders; split them",
                                                            "invariant")])
    oml = structure == "OML"
    code, trigger = ("OML", "O21") if oml else ("ORM", "O01")
    seed = "|".join(f"{i.get('system')}|{i.get('value')}" for sr in orders
                    for i in sr.get("identifier", [])[:1])
    control = uuid.uuid5(uuid.NAMESPACE_URL, f"{seed}|{ctx.now.isoformat()}").hex[:20]
    clinic = ctx.map.clinic
    segs: list[list] = [msh(sending=(ctx.application, ctx.facility or clinic.name),
                            receiving=ctx.receiving, at=ctx.now,
                            message_type=(code, trigger, f"{code}_{trigger}"),
                            control_id=control, processing=ctx.processing_id)]
    segs.append(pid_segment(resources, orders[0]["subject"], ctx, "ServiceRequest.subject"))
    segs.append(["PV1", "1", "O"])
    coverages = [c for c in resources.of_type("Coverage") if c.get("status") == "active"]
    for n, cov in enumerate(coverages, start=1):
        segs.append(_in1(cov, resources, n))
    spm_n = 0
    for n, sr in enumerate(orders, start=1):
        placer = _ei((sr.get("identifier") or [None])[0], ctx)
        group = _ei(sr.get("requisition"), ctx)
        requester = _xcn(resources, sr.get("requester"))
        control_code = "CA" if sr.get("status") in ("revoked", "entered-in-error") else "NW"
        priority = PRIORITY_TO_V2.get(sr.get("priority", "routine"), "R")
        segs.append(["ORC", control_code, placer, None, group, None, None,
                     None if oml else ("", "", "", "", "", priority), None,
                     dtm_of_fhir(sr.get("authoredOn")), None, None, requester])
        if oml:
            segs.append(["TQ1", "1", None, None, None, None, None, None, None, priority])
        specimens = [s for ref in sr.get("specimen", []) or []
                     if (s := resources.resolve(ref)) is not None]
        collected = next((c for s in specimens
                          if (c := (s.get("collection") or {}).get("collectedDateTime"))), None)
        fasting = _coding((sr.get("orderDetail") or [None])[0], V2_0916)
        obr: list = ["OBR", str(n), placer, None, _cwe(sr.get("code")), None, None,
                     dtm_of_fhir(collected), None, None, None, None, None,
                     (fasting["code"], fasting.get("display", ""), "HL70916") if fasting
                     else None, None]
        if not oml and specimens:
            kind = _coding(specimens[0].get("type"), V2_0487)
            obr.append(((kind["code"], kind.get("display", ""), "HL70487"),) if kind else None)
        else:
            obr.append(None)
        obr.append(requester)
        segs.append(obr)
        for note in sr.get("note", []) or []:
            segs.append(["NTE", "1", "P", Reps(note.get("text", "").split("\n"))])
        for d, reason in enumerate(sr.get("reasonCode", []) or [], start=1):
            segs.append(["DG1", str(d), None, _cwe(reason), None, None, "W"])
        if oml:
            for spec in specimens:
                spm_n += 1
                segs.append(_spm(spec, spm_n, ctx))
    return build_message(segs)


def oml_o21(resources: ResourceSet, ctx: V2Context) -> str:
    """OML^O21 (v2.5.1): the lab order with its specimens (SPM)."""
    return _build(resources, ctx, "OML")


def orm_o01(resources: ResourceSet, ctx: V2Context) -> str:
    """ORM^O01 for labs that still want it: specimen type in OBR-15, no SPM."""
    return _build(resources, ctx, "ORM")
