"""The CDC IIS guide's code tables as mafhir reads them (HL7 v2 → FHIR), in one place.

Written out by hand from mapping-reference §3.4–3.9 (CDC IG for Immunization Messaging
2.5.1 R1.5, AIRA code base, R4 value sets); the tables the writer shares (NIP001, routes)
live in :mod:`.codes`. Kept as plain dicts so a test can compare
them with its own expectations, and so that a code outside a table is reported, never
guessed.
"""

from __future__ import annotations

__all__ = [
    "COMPLETION",
    "FORECAST_LOINC",
    "IMMUNIZATION_ORIGIN",
    "NCIT",
    "NIP001_ORIGIN",
    "NIP002",
    "NIP002_REASON",
    "OBX_EDUCATION",
    "OBX_ELIGIBILITY",
    "OBX_FUNDING",
    "VIS_BARCODE",
]

NCIT = "http://ncithesaurus-stage.nci.nih.gov"
#: NIP001 → R4 immunization-origin (project rule, mapping-reference §3.9); "01" (source
#: unspecified) has no origin code: the NIP001 coding alone says so.
NIP001_ORIGIN: dict[str, str] = {
    "02": "provider", "03": "record", "04": "recall", "05": "jurisdiction", "06": "record",
    "07": "school", "08": "jurisdiction",
}
IMMUNIZATION_ORIGIN = "http://terminology.hl7.org/CodeSystem/immunization-origin"
#: RXA-18 substance refusal reason (CDC NIP002).
NIP002: dict[str, str] = {
    "00": "Parental decision", "01": "Religious exemption", "02": "Other",
    "03": "Patient decision",
}
#: NIP002 → v3-ActReason (the R4 immunization-status-reason codes, §3.5).
NIP002_REASON: dict[str, str] = {"00": "PATOBJ", "01": "RELIG", "02": "PATOBJ",
                                 "03": "PATOBJ"}
#: RXA-20 completion status (HL7 table 0322) → Immunization.status.
COMPLETION: dict[str, str] = {"CP": "completed", "PA": "completed", "RE": "not-done",
                              "NA": "not-done"}
OBX_ELIGIBILITY = "64994-7"
OBX_FUNDING = "30963-3"
#: The VIS rows of a dose (grouped by OBX-4): document type (barcode), vaccine type
#: (legacy method), published and presented dates.
OBX_EDUCATION = ("69764-9", "30956-7", "29768-9", "29769-7")
VIS_BARCODE = "cdcgs1vis"
#: The Z42 evaluation and forecast rows (mapping-reference §3.7, CDC IG Z42).
FORECAST_LOINC: dict[str, str] = {
    "30956-7": "vaccine type", "38890-0": "component vaccine type",
    "59779-9": "immunization schedule used", "30973-2": "dose number in series",
    "59782-3": "number of doses in series", "59781-5": "dose validity",
    "30982-3": "reason applied by forecast logic", "59780-7": "immunization series name",
    "30980-7": "date vaccine due", "30981-5": "earliest date to give",
    "59777-3": "latest date to give", "59778-1": "date dose is overdue",
    "59783-1": "status in immunization series",
}
