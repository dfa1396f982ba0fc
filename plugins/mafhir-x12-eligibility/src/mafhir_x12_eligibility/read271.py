"""A 271 (005010X279A1) read into what the MA needs and into a CoverageEligibilityResponse.

The rules are mapping-reference §5.3. What is decided here:

* **Whose benefits.** The patient is the dependent (2000D) when there is one, else the
  subscriber (2000C). Their EB loops are read; a subscriber's EBs in a dependent's answer
  are read too (payers put family-level amounts there) and kept apart by ``unit``.
* **Every EB is accounted for**: :attr:`Eligibility271.accounting` has one line per EB
  segment, "mapped to …" or "not mapped: …" with the reason, so a test can count them.
* **Money is exact**: EB07 is read as a :class:`~decimal.Decimal` (X12 type R) and written
  as one (``mafhir.io.dumps`` writes it digit for digit); EB08 is a fraction (0.2 = 20 %).
  A value that is not a number is an error naming the segment, never a guess.
* **Deductible / out-of-pocket**: EB06 ``23``/``22``/``24`` (the period's amount) and ``29``
  (remaining) of the same service type, network and level are one benefit: ``allowedMoney``
  the amount, ``usedMoney`` amount − remaining. A remaining amount with no total is kept as
  ``allowedString`` ("150.00 remaining"): R4 has no element for it alone.
* **Rejections** (AAA at 2100A/B/C/D or 2110) make ``outcome: error`` with the AAA03 code
  and its meaning; ``42`` and ``80`` are transient (:attr:`Eligibility271.transient`).
* **Corrections**: a member id, name or birth date in 2100C/D that differs from what was
  asked is a correction to *review* (identity is never overwritten silently); group and
  plan numbers (REF 6P/1L/18) and plan dates are updates to the card, recorded as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from mafhir.errors import InputError, Problem
from mafhir.mappers.coverage import X12_SERVICE_TYPE
from mafhir.systems import THO

from .codes import (
    AAA_FOLLOW_UP,
    AAA_REASONS,
    AAA_TRANSIENT,
    COVERAGE_LEVEL,
    EB_ACTIVE,
    EB_INACTIVE,
    EB_INFO,
    RELATIONSHIP,
    SERVICE_TYPES,
    TIME_QUALIFIER,
)
from .loops import Benefit, Party, read_parties
from .segments import Delimiters, Interchange, Segment, Transaction, parse_interchange

__all__ = ["X12_EB01", "Correction",
           "Eligibility271", "Reject", "read_271", "read_271_text"]

JSON = dict[str, Any]
#: EB01 (element 1390) — same URI pattern as the core's 1365/901, unverified (§13).
X12_EB01 = "https://codesystem.x12.org/005010/1390"
_AMOUNT = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_TOTAL_PERIODS = ("23", "22", "24", "21", "25", "32", "7", "27", "34")
_REMAINING = ("29", "33")


@dataclass(frozen=True, slots=True)
class Reject:
    """One AAA: where, the reject reason (AAA03) and its meaning, the follow-up (AAA04)."""

    loop: str
    code: str
    follow_up: str

    @property
    def meaning(self) -> str:
        return AAA_REASONS.get(self.code, "unknown reject reason")

    @property
    def transient(self) -> bool:
        return self.code in AAA_TRANSIENT

    def __str__(self) -> str:
        action = AAA_FOLLOW_UP.get(self.follow_up)
        return (f"{self.loop} AAA {self.code} {self.meaning}"
                + (f" ({self.follow_up}: {action})" if action else ""))


@dataclass(frozen=True, slots=True)
class Correction:
    """The payer answered something different from what was asked (or on the card)."""

    field: str  # member_id, family, given, birth_date, group, plan, period
    sent: str | None
    received: str
    identity: bool  # identity fields go to review; never applied silently

    def __str__(self) -> str:
        verb = "to review" if self.identity else "update"
        return f"{self.field}: the payer has a different value ({verb})"


@dataclass(slots=True)
class Eligibility271:
    """One 271 transaction set, read (see the module docstring)."""

    control: str
    trace: str | None
    payer_id: str
    payer_name: str
    provider_id: str
    member_id: str
    family: str
    given: str
    birth_date: date | None
    gender: str | None
    relationship: str
    dependent: bool
    subscriber_family: str = ""  # 2100C, when the patient is a dependent
    subscriber_given: str = ""
    inforce: bool | None = None
    plan_name: str | None = None
    insurance_type: str | None = None
    group: str | None = None
    plan: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    items: list[JSON] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)  # 2100A-D: the request refused
    #: 2110 AAA: one benefit question (a service type) not answered, the rest answered
    benefit_rejects: list[Reject] = field(default_factory=list)
    accounting: list[tuple[str, str]] = field(default_factory=list)  # (EB where, result)
    messages: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # values for the MA's summary, in-network individual first
    office_copay: Decimal | None = None
    coinsurance: Decimal | None = None  # a fraction: 0.2 = 20 %
    deductible: Decimal | None = None
    deductible_remaining: Decimal | None = None
    out_of_pocket_remaining: Decimal | None = None

    @property
    def rejected(self) -> bool:
        return bool(self.rejects)

    @property
    def transient(self) -> bool:
        """Every reject says "ask again later" (AAA 42 / 80)."""
        return bool(self.rejects) and all(r.transient for r in self.rejects)

    def corrections(self, member_id: str | None = None, family: str | None = None,
                    given: str | None = None, birth_date: date | None = None,
                    group: str | None = None, plan: str | None = None) -> list[Correction]:
        """What the payer has differently from what was asked (None: not asked)."""
        out = []
        for name, sent, received, identity in (
            ("member_id", member_id, self.member_id, True),
            ("family", family, self.family, True),
            ("given", given, self.given, True),
            ("birth_date", birth_date.isoformat() if birth_date else None,
             self.birth_date.isoformat() if self.birth_date else "", True),
            ("group", group, self.group or "", False),
            ("plan", plan, self.plan or "", False),
        ):
            if sent is not None and received and sent.strip().upper() != received.strip().upper():
                out.append(Correction(name, sent, received, identity))
        return out


def _amount(seg: Segment, n: int) -> Decimal | None:
    raw = seg.get(n)
    if not raw:
        return None
    if not _AMOUNT.match(raw):
        raise InputError([Problem(f"{seg.where}-{n:02d}", "is not a number (X12 type R)",
                                  "value")])
    try:
        return Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        raise InputError([Problem(f"{seg.where}-{n:02d}", "is not a number", "value")]) \
            from None


def _date(seg: Segment, n: int) -> date | None:
    raw = seg.get(n)
    if not raw:
        return None
    try:
        if len(raw) != 8 or not raw.isdigit():
            raise ValueError(raw)
        return date(int(raw[0:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        raise InputError([Problem(f"{seg.where}-{n:02d}", "is not a date (CCYYMMDD)",
                                  "value")]) from None


def _dates(dtp: Segment) -> tuple[date | None, date | None]:
    """DTP03 as (start, end): D8 one date, RD8 a range."""
    fmt = dtp.get(2)
    raw = dtp.get(3)
    if fmt == "RD8" and "-" in raw:
        first, _, last = raw.partition("-")
        return (_date(Segment("DTP", ("", "", first), dtp.position), 3),
                _date(Segment("DTP", ("", "", last), dtp.position), 3))
    if fmt == "D8":
        one = _date(dtp, 3)
        return one, one
    return None, None


def _coding(system: str, code: str, display: str | None = None) -> JSON:
    out: JSON = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _money(value: Decimal) -> JSON:
    return {"value": value, "currency": "USD"}


def _fmt(value: Decimal) -> str:
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else str(value)


@dataclass(slots=True)
class _ItemAcc:
    """One insurance.item being built: keyed by service type, network, level and term."""

    item: JSON
    totals: dict[str, Decimal] = field(default_factory=dict)
    remaining: dict[str, Decimal] = field(default_factory=dict)


def _percent(fraction: Decimal) -> JSON:
    pct = fraction * 100
    if pct == pct.to_integral_value() and pct >= 0:
        return {"allowedUnsignedInt": int(pct)}
    return {"allowedString": f"{pct.normalize()}%"}


class _Reader:
    """Reads the EBs of one patient into items, counting each (see the module docstring)."""

    def __init__(self, result: Eligibility271, delims: Delimiters) -> None:
        self.result = result
        self.delims = delims
        self.items: dict[tuple[str, str, str, str, str], _ItemAcc] = {}

    def item(self, eb: Segment, service: str, kind: str) -> _ItemAcc:
        network = {"Y": "in", "N": "out"}.get(eb.get(12), "")
        level = COVERAGE_LEVEL.get(eb.get(2), ("", ""))[1]
        term = TIME_QUALIFIER.get(eb.get(6), ("", None))[1] or ""
        # a deductible / out-of-pocket total (EB06 23…) and what remains of it (EB06 29)
        # are one item: "remaining" has no term of its own, so the term is not the key
        periodic = eb.get(1) in ("C", "G")
        key = (service, network, level, "period" if periodic else term, kind)
        if key in self.items:
            acc = self.items[key]
            term_code = TIME_QUALIFIER.get(eb.get(6), ("", None))[1]
            if term_code and eb.get(6) not in _REMAINING and "term" not in acc.item:
                acc.item["term"] = {"coding": [_coding(THO + "benefit-term", term_code,
                                                       term_code.capitalize())]}
            return acc
        item: JSON = {}
        procedure = eb.get(13)
        if procedure:
            qualifier = procedure.split(self.delims.component)
            if len(qualifier) < 2 or not qualifier[1]:
                raise InputError([Problem(f"{eb.where}-13", "a procedure needs its "
                                          "qualifier and code (e.g. HC:99213)", "value")])
            item["productOrService"] = {"coding": [_coding(
                "http://www.ama-assn.org/go/cpt" if qualifier[0] == "HC" else
                f"urn:x12:product-service-id-qualifier:{qualifier[0]}",
                qualifier[1] if len(qualifier) > 1 else "")]}
        else:
            item["category"] = {"coding": [_coding(X12_SERVICE_TYPE, service,
                                                   SERVICE_TYPES.get(service))]}
        if network:
            item["network"] = {"coding": [_coding(THO + "benefit-network", network,
                                                  {"in": "In Network",
                                                   "out": "Out of Network"}[network])]}
        if level:
            item["unit"] = {"coding": [_coding(THO + "benefit-unit", level,
                                               level.capitalize())]}
        term_code = TIME_QUALIFIER.get(eb.get(6), ("", None))[1]
        if term_code and eb.get(6) not in _REMAINING:
            item["term"] = {"coding": [_coding(THO + "benefit-term", term_code,
                                               term_code.capitalize())]}
        if eb.get(11) in ("Y", "N"):
            item["authorizationRequired"] = eb.get(11) == "Y"
        acc = _ItemAcc(item)
        self.items[key] = acc
        return acc

    def services(self, eb: Segment) -> list[str]:
        raw = eb.get(3)
        return [s for s in raw.split(self.delims.repetition) if s] if raw else ["30"]

    def read(self, benefit: Benefit, own: bool) -> None:
        eb = benefit.eb
        code = eb.get(1)
        where = f"{eb.where} ({benefit.loop})"
        result = self.result
        for aaa in benefit.aaa:
            result.benefit_rejects.append(Reject(benefit.loop, aaa.get(3), aaa.get(4)))
        if code in EB_ACTIVE or code in EB_INACTIVE:
            active = code in EB_ACTIVE
            if own:
                result.inforce = True if active else (result.inforce or False)
            if eb.get(5):
                result.plan_name = eb.get(5)
            if eb.get(4):
                result.insurance_type = eb.get(4)
            for dtp in benefit.dtp:
                self._plan_dates(dtp)
            result.messages.extend(benefit.msg)
            result.accounting.append((where, f"mapped: EB01 {code} "
                                      f"({(EB_ACTIVE | EB_INACTIVE)[code]}) → "
                                      f"insurance.inforce = {str(active).lower()}"
                                      + (", plan name" if eb.get(5) else "")))
            return
        if code in ("A", "B", "C", "G", "I", "F"):
            for service in self.services(eb):
                self._benefit(benefit, code, service)
            result.accounting.append((where, f"mapped: EB01 {code} ({EB_INFO[code]}) → "
                                      "insurance.item"))
            return
        meaning = EB_INFO.get(code, "unknown benefit code")
        reason = {
            "R": "another payer: a second Coverage is for the clinic to review, not written",
            "L": "a primary care provider (a 2120 entity): no element in "
                 "CoverageEligibilityResponse",
            "P": "a disclaimer: kept as text in disposition",
        }.get(code, "R4 CoverageEligibilityResponse has no element for it")
        if benefit.msg:
            result.messages.extend(benefit.msg)
        result.accounting.append((where, f"not mapped: EB01 {code} ({meaning}): {reason}"))

    def _plan_dates(self, dtp: Segment) -> None:
        start, end = _dates(dtp)
        qual = dtp.get(1)
        if qual in ("346", "356"):
            self.result.period_start = start
        elif qual in ("347", "357"):
            self.result.period_end = end or start
        elif qual in ("291", "292", "307"):
            self.result.period_start = self.result.period_start or start
            if dtp.get(2) == "RD8":
                self.result.period_end = self.result.period_end or end

    def _benefit(self, benefit: Benefit, code: str, service: str) -> None:
        eb = benefit.eb
        acc = self.item(eb, service, "excluded" if code == "I" else "")
        item = acc.item
        if benefit.msg:
            text = "; ".join(benefit.msg)
            item["description"] = f"{item['description']}; {text}" \
                if item.get("description") else text
        if code == "I":
            item["excluded"] = True
            return
        if code == "F":  # limitations: a visit count (EB09 VS) or just a described limit
            qty = _amount(eb, 10)
            if eb.get(9) == "VS" and qty is not None:
                item.setdefault("benefit", []).append(
                    {"type": {"coding": [_coding(THO + "benefit-type", "visit", "Visit")]},
                     "allowedUnsignedInt": int(qty)})
            return
        if code == "B":
            amount = _amount(eb, 7)
            if amount is None:
                raise InputError([Problem(f"{eb.where}-07", "a co-payment (EB01 B) needs "
                                          "its amount", "required")])
            item.setdefault("benefit", []).append({"type": {"coding": [_coding(
                THO + "benefit-type", "copay", "Copayment per service")]},
                "allowedMoney": _money(amount)})
            if self._summary_slot(eb, service) and (service == "98"
                                                    or self.result.office_copay is None):
                self.result.office_copay = amount  # an office visit (98) wins over 30
            return
        if code == "A":
            fraction = _amount(eb, 8)
            if fraction is None:
                raise InputError([Problem(f"{eb.where}-08", "a co-insurance (EB01 A) needs "
                                          "its percent (a fraction)", "required")])
            if not 0 <= fraction <= 1:
                raise InputError([Problem(f"{eb.where}-08", "is a fraction from 0 to 1 "
                                          "(0.2 = 20 %)", "value")])
            item.setdefault("benefit", []).append({"type": {"coding": [_coding(
                THO + "benefit-type", "copay-percent", "Copayment Percent per service")]},
                **_percent(fraction)})
            if self._summary_slot(eb, service) and self.result.coinsurance is None:
                self.result.coinsurance = fraction
            return
        # C deductible, G out of pocket: a period's amount and what remains of it
        amount = _amount(eb, 7)
        if amount is None:
            raise InputError([Problem(f"{eb.where}-07", f"EB01 {code} needs its amount",
                                      "required")])
        period = eb.get(6)
        slot = "remaining" if period in _REMAINING else "total"
        (acc.remaining if slot == "remaining" else acc.totals)[code] = amount
        benefits = item.setdefault("benefit", [])
        type_ = ({"coding": [_coding(THO + "benefit-type", "deductible", "Deductible")]}
                 if code == "C" else
                 {"coding": [_coding(THO + "benefit-type", "benefit", "Benefit"),
                             _coding(X12_EB01, "G", EB_INFO["G"])],
                  "text": "Out of Pocket (Stop Loss)"})
        entry = next((b for b in benefits if b.get("type") == type_), None)
        if entry is None:
            entry = {"type": type_}
            benefits.append(entry)
        total, remaining = acc.totals.get(code), acc.remaining.get(code)
        for key in ("allowedMoney", "usedMoney", "allowedString"):
            entry.pop(key, None)
        if total is not None:
            entry["allowedMoney"] = _money(total)
            if remaining is not None:
                entry["usedMoney"] = _money(total - remaining)
        elif remaining is not None:
            entry["allowedString"] = f"{_fmt(remaining)} remaining"
        if self._summary_slot(eb, service):
            if code == "C":
                if slot == "total":
                    self.result.deductible = amount
                else:
                    self.result.deductible_remaining = amount
            elif slot == "remaining":
                self.result.out_of_pocket_remaining = amount

    @staticmethod
    def _summary_slot(eb: Segment, service: str) -> bool:
        """The values the MA's summary shows: individual, in network (or unsaid)."""
        return eb.get(2) in ("", "IND") and eb.get(12) in ("", "Y") \
            and service in ("30", "1", "98", "BZ", "A0")


def read_271(ic: Interchange, tx: Transaction) -> Eligibility271:
    """One 271 transaction set of ``ic`` read (see the module docstring)."""
    if tx.code != "271":
        raise InputError([Problem("ST-01", f"is {tx.code!r}; a 271 was expected",
                                  "not-supported")])
    parties = read_parties(tx, "EB")
    by_loop: dict[str, list[Party]] = {}
    for p in parties:
        by_loop.setdefault(p.loop, []).append(p)
    payer, provider, subscriber, dependent = (
        next(iter(by_loop.get(level, ())), None)
        for level in ("2000A", "2000B", "2000C", "2000D"))
    rejects: list[Reject] = []
    for p in parties:
        rejects.extend(Reject(p.name_loop, a.get(3), a.get(4)) for a in p.aaa)
    if payer is None or payer.nm1 is None:
        raise InputError([Problem("2100A NM1", "the 271 names no payer (NM1*PR)", "required")])
    patient = dependent or subscriber
    person = patient.nm1 if patient is not None and patient.nm1 is not None else None
    trace = next((t.get(2) for p in (dependent, subscriber) if p is not None
                  for t in p.trn if t.get(1) == "2"), None)
    dmg = patient.dmg if patient is not None else None
    relationship = "self"
    if dependent is not None:
        ins = dependent.ins
        relationship = RELATIONSHIP.get(ins.get(2), "other") if ins is not None else "other"
    sub_nm1 = subscriber.nm1 if subscriber is not None else None
    result = Eligibility271(
        control=tx.control, trace=trace,
        payer_id=payer.nm1.get(9), payer_name=payer.nm1.get(3),
        provider_id=provider.nm1.get(9) if provider is not None and provider.nm1 else "",
        member_id=(sub_nm1.get(9) if sub_nm1 is not None else "")
        or (person.get(9) if person is not None else ""),
        family=person.get(3) if person is not None else "",
        given=person.get(4) if person is not None else "",
        birth_date=_date(dmg, 2) if dmg is not None and dmg.get(1) == "D8" else None,
        gender={"M": "male", "F": "female", "U": "unknown"}.get(dmg.get(3))
        if dmg is not None else None,
        relationship=relationship, dependent=dependent is not None,
        subscriber_family=sub_nm1.get(3) if sub_nm1 is not None and dependent else "",
        subscriber_given=sub_nm1.get(4) if sub_nm1 is not None and dependent else "",
        rejects=rejects, warnings=list(ic.warnings),
    )
    people = [p for p in (subscriber, dependent) if p is not None]
    for person_loop in people:
        for ref in person_loop.ref:
            if ref.get(1) in ("6P", "1L") and not (result.group and ref.get(1) == "1L"):
                result.group = ref.get(2)
            elif ref.get(1) == "18":
                result.plan = ref.get(2)
    reader = _Reader(result, ic.delimiters)
    for person_loop in people:
        for dtp in person_loop.dtp:
            reader._plan_dates(dtp)
    for p in parties:
        own = p is patient
        for benefit in p.benefits:
            if p.loop in ("2000C", "2000D"):
                reader.read(benefit, own or dependent is None)
            else:  # pragma: no cover - EBs only occur under 2000C/D
                result.accounting.append((benefit.eb.where, "not mapped: outside 2110C/D"))
    result.items = [acc.item for acc in reader.items.values()]
    return result


def read_271_text(text: str) -> list[Eligibility271]:
    """Every 271 of an interchange."""
    ic = parse_interchange(text)
    out = [read_271(ic, tx) for tx in ic.transactions if tx.code == "271"]
    if not out:
        codes = ", ".join(tx.code for tx in ic.transactions) or "none"
        raise InputError([Problem("ST-01", f"no 271 in the interchange (sets: {codes})",
                                  "not-supported")])
    return out

