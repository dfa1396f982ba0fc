"""A read 271 as FHIR: the CoverageEligibilityResponse, and a whole Bundle for ``convert``.

The response answers a request the clinic sent (``request``, ``patient``, ``insurer`` and
the Coverage are the request's). For ``mafhir convert --from x12`` there is no request at
hand, so the card and the check are rebuilt from what the 271 echoes and written by the
core ``coverage`` mapper — the same US Core Coverage, payer Organization and request that
a coverage task makes — with the full list of benefit items put in the response.
The patient is named by the member id in the payer's namespace (a 271 carries no MRN);
a dependent by member id and birth date. A 271 without DMG03 gives the Patient gender
``unknown`` (US Core wants one; nothing is guessed).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from mafhir.bundle import transaction
from mafhir.context import MapContext
from mafhir.errors import InputError, Problem
from mafhir.fhirtypes import codeable, coding, fhir_date, identifier
from mafhir.mappers.coverage import X12_REJECT_REASON
from mafhir.mappers.coverage import to_fhir as coverage_to_fhir
from mafhir.systems import COVERAGE_CLASS
from mafhir.tasks.coverage import CoverageTask

from .codes import AAA_REASONS
from .read271 import Correction, Eligibility271, read_271_text

__all__ = ["bundle_from_271", "card_class", "coverage_update", "response_resource"]

JSON = dict[str, Any]


def _error(result: Eligibility271) -> list[JSON]:
    return [{"code": codeable(coding(X12_REJECT_REASON, r.code, AAA_REASONS.get(r.code)),
                              text=str(r))} for r in result.rejects]


def response_resource(result: Eligibility271, *, request: JSON, patient: JSON, insurer: JSON,
                      coverage: JSON | None, created: str, ident: JSON | None = None,
                      purpose: list[str] | None = None) -> JSON:
    """The CoverageEligibilityResponse of ``result`` answering ``request`` (a Reference)."""
    response: JSON = {"resourceType": "CoverageEligibilityResponse"}
    if ident is not None:
        response["identifier"] = [ident]
    response.update({"status": "active", "purpose": purpose or ["validation", "benefits"],
                     "patient": patient, "created": created, "request": request,
                     "outcome": "error" if result.rejected else
                     "partial" if result.benefit_rejects else "complete",
                     "insurer": insurer})
    if result.messages or result.plan_name:
        response["disposition"] = "; ".join(
            ([f"plan: {result.plan_name}"] if result.plan_name else []) + result.messages)
    if not result.rejected:
        insurance: JSON = {}
        if coverage is not None:
            insurance["coverage"] = coverage
        if result.inforce is not None:
            insurance["inforce"] = result.inforce
        if result.period_start or result.period_end:
            insurance["benefitPeriod"] = {
                k: fhir_date(v) for k, v in (("start", result.period_start),
                                             ("end", result.period_end)) if v}
        if result.items:
            insurance["item"] = result.items
        if coverage is not None:  # insurance.coverage is 1..1 per entry
            response["insurance"] = [insurance]
        if result.benefit_rejects:  # some questions were not answered: say which
            response["error"] = [
                {"code": codeable(coding(X12_REJECT_REASON, r.code, AAA_REASONS.get(r.code)),
                                  text=str(r))} for r in result.benefit_rejects]
    else:
        response["error"] = _error(result)
    return response


def card_class(coverage: JSON | None, kind: str) -> str | None:
    """The group or plan number on a Coverage (``class`` of that type), or None."""
    for c in (coverage or {}).get("class") or []:
        if any(x.get("system") == COVERAGE_CLASS and x.get("code") == kind
               for x in (c.get("type") or {}).get("coding") or []):
            return str(c.get("value") or "") or None
    return None


def coverage_update(coverage: JSON, result: Eligibility271,
                    corrections: list[Correction]) -> JSON | None:
    """The Coverage as the payer has it — group and plan numbers, plan dates — or None
    when nothing differs. Identity (member id, name, birth date) is never changed here:
    those corrections go to review (the summary lists them)."""
    updated = copy.deepcopy(coverage)
    changed = False
    for fix in corrections:
        if fix.identity or fix.field not in ("group", "plan"):
            continue
        for c in updated.get("class") or []:
            if any(x.get("code") == fix.field for x in (c.get("type") or {}).get("coding")
                   or []):
                c["value"] = fix.received
                changed = True
    period = dict(updated.get("period") or {})
    for key, value in (("start", result.period_start), ("end", result.period_end)):
        if value is not None and period.get(key) != fhir_date(value):
            period[key] = fhir_date(value)
            changed = True
    if period:
        updated["period"] = period
    return updated if changed else None


def _task(result: Eligibility271, clinic_system: str, checked_at: datetime) -> CoverageTask:
    """The card and the check as a coverage task (the core mapper writes the FHIR)."""
    if not result.member_id:
        raise InputError([Problem("2100C NM1-09", "the 271 carries no member id (MI)",
                                  "required")])
    payer_system = f"{clinic_system}/payer/{result.payer_id}/member"
    mrn = result.member_id + (f"/{result.birth_date.isoformat()}"
                              if result.dependent and result.birth_date else "")
    patient: JSON = {"mrn": mrn, "system": payer_system, "gender": result.gender or "unknown"}
    if result.family:
        patient["family"] = result.family
    if result.given:
        patient["given"] = [result.given]
    if result.birth_date:
        patient["birth_date"] = result.birth_date
    subscriber: JSON = {"relationship": result.relationship}
    if result.relationship != "self":
        if result.subscriber_family:
            subscriber["family"] = result.subscriber_family
        if result.subscriber_given:
            subscriber["given"] = [result.subscriber_given]
        if not (result.subscriber_family or result.subscriber_given):
            raise InputError([Problem("2100C NM1-03", "the dependent's subscriber has no "
                                      "name in the 271", "required")])
    raw: JSON = {
        "task": "coverage", "id": f"x12-271-{result.trace or result.control}",
        "patient": patient,
        "payer": {"id": result.payer_id or "unknown", "name": result.payer_name or "unknown"},
        "member_id": result.member_id,
        "subscriber": subscriber,
    }
    if result.period_start or result.period_end:
        raw["period"] = {"start": result.period_start, "end": result.period_end}
    if result.group:
        raw["group"] = {"id": result.group}
    if result.plan:  # REF*18; a plan name alone (EB05) stays in the response's disposition
        raw["plan"] = {"id": result.plan, "name": result.plan_name}
    elig: JSON = {"checked_at": checked_at}
    if result.rejected:
        first = result.rejects[0]
        elig["error"] = {"code": first.code, "text": str(first)}
    else:
        elig["active"] = bool(result.inforce)
    raw["eligibility"] = elig
    return CoverageTask.model_validate(raw)


def bundle_from_271(text: str, ctx: Any) -> JSON:
    """``mafhir convert --from x12``: the 271's card, check and answer as one Bundle."""
    results = read_271_text(text)
    if len(results) != 1:
        raise InputError([Problem("ST", f"the interchange holds {len(results)} 271s; "
                                        "convert reads one", "not-supported")])
    result = results[0]
    map_ctx: MapContext = getattr(ctx, "map", ctx)
    now = getattr(ctx, "now", None) or datetime.now(UTC)
    task = _task(result, map_ctx.clinic.system, now)
    entries = list(coverage_to_fhir(task, map_ctx))
    for entry in entries:
        res = entry.resource
        if res["resourceType"] == "CoverageEligibilityResponse":
            fresh = response_resource(
                result, request=res["request"], patient=res["patient"],
                insurer=res["insurer"],
                coverage=(res.get("insurance") or [{}])[0].get("coverage"),
                created=res["created"], ident=res["identifier"][0])
            res.clear()
            res.update(fresh)
        elif res["resourceType"] == "CoverageEligibilityRequest" and result.trace:
            res["identifier"].append(identifier(f"{map_ctx.clinic.system}/x12-trace",
                                                result.trace))
    return transaction(entries)
