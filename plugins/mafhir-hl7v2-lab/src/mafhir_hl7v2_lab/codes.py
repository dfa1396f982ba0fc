"""The lab vocabulary: order codes, specimen types, methods, sites, statuses, units.

Codes and displays are from mapping-reference §7 (US Core 7.0.0, FHIR R4, THO v2
tables, the HL7 v2-to-FHIR IG concept maps); displays are never used for logic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, ValuesView

from mafhir import systems
from mafhir.hl7v2.terminology import UNIT_SPELLINGS, ucum_code

__all__ = [
    "BODY_SITES",
    "COLLECTION_METHODS",
    "DR_STATUS",
    "FASTING",
    "INTERPRETATION_V3",
    "OBS_STATUS",
    "ORDER_TESTS",
    "PRIORITY_TO_V2",
    "SPECIMEN_TYPES",
    "UCUM_UNITS",
    "V2_0074",
    "V2_0487",
    "V2_0488",
    "V2_0916",
    "V3_INTERPRETATION",
]

V2_0074 = systems.THO + "v2-0074"
V2_0487 = systems.THO + "v2-0487"
V2_0488 = systems.THO + "v2-0488"
V2_0916 = systems.THO + "v2-0916"
V3_INTERPRETATION = systems.THO + "v3-ObservationInterpretation"
SERVICEREQUEST_CATEGORY_LAB = ("108252007", "Laboratory procedure")

#: Common clinic lab orders (LOINC order/panel codes, §7.4) by the MA's short name.
ORDER_TESTS: dict[str, tuple[str, str]] = {
    "urinalysis": ("24356-8", "Urinalysis complete panel - Urine"),
    "urinalysis-dipstick": ("24357-6", "Urinalysis macro (dipstick) panel - Urine"),
    "cbc": ("58410-2", "CBC panel - Blood by Automated count"),
    "cbc-diff": ("57021-8", "CBC W Auto Differential panel - Blood"),
    "cmp": ("24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma"),
    "bmp": ("51990-0", "Basic metabolic panel - Blood"),
    "lipid-panel": ("57698-3", "Lipid panel with direct LDL - Serum or Plasma"),
    "lipid-1996": ("24331-1", "Lipid 1996 panel - Serum or Plasma"),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    "glucose": ("2345-7", "Glucose [Mass/volume] in Serum or Plasma"),
    "inr": ("6301-6", "INR in Platelet poor plasma by Coagulation assay"),
    "hemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood"),
    # the next three are not in mapping-reference §7.4 (widely used LOINC order codes)
    "tsh": ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
    "urine-culture": ("630-4", "Bacteria identified in Urine by Culture"),
    "throat-culture": ("626-2", "Bacteria identified in Throat by Culture"),
}

#: Specimen types: SNOMED CT (US Core extensible binding) + v2-0487 translation (§7.2).
SPECIMEN_TYPES: dict[str, tuple[str, str, str, str]] = {
    "venous-blood": ("122555007", "Venous blood specimen", "BLDV", "Blood venous"),
    "capillary-blood": ("122554006", "Capillary blood specimen", "BLDC", "Blood capillary"),
    "serum": ("119364003", "Serum specimen", "SER", "Serum"),
    "urine": ("122575003", "Urine specimen", "UR", "Urine"),
    "throat-swab": ("258529004", "Throat swab", "THRT", "Throat"),
}

#: Collection methods: v2-0488 (what the lab reads) and SNOMED where §7.2 names one.
COLLECTION_METHODS: dict[str, tuple[str, str, str | None, str | None]] = {
    "venipuncture": ("VENIP", "Venipuncture", None, None),
    "capillary": ("CAP", "Capillary Specimen", "278450005", "Finger-prick sampling"),
    "clean-catch": ("CLN", "Clean catch", "73416001", "Urine specimen collection, clean catch"),
    "swab": ("SWA", "Swab", None, None),
}

#: Body sites (SNOMED; §7.2 example 368209003 Right arm).
BODY_SITES: dict[str, tuple[str, str]] = {
    "right-arm": ("368209003", "Right arm"),
    "left-arm": ("368208006", "Left upper arm structure"),
    "right-hand": ("78791008", "Structure of right hand"),
    "left-hand": ("85151006", "Structure of left hand"),
    "finger": ("7569003", "Finger structure"),
}

PRIORITY_TO_V2 = {"routine": "R", "urgent": "T", "asap": "A", "stat": "S"}
PRIORITY_FROM_V2 = {"R": "routine", "S": "stat", "A": "asap", "T": "urgent", "P": "routine",
                    "C": "routine"}

#: Fasting (v2-0916 relevant clinical information).
FASTING = {True: ("F", "Patient fasting prior to procedure"),
           False: ("NF", "The patient indicated they did not fast prior to the procedure.")}

#: OBR-25 (HL70123) → DiagnosticReport.status (V2F; unmatched → unknown).
DR_STATUS = {"O": "registered", "I": "registered", "S": "registered", "P": "preliminary",
             "R": "partial", "F": "final", "C": "corrected", "X": "cancelled",
             "A": "partial", "M": "amended"}

#: OBX-11 (HL70085) → Observation.status (V2F; I/O/S/R are pending or unverified).
OBS_STATUS = {"F": "final", "P": "preliminary", "C": "corrected", "A": "amended",
              "D": "entered-in-error", "W": "entered-in-error", "X": "cancelled",
              "I": "registered", "O": "registered", "S": "registered", "R": "preliminary",
              "U": "final", "N": "final"}

#: HL70078 codes that v3-ObservationInterpretation has with the same meaning.
INTERPRETATION_V3 = {
    "L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high", "N": "Normal",
    "A": "Abnormal", "AA": "Critical abnormal", "<": "Off scale low", ">": "Off scale high",
    "S": "Susceptible", "R": "Resistant", "I": "Intermediate", "MS": "moderately susceptible",
    "VS": "very susceptible", "POS": "Positive", "NEG": "Negative", "IND": "Indeterminate",
    "DET": "Detected", "ND": "Not detected", "U": "Significant change up",
    "D": "Significant change down", "B": "Better", "W": "Worse", "E": "Equivocal",
    "EX": "outside threshold", "HU": "Significantly high", "LU": "Significantly low",
    "NR": "Non-reactive", "RR": "Reactive", "WR": "Weakly reactive",
}

class _UcumUnits(Mapping[str, str]):
    """A unit as written → its UCUM code (:func:`mafhir.hl7v2.terminology.ucum_code`), as a
    read-only mapping so lookups written against the old table keep working: the known
    spellings are its keys, and any text that passes the UCUM check is found too."""

    def __getitem__(self, text: str) -> str:
        code = ucum_code(text)
        if code is None:
            raise KeyError(text)
        return code

    def __iter__(self) -> Iterator[str]:
        return iter(UNIT_SPELLINGS)

    def __len__(self) -> int:
        return len(UNIT_SPELLINGS)

    def values(self) -> ValuesView[str]:
        """The UCUM codes of the known spellings, without loading the UCUM parser (read at
        import time; the table's codes are checked by the tests)."""
        return UNIT_SPELLINGS.values()


#: Units seen from labs (``µmol/L``, ``IU/L``, ``mg/g crea``, ``beats/min``…) → UCUM.
UCUM_UNITS: Mapping[str, str] = _UcumUnits()
