"""The ``x12`` destination: an eligibility check goes out as a 270 and comes back a 271.

``mafhir sync --to x12:NAME tasks.ndjson`` (NAME a ``[x12.NAME]`` partner of mafhir.toml):
each Bundle holding a CoverageEligibilityRequest is written as a 270, validated by pyx12,
given a control number from the durable counter (committed before the send: a crash or
a failed send leaves a gap, never a repeat), sent over CORE (SOAP or MIME), and the answer
read:

* a 271 that answers → delivered; the CoverageEligibilityResponse and the MA's summary
  (with any correction the payer made, to review) are kept with the outbox item;
* a 271 with AAA 42/80 (the payer cannot answer now) → transient: retried with backoff;
* a 271 with another AAA (72 invalid member id, 75 not found…) → permanent: dead-lettered
  with the reject reason's meaning;
* a TA1 or 999 → permanent, naming the envelope or segment errors.

A Bundle without a CoverageEligibilityRequest (a card with no check) is not the
clearinghouse's business: it is refused, named, rather than silently "delivered".
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mafhir.errors import InputError, PermanentError, Problem, TransientError
from mafhir.hl7v2.patients import close_lookup, default_lookup, with_patients
from mafhir.resourceset import ResourceSet

from .acks import read_999, read_ta1
from .config import Partner, load_partner
from .controlnumbers import ControlNumbers
from .core import PAYLOAD_271
from .fhir import card_class, coverage_update, response_resource
from .read271 import Eligibility271, read_271
from .segments import parse_interchange
from .summary import summary
from .transport import CoreClient
from .validate import validate_270
from .write270 import Request270, request_from_fhir, write_270

__all__ = ["EligibilityAnswer", "X12Connector", "check"]

JSON = dict[str, Any]


class EligibilityAnswer:
    """A 271 read, with the request it answers and its summary."""

    def __init__(self, request: Request270, result: Eligibility271, control: int,
                 x12: str, coverage: JSON | None = None) -> None:
        self.request = request
        self.result = result
        self.control = control
        self.x12 = x12
        who = request.dependent or request.subscriber
        self.corrections = result.corrections(
            member_id=request.member_id, family=who.family or None,
            given=who.given or None, birth_date=who.birth_date,
            group=card_class(coverage, "group"), plan=card_class(coverage, "plan"))
        #: The card as the payer has it (group, plan, dates), for the clinic to apply;
        #: None when nothing differs. Identity corrections are never in it (review).
        self.coverage_update = coverage_update(coverage, result, self.corrections) \
            if coverage is not None else None
        self.summary = summary(result)
        self.summary["corrections"] = [
            {"field": c.field, "action": "to review" if c.identity else "update the card"}
            for c in self.corrections]
        if self.coverage_update is not None and coverage is not None and \
                self.coverage_update.get("period") != coverage.get("period"):
            self.summary["corrections"].append({"field": "period",
                                                "action": "update the card"})
        self.summary["control"] = control


def _fail_for(result: Eligibility271) -> None:
    """Raise for a rejected 271: transient for 42/80, permanent for the rest."""
    reasons = "; ".join(str(r) for r in result.rejects)
    if result.transient:
        raise TransientError(f"the payer cannot answer now: {reasons}")
    raise PermanentError(f"the payer rejected the 270: {reasons}", code="business-rule",
                         problems=[Problem(r.loop + " AAA03", f"{r.code} {r.meaning}",
                                           "business-rule") for r in result.rejects])


def check(resources: ResourceSet, partner: Partner, client: CoreClient,
          numbers: ControlNumbers, now: datetime | None = None) -> EligibilityAnswer:
    """One eligibility check: 270 written, validated, numbered, sent; the 271 read."""
    now = now or datetime.now(UTC)
    request = request_from_fhir(resources, "")  # every missing piece named before a number
    control = numbers.allocate(f"{partner.sender_id}>{partner.receiver_id}")
    reference = f"MAFHIR{control:09d}"
    request = replace(request, reference=reference)
    text = write_270(request, partner, control, now)
    validate_270(text)
    answer = client.exchange(text)
    try:
        ic = parse_interchange(answer.payload)
    except InputError as exc:
        raise PermanentError(f"the clearinghouse's answer is not X12: {exc}",
                             code="structure") from None
    if ic.ta1 and not ic.transactions:
        ack = read_ta1(ic.ta1[0])
        raise PermanentError(f"the clearinghouse refused the interchange: {ack}",
                             code="structure", problems=ack.problems)
    tx = next((t for t in ic.transactions if t.code == "271"), None)
    if tx is None:
        if any(t.code == "999" for t in ic.transactions):
            ack = read_999(ic)
            raise PermanentError(f"the clearinghouse refused the 270: {ack}",
                                 code="invalid", problems=ack.problems)
        raise PermanentError(f"the clearinghouse answered {answer.payload_type or 'nothing'} "
                             "instead of a 271", code="not-supported")
    if answer.payload_type and answer.payload_type != PAYLOAD_271:
        raise PermanentError(f"a 271 came as PayloadType {answer.payload_type!r}",
                             code="structure")
    result = read_271(ic, tx)
    cer = resources.of_type("CoverageEligibilityRequest")[0]
    coverage = resources.resolve(((cer.get("insurance") or [{}])[0]).get("coverage"))
    if result.trace and result.trace != reference:
        raise PermanentError("the 271 answers another request (TRN02 differs)",
                             code="conflict")
    if result.rejected:
        _fail_for(result)
    return EligibilityAnswer(request, result, control, answer.payload, coverage)


class X12Connector:
    """``x12:NAME`` — see the module docstring."""

    capabilities = frozenset({"whole_bundles", "configure"})

    def __init__(self, target: str, partner: Partner | None = None) -> None:
        self.partner = partner or load_partner(target or "default")
        self.client = CoreClient(self.partner)
        self.numbers = ControlNumbers(self.partner.control_location)
        self.patients = default_lookup()  # a task for a known patient names only the MRN

    def configure(self, *, timeout: float | None = None,
                  max_attempts: int | None = None) -> None:
        """How long one exchange may take, and how many tries ``send`` makes itself."""
        if timeout is not None:
            self.client.timeout = timeout
        if max_attempts is not None:
            self.client.retry = replace(self.client.retry, max_attempts=max(1, max_attempts))

    def send(self, bundle: JSON) -> JSON:
        resources = ResourceSet.from_bundle(bundle)
        with_patients(resources, [r.get("patient") for r in
                                  resources.of_type("CoverageEligibilityRequest")],
                      self.patients)
        if not resources.of_type("CoverageEligibilityRequest"):
            raise PermanentError("the Bundle holds no CoverageEligibilityRequest: nothing "
                                 "to ask the payer", code="not-supported")
        answer = check(resources, self.partner, self.client, self.numbers)
        cer = resources.of_type("CoverageEligibilityRequest")[0]
        request_ref = next((e.get("fullUrl") for e in bundle.get("entry") or []
                            if (e.get("resource") or {}).get("resourceType")
                            == "CoverageEligibilityRequest"), None)
        response = response_resource(
            answer.result, request={"reference": request_ref} if request_ref else
            {"identifier": (cer.get("identifier") or [{}])[0]},
            patient=cer["patient"], insurer=cer["insurer"],
            coverage=((cer.get("insurance") or [{}])[0]).get("coverage"),
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        records = [{"type": "x12-eligibility-summary", "body": answer.summary},
                   {"type": "CoverageEligibilityResponse", "body": response}]
        if answer.coverage_update is not None:  # the payer's card, for the clinic to apply
            records.append({"type": "Coverage", "body": answer.coverage_update})
        return {"x12": "271", "control": answer.control, "summary": answer.summary,
                "records": records}

    def close(self) -> None:
        self.client.close()
        self.numbers.close()
        close_lookup(self.patients)


