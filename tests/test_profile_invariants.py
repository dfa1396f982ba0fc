"""Every invariant of US Core 7.0.0: one resource that keeps it, one that breaks it.

The table below is written by hand from each invariant's human text (shown in a failure),
not from running the code: key → (profile, element, passing resource, failing resource). The
invariants themselves — their FHIRPath, their element, their severity — are read from the
US Core 7.0.0 package of the corpus, and a test checks that the table covers every one of them
(the US Core ones and the base ones the profiles carry in their snapshots). Each row is
checked twice: by ``mafhir.profiles.fhirpath.evaluate`` on the element the constraint sits on,
and by the profile engine (``Validator``), whose report must name the key.
"""

from __future__ import annotations

import copy
import json
import tarfile
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from mafhir.profiles.fhirpath import evaluate

JSON = dict[str, Any]
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SCT = "http://snomed.info/sct"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

# The primitive types whose choice suffix starts lower case (valueDateTime → dateTime).
PRIMITIVES = {"boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary",
              "instant", "date", "dateTime", "time", "code", "oid", "id", "markdown",
              "unsignedInt", "positiveInt", "uuid"}


class Row(NamedTuple):
    key: str
    profile: str      # the US Core profile's id
    element: str      # the element id the constraint sits on
    passing: JSON
    failing: JSON


# --- resources, minimal but complete enough for their profile -----------------------------------

def cc(system: str, code: str, display: str | None = None) -> JSON:
    coding: JSON = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


SUBJECT = {"reference": "Patient/example"}


def patient(**extra: Any) -> JSON:
    return {"resourceType": "Patient", "id": "p1",
            "text": {"status": "generated", "div": f"<div {XHTML}>Amy Shaw</div>"},
            "identifier": [{"system": "http://hospital.example.org", "value": "1032702"}],
            "name": [{"family": "Shaw", "given": ["Amy"]}], "gender": "female", **extra}


def allergy(**extra: Any) -> JSON:
    return {"resourceType": "AllergyIntolerance", "id": "a1",
            "code": cc(SCT, "91936005", "Allergy to penicillin"), "patient": SUBJECT, **extra}


AIT_CLIN = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
AIT_VER = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
CON_CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CON_VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CON_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"


def condition(**extra: Any) -> JSON:
    return {"resourceType": "Condition", "id": "c1",
            "category": [cc(CON_CAT, "problem-list-item")],
            "code": cc(SCT, "38341003", "Hypertension"), "subject": SUBJECT, **extra}


def vital(code: str, **extra: Any) -> JSON:
    return {"resourceType": "Observation", "id": "v1", "status": "final",
            "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category",
                            "vital-signs")],
            "code": cc(LOINC, code), "subject": SUBJECT,
            "effectiveDateTime": "2024-03-01T09:30:00-05:00", **extra}


def lab(**extra: Any) -> JSON:
    return {"resourceType": "Observation", "id": "l1", "status": "final",
            "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category",
                            "laboratory")],
            "code": cc(LOINC, "2947-0", "Sodium"), "subject": SUBJECT,
            "effectiveDateTime": "2024-03-01T09:30:00-05:00", **extra}


def mmhg(value: float) -> JSON:
    return {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"}


def weight(**extra: Any) -> JSON:
    return vital("29463-7", valueQuantity={"value": 70, "unit": "kg", "system": UCUM,
                                           "code": "kg"}, **extra)


def blood_pressure(systolic: JSON, diastolic: JSON) -> JSON:
    return vital("85354-9", component=[
        {"code": cc(LOINC, "8480-6"), **systolic}, {"code": cc(LOINC, "8462-4"), **diastolic}])


def average_bp(systolic: JSON) -> JSON:
    bp = vital("96607-7")
    bp["component"] = [{"code": cc(LOINC, "96608-5"), **systolic},
                       {"code": cc(LOINC, "96609-3"), "valueQuantity": mmhg(80)}]
    return bp


def smoking(code: str, **value: Any) -> JSON:
    return {"resourceType": "Observation", "id": "s1", "status": "final",
            "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category",
                            "social-history")],
            "code": cc(LOINC if code[:1] in "17" and "-" in code else SCT, code),
            "subject": SUBJECT, "effectiveDateTime": "2024-03-01", **value}


def organization(**extra: Any) -> JSON:
    return {"resourceType": "Organization", "id": "o1", "active": True,
            "name": "Maple Street Family Clinic", **extra}


def npi(value: str) -> JSON:
    return {"system": "http://hl7.org/fhir/sid/us-npi", "value": value}


def role(**extra: Any) -> JSON:
    return {"resourceType": "PractitionerRole", "id": "r1",
            "code": [cc("http://nucc.org/provider-taxonomy", "208D00000X")], **extra}


def dispense(**extra: Any) -> JSON:
    return {"resourceType": "MedicationDispense", "id": "d1",
            "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm",
                                            "1049221"),
            "subject": SUBJECT, "performer": [{"actor": {"reference": "Practitioner/pr1"}}],
            **extra}


def report(profile_code: str, **extra: Any) -> JSON:
    return {"resourceType": "DiagnosticReport", "id": "dr1",
            "category": [cc("http://terminology.hl7.org/CodeSystem/v2-0074", profile_code)],
            "code": cc(LOINC, "58410-2"), "subject": SUBJECT, **extra}


def qr(**extra: Any) -> JSON:
    return {"resourceType": "QuestionnaireResponse", "id": "q1",
            "questionnaire": "http://example.org/Questionnaire/hunger", "status": "completed",
            "subject": SUBJECT, "authored": "2024-03-01", **extra}


def answer(link_id: str, *values: str) -> JSON:
    return {"linkId": link_id, "answer": [{"valueString": v} for v in values]}


def div(html: str) -> JSON:
    return {"status": "generated", "div": html}


def careplan(**extra: Any) -> JSON:
    return {"resourceType": "CarePlan", "id": "cp1", "status": "active", "intent": "plan",
            "category": [cc("http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                            "assess-plan")],
            "subject": SUBJECT, "text": div(f"<div {XHTML}>Plan</div>"), **extra}


def race(*codes: str) -> JSON:
    return {"url": f"{US_CORE}us-core-race", "extension": [
        *({"url": "ombCategory", "valueCoding": {
            "system": "urn:oid:2.16.840.1.113883.6.238" if c[0].isdigit() else
            "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": c}} for c in codes),
        {"url": "text", "valueString": "race"}]}


def immunization(**extra: Any) -> JSON:
    return {"resourceType": "Immunization", "id": "i1", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
            "patient": SUBJECT, "occurrenceDateTime": "2024-03-01", "primarySource": True,
            **extra}


NDC = {"system": "http://hl7.org/fhir/sid/ndc", "code": "49281-0703-55"}
CONTAINED_PAT = {"resourceType": "Patient", "id": "pt", "name": [{"family": "Shaw"}]}
BAD_EXT = {"url": f"{US_CORE}us-core-birthsex", "valueCode": "F",
           "extension": [{"url": "x", "valueString": "y"}]}

ROWS: list[Row] = [
    # --- AllergyIntolerance
    Row("ait-1", "us-core-allergyintolerance", "AllergyIntolerance",
        allergy(clinicalStatus=cc(AIT_CLIN, "active")),
        allergy(verificationStatus=cc(AIT_VER, "confirmed"))),
    Row("ait-2", "us-core-allergyintolerance", "AllergyIntolerance",
        allergy(verificationStatus=cc(AIT_VER, "entered-in-error")),
        allergy(verificationStatus=cc(AIT_VER, "entered-in-error"),
                clinicalStatus=cc(AIT_CLIN, "active"))),
    # --- Condition
    Row("con-1", "us-core-condition-problems-health-concerns", "Condition.stage",
        condition(clinicalStatus=cc(CON_CLIN, "active"), stage=[{"summary": {"text": "II"}}]),
        condition(clinicalStatus=cc(CON_CLIN, "active"), stage=[{"type": {"text": "TNM"}}])),
    Row("con-2", "us-core-condition-problems-health-concerns", "Condition.evidence",
        condition(clinicalStatus=cc(CON_CLIN, "active"),
                  evidence=[{"detail": [{"reference": "Observation/o1"}]}]),
        condition(clinicalStatus=cc(CON_CLIN, "active"), evidence=[{"id": "e1",
                  "extension": [{"url": "http://example.org/x", "valueString": "y"}]}])),
    Row("con-3", "us-core-condition-problems-health-concerns", "Condition",
        condition(clinicalStatus=cc(CON_CLIN, "active")),
        condition(verificationStatus=cc(CON_VER, "confirmed"))),
    Row("con-4", "us-core-condition-problems-health-concerns", "Condition",
        condition(clinicalStatus=cc(CON_CLIN, "resolved"), abatementDateTime="2024-01-01"),
        condition(clinicalStatus=cc(CON_CLIN, "active"), abatementDateTime="2024-01-01")),
    Row("con-5", "us-core-condition-problems-health-concerns", "Condition",
        condition(verificationStatus=cc(CON_VER, "entered-in-error")),
        condition(verificationStatus=cc(CON_VER, "entered-in-error"),
                  clinicalStatus=cc(CON_CLIN, "active"))),
    # --- CarePlan, CareTeam
    Row("cpl-3", "us-core-careplan", "CarePlan.activity",
        careplan(activity=[{"reference": {"reference": "ServiceRequest/s1"}}]),
        careplan(activity=[{"reference": {"reference": "ServiceRequest/s1"},
                            "detail": {"status": "scheduled"}}])),
    Row("ctm-1", "us-core-careteam", "CareTeam.participant",
        {"resourceType": "CareTeam", "id": "ct1", "status": "active", "subject": SUBJECT,
         "participant": [{"role": [cc(SCT, "17561000")],
                          "member": {"reference": "Practitioner/pr1"},
                          "onBehalfOf": {"reference": "Organization/o1"}}]},
        {"resourceType": "CareTeam", "id": "ct1", "status": "active", "subject": SUBJECT,
         "participant": [{"role": [cc(SCT, "116154003")],
                          "member": {"reference": "Patient/example"},
                          "onBehalfOf": {"reference": "Organization/o1"}}]}),
    # --- DomainResource (on every profile; shown on Patient)
    Row("dom-2", "us-core-patient", "Patient",
        patient(contained=[CONTAINED_PAT],
                link=[{"other": {"reference": "#pt"}, "type": "seealso"}]),
        patient(contained=[{**CONTAINED_PAT, "contained": [
            {"resourceType": "Organization", "id": "o", "name": "x"}]}],
                link=[{"other": {"reference": "#pt"}, "type": "seealso"}])),
    Row("dom-3", "us-core-patient", "Patient",
        patient(contained=[CONTAINED_PAT],
                link=[{"other": {"reference": "#pt"}, "type": "seealso"}]),
        patient(contained=[CONTAINED_PAT])),
    Row("dom-4", "us-core-patient", "Patient",
        patient(contained=[{**CONTAINED_PAT, "meta": {"profile": [f"{US_CORE}us-core-patient"]}}],
                link=[{"other": {"reference": "#pt"}, "type": "seealso"}]),
        patient(contained=[{**CONTAINED_PAT, "meta": {"versionId": "3"}}],
                link=[{"other": {"reference": "#pt"}, "type": "seealso"}])),
    Row("dom-5", "us-core-patient", "Patient",
        patient(contained=[CONTAINED_PAT],
                link=[{"other": {"reference": "#pt"}, "type": "seealso"}]),
        patient(contained=[{**CONTAINED_PAT, "meta": {"security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality",
             "code": "R"}]}}], link=[{"other": {"reference": "#pt"}, "type": "seealso"}])),
    Row("dom-6", "us-core-patient", "Patient",
        patient(),
        {k: v for k, v in patient().items() if k != "text"}),
    # --- Element, Extension (on every element / extension; shown on Patient)
    Row("ele-1", "us-core-patient", "Patient.name",
        patient(),
        patient(name=[{"id": "n1"}])),
    Row("ext-1", "us-core-patient", "Patient.extension",
        patient(extension=[{"url": f"{US_CORE}us-core-birthsex", "valueCode": "F"}]),
        patient(extension=[BAD_EXT])),
    # --- Goal, Immunization
    Row("gol-1", "us-core-goal", "Goal.target",
        {"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
         "description": {"text": "lose weight"}, "subject": SUBJECT,
         "target": [{"measure": cc(LOINC, "29463-7"),
                     "detailQuantity": {"value": 60, "unit": "kg", "system": UCUM,
                                        "code": "kg"}, "dueDate": "2025-01-01"}]},
        {"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active",
         "description": {"text": "lose weight"}, "subject": SUBJECT,
         "target": [{"detailQuantity": {"value": 60, "unit": "kg", "system": UCUM,
                                        "code": "kg"}, "dueDate": "2025-01-01"}]}),
    Row("imm-1", "us-core-immunization", "Immunization.education",
        immunization(education=[{"documentType": "253088698300010311250131"}]),
        immunization(education=[{"publicationDate": "2024-01-31"}])),
    Row("us-core-5", "us-core-immunization", "Immunization",
        immunization(vaccineCode={"coding": [
            {"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}, NDC]}),
        immunization()),
    # --- MedicationDispense, MedicationRequest
    Row("mdd-1", "us-core-medicationdispense", "MedicationDispense",
        dispense(status="completed", whenPrepared="2024-03-01T09:00:00Z",
                 whenHandedOver="2024-03-01T10:00:00Z"),
        dispense(status="completed", whenPrepared="2024-03-01T10:00:00Z",
                 whenHandedOver="2024-03-01T09:00:00Z")),
    Row("us-core-20", "us-core-medicationdispense", "MedicationDispense",
        dispense(status="completed", whenHandedOver="2024-03-01T10:00:00Z"),
        dispense(status="completed")),
    Row("us-core-21", "us-core-medicationrequest", "MedicationRequest",
        {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
         "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm", "1049221"),
         "subject": SUBJECT, "authoredOn": "2024-03-01",
         "requester": {"reference": "Practitioner/pr1"}},
        {"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
         "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm", "1049221"),
         "subject": SUBJECT, "authoredOn": "2024-03-01"}),
    # --- Observation (base and vital signs)
    Row("obs-3", "us-core-body-weight", "Observation.referenceRange",
        weight(referenceRange=[{"low": {"value": 50, "unit": "kg", "system": UCUM,
                                        "code": "kg"}}]),
        weight(referenceRange=[{"appliesTo": [{"text": "adults"}]}])),
    Row("obs-6", "us-core-body-weight", "Observation",
        weight(),
        weight(dataAbsentReason=cc(
            "http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown"))),
    Row("obs-7", "us-core-blood-pressure", "Observation",
        blood_pressure({"valueQuantity": mmhg(120)}, {"valueQuantity": mmhg(80)}),
        {**blood_pressure({"valueQuantity": mmhg(120)}, {"valueQuantity": mmhg(80)}),
         "code": cc(LOINC, "8480-6"), "valueQuantity": mmhg(120)}),
    Row("vs-1", "us-core-body-weight", "Observation.effective[x]",
        weight(),
        weight(effectiveDateTime="2024-03")),
    Row("vs-2", "us-core-body-weight", "Observation",
        weight(),
        vital("29463-7")),
    Row("vs-3", "us-core-blood-pressure", "Observation.component",
        blood_pressure({"valueQuantity": mmhg(120)}, {"dataAbsentReason": cc(
            "http://terminology.hl7.org/CodeSystem/data-absent-reason", "not-performed")}),
        blood_pressure({"valueQuantity": mmhg(120)}, {})),
    Row("us-core-26", "us-core-average-blood-pressure", "Observation.component",
        average_bp({"valueQuantity": mmhg(120)}),
        average_bp({})),
    # --- Observation (US Core clinical result, lab, smoking status)
    Row("us-core-1", "us-core-observation-clinical-result", "Observation.effective[x]",
        lab(valueQuantity={"value": 140, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}),
        lab(effectiveDateTime="2024",
            valueQuantity={"value": 140, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"})),
    Row("us-core-2", "us-core-observation-clinical-result", "Observation",
        lab(dataAbsentReason=cc("http://terminology.hl7.org/CodeSystem/data-absent-reason",
                                "error")),
        lab()),
    Row("us-core-3", "us-core-observation-clinical-result", "Observation.value[x]",
        lab(valueQuantity={"value": 140, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}),
        lab(valueQuantity={"value": 140, "unit": "mmol/L",
                           "system": "http://example.org/units", "code": "mmol/L"})),
    Row("us-core-4", "us-core-observation-lab", "Observation.value[x]",
        lab(valueCodeableConcept=cc(SCT, "260385009", "Negative")),
        lab(valueCodeableConcept=cc("http://example.org/results", "NEG", "Negative"))),
    Row("us-core-22", "us-core-observation-lab", "Observation.referenceRange",
        lab(valueQuantity={"value": 140, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
            referenceRange=[{"low": {"value": 135, "system": UCUM, "code": "mmol/L"},
                             "high": {"value": 145, "system": UCUM, "code": "mmol/L"}}]),
        lab(valueQuantity={"value": 140, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"},
            referenceRange=[{"low": {"value": 135, "system": UCUM, "code": "mmol/L"},
                             "high": {"value": 145, "system": "http://example.org/units",
                                      "code": "mmol/L"}}])),
    Row("us-core-24", "us-core-smokingstatus", "Observation",
        smoking("72166-2", valueCodeableConcept=cc(SCT, "449868002", "Smokes daily")),
        smoking("72166-2", valueString="Smokes daily")),
    Row("us-core-25", "us-core-smokingstatus", "Observation",
        smoking("401201003", valueQuantity={"value": 20, "unit": "{PackYears}", "system": UCUM,
                                            "code": "{PackYears}"}),
        smoking("401201003", valueCodeableConcept={"text": "twenty pack-years"})),
    # --- Organization
    Row("org-1", "us-core-organization", "Organization",
        organization(),
        {"resourceType": "Organization", "id": "o1", "active": True,
         "telecom": [{"system": "phone", "value": "555-0100"}]}),
    Row("org-2", "us-core-organization", "Organization.address",
        organization(address=[{"use": "work", "line": ["1 Main St"], "city": "Boston",
                               "state": "MA", "postalCode": "02101"}]),
        organization(address=[{"use": "home", "line": ["1 Main St"], "city": "Boston",
                               "state": "MA", "postalCode": "02101"}])),
    Row("org-3", "us-core-organization", "Organization.telecom",
        organization(telecom=[{"system": "phone", "value": "555-0100", "use": "work"}]),
        organization(telecom=[{"system": "phone", "value": "555-0100", "use": "home"}])),
    Row("us-core-16", "us-core-organization", "Organization.identifier:NPI",
        organization(identifier=[npi("1234567893")]),
        organization(identifier=[npi("123456789")])),
    Row("us-core-17", "us-core-organization", "Organization.identifier:NPI",
        organization(identifier=[npi("1234567893")]),
        organization(identifier=[npi("1234567890")])),
    Row("us-core-18", "us-core-organization", "Organization.identifier:CLIA",
        organization(identifier=[{"system": "urn:oid:2.16.840.1.113883.4.7",
                                  "value": "05D0899872"}]),
        organization(identifier=[{"system": "urn:oid:2.16.840.1.113883.4.7",
                                  "value": "0500899872"}])),
    Row("us-core-19", "us-core-organization", "Organization.identifier:NAIC",
        organization(identifier=[{"system": "urn:oid:2.16.840.1.113883.6.300",
                                  "value": "60054"}]),
        organization(identifier=[{"system": "urn:oid:2.16.840.1.113883.6.300",
                                  "value": "6005A"}])),
    # --- Patient
    Row("pat-1", "us-core-patient", "Patient.contact",
        patient(contact=[{"relationship": [cc(
            "http://terminology.hl7.org/CodeSystem/v2-0131", "N")],
            "telecom": [{"system": "phone", "value": "555-0101"}]}]),
        patient(contact=[{"relationship": [cc(
            "http://terminology.hl7.org/CodeSystem/v2-0131", "N")], "gender": "male"}])),
    Row("us-core-6", "us-core-patient", "Patient.name",
        patient(name=[{"extension": [{"url": DAR, "valueCode": "unknown"}]}]),
        patient(name=[{"use": "official", "text": "Amy Shaw"}])),
    Row("us-core-23", "us-core-patient", "Patient.extension:race",
        patient(extension=[race("2106-3", "2054-5")]),
        patient(extension=[race("2106-3", "UNK")])),
    # --- PractitionerRole, Provenance, RelatedPerson, ServiceRequest, Coverage, Procedure
    Row("pd-1", "us-core-practitionerrole", "PractitionerRole",
        role(practitioner={"reference": "Practitioner/pr1"},
             telecom=[{"system": "phone", "value": "555-0100"}]),
        role(practitioner={"reference": "Practitioner/pr1"})),
    Row("us-core-13", "us-core-practitionerrole", "PractitionerRole",
        role(location=[{"reference": "Location/l1"}],
             telecom=[{"system": "phone", "value": "555-0100"}]),
        role(telecom=[{"system": "phone", "value": "555-0100"}])),
    Row("provenance-1", "us-core-provenance", "Provenance.agent",
        {"resourceType": "Provenance", "id": "pv1", "target": [SUBJECT],
         "recorded": "2024-03-01T10:00:00Z",
         "agent": [{"type": cc("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                               "author"),
                    "who": {"reference": "Practitioner/pr1"},
                    "onBehalfOf": {"reference": "Organization/o1"}}]},
        {"resourceType": "Provenance", "id": "pv1", "target": [SUBJECT],
         "recorded": "2024-03-01T10:00:00Z",
         "agent": [{"type": cc("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                               "author"),
                    "who": {"reference": "Practitioner/pr1"}}]}),
    Row("us-core-14", "us-core-relatedperson", "RelatedPerson",
        {"resourceType": "RelatedPerson", "id": "rp1", "active": True, "patient": SUBJECT,
         "relationship": [cc("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "NIECE")]},
        {"resourceType": "RelatedPerson", "id": "rp1", "active": True, "patient": SUBJECT,
         "telecom": [{"system": "phone", "value": "555-0102"}]}),
    Row("prr-1", "us-core-servicerequest", "ServiceRequest",
        {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
         "code": cc(SCT, "385804009"), "subject": SUBJECT,
         "orderDetail": [{"text": "weekly"}]},
        {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
         "subject": SUBJECT, "orderDetail": [{"text": "weekly"}]}),
    Row("us-core-15", "us-core-coverage", "Coverage",
        {"resourceType": "Coverage", "id": "cv1", "status": "active", "beneficiary": SUBJECT,
         "payor": [{"reference": "Organization/o1"}], "subscriberId": "AB9876"},
        {"resourceType": "Coverage", "id": "cv1", "status": "active", "beneficiary": SUBJECT,
         "payor": [{"reference": "Organization/o1"}],
         "identifier": [{"type": cc("http://terminology.hl7.org/CodeSystem/v2-0203", "SN"),
                         "value": "AB9876"}]}),
    Row("us-core-7", "us-core-procedure", "Procedure",
        {"resourceType": "Procedure", "id": "pr1", "status": "completed",
         "code": cc(SCT, "80146002"), "subject": SUBJECT, "performedDateTime": "2024-03-01"},
        {"resourceType": "Procedure", "id": "pr1", "status": "in-progress",
         "code": cc(SCT, "80146002"), "subject": SUBJECT}),
    # --- DiagnosticReport
    Row("us-core-8", "us-core-diagnosticreport-lab", "DiagnosticReport",
        report("LAB", status="final", effectiveDateTime="2024-03-01",
               issued="2024-03-01T12:00:00Z"),
        report("LAB", status="final", issued="2024-03-01T12:00:00Z")),
    Row("us-core-9", "us-core-diagnosticreport-lab", "DiagnosticReport",
        report("LAB", status="registered"),
        report("LAB", status="amended", effectiveDateTime="2024-03-01")),
    Row("us-core-10", "us-core-diagnosticreport-note", "DiagnosticReport",
        report("RAD", status="preliminary", effectiveDateTime="2024-03-01",
               issued="2024-03-01T12:00:00Z"),
        report("RAD", status="preliminary", issued="2024-03-01T12:00:00Z")),
    # --- DocumentReference
    Row("us-core-6", "us-core-documentreference", "DocumentReference.content.attachment",
        {"resourceType": "DocumentReference", "id": "doc1", "status": "current",
         "type": cc(LOINC, "18842-5"), "category": [cc(
             "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
             "clinical-note")], "subject": SUBJECT, "date": "2024-03-01T10:00:00Z",
         "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}]},
        {"resourceType": "DocumentReference", "id": "doc1", "status": "current",
         "type": cc(LOINC, "18842-5"), "category": [cc(
             "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
             "clinical-note")], "subject": SUBJECT, "date": "2024-03-01T10:00:00Z",
         "content": [{"attachment": {"contentType": "text/plain", "title": "note"}}]}),
    # --- QuestionnaireResponse
    Row("qrs-1", "us-core-questionnaireresponse", "QuestionnaireResponse.item",
        qr(item=[{"linkId": "g", "item": [answer("g.1", "yes")]}]),
        qr(item=[{"linkId": "g", "answer": [{"valueString": "yes"}],
                  "item": [answer("g.1", "yes")]}])),
    Row("sdcqr-1", "us-core-questionnaireresponse", "QuestionnaireResponse",
        qr(item=[answer("1", "yes")]),
        {k: v for k, v in qr(item=[answer("1", "yes")]).items() if k != "subject"}),
    Row("sdcqr-2", "us-core-questionnaireresponse", "QuestionnaireResponse",
        qr(item=[answer("1", "yes", "sometimes")]),
        qr(item=[answer("1", "yes"), answer("1", "sometimes")])),
    # --- Narrative (the careplan profile makes text 1..1 and carries the div's rules)
    Row("txt-1", "us-core-careplan", "CarePlan.text.div",
        careplan(text=div(f"<div {XHTML}><p>Plan: <b>walk daily</b></p></div>")),
        careplan(text=div(f"<div {XHTML}><p>Plan</p><script>steal()</script></div>"))),
    Row("txt-2", "us-core-careplan", "CarePlan.text.div",
        careplan(text=div(f"<div {XHTML}><p>Plan: walk daily</p></div>")),
        careplan(text=div(f"<div {XHTML}><p>  </p></div>"))),
]


# --- the package ---------------------------------------------------------------------------------

class Constraint(NamedTuple):
    key: str
    severity: str
    human: str
    expression: str
    path: str


@cache
def _package(tgz: str) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if name.startswith("StructureDefinition-") and name.endswith(".json"):
                handle = tar.extractfile(member)
                assert handle is not None
                sd = json.load(handle)
                out[sd["id"]] = sd
    return out


@pytest.fixture(scope="module")
def us_core(corpus: Path) -> dict[str, JSON]:
    return _package(str(corpus / "us-core" / "packages" / "hl7.fhir.us.core-7.0.0.tgz"))


def constraint(sds: dict[str, JSON], row: Row) -> Constraint:
    for element in sds[row.profile]["snapshot"]["element"]:
        if element["id"] != row.element:
            continue
        for c in element.get("constraint", []):
            if c["key"] == row.key:
                return Constraint(c["key"], c["severity"], c["human"], c["expression"],
                                  element["path"])
    raise AssertionError(f"{row.key} is not on {row.profile} {row.element}")


# --- finding the elements a constraint sits on (independent of the engine) -----------------------

def foci(resource: JSON, element_path: str) -> Iterator[tuple[Any, str]]:
    """(node, FHIRPath type hint) for every node at ``element_path`` (``Observation.value[x]``)."""
    parts = element_path.split(".")
    nodes: list[tuple[Any, str]] = [(resource, parts[0])]
    for part in parts[1:]:
        nxt: list[tuple[Any, str]] = []
        for node, path in nodes:
            if not isinstance(node, dict):
                continue
            if part.endswith("[x]"):
                stem = part[:-3]
                for key, value in node.items():
                    suffix = key[len(stem):]
                    if key.startswith(stem) and suffix[:1].isupper():
                        kind = suffix[0].lower() + suffix[1:]
                        hint = kind if kind in PRIMITIVES else suffix
                        nxt.extend((v, hint) for v in (value if isinstance(value, list)
                                                       else [value]))
            elif part in node:
                value = node[part]
                nxt.extend((v, f"{path}.{part}") for v in (value if isinstance(value, list)
                                                           else [value]))
        nodes = nxt
    return iter(nodes)


def verdicts(c: Constraint, resource: JSON) -> list[bool | None]:
    return [evaluate(c.expression, node, resource, path=hint, key=c.key)
            for node, hint in foci(resource, c.path)]


def ids(row: Row) -> str:
    return f"{row.key}@{row.profile}"


# --- the tests ----------------------------------------------------------------------------------

def test_the_table_covers_every_invariant_of_us_core_7(us_core):
    """Every (key, expression) in the package's snapshots has a row (ele-1/ext-1 once)."""
    in_package: dict[tuple[str, str], set[str]] = {}
    for sd in us_core.values():
        for element in sd.get("snapshot", {}).get("element", []):
            for c in element.get("constraint", []):
                in_package.setdefault((c["key"], c["expression"]), set()).add(sd["id"])
    covered = {(r.key, constraint(us_core, r).expression) for r in ROWS}
    missing = sorted(set(in_package) - covered)
    assert not missing, f"invariants with no row: {missing}"
    # the issue names these
    for key in ("us-core-20", "us-core-22", "us-core-24", "us-core-25", "pd-1", "us-core-13",
                "us-core-26"):
        assert any(r.key == key for r in ROWS)
    assert len(in_package) >= 60


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_the_invariant_holds_on_the_passing_resource(us_core, row):
    c = constraint(us_core, row)
    found = verdicts(c, row.passing)
    assert found, f"{row.key}: the passing resource has no {c.path}"
    assert all(v is True for v in found), f"{row.key} ({c.human}): {found} on {row.passing}"


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_the_invariant_fails_on_the_failing_resource(us_core, row):
    c = constraint(us_core, row)
    found = verdicts(c, row.failing)
    assert False in found, f"{row.key} ({c.human}): {found} on {row.failing}"
    assert None not in found


def test_the_rows_differ_from_their_failing_twin_only_where_meant():
    """A guard on the table itself: no row's passing and failing resources are the same."""
    for row in ROWS:
        assert row.passing != row.failing, row.key
        assert copy.deepcopy(row.passing)["resourceType"] == row.failing["resourceType"]


# --- the engine names the key --------------------------------------------------------------------

def _validator() -> Any:
    from profile_validators import validator

    return validator()


# Where the engine (branch w1) misses a row: findings, reported to w1. Strict: a fix makes the
# test pass, and then the mark must go.
ENGINE_MISSES: dict[str, str] = {}


def _engine_row(row: Row) -> Any:
    reason = ENGINE_MISSES.get(row.key)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(row, id=ids(row), marks=marks)


@pytest.mark.parametrize("row", [_engine_row(r) for r in ROWS])
def test_the_engine_names_the_broken_invariant(us_core, row):
    validator = _validator()
    c = constraint(us_core, row)
    url = US_CORE + row.profile

    def reported(resource: JSON) -> list[Any]:
        return [i for i in validator.validate(resource, profiles=[url])
                if i.rule == row.key and i.severity in ("error", "warning")]

    broken = reported(row.failing)
    assert broken, f"{row.key} ({c.human}) not reported"
    assert {i.severity for i in broken} == {c.severity}
    kept = reported(row.passing)
    assert not kept, f"{row.key} reported on the passing resource: {kept}"


# --- every invariant on real resources: the examples keep them --------------------------------

def _all_verdicts(resource: JSON, sd: JSON) -> Iterator[tuple[str, str, bool | None]]:
    """(key, severity, verdict) of every invariant of ``sd`` on every node it sits on."""
    seen: set[tuple[str, str]] = set()
    for element in sd["snapshot"]["element"]:
        if ":" in element["id"]:
            continue  # a slice repeats its element's invariants on fewer nodes
        for c in element.get("constraint", []):
            if (c["key"], element["path"]) in seen:
                continue
            seen.add((c["key"], element["path"]))
            for node, hint in foci(resource, element["path"]):
                yield c["key"], c["severity"], evaluate(c["expression"], node, resource,
                                                        path=hint, key=c["key"])


def test_every_invariant_holds_on_the_us_core_examples(corpus, us_core):
    """The package's own examples keep every invariant of the profiles they claim; the only
    exception is dom-6 (a warning: 'should have narrative') on the examples without text."""
    by_url = {sd["url"]: sd for sd in us_core.values()}
    broken: set[tuple[str, str]] = set()
    count = 0
    without_text = set()
    for path in sorted((corpus / "us-core" / "7.0.0" / "examples").glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource["resourceType"] == "Bundle":
            continue
        if "text" not in resource:
            without_text.add(path.stem)
        for url in resource.get("meta", {}).get("profile", []):
            sd = by_url.get(url.split("|")[0])
            if sd is None:
                continue
            for key, _severity, verdict in _all_verdicts(resource, sd):
                count += 1
                if verdict is not True:
                    broken.add((path.stem, f"{key}:{verdict}"))
    assert count > 4000
    assert broken == {(name, "dom-6:False") for name in without_text}


def test_every_invariant_holds_on_the_r4_examples(corpus):
    """The official R4 examples keep every invariant of their base resource definitions
    (the corpus's R4 StructureDefinitions): none violated, none undecidable."""
    base = {}
    for path in (corpus / "fhir-r4-core" / "resources").glob("StructureDefinition-*.json"):
        sd = json.loads(path.read_text(encoding="utf-8"))
        base[sd["type"]] = sd
    broken = []
    count = 0
    for path in sorted((corpus / "fhir-r4-examples").glob("*/*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        sd = base.get(resource["resourceType"])
        if sd is None:
            continue
        for key, _severity, verdict in _all_verdicts(resource, sd):
            count += 1
            if verdict is not True:
                broken.append((path.stem, key, verdict))
    assert count > 2000
    assert not broken


# --- through `mafhir validate`: an error fails the run, a warning does not --------------------

@pytest.mark.parametrize(("key", "exit_code"), [("pd-1", 1), ("us-core-20", 1), ("us-core-25", 0)])
def test_mafhir_validate_names_the_invariant_and_exits_by_its_severity(tmp_path, us_core, key,
                                                                       exit_code):
    from click.testing import CliRunner

    from mafhir.cli.main import build_cli

    row = next(r for r in ROWS if r.key == key)
    url = US_CORE + row.profile
    failing = {**row.failing, "meta": {"profile": [url]}}
    path = tmp_path / f"{key}.json"
    path.write_text(json.dumps(failing), encoding="utf-8")
    result = CliRunner().invoke(build_cli(), ["validate", "--json", str(path)])
    assert result.exit_code == exit_code, result.output
    outcome = json.loads(result.output.strip().splitlines()[0])
    named = [i for i in outcome["issue"] if i["diagnostics"].startswith(f"{key}:")]
    assert [i["severity"] for i in named] == [constraint(us_core, row).severity]
    assert named[0]["code"] == "invariant"
    passing = tmp_path / f"{key}-ok.json"
    passing.write_text(json.dumps({**row.passing, "meta": {"profile": [url]}}), encoding="utf-8")
    result = CliRunner().invoke(build_cli(), ["validate", "--json", str(passing)])
    assert f"{key}:" not in result.output


# --- the fast path and fhirpathpy answer alike ---------------------------------------------------

def _through_fhirpathpy(expression: str, node: Any, resource: JSON, hint: str | None,
                        key: str) -> bool | None:
    """``evaluate`` with its fast path switched off: fhirpathpy answers every expression."""
    from unittest import mock

    from mafhir.profiles import fhirpath

    with mock.patch.object(fhirpath, "_fast", lambda expression: None):
        return evaluate(expression, node, resource, path=hint, key=key)


def test_the_fast_path_agrees_with_fhirpathpy_on_every_example(corpus, us_core):
    """Every invariant the fast path takes, on every node of every US Core 7.0.0 and R4
    example it sits on, typed and untyped: the same answer as fhirpathpy's."""
    from mafhir.profiles.fhirpath import _fast

    by_url = {sd["url"]: sd for sd in us_core.values()}
    base = {}
    for path in (corpus / "fhir-r4-core" / "resources").glob("StructureDefinition-*.json"):
        sd = json.loads(path.read_text(encoding="utf-8"))
        base[sd["type"]] = sd
    cases = []
    for path in sorted((corpus / "us-core" / "7.0.0" / "examples").glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        cases.extend((resource, by_url[u.split("|")[0]])
                     for u in resource.get("meta", {}).get("profile", [])
                     if u.split("|")[0] in by_url)
    for path in sorted((corpus / "fhir-r4-examples").glob("*/*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource["resourceType"] in base:
            cases.append((resource, base[resource["resourceType"]]))
    compared = Counter()
    for resource, sd in cases:
        for element in sd["snapshot"]["element"]:
            for c in element.get("constraint", []):
                if ":" in element["id"] or _fast(c["expression"]) is None:
                    continue
                for node, hint in foci(resource, element["path"]):
                    for typed in (hint, None):
                        fast = evaluate(c["expression"], node, resource, path=typed,
                                        key=c["key"])
                        slow = _through_fhirpathpy(c["expression"], node, resource, typed,
                                                   c["key"])
                        assert fast is slow, (c["key"], typed, node)
                        compared[c["key"]] += 1
    assert sum(compared.values()) > 3000
    assert len(compared) >= 25


@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_the_fast_path_agrees_with_fhirpathpy_on_the_table(us_core, row):
    c = constraint(us_core, row)
    for resource in (row.passing, row.failing):
        for node, hint in foci(resource, c.path):
            for typed in (hint, None):
                assert evaluate(c.expression, node, resource, path=typed, key=c.key) is \
                    _through_fhirpathpy(c.expression, node, resource, typed, c.key)
