"""The CDC immunization guide's code tables the registry messages use (mapping-reference §3).

Small tables, written here from the CDC HL7 2.5.1 Implementation Guide for Immunization
Messaging (Release 1.5, 2018 addendum) and the AIRA code base, because the corpus's code
sets do not carry them (table 0533 in particular is user-defined: the guide lists the
values IIS use, and every IIS ACK in the corpus uses those).
"""

from __future__ import annotations

__all__ = [
    "APPLICATION_ERRORS",
    "COMPLETION",
    "INFORMATION_SOURCE",
    "ORIGIN_TO_NIP001",
    "PARENTAL_DECISION",
    "PATIENT_DECISION",
    "REFUSAL_TO_NIP002",
    "RELATIONSHIP_TO_0063",
    "ROUTE_TO_V2",
    "V2_ROUTE_TO_FHIR",
]

#: HL7 table 0533 (application error code) as the CDC guide lists it for ERR-5.
APPLICATION_ERRORS: dict[str, str] = {
    "1": "Illogical Date error",
    "2": "Invalid Date",
    "3": "Illogical Value error",
    "4": "Invalid value",
    "5": "Table value not found",
    "6": "Required observation missing",
    "7": "Required data missing",
    "8": "Data was ignored",
}

#: NIP001 immunization information source (RXA-9).
INFORMATION_SOURCE: dict[str, str] = {
    "00": "New immunization record",
    "01": "Historical information - source unspecified",
    "02": "Historical information - from other provider",
    "03": "Historical information - from parent's written record",
    "04": "Historical information - from parent's recall",
    "05": "Historical information - from other registry",
    "06": "Historical information - from birth certificate",
    "07": "Historical information - from school record",
    "08": "Historical information - from public agency",
}

#: FHIR immunization-origin (reportOrigin) → NIP001 for a historical dose.
ORIGIN_TO_NIP001: dict[str, str] = {
    "provider": "02", "record": "03", "recall": "04", "jurisdiction": "05", "school": "07",
}

#: v3-ActReason of a refusal → NIP002 (RXA-18): the objection kinds the guide has.
#: ``PATOBJ`` is 00 (parental decision) for a minor and 03 (patient decision) otherwise.
REFUSAL_TO_NIP002: dict[str, tuple[str, str]] = {
    "RELIG": ("01", "Religious exemption"),
    "PHILISOP": ("02", "Other"),
    "VACSAF": ("02", "Other"),
}
PARENTAL_DECISION = ("00", "Parental decision")
PATIENT_DECISION = ("03", "Patient decision")

#: HL7 table 0322 completion status (RXA-20).
COMPLETION: dict[str, str] = {
    "CP": "Complete", "RE": "Refused", "NA": "Not Administered", "PA": "Partially Administered",
}

#: v3-RouteOfAdministration → (NCIT code, NCIT name, HL7 table 0162 code) for RXR-1.
ROUTE_TO_V2: dict[str, tuple[str, str, str]] = {
    "IM": ("C28161", "Intramuscular", "IM"),
    "SQ": ("C38299", "Subcutaneous", "SC"),
    "IDINJ": ("C38238", "Intradermal", "ID"),
    "NASINHL": ("C38284", "Nasal", "NS"),
    "PO": ("C38288", "Oral", "PO"),
    "IVINJ": ("C38276", "Intravenous", "IV"),
    "TRNSDERM": ("C38305", "Transdermal", "TD"),
}
#: RXR-1 code (NCIT or table 0162) → v3-RouteOfAdministration.
V2_ROUTE_TO_FHIR: dict[str, str] = {
    **{ncit: fhir for fhir, (ncit, _, _) in ROUTE_TO_V2.items()},
    **{v2: fhir for fhir, (_, _, v2) in ROUTE_TO_V2.items()},
    "IN": "NASINHL",  # deprecated 0162 spelling of intranasal
}

#: Relationship codes a FHIR Patient.contact / RelatedPerson carries (v3-RoleCode, or the
#: 0063 code itself) → HL7 table 0063 for NK1-3.
RELATIONSHIP_TO_0063: dict[str, tuple[str, str]] = {
    "MTH": ("MTH", "Mother"), "FTH": ("FTH", "Father"), "GRD": ("GRD", "Guardian"),
    "PRN": ("PAR", "Parent"), "PAR": ("PAR", "Parent"), "NMTH": ("MTH", "Mother"),
    "NFTH": ("FTH", "Father"),
    "GRMTH": ("GRP", "Grandparent"), "GRFTH": ("GRP", "Grandparent"),
    "GRPRN": ("GRP", "Grandparent"), "GRP": ("GRP", "Grandparent"),
    "SIB": ("SIB", "Sibling"), "SPS": ("SPO", "Spouse"), "SPO": ("SPO", "Spouse"),
}
