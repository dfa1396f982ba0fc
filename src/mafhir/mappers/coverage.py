"""The coverage task kind: the insurance card → US Core Coverage, the eligibility check →
CoverageEligibilityRequest + CoverageEligibilityResponse (base R4).

Identity and idempotency (decided here, documented for the clinic):

* **Coverage** is written with a conditional update (``PUT Coverage?identifier=…``) keyed
  on the card, not on the task: system ``<clinic>/coverage``, value a name-based UUID of
  (MRN system, MRN, payer id, member id). Scanning the same card again, or a changed card
  (new group, plan, dates) for the same patient, payer and member id, updates the one
  Coverage instead of adding another. The key is a hash so that the MRN and member id do
  not appear in request URLs and server logs. A new member id is a new Coverage; the MA
  sends the old card with ``status: cancelled`` to close it. The task id that last wrote
  the card is kept as a second business identifier (system ``<clinic>/coverage-task``).
* The member id is ``identifier:memberid`` (type v2-0203 ``MB``, system
  ``<clinic>/payer/<payer id>/member-id``) and, always, ``subscriberId`` (us-core-15; CARIN
  BB requires ``subscriberId``). When the subscriber has a member id of their own it goes
  in ``subscriberId`` and the patient's in the MB identifier (US Core guidance).
* The **payer** is a US Core Organization (type ``pay``), identifier system
  ``<clinic>/payer`` with the EDI payer id, conditional create: an existing payer is left
  as it is.
* A **subscriber** other than the patient is a US Core RelatedPerson (conditional update,
  identifier ``<clinic>/related-person`` = ``<coverage key>/subscriber``).
* The **eligibility check** is a request and a response, each a conditional create on
  the task id (``<clinic>/coverage-eligibility-request`` / ``-response``). The response
  has one item: the X12 service type as ``category`` (so ces-1 holds), network, unit, term
  ``annual``, and benefits ``copay`` (allowedMoney), ``copay-percent`` (allowedUnsignedInt,
  as the R4 example) and ``deductible`` (allowedMoney = annual amount, usedMoney = amount
  − remaining). A rejected check (X12 AAA) is ``outcome: error`` with the AAA03 code kept
  (system ``https://codesystem.x12.org/005010/901``, unverified like all X12 URIs but 1365).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from .. import systems
from ..bundle import Entry, create, update
from ..context import MapContext
from ..fhirtypes import codeable, coding, fhir_date, fhir_datetime, identifier, parse_fhir_datetime
from ..hookspecs import hookimpl
from ..registry import Mapper
from ..resourceset import ResourceSet
from ..tasks.base import TaskModel
from ..tasks.common import PatientRef
from ..tasks.coverage import (
    ORDERS,
    CardCopays,
    CoverageTask,
    Deductible,
    Eligibility,
    EligibilityError,
    Payer,
    Period,
    PlanClass,
    Subscriber,
)
from .common import (
    organization_entry,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_fhir,
)

__all__ = [
    "BENEFIT_NETWORK",
    "BENEFIT_TERM",
    "BENEFIT_TYPE",
    "BENEFIT_UNIT",
    "COPAY_TYPES",
    "COVERAGE_COPAY_TYPE",
    "ORGANIZATION_TYPE",
    "RELATIONSHIP_DISPLAY",
    "V3_ROLE_CODE",
    "X12_REJECT_REASON",
    "X12_SERVICE_TYPE",
    "coverage_key",
    "from_fhir",
    "register_mappers",
    "to_fhir",
]

JSON = dict[str, Any]

THO = "http://terminology.hl7.org/CodeSystem/"
COVERAGE_COPAY_TYPE = THO + "coverage-copay-type"
BENEFIT_TYPE = THO + "benefit-type"
BENEFIT_NETWORK = THO + "benefit-network"
BENEFIT_UNIT = THO + "benefit-unit"
BENEFIT_TERM = THO + "benefit-term"
ORGANIZATION_TYPE = THO + "organization-type"
V3_ROLE_CODE = THO + "v3-RoleCode"
#: X12 element 1365 (service type code), as Da Vinci PAS writes it (mapping-reference §1).
X12_SERVICE_TYPE = "https://codesystem.x12.org/005010/1365"
#: X12 element 901 (AAA03 reject reason code); same URI pattern, unverified (§13 U9).
X12_REJECT_REASON = "https://codesystem.x12.org/005010/901"

#: The patient's relationship to the subscriber (subscriber-relationship displays).
RELATIONSHIP_DISPLAY = {
    "self": "Self", "spouse": "Spouse", "child": "Child", "parent": "Parent",
    "common": "Common Law Spouse", "other": "Other", "injured": "Injured Party",
}
#: The subscriber's role towards the patient (v3-RoleCode), where one code says it.
_SUBSCRIBER_ROLE = {
    "spouse": ("SPS", "spouse"), "child": ("PRN", "parent"), "parent": ("CHILD", "child"),
}
#: Task copay field → coverage-copay-type code and display.
COPAY_TYPES = {
    "primary_care": ("gpvisit", "GP Office Visit"),
    "specialist": ("spvisit", "Specialist Office Visit"),
    "emergency": ("emergency", "Emergency"),
    "urgent_care": ("urgentcare", "Urgent Care"),
    "telehealth": ("televisit", "Tele-visit"),
}
_CLASS_DISPLAY = {"group": "Group", "plan": "Plan"}
#: Source of Payment Typology codes named in mapping-reference §5.1 (text only: the
#: displays are from secondary sources, so they go in ``text``, not ``coding.display``).
_SOPT_TEXT = {
    "1": "Medicare", "2": "Medicaid", "5": "Private Health Insurance", "81": "Self-pay",
    "111": "Medicare HMO", "112": "Medicare PPO", "113": "Medicare POS",
    "121": "Medicare FFS", "122": "Medicare Drug Benefit", "3712": "PPO",
}
_SERVICE_TYPE_DISPLAY = {
    "1": "Medical Care", "4": "Diagnostic X-Ray", "5": "Diagnostic Lab",
    "30": "Health Benefit Plan Coverage", "33": "Chiropractic", "47": "Hospital",
    "48": "Hospital - Inpatient", "50": "Hospital - Outpatient", "80": "Immunizations",
    "81": "Routine Physical", "86": "Emergency Services", "88": "Pharmacy",
    "98": "Professional (Physician) Visit - Office", "AL": "Vision (Optometry)",
    "MH": "Mental Health", "UC": "Urgent Care",
}
_REJECT_DISPLAY = {
    "42": "Unable to Respond at Current Time",
    "58": "Invalid/Missing Date-of-Birth",
    "72": "Invalid/Missing Subscriber/Insured ID",
    "73": "Invalid/Missing Subscriber/Insured Name",
    "75": "Subscriber/Insured Not Found",
}
_NETWORK_DISPLAY = {"in": "In Network", "out": "Out of Network"}
_UNIT_DISPLAY = {"individual": "Individual", "family": "Family"}
_BENEFIT_DISPLAY = {
    "copay": "Copayment per service",
    "copay-percent": "Copayment Percent per service",
    "deductible": "Deductible",
}
_PURPOSE = ["validation", "benefits"]  # 270 "is the coverage active, and what does it pay"
MB_TYPE = codeable(coding(systems.V2_0203, "MB", "Member Number"))

# Namespace of the card keys (uuid5 of a fixed name; changing it would break idempotency).
_KEY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "coverage.mafhir.fhir.resources")


def coverage_key(mrn_system: str, mrn: str, payer_id: str, member_id: str) -> str:
    """The Coverage business identifier value of one card of one patient."""
    return str(uuid.uuid5(_KEY_NAMESPACE, "|".join((mrn_system, mrn, payer_id, member_id))))


def _money(value: Decimal) -> JSON:
    """USD Money, the amount the Decimal the task holds: :func:`mafhir.io.dumps` writes it
    digit for digit (25.50 stays 25.50, 10 stays 10), as every FHIR decimal here is; a
    float would drop the trailing zero and carry binary error into sums."""
    return {"value": value, "currency": "USD"}


def _decimal(money: JSON) -> Decimal:
    value = money["value"]
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _payer_entry(payer: Payer, ctx: MapContext) -> Entry:
    return create({
        "resourceType": "Organization",
        "meta": {"profile": [systems.profile("us-core-organization")]},
        "identifier": [identifier(ctx.clinic.task_system("payer"), payer.id)],
        "active": True,
        "type": [codeable(coding(ORGANIZATION_TYPE, "pay", "Payer"))],
        "name": payer.name,
    })


def _subscriber_entry(sub: Subscriber, key: str, patient_ref: JSON, ctx: MapContext) -> Entry:
    resource: JSON = {
        "resourceType": "RelatedPerson",
        "meta": {"profile": [systems.profile("us-core-relatedperson")]},
        "identifier": [identifier(ctx.clinic.task_system("related-person"), f"{key}/subscriber")],
        "active": True,
        "patient": patient_ref,
    }
    role = _SUBSCRIBER_ROLE.get(sub.relationship)
    if role:
        resource["relationship"] = [codeable(coding(V3_ROLE_CODE, *role))]
    name: JSON = {}
    if sub.family:
        name["family"] = sub.family
    if sub.given:
        name["given"] = list(sub.given)
    resource["name"] = [name]
    if sub.gender:
        resource["gender"] = sub.gender
    if sub.birth_date:
        resource["birthDate"] = fhir_date(sub.birth_date)
    return update(resource)


def _class(kind: str, value: PlanClass) -> JSON:
    out: JSON = {"type": codeable(coding(systems.COVERAGE_CLASS, kind, _CLASS_DISPLAY[kind]))}
    if value.id is not None:
        out["value"] = value.id
    else:  # class.value is 1..1: a name-only plan says its number is unknown (US Core DAR)
        out["_value"] = {"extension": [{"url": systems.DATA_ABSENT_EXTENSION,
                                        "valueCode": "unknown"}]}
    if value.name:
        out["name"] = value.name
    return out


def _coverage(task: CoverageTask, key: str, patient_ref: JSON, payer_ref: JSON,
              subscriber_ref: JSON, ctx: MapContext) -> JSON:
    resource: JSON = {
        "resourceType": "Coverage",
        "meta": {"profile": [systems.profile("us-core-coverage")]},
        "identifier": [
            identifier(ctx.clinic.task_system("coverage"), key),
            identifier(f"{ctx.clinic.task_system('payer')}/{task.payer.id}/member-id",
                       task.member_id, type=MB_TYPE),
            identifier(ctx.clinic.task_system("coverage-task"), task.id),
        ],
        "status": task.status,
    }
    if task.payer_type:
        resource["type"] = codeable(coding(systems.SOPT, task.payer_type),
                                    text=_SOPT_TEXT.get(task.payer_type))
    sub = task.subscriber
    resource["subscriber"] = subscriber_ref
    resource["subscriberId"] = sub.member_id or task.member_id
    resource["beneficiary"] = patient_ref
    resource["relationship"] = codeable(coding(systems.SUBSCRIBER_RELATIONSHIP, sub.relationship,
                                               RELATIONSHIP_DISPLAY[sub.relationship]))
    if task.period and (task.period.start or task.period.end):
        period: JSON = {}
        if task.period.start:
            period["start"] = fhir_date(task.period.start)
        if task.period.end:
            period["end"] = fhir_date(task.period.end)
        resource["period"] = period
    resource["payor"] = [payer_ref]
    classes = [_class(kind, value) for kind, value in (("group", task.group), ("plan", task.plan))
               if value is not None]
    if classes:
        resource["class"] = classes
    if task.order:
        resource["order"] = ORDERS[task.order]
    costs = []
    for field, (code, display) in COPAY_TYPES.items():
        amount = getattr(task.copays, field) if task.copays else None
        if amount is not None:
            costs.append({"type": codeable(coding(COVERAGE_COPAY_TYPE, code, display)),
                          "valueMoney": _money(amount)})
    if costs:
        resource["costToBeneficiary"] = costs
    return resource


def _benefit(code: str, **values: Any) -> JSON:
    return {"type": codeable(coding(BENEFIT_TYPE, code, _BENEFIT_DISPLAY[code])), **values}


def _service_type(code: str) -> JSON:
    return codeable(coding(X12_SERVICE_TYPE, code, _SERVICE_TYPE_DISPLAY.get(code)))


def _eligibility_entries(task: CoverageTask, elig: Eligibility, patient_ref: JSON,
                         payer_ref: JSON, coverage_ref: JSON,
                         ctx: MapContext) -> list[Entry]:
    entries: list[Entry] = []
    provider = (practitioner_entry(elig.provider) if elig.provider
                else organization_entry(ctx.clinic))
    entries.extend(provider.entries)
    created = fhir_datetime(elig.checked_at)

    def head(resource_type: str, system: str) -> JSON:
        """What the request and its response share, in the element order R4 lists."""
        head: JSON = {"resourceType": resource_type,
                      "identifier": [identifier(ctx.clinic.task_system(system), task.id)],
                      "status": "active", "purpose": list(_PURPOSE), "patient": patient_ref}
        if elig.service_date:
            head["servicedDate"] = fhir_date(elig.service_date)
        return head

    request = head("CoverageEligibilityRequest", "coverage-eligibility-request")
    request.update({
        "created": created,
        "provider": provider.ref,
        "insurer": payer_ref,
        "insurance": [{"focal": True, "coverage": coverage_ref}],
        "item": [{"category": _service_type(elig.service_type)}],
    })
    request_entry = create(request)
    entries.append(request_entry)
    if elig.pending:  # a check still to run: the payer's answer will be the response
        return entries

    response = head("CoverageEligibilityResponse", "coverage-eligibility-response")
    response.update({
        "created": created,
        "request": {"reference": request_entry.full_url},
        "outcome": "error" if elig.error else "complete",
        "insurer": payer_ref,
    })
    insurance: JSON = {"coverage": coverage_ref}
    if elig.error is None:
        insurance["inforce"] = elig.active
        insurance["item"] = [_benefit_item(elig)]
    response["insurance"] = [insurance]
    if elig.error is not None:
        response["error"] = [{"code": codeable(
            coding(X12_REJECT_REASON, elig.error.code, _REJECT_DISPLAY.get(elig.error.code)),
            text=elig.error.text,
        )}]
    entries.append(create(response))
    return entries


def _benefit_item(elig: Eligibility) -> JSON:
    """The one item of a successful check: what the payer said about the service type."""
    benefits: list[JSON] = []
    if elig.copay is not None:
        benefits.append(_benefit("copay", allowedMoney=_money(elig.copay)))
    if elig.coinsurance_percent is not None:
        benefits.append(_benefit("copay-percent", allowedUnsignedInt=elig.coinsurance_percent))
    if elig.deductible is not None:
        ded: JSON = {"allowedMoney": _money(elig.deductible.amount)}
        if elig.deductible.remaining is not None:
            ded["usedMoney"] = _money(elig.deductible.amount - elig.deductible.remaining)
        benefits.append(_benefit("deductible", **ded))
    item: JSON = {
        "category": _service_type(elig.service_type),
        "network": codeable(coding(BENEFIT_NETWORK, elig.network, _NETWORK_DISPLAY[elig.network])),
        "unit": codeable(coding(BENEFIT_UNIT, elig.unit, _UNIT_DISPLAY[elig.unit])),
        "term": codeable(coding(BENEFIT_TERM, "annual", "Annual")),
    }
    if benefits:
        item["benefit"] = benefits
    return item


def to_fhir(task: TaskModel, ctx: MapContext) -> list[Entry]:
    """The card as a Coverage (with payer, subscriber) and the check as request + response."""
    assert isinstance(task, CoverageTask)
    patient = patient_refs(task.patient, ctx)
    mrn_system = task.patient.system or ctx.clinic.mrn_namespace
    key = coverage_key(mrn_system, task.patient.mrn, task.payer.id, task.member_id)
    entries: list[Entry] = list(patient.entries)
    payer = _payer_entry(task.payer, ctx)
    payer_ref = {"reference": payer.full_url, "display": task.payer.name}
    entries.append(payer)
    if task.subscriber.relationship == "self":
        subscriber_ref = dict(patient.ref)
    else:
        person = _subscriber_entry(task.subscriber, key, patient.ref, ctx)
        entries.append(person)
        subscriber_ref = {"reference": person.full_url}
    coverage = update(_coverage(task, key, patient.ref, payer_ref, subscriber_ref, ctx))
    entries.append(coverage)
    if task.eligibility is not None:
        entries.extend(_eligibility_entries(task, task.eligibility, patient.ref, payer_ref,
                                            {"reference": coverage.full_url}, ctx))
    return entries


# ------------------------------------------------------------------------------- reverse
def _ident(resource: JSON | None, suffix: str) -> str | None:
    """The value of the identifier whose system ends with ``suffix`` (a clinic namespace)."""
    for ident in (resource or {}).get("identifier", []) or []:
        if str(ident.get("system", "")).endswith(suffix) and ident.get("value"):
            return str(ident["value"])
    return None


def _code(concept: JSON | None, system: str) -> str | None:
    for c in (concept or {}).get("coding", []) or []:
        if c.get("system") == system and c.get("code"):
            return str(c["code"])
    return None


def _member_id(coverage: JSON) -> str:
    for ident in coverage.get("identifier", []) or []:
        if _code(ident.get("type"), systems.V2_0203) == "MB":
            return str(ident["value"])
    return str(coverage["subscriberId"])


def _subscriber_from(coverage: JSON, resources: ResourceSet, member_id: str) -> Subscriber:
    relationship = _code(coverage.get("relationship"), systems.SUBSCRIBER_RELATIONSHIP)
    own_id = coverage.get("subscriberId")
    own_id = own_id if own_id and own_id != member_id else None
    if relationship == "self":
        return Subscriber(relationship="self", member_id=own_id)
    person = resources.resolve(coverage.get("subscriber")) or {}
    name = (person.get("name") or [{}])[0]
    return Subscriber(
        relationship=relationship,  # type: ignore[arg-type]  # checked by the model
        family=name.get("family"), given=name.get("given", []),
        birth_date=person.get("birthDate"), gender=person.get("gender"), member_id=own_id,
    )


def _card(coverage: JSON, resources: ResourceSet) -> JSON:
    """The card fields of a task, read from a Coverage and what it refers to."""
    ref = coverage.get("beneficiary")
    patient: PatientRef = patient_from_fhir(resources.resolve(ref), ref)
    payor_ref = (coverage.get("payor") or [{}])[0]
    org = resources.resolve(payor_ref) or {}
    payer_id = _ident(org, "/payer") or (org.get("identifier") or [{}])[0].get("value")
    member_id = _member_id(coverage)
    classes: dict[str, PlanClass] = {}
    for cls in coverage.get("class", []) or []:
        kind = _code(cls.get("type"), systems.COVERAGE_CLASS)
        if kind in ("group", "plan") and kind not in classes:
            classes[kind] = PlanClass(id=cls.get("value"), name=cls.get("name"))
    period = coverage.get("period")
    copays: dict[str, Decimal] = {}
    by_code = {code: field for field, (code, _) in COPAY_TYPES.items()}
    for cost in coverage.get("costToBeneficiary", []) or []:
        field = by_code.get(_code(cost.get("type"), COVERAGE_COPAY_TYPE) or "")
        if field and "valueMoney" in cost:
            copays[field] = _decimal(cost["valueMoney"])
    order = {v: k for k, v in ORDERS.items()}.get(coverage.get("order"))  # type: ignore[arg-type]
    return {
        "patient": patient,
        "status": coverage["status"],
        "payer": Payer(id=payer_id, name=org.get("name") or payor_ref.get("display")),
        "member_id": member_id,
        "group": classes.get("group"),
        "plan": classes.get("plan"),
        "subscriber": _subscriber_from(coverage, resources, member_id),
        "period": Period(start=period.get("start"), end=period.get("end")) if period else None,
        "order": order,
        "payer_type": _code(coverage.get("type"), systems.SOPT),
        "copays": CardCopays(**copays) if copays else None,
    }


def _eligibility_from(request: JSON, response: JSON | None,
                      resources: ResourceSet) -> Eligibility | None:
    provider = resources.resolve(request.get("provider"))
    items = request.get("item") or [{}]
    fields: JSON = {
        "checked_at": parse_fhir_datetime(request["created"]),
        "service_date": (date.fromisoformat(request["servicedDate"])
                         if request.get("servicedDate") else None),
        "service_type": _code(items[0].get("category"), X12_SERVICE_TYPE) or "30",
        "provider": (practitioner_from_fhir(provider)
                     if provider and provider.get("resourceType") == "Practitioner" else None),
    }
    if response is None:  # a check still to run
        return Eligibility(**fields)
    if response.get("outcome") == "error":
        err = (response.get("error") or [{}])[0].get("code") or {}
        fields["error"] = EligibilityError(code=_code(err, X12_REJECT_REASON) or "",
                                           text=err.get("text"))
        return Eligibility(**fields)
    insurance = (response.get("insurance") or [{}])[0]
    fields["active"] = insurance.get("inforce")
    item = (insurance.get("item") or [{}])[0]
    fields["network"] = _code(item.get("network"), BENEFIT_NETWORK) or "in"
    fields["unit"] = _code(item.get("unit"), BENEFIT_UNIT) or "individual"
    for benefit in item.get("benefit", []) or []:
        kind = _code(benefit.get("type"), BENEFIT_TYPE)
        if kind == "copay":
            fields["copay"] = _decimal(benefit["allowedMoney"])
        elif kind == "copay-percent":
            fields["coinsurance_percent"] = benefit["allowedUnsignedInt"]
        elif kind == "deductible":
            amount = _decimal(benefit["allowedMoney"])
            used = benefit.get("usedMoney")
            fields["deductible"] = Deductible(
                amount=amount, remaining=amount - _decimal(used) if used else None)
    return Eligibility(**fields)


def from_fhir(resources: ResourceSet) -> list[TaskModel]:
    """Coverage tasks back from the Coverages (and checks) this kind wrote.

    The task id comes from the eligibility request when there is one, else from the
    Coverage's ``coverage-task`` identifier. Coverages without it were not made from a
    task and are skipped.
    """
    responses = {
        tid: r for r in resources.of_type("CoverageEligibilityResponse")
        if (tid := _ident(r, "/coverage-eligibility-response"))
    }
    tasks: dict[str, TaskModel] = {}
    for request in resources.of_type("CoverageEligibilityRequest"):
        tid = _ident(request, "/coverage-eligibility-request")
        coverage = resources.resolve((request.get("insurance") or [{}])[0].get("coverage"))
        if not tid or coverage is None or tid in tasks:
            continue
        tasks[tid] = CoverageTask(
            task="coverage", id=tid, **_card(coverage, resources),
            eligibility=_eligibility_from(request, responses.get(tid), resources),
        )
    for coverage in resources.of_type("Coverage"):
        tid = _ident(coverage, "/coverage-task")
        if tid and tid not in tasks:
            tasks[tid] = CoverageTask(task="coverage", id=tid, **_card(coverage, resources))
    return list(tasks.values())


@hookimpl
def register_mappers(register: Callable[[Mapper], None]) -> None:
    register(Mapper(
        "coverage", CoverageTask, to_fhir, from_fhir,
        "Insurance card → US Core Coverage (+ payer, subscriber); eligibility check → "
        "CoverageEligibilityRequest/Response",
    ))
