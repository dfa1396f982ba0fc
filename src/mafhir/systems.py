"""Code-system, identifier-system and profile URIs, in one place.

Values are from ``shared/docs/mapping-reference.md`` §1 (FHIR R4 4.0.1, US Core 7.0.0).
"""

from __future__ import annotations

__all__ = [
    "ACT_CODE",
    "ACT_REASON",
    "ACT_SITE",
    "APPOINTMENT_CANCEL_REASON",
    "CDCPHINVS",
    "CDC_RACE_ETHNICITY",
    "COVERAGE_CLASS",
    "CVX",
    "DATA_ABSENT_EXTENSION",
    "DATA_ABSENT_REASON",
    "IMMUNIZATION_FUNCTION",
    "LOINC",
    "MVX",
    "NDC",
    "NPI",
    "OBSERVATION_CATEGORY",
    "ROUTE",
    "SNOMED",
    "SOPT",
    "SUBSCRIBER_RELATIONSHIP",
    "UCUM",
    "US_CORE",
    "V2_0064",
    "V2_0203",
    "V2_0276",
    "V3_PARTICIPATION_TYPE",
    "profile",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CVX = "http://hl7.org/fhir/sid/cvx"
MVX = "http://hl7.org/fhir/sid/mvx"
NDC = "http://hl7.org/fhir/sid/ndc"
NPI = "http://hl7.org/fhir/sid/us-npi"
CDC_RACE_ETHNICITY = "urn:oid:2.16.840.1.113883.6.238"
CDCPHINVS = "urn:oid:2.16.840.1.114222.4.5.274"
SOPT = "https://nahdo.org/sopt"

THO = "http://terminology.hl7.org/CodeSystem/"
V2_0203 = THO + "v2-0203"
V2_0064 = THO + "v2-0064"
V2_0276 = THO + "v2-0276"
ACT_CODE = THO + "v3-ActCode"
ACT_REASON = THO + "v3-ActReason"
ACT_SITE = THO + "v3-ActSite"
ROUTE = THO + "v3-RouteOfAdministration"
V3_PARTICIPATION_TYPE = THO + "v3-ParticipationType"
OBSERVATION_CATEGORY = THO + "observation-category"
DATA_ABSENT_REASON = THO + "data-absent-reason"
IMMUNIZATION_FUNCTION = THO + "v2-0443"
COVERAGE_CLASS = THO + "coverage-class"
SUBSCRIBER_RELATIONSHIP = THO + "subscriber-relationship"
APPOINTMENT_CANCEL_REASON = THO + "appointment-cancellation-reason"

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
#: The core extension that says why a required element has no value (US Core missing data).
DATA_ABSENT_EXTENSION = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def profile(name: str) -> str:
    """The canonical URL of a US Core profile, e.g. ``profile("us-core-patient")``."""
    return US_CORE + name
