"""The 270/271 hierarchy read into loops: HL levels, their 2100 name loops, 2110 benefits.

Kept apart from the FHIR mapping so that the mapping reads ``party.nm1`` and
``benefit.eb`` instead of walking segments, and so that "every EB accounted for" can be
counted from one list. A 2120 benefit-related entity (``LS`` … ``LE``) stays inside its
benefit: its NM1 is not a new person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mafhir.errors import InputError, Problem

from .segments import Segment, Transaction

__all__ = ["LEVELS", "Benefit", "Party", "read_parties"]

#: HL03 hierarchical level code → the 2000 loop it opens.
LEVELS = {"20": "2000A", "21": "2000B", "22": "2000C", "23": "2000D"}


@dataclass(slots=True)
class Benefit:
    """One 2110 loop: an EB (271) or EQ (270) and what follows it until the next."""

    eb: Segment
    loop: str  # 2110C / 2110D
    dtp: list[Segment] = field(default_factory=list)
    msg: list[str] = field(default_factory=list)
    aaa: list[Segment] = field(default_factory=list)
    ref: list[Segment] = field(default_factory=list)
    hsd: list[Segment] = field(default_factory=list)
    other: list[Segment] = field(default_factory=list)  # III, 2120 LS/NM1/…/LE


@dataclass(slots=True)
class Party:
    """One HL level (2000A–D) with its 2100 name loop and its benefits."""

    hl: Segment
    loop: str  # 2000A… (the 2100 loop is the same letter)
    nm1: Segment | None = None
    ref: list[Segment] = field(default_factory=list)
    dtp: list[Segment] = field(default_factory=list)
    aaa: list[Segment] = field(default_factory=list)
    dmg: Segment | None = None
    ins: Segment | None = None
    trn: list[Segment] = field(default_factory=list)
    other: list[Segment] = field(default_factory=list)  # N3, N4, PER, PRV, HI, MPI
    benefits: list[Benefit] = field(default_factory=list)

    @property
    def name_loop(self) -> str:
        return "2100" + self.loop[-1]


def read_parties(tx: Transaction, benefit_segment: str = "EB") -> list[Party]:
    """The HL levels of a 270 (``EQ``) or 271 (``EB``) transaction set, in order."""
    parties: list[Party] = []
    party: Party | None = None
    benefit: Benefit | None = None
    in_ls = False
    for seg in tx.segments:
        if seg.id == "BHT":
            continue
        if seg.id == "HL":
            level = LEVELS.get(seg.get(3))
            if level is None:
                raise InputError([Problem(f"{seg.where}-03", f"{seg.get(3)!r} is not an "
                                          "eligibility level (20, 21, 22 or 23)",
                                          "code-invalid")])
            party, benefit, in_ls = Party(seg, level), None, False
            parties.append(party)
            continue
        if party is None:
            raise InputError([Problem(seg.where, "comes before the first HL", "structure")])
        if seg.id == benefit_segment:
            benefit, in_ls = Benefit(seg, "2110" + party.loop[-1]), False
            party.benefits.append(benefit)
            continue
        if benefit is not None:
            if seg.id == "LS":
                in_ls = True
            if in_ls or seg.id in ("LS", "LE", "III"):
                benefit.other.append(seg)
                if seg.id == "LE":
                    in_ls = False
            elif seg.id == "DTP":
                benefit.dtp.append(seg)
            elif seg.id == "MSG":
                benefit.msg.append(seg.get(1))
            elif seg.id == "AAA":
                benefit.aaa.append(seg)
            elif seg.id == "REF":
                benefit.ref.append(seg)
            elif seg.id == "HSD":
                benefit.hsd.append(seg)
            else:
                benefit.other.append(seg)
            continue
        if seg.id == "NM1" and party.nm1 is None:
            party.nm1 = seg
        elif seg.id == "TRN":
            party.trn.append(seg)
        elif seg.id == "REF":
            party.ref.append(seg)
        elif seg.id == "DTP":
            party.dtp.append(seg)
        elif seg.id == "AAA":
            party.aaa.append(seg)
        elif seg.id == "DMG":
            party.dmg = seg
        elif seg.id == "INS":
            party.ins = seg
        else:
            party.other.append(seg)
    return parties
