"""The point-of-care test catalog: what each CLIA-waived test reports, coded.

One table read by the ``poc_test`` task (units, limits, reference ranges) and its mapper
(LOINC, UCUM, SNOMED answers), so a code and the rule about its value live together.

Sources: LOINC codes and displays from mapping-reference §8 and §7.4, except where a
comment names another (whole-blood INR, capillary lead, fasting capillary glucose, the
influenza A/B panel, the IFCC A1c). Qualitative answers are the SNOMED CT qualifier values
US Core names for lab results (us-core-4: Positive 10828004, Negative 260385009) and the
ordinal dipstick answers of the HL7 standard lab-observation ordinal value set.

**Limits and reference ranges are project heuristics, not a standard**, like the vital
sign limits of mapping-reference §2.7: a hard limit is what the meter can read at all (a
value outside is a typing error and is refused); a reference range is a typical adult
range for the interpretation flag, which a kit's package insert may override in the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "A1C_IFCC_OFFSET",
    "A1C_IFCC_SLOPE",
    "DIPSTICK",
    "DIPSTICK_PANEL",
    "HEMOGLOBIN_BY_SEX",
    "INFLUENZA",
    "INFLUENZA_PANEL",
    "ORDINALS",
    "QUALITATIVE",
    "QUALITATIVE_TESTS",
    "QUANTITATIVE",
    "Analyte",
    "Quantitative",
    "a1c_mmol_per_mol",
]

Code = tuple[str, str]  # (code, display)

#: Qualitative answers → SNOMED CT qualifier values (mapping-reference §7.3, §8).
QUALITATIVE: dict[str, Code] = {
    "positive": ("10828004", "Positive"),
    "negative": ("260385009", "Negative"),
}
#: Ordinal dipstick answers → SNOMED CT qualifier values (HL7 standard lab-observation
#: ordinal value set: +…++++, Negative, Trace, Small, Medium, Large).
ORDINALS: dict[str, Code] = {
    **QUALITATIVE,
    "trace": ("260405006", "Trace"),
    "small": ("255507004", "Small"),
    "moderate": ("255508009", "Medium"),
    "large": ("255509001", "Large"),
    "1+": ("260347006", "+"),
    "2+": ("260348001", "++"),
    "3+": ("260349009", "+++"),
    "4+": ("260350009", "++++"),
}


@dataclass(frozen=True, slots=True)
class Quantitative:
    """One quantitative result in one unit: its LOINC, what a meter can read, and a range."""

    loinc: Code
    unit: str  # UCUM
    unit_text: str
    hard_lo: float
    hard_hi: float
    low: float | None = None  # reference range (project heuristic)
    high: float | None = None

    def hard_error(self) -> str:
        return (f"is outside what the test can read ({self.hard_lo:g}–{self.hard_hi:g} "
                f"{self.unit}); check the value and its unit")


#: A1c: IFCC (mmol/mol) = (NGSP % − 2.15) × 10.929, the IFCC–NGSP master equation.
A1C_IFCC_SLOPE = Decimal("10.929")
A1C_IFCC_OFFSET = Decimal("2.15")


def a1c_mmol_per_mol(percent: float) -> int:
    """An NGSP A1c (%) as IFCC mmol/mol, to the whole unit (as reported)."""
    exact = (Decimal(repr(percent)) - A1C_IFCC_OFFSET) * A1C_IFCC_SLOPE
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


#: Quantitative tests, by ``test`` then unit. The fasting glucose has its own LOINC.
QUANTITATIVE: dict[str, dict[str, Quantitative]] = {
    "glucose": {
        "mg/dL": Quantitative(("41653-7", "Glucose [Mass/volume] in Capillary blood by "
                                          "Glucometer"), "mg/dL", "mg/dL", 10, 1000, 70, 139),
        "mmol/L": Quantitative(("14743-9", "Glucose [Moles/volume] in Capillary blood by "
                                           "Glucometer"), "mmol/L", "mmol/L", 0.6, 55.5, 3.9,
                               7.7),
    },
    # LOINC 1556-0 and 14770-2 (loinc.org term names): the fasting specimens.
    "glucose_fasting": {
        "mg/dL": Quantitative(("1556-0", "Fasting glucose [Mass/volume] in Capillary blood"),
                              "mg/dL", "mg/dL", 10, 1000, 70, 99),
        "mmol/L": Quantitative(("14770-2", "Fasting glucose [Moles/volume] in Capillary "
                                           "blood by Glucometer"), "mmol/L", "mmol/L", 0.6,
                               55.5, 3.9, 5.5),
    },
    # 59261-8 is the IFCC (mmol/mol) term beside 4548-4 (%); the range in mmol/mol is the
    # % range 4.0–5.6 converted (20.2 → 20, 37.7 → 38).
    "a1c": {
        "%": Quantitative(("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"), "%", "%",
                          3, 20, 4.0, 5.6),
        "mmol/mol": Quantitative(("59261-8", "Hemoglobin A1c/Hemoglobin.total in Blood by "
                                             "IFCC protocol"), "mmol/mol", "mmol/mol", 9,
                                 195, a1c_mmol_per_mol(4.0), a1c_mmol_per_mol(5.6)),
    },
    # A fingerstick INR is whole blood: 34714-6, not the plasma 6301-6 of a lab.
    "inr": {
        "{INR}": Quantitative(("34714-6", "INR in Blood by Coagulation assay"), "{INR}",
                              "INR", 0.5, 10, 0.8, 1.2),
    },
    "hemoglobin": {
        "g/dL": Quantitative(("718-7", "Hemoglobin [Mass/volume] in Blood"), "g/dL", "g/dL",
                             2, 25, 12.0, 17.5),
    },
    # Capillary lead 10368-9; the CDC blood lead reference value is 3.5 ug/dL.
    "lead": {
        "ug/dL": Quantitative(("10368-9", "Lead [Mass/volume] in Capillary blood"), "ug/dL",
                              "µg/dL", 0, 200, None, 3.5),
    },
}

#: Hemoglobin reference ranges (g/dL) by administrative sex, when the task knows it.
HEMOGLOBIN_BY_SEX: dict[str, tuple[float, float]] = {"female": (12.0, 15.5),
                                                      "male": (13.5, 17.5)}

#: Qualitative single-result tests: LOINC of the result.
QUALITATIVE_TESTS: dict[str, Code] = {
    # 2106-3 is also CDC race "White" in another system: always compare system|code.
    "urine_hcg": ("2106-3", "Choriogonadotropin [Presence] in Urine"),
    "strep": ("78012-2", "Streptococcus pyogenes Ag [Presence] in Throat by Rapid "
                         "immunoassay"),
    "covid": ("97097-0", "SARS-CoV-2 (COVID-19) Ag [Presence] in Upper respiratory specimen "
                         "by Rapid immunoassay"),
}

#: Influenza A/B: two results under one panel (80381-7; member names as loinc.org).
INFLUENZA_PANEL: Code = ("80381-7", "Influenza virus A and B Ag panel - Upper respiratory "
                                    "specimen by Rapid immunoassay")
INFLUENZA: dict[str, Code] = {
    "influenza_a": ("80382-5", "Influenza virus A Ag [Presence] in Upper respiratory "
                               "specimen by Rapid immunoassay"),
    "influenza_b": ("80383-3", "Influenza virus B Ag [Presence] in Upper respiratory "
                               "specimen by Rapid immunoassay"),
}


@dataclass(frozen=True, slots=True)
class Analyte:
    """One pad of the urine dipstick: its LOINC as a number and/or as a word.

    ``quantity`` is the [Mass/volume]-type term (with its unit) for a number; ``presence``
    the [Presence]-type term for a word (negative, trace, 1+ …). ``words`` are the
    answers the pad can give; ``low``/``high`` a reference range for a number.
    """

    quantity: tuple[str, str, str] | None  # (code, display, UCUM unit)
    presence: Code | None
    hard_lo: float = 0
    hard_hi: float = 0
    low: float | None = None
    high: float | None = None
    words: tuple[str, ...] = ()


_ALL_ORDINALS = tuple(ORDINALS)
_PRESENCE = ("negative", "positive")

#: The urine dipstick panel (24357-6) and its ten pads (mapping-reference §8).
DIPSTICK_PANEL: Code = ("24357-6", "Urinalysis macro (dipstick) panel - Urine")
DIPSTICK: dict[str, Analyte] = {
    "specific_gravity": Analyte(("5811-5", "Specific gravity of Urine by Test strip", "1"),
                                None, 1.000, 1.040, 1.005, 1.030),
    "ph": Analyte(("5803-2", "pH of Urine by Test strip", "[pH]"), None, 4.0, 10.0, 5.0, 8.0),
    "protein": Analyte(("5804-0", "Protein [Mass/volume] in Urine by Test strip", "mg/dL"),
                       ("20454-5", "Protein [Presence] in Urine by Test strip"), 0, 2000,
                       words=_ALL_ORDINALS),
    "glucose": Analyte(("5792-7", "Glucose [Mass/volume] in Urine by Test strip", "mg/dL"),
                       ("25428-4", "Glucose [Presence] in Urine by Test strip"), 0, 5000,
                       words=_ALL_ORDINALS),
    "ketones": Analyte(("5797-6", "Ketones [Mass/volume] in Urine by Test strip", "mg/dL"),
                       ("2514-8", "Ketones [Presence] in Urine by Test strip"), 0, 500,
                       words=_ALL_ORDINALS),
    "bilirubin": Analyte(("20505-4", "Bilirubin.total [Mass/volume] in Urine by Test strip",
                          "mg/dL"),
                         ("5770-3", "Bilirubin.total [Presence] in Urine by Test strip"), 0,
                         50, words=_ALL_ORDINALS),
    "blood": Analyte(None, ("5794-3", "Hemoglobin [Presence] in Urine by Test strip"),
                     words=_ALL_ORDINALS),
    "nitrite": Analyte(None, ("5802-4", "Nitrite [Presence] in Urine by Test strip"),
                       words=_PRESENCE),
    "leukocytes": Analyte(None, ("5799-2", "Leukocyte esterase [Presence] in Urine by Test "
                                           "strip"), words=_ALL_ORDINALS),
    "urobilinogen": Analyte(("20405-7", "Urobilinogen [Mass/volume] in Urine by Test strip",
                             "mg/dL"), None, 0, 20, 0.2, 1.0),
}
