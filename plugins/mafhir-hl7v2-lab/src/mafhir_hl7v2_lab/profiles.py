"""US Core 7.0.0 ServiceRequest, Specimen, DiagnosticReport (lab) and Observation (lab) rules.

From mapping-reference §7.1–7.3: the mandatory elements, required bindings and the
invariants us-core-2/3/8/9/22, obs-3/6 and prr-1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mafhir import Profile, systems
from mafhir.validation.issues import Issue
from mafhir.validation.rules import error, has_coding, require, require_coding, select

from .codes import V2_0074

__all__ = ["PROFILES"]

JSON = dict[str, Any]

SR_STATUS = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown")
SR_INTENT = ("proposal", "plan", "directive", "order", "original-order", "reflex-order",
             "filler-order", "instance-order", "option")
PRIORITY = ("routine", "urgent", "asap", "stat")
DR_STATUS = ("registered", "partial", "preliminary", "final", "amended", "corrected",
             "appended", "cancelled", "entered-in-error", "unknown")
DR_NEEDS_TIMES = ("partial", "preliminary", "final", "amended", "corrected", "appended")
OBS_STATUS = ("registered", "preliminary", "final", "amended", "corrected", "cancelled",
              "entered-in-error", "unknown")
SPECIMEN_STATUS = ("available", "unavailable", "unsatisfactory", "entered-in-error")
VALUE_KEYS = ("valueQuantity", "valueCodeableConcept", "valueString", "valueBoolean",
              "valueInteger", "valueRange", "valueRatio", "valueSampledData", "valueTime",
              "valueDateTime", "valuePeriod")


def _code_in(resource: JSON, key: str, allowed: tuple[str, ...], required: bool = True
             ) -> Iterator[Issue]:
    rtype = resource["resourceType"]
    value = resource.get(key)
    if value is None:
        if required:
            yield error(f"{rtype}.{key}", f"is required, one of {', '.join(allowed)}")
    elif value not in allowed:
        yield error(f"{rtype}.{key}", f"must be one of {', '.join(allowed)}", "code-invalid")


def _concept(resource: JSON, key: str, why: str) -> Iterator[Issue]:
    rtype = resource["resourceType"]
    value = resource.get(key)
    if not isinstance(value, dict) or not (value.get("coding") or value.get("text")):
        yield error(f"{rtype}.{key}", f"is required: {why}")


def check_service_request(sr: JSON) -> Iterator[Issue]:
    yield from _code_in(sr, "status", SR_STATUS)
    yield from _code_in(sr, "intent", SR_INTENT)
    yield from _code_in(sr, "priority", PRIORITY, required=False)
    yield from _concept(sr, "code", "what is ordered (US Core ServiceRequest.code 1..1)")
    yield from require(sr, "subject", "the patient (US Core ServiceRequest.subject 1..1)")
    if sr.get("orderDetail") and not sr.get("code"):
        yield error("ServiceRequest.orderDetail", "needs code (prr-1)", "invariant")


def check_specimen(spec: JSON) -> Iterator[Issue]:
    yield from _concept(spec, "type", "the kind of specimen (US Core Specimen.type 1..1)")
    yield from _code_in(spec, "status", SPECIMEN_STATUS, required=False)


def check_diagnostic_report(dr: JSON) -> Iterator[Issue]:
    yield from _code_in(dr, "status", DR_STATUS)
    yield from require_coding(dr, "category", V2_0074, "LAB",
                              "US Core DiagnosticReport lab: category LaboratorySlice")
    yield from _concept(dr, "code", "the test reported (US Core DiagnosticReport.code 1..1)")
    yield from require(dr, "subject", "the patient (US Core DiagnosticReport.subject 1..1)")
    if dr.get("status") in DR_NEEDS_TIMES:
        if not (dr.get("effectiveDateTime") or dr.get("effectivePeriod")):
            yield error("DiagnosticReport.effective[x]",
                        "is required when the report is partial/preliminary/final/… (us-core-8)",
                        "invariant")
        if not dr.get("issued"):
            yield error("DiagnosticReport.issued", "is required when the report is "
                                                   "partial/preliminary/final/… (us-core-9)",
                        "invariant")


def check_observation(obs: JSON) -> Iterator[Issue]:
    yield from _code_in(obs, "status", OBS_STATUS)
    if not any(has_coding(c, systems.OBSERVATION_CATEGORY, "laboratory")
               for c in obs.get("category", []) or []):
        yield error("Observation.category", "must include observation-category|laboratory "
                                            "(US Core Laboratory Result)", "value")
    yield from _concept(obs, "code", "the test (US Core Observation.code 1..1)")
    yield from require(obs, "subject", "the patient (US Core Observation.subject 1..1)")
    has_value = any(k in obs for k in VALUE_KEYS)
    if has_value and obs.get("dataAbsentReason"):
        yield error("Observation.dataAbsentReason", "only when there is no value (obs-6)",
                    "invariant")
    if not has_value and not obs.get("dataAbsentReason") and not obs.get("component") \
            and not obs.get("hasMember"):
        yield error("Observation.value[x]", "a value or a dataAbsentReason is required "
                                            "(us-core-2)", "invariant")
    q = obs.get("valueQuantity")
    if isinstance(q, dict) and q.get("code") and q.get("system") != systems.UCUM:
        yield error("Observation.valueQuantity.system", "a coded unit must be UCUM (us-core-3)",
                    "value")
    for where, rr in select(obs, "referenceRange", "Observation"):
        if not (rr.get("low") or rr.get("high") or rr.get("text")):
            yield error(where, "needs low, high or text (obs-3)", "invariant")
        for key in ("low", "high"):
            bound = rr.get(key)
            if isinstance(bound, dict) and bound.get("system") not in (None, systems.UCUM):
                yield error(f"{where}.{key}.system", "must be UCUM (us-core-22)", "value")


PROFILES = [
    Profile(systems.profile("us-core-servicerequest"), "ServiceRequest", check_service_request,
            "US Core ServiceRequest"),
    Profile(systems.profile("us-core-specimen"), "Specimen", check_specimen, "US Core Specimen"),
    Profile(systems.profile("us-core-diagnosticreport-lab"), "DiagnosticReport",
            check_diagnostic_report, "US Core DiagnosticReport for Laboratory Results Reporting"),
    Profile(systems.profile("us-core-observation-lab"), "Observation", check_observation,
            "US Core Laboratory Result Observation"),
]
