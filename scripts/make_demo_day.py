"""Write fixtures/clinic-day/: the synthetic clinic and one MA's day, in task order.

Everything here is made up (names, MRNs, NPIs with valid check digits, card numbers);
it is the project's own synthetic data. Run: python scripts/make_demo_day.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "clinic-day"
DAY = "2026-11-27"
TZ = "-05:00"
MRN = "https://maple-street-clinic.example.org/fhir/id/mrn"

CLINIC = {
    "name": "Maple Street Family Clinic",
    "system": "https://maple-street-clinic.example.org/fhir/id",
    "npi": "1234567893",
    "phone": "555-201-4400",
    "address_line": "100 Maple Street",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
}
DR_OKAFOR = {"npi": "1245319599", "family": "Okafor", "given": ["Grace"], "prefix": "Dr."}
DR_LINDQVIST = {"npi": "1932102084", "family": "Lindqvist", "given": ["Erik"], "prefix": "Dr."}
RN_PATEL = {"npi": "1467560003", "family": "Patel", "given": ["Priya"], "suffix": "RN"}
ROOM = {1: {"id": "exam-1", "name": "Exam Room 1"}, 2: {"id": "exam-2", "name": "Exam Room 2"}}


def t(hhmm: str) -> str:
    return f"{DAY}T{hhmm}:00{TZ}"


def known(mrn: str) -> dict:
    return {"mrn": mrn, "system": MRN}


def person(mrn: str, family: str, given: str, gender: str, born: str) -> dict:
    return {"mrn": mrn, "system": MRN, "family": family, "given": [given], "gender": gender,
            "birth_date": born}


#: The clinic's patients. A task carries the demographics the first time a patient appears
#: in the day (a conditional create: harmless if the EHR has them already) and the MRN
#: alone after that (a conditional reference), as a front desk system would send them.
PATIENTS = {
    "ana": {"mrn": "MS-10021", "system": MRN, "family": "Rivera", "given": ["Ana", "Lucia"],
            "gender": "female", "birth_date": "2026-01-19", "phone": "555-201-7788",
            "language": "es"},
    "marcus": {"mrn": "MS-10022", "system": MRN, "family": "Bell", "given": ["Marcus"],
               "gender": "male", "birth_date": "1971-06-02", "phone": "555-201-1180"},
    "june": person("MS-10023", "Kowalski", "June", "female", "1947-12-11"),
    "omar": {"mrn": "MS-10024", "system": MRN, "family": "Haddad", "given": ["Omar"],
             "gender": "male", "birth_date": "1988-09-14", "email": "omar.h@example.org",
             "address": {"line": ["12 Birch Lane"], "city": "Springfield", "state": "IL",
                         "postal_code": "62704"}},
    "lena": person("MS-10025", "Fischer", "Lena", "female", "1994-04-22"),
    "sofia": person("MS-10026", "Mendes", "Sofia", "female", "1966-02-03"),
    "victor": person("MS-10027", "Ivanov", "Victor", "male", "1979-11-30"),
    "hana": person("MS-10028", "Sato", "Hana", "female", "2001-07-15"),
    "peter": {"mrn": "MS-10029", "system": MRN, "family": "Novak", "given": ["Peter"],
              "gender": "male", "birth_date": "1959-03-30"},
    "rosa": person("MS-10030", "Alvarez", "Rosa", "female", "1983-05-09"),
    "eli": {"mrn": "MS-10031", "system": MRN, "family": "Brooks", "given": ["Eli"],
            "gender": "male", "birth_date": "2015-08-08"},
    "tom": person("MS-10032", "Whitfield", "Tom", "male", "1952-01-27"),
    # born two days ago and not yet named: known by MRN, birth date and sex
    "baby": {"mrn": "MS-10033", "system": MRN, "gender": "female", "birth_date": "2026-11-25"},
}


def pat(who: str) -> dict:
    return PATIENTS[who]


def first_time_demographics(tasks: list[dict]) -> list[dict]:
    """Demographics on each patient's first task of the day, the MRN alone after."""
    seen: set[str] = set()
    for task in tasks:
        mrn = task["patient"]["mrn"]
        if mrn in seen:
            task["patient"] = known(mrn)
        seen.add(mrn)
    return tasks


def appt(n: int, who: str, action: str, start: str, end: str, doctor=DR_OKAFOR, room=1,
         **extra) -> dict:
    return {"task": "appointment", "id": f"appt-{n}-{action}", "appointment_id": f"appt-{n}",
            "action": action, "patient": pat(who), "start": t(start), "end": t(end),
            "service_type": {"system": "snomed", "code": "394814009",
                             "display": "General practice"},
            "practitioner": doctor, "location": ROOM[room], **extra}


def visit(n: int, who: str, start: str, end: str, checkin: str, roomed: str, done: str,
          reason: str, kind: str = "ROUTINE", **extra) -> list[dict]:
    """An appointment through check-in, start and completion."""
    common = {"appointment_type": kind, "reason": reason, **extra}
    return [
        appt(n, who, "check_in", start, end, current_status="booked", at=t(checkin), **common),
        appt(n, who, "start", start, end, at=t(roomed), checked_in_at=t(checkin), **common),
    ], appt(n, who, "complete", start, end, at=t(done), checked_in_at=t(checkin),
            started_at=t(roomed), **common)


def vitals(n: int, who: str, at: str, **measures) -> dict:
    return {"task": "vitals", "id": f"vitals-{n}", "patient": pat(who),
            "effective": t(at), "visit": f"appt-{n}", **measures}


def shot(task_id: str, who: str, at: str, n: int, **fields) -> dict:
    return {"task": "immunization", "id": task_id, "patient": pat(who),
            "occurred": t(at), "visit": f"appt-{n}", "location": ROOM[1], **fields}


def poc(task_id: str, who: str, at: str, test: str, n: int | None = None, **fields) -> dict:
    task = {"task": "poc_test", "id": task_id, "patient": pat(who), "test": test,
            "effective": t(at), "performer": RN_PATEL, **fields}
    if n is not None:
        task["visit"] = f"appt-{n}"
    return task


def kit(name: str, maker: str, lot: str, expires: str) -> dict:
    return {"name": name, "manufacturer": maker, "lot": lot, "expiration_date": expires}


HEMOCUE = kit("HemoCue Hb 201+", "HemoCue AB", "HB2611A", "2027-03-31")
LEADCARE = kit("LeadCare II", "Magellan Diagnostics", "LC24-118", "2027-01-31")
GLUCOMETER = kit("Accu-Chek Guide", "Roche", "GU4471", "2027-05-31")
A1C_KIT = kit("A1CNow+", "PTS Diagnostics", "A1N-3390", "2027-02-28")
INR_METER = kit("CoaguChek XS", "Roche", "CX-8812", "2027-01-31")
DIPSTICK = kit("Multistix 10 SG", "Siemens Healthineers", "MX-5520", "2027-04-30")
FLU_COVID = kit("Sofia 2 Flu + SARS Antigen FIA", "Quidel", "FS-77120", "2027-08-31")
STREP_KIT = kit("QuickVue Strep A", "Quidel", "QS-2291", "2027-06-30")
HCG_KIT = kit("QuickVue+ One-Step hCG", "Quidel", "HC-1044", "2027-06-30")


def tracing_pdf(title: str) -> str:
    """A one-page PDF (made up, like everything here) standing for the machine's print-out,
    base64-encoded as the ekg task takes it."""
    text = f"BT /F1 12 Tf 72 720 Td ({title}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 792 612] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return base64.b64encode(out).decode("ascii")


FLU = {"vaccine": {"cvx": "140", "ndc": "49281-0425-50"}, "manufacturer": "PMC",
       "lot_number": "UT8531AA", "expiration_date": "2027-06-30", "dose_ml": 0.5, "site": "LD",
       "route": "IM", "administered_by": RN_PATEL, "ordered_by": DR_OKAFOR,
       "vis": [{"document": "253088698300010311250131", "published": "2025-01-31",
                "presented": DAY}], "funding_source": "PHC70", "eligibility": "V01"}


def intake(n: int, who: str, at: str, **parts) -> dict:
    return {"task": "intake", "id": f"intake-{n}", "patient": pat(who), "recorded": t(at),
            "visit": f"appt-{n}", "recorder": RN_PATEL, **parts}


def injection(task_id: str, who: str, at: str, n: int, **fields) -> dict:
    return {"task": "injection", "id": task_id, "patient": pat(who), "occurred": t(at),
            "visit": f"appt-{n}", "administered_by": RN_PATEL, "ordered_by": DR_OKAFOR,
            **fields}


EKG_MARCUS = {"task": "ekg", "id": "ekg-202", "patient": {"mrn": "MS-10022", "system": MRN},
              "effective": t("09:10"), "visit": "appt-202", "performer": RN_PATEL,
              "tracing": {"pdf_base64": tracing_pdf("Resting 12-lead EKG, MS-10022"),
                          "title": "Resting 12-lead EKG"},
              "heart_rate": 78, "pr_ms": 168, "qrs_ms": 94, "qt_ms": 372, "qtc_ms": 424,
              "axis_deg": 12}


def day() -> list[dict]:
    tasks: list[dict] = []
    # 07:45 — front desk books today's add-ons and last-minute changes
    tasks.append(appt(301, "omar", "book", "10:00", "10:30", room=2, doctor=DR_LINDQVIST,
                      appointment_type="CHECKUP", reason="New patient physical"))
    tasks.append(appt(302, "lena", "cancel", "11:00", "11:20", current_status="booked",
                      cancel_reason="pat-lt"))
    tasks.append(appt(303, "sofia", "reschedule", "15:00", "15:20", current_status="booked",
                      appointment_type="FOLLOWUP", reason="Blood pressure follow-up"))
    # insurance at the front desk
    tasks.append({
        "task": "coverage", "id": "cov-omar-1", "patient": pat("omar"),
        "payer": {"id": "60054", "name": "Aetna"}, "member_id": "W284619035",
        "group": {"id": "GRP-88213", "name": "Springfield Schools"},
        "plan": {"id": "PPO-GOLD", "name": "Aetna Open Access Gold PPO"},
        "subscriber": {"relationship": "self"}, "period": {"start": "2026-01-01"},
        "order": "primary", "payer_type": "5",
        "copays": {"primary_care": 25, "specialist": 50, "urgent_care": 75},
        "eligibility": {"checked_at": t("07:58"), "service_type": "30", "active": True,
                        "copay": 25, "coinsurance_percent": 20,
                        "deductible": {"amount": 1500, "remaining": 400}},
    })
    tasks.append({  # Marcus changed plans at his employer: same payer and member id
        "task": "coverage", "id": "cov-marcus-2", "patient": pat("marcus"),
        "payer": {"id": "87726", "name": "UnitedHealthcare"}, "member_id": "UH7730021",
        "group": {"id": "GRP-4410", "name": "Bell Logistics"},
        "plan": {"id": "HDHP-2026", "name": "Choice Plus HDHP"},
        "subscriber": {"relationship": "self"}, "period": {"start": "2026-11-01"},
        "order": "primary", "payer_type": "5",
        "eligibility": {"checked_at": t("08:05"), "active": True, "coinsurance_percent": 10,
                        "deductible": {"amount": 3200, "remaining": 3200}},
    })
    tasks.append({  # Eli is on his mother's plan; Medicaid is secondary
        "task": "coverage", "id": "cov-eli-2", "patient": pat("eli"),
        "payer": {"id": "77027", "name": "Illinois Medicaid"}, "member_id": "IL55012093",
        "plan": {"name": "HealthChoice Illinois"},  # no plan number on the card
        "subscriber": {"relationship": "self"}, "period": {"start": "2026-07-01"},
        "order": "secondary", "payer_type": "2",
        "eligibility": {"checked_at": t("08:10"), "active": True, "copay": 0},
    })
    # 08:30 — infant well visit: Ana, 10 months
    first, done = visit(201, "ana", "08:30", "09:00", "08:24", "08:33", "09:05",
                        "Well child visit, 10 months", kind="CHECKUP")
    tasks.extend(first)
    tasks.append(vitals(201, "ana", "08:36", weight={"lb": 19, "oz": 6},
                        length={"value": 72.5, "unit": "cm"},
                        head_circumference={"value": 44.1, "unit": "cm"},
                        weight_for_length_percentile={"value": 48,
                                                      "chart": "WHO Girls, 0-2 years Chart"},
                        head_circumference_percentile={"value": 55,
                                                       "chart": "WHO Girls, 0-2 years Chart"},
                        temperature={"value": 98.9, "unit": "[degF]", "site": "axillary"},
                        heart_rate={"value": 122}, respiratory_rate={"value": 30},
                        performer=RN_PATEL))
    tasks.append(poc("poc-201-hgb", "ana", "08:45", "hemoglobin", 201, value=11.8, kit=HEMOCUE))
    tasks.append(poc("poc-201-lead", "ana", "08:47", "lead", 201, value=3.3, comparator="<",
                     kit=LEADCARE))
    tasks.append(shot("imm-201-dtap", "ana", "08:52", 201, vaccine={"cvx": "20"},
                      manufacturer="SKB", lot_number="3K7X2", expiration_date="2027-02-28",
                      dose_ml=0.5, site="LT", route="IM", administered_by=RN_PATEL,
                      ordered_by=DR_OKAFOR, funding_source="VXC51", eligibility="V02",
                      vis=[{"document": "253088698300026411230724", "published": "2023-07-24",
                            "presented": DAY}]))
    tasks.append(shot("imm-201-flu", "ana", "08:54", 201, **{
        **FLU, "vaccine": {"cvx": "140"}, "dose_ml": 0.5, "site": "RT",
        "funding_source": "VXC51", "eligibility": "V02"}))
    tasks.append(done)
    # 09:00 — Marcus, hypertension follow-up; flu shot yes, Tdap refused
    first, done = visit(202, "marcus", "09:00", "09:20", "08:55", "09:02", "09:24",
                        "Hypertension follow-up", kind="FOLLOWUP")
    tasks.extend(first)
    tasks.append(vitals(202, "marcus", "09:04",
                        blood_pressure={"systolic": 148, "diastolic": 92, "position": "sitting",
                                        "cuff_site": "left-arm"},
                        heart_rate={"value": 78}, respiratory_rate={"value": 16},
                        temperature={"value": 98.2, "unit": "[degF]", "site": "oral"},
                        spo2={"value": 97, "o2_flow": 0},
                        height={"value": 70, "unit": "[in_i]"},
                        weight={"value": 212, "unit": "[lb_av]"}, pain={"score": 0},
                        performer=RN_PATEL))
    tasks.append(poc("poc-202-glucose", "marcus", "09:06", "glucose", 202, value=128,
                     fasting=True, kit=GLUCOMETER))
    tasks.append(intake(
        202, "marcus", "09:08",
        allergies=[{"id": "alg-marcus-1", "substance": {"system": "rxnorm", "code": "7980",
                                                        "display": "Penicillin G"},
                    "category": "medication", "type": "allergy", "criticality": "high",
                    "reactions": [{"manifestation": {"system": "snomed", "code": "271807003",
                                                     "display": "Eruption of skin"},
                                   "severity": "moderate"}]}],
        medications=[{"id": "med-marcus-1",
                      "medication": {"system": "rxnorm", "code": "197361",
                                     "display": "amlodipine 5 MG Oral Tablet"},
                      "dosage": "1 tablet by mouth daily"}],
        problems=[{"id": "prb-marcus-1", "code": {"system": "icd-10-cm", "code": "I10",
                                                  "display": "Essential (primary) hypertension"},
                   "onset": "2021-04-12"}],
        smoking="former", screenings=[{"instrument": "phq-2", "answers": [0, 1], "total": 1}]))
    tasks.append(poc("poc-202-a1c", "marcus", "09:08", "a1c", 202, value=7.2, kit=A1C_KIT))
    tasks.append(EKG_MARCUS)
    tasks.append(shot("imm-202-flu", "marcus", "09:15", 202, **FLU))
    tasks.append({"task": "immunization", "id": "imm-202-tdap",
                  "patient": pat("marcus"), "status": "not-given",
                  "vaccine": {"cvx": "115"}, "occurred": t("09:16"),
                  "reason_not_given": "PATOBJ", "ordered_by": DR_OKAFOR, "visit": "appt-202"})
    tasks.append(done)
    # 09:30 — June: declines the BP check today
    first, done = visit(203, "june", "09:30", "09:50", "09:26", "09:33", "09:55",
                        "Medication review", kind="FOLLOWUP")
    tasks.extend(first)
    tasks.append(vitals(203, "june", "09:35",
                        blood_pressure={"not_obtained": "patient-refused"},
                        heart_rate={"value": 70}, spo2={"value": 98},
                        weight={"value": 64.2, "unit": "kg"}))
    tasks.append(intake(
        203, "june", "09:38",
        allergies=[{"id": "alg-june-1",  # a drug class, as US Core's own example
                    "substance": {"system": "snomed", "code": "763875007",
                                  "display": "Product containing sulfonamide (product)"},
                    "category": "medication", "verification": "unconfirmed",
                    "reactions": [{"manifestation": {"text": "hives"}, "severity": "mild"}]}],
        medications=[{"id": "med-june-1", "medication": {"text": "water pill"},
                      "dosage": "1 every morning"},
                     {"id": "med-june-2", "medication": {"text": "vitamin D"},
                      "self_prescribed": True}],
        problems=[{"id": "prb-june-1", "code": {"system": "snomed", "code": "44054006",
                                                "display": "Diabetes mellitus type 2"}}],
        smoking="never",
        screenings=[{"instrument": "phq-9", "answers": [1, 1, 0, 2, 1, 0, 1, 0, 0],
                     "total": 6, "difficulty": "somewhat difficult"}]))
    tasks.append(poc("poc-203-inr", "june", "09:40", "inr", 203, value=2.6, kit=INR_METER,
                     reference_range={"low": 2.0, "high": 3.0},
                     note="On warfarin; therapeutic range 2.0-3.0"))
    tasks.append(injection("inj-203-b12", "june", "09:48", 203,
                           medication={"rxnorm": "309594", "ndc": "0143-9621-25",
                                       "name": "cyanocobalamin 1000 mcg/mL"},
                           dose={"value": 1000, "unit": "mcg"}, route="IM", site="LD",
                           lot_number="B12-4471", expiration_date="2027-03-31"))
    tasks.append(done)
    # 10:00 — Omar, new patient physical (booked this morning)
    first, done = visit(301, "omar", "10:00", "10:30", "09:52", "10:04", "10:41",
                        "New patient physical", kind="CHECKUP", doctor=DR_LINDQVIST, room=2)
    first[0] = {**first[0], "current_status": None}
    first[0] = {k: v for k, v in first[0].items() if v is not None}
    tasks.extend(first)
    tasks.append(vitals(301, "omar", "10:06",
                        blood_pressure={"systolic": 118, "diastolic": 76},
                        heart_rate={"value": 64}, respiratory_rate={"value": 14},
                        temperature={"value": 36.8, "unit": "Cel", "site": "tympanic"},
                        spo2={"value": 99}, height={"value": 181, "unit": "cm"},
                        weight={"value": 79.4, "unit": "kg"}, bmi={"value": 24.2},
                        pain={"score": 2}))
    tasks.append(intake(
        301, "omar", "10:12", no_known_allergies=True, smoking="never",
        screenings=[{"instrument": "gad-7", "answers": [1, 0, 1, 0, 0, 1, 0]},
                    {"instrument": "hunger-vital-sign",
                     "answers": ["never true", "never true"]}]))
    tasks.append({"task": "immunization", "id": "imm-301-mmr-history",
                  "patient": pat("omar"), "status": "historical",
                  "vaccine": {"cvx": "03"}, "occurred_date": "1989-10-02",
                  "report_origin": "record", "note": "From the patient's childhood record"})
    tasks.append(poc("poc-301-ua", "omar", "10:15", "urine_dipstick", 301, kit=DIPSTICK,
                     dipstick={"specific_gravity": 1.020, "ph": 6.0, "protein": "negative",
                               "glucose": "negative", "ketones": "negative",
                               "bilirubin": "negative", "blood": "negative",
                               "nitrite": "negative", "leukocytes": "negative",
                               "urobilinogen": 0.2}))
    tasks.append({"task": "skin_test", "id": "tst-301", "patient": pat("omar"),
                  "placement": {"placed": t("10:20"), "site": "left-forearm",
                                "product": "Tubersol", "lot": "C6021AA",
                                "expiration_date": "2027-05-31", "performer": RN_PATEL,
                                "visit": "appt-301"},
                  "note": "Pre-employment screening; read on Monday"})
    tasks.append(done)
    # 10:30 — Peter: febrile, high but possible temperature (warning, not an error)
    first, done = visit(204, "peter", "10:30", "10:50", "10:27", "10:35", "10:58",
                        "Fever and cough", kind="WALKIN", room=1)
    first[0] = {**first[0], "current_status": None}
    first[0] = {k: v for k, v in first[0].items() if v is not None}
    tasks.insert(0, appt(204, "peter", "book", "10:30", "10:50", appointment_type="WALKIN",
                         reason="Fever and cough"))
    tasks.extend(first)
    tasks.append(vitals(204, "peter", "10:37",
                        temperature={"value": 104.0, "unit": "[degF]", "site": "oral"},
                        heart_rate={"value": 112}, respiratory_rate={"value": 22},
                        spo2={"value": 93}, blood_pressure={"systolic": 132, "diastolic": 84}))
    nurse = {"performer": {"npi": RN_PATEL["npi"]}}  # the EHR knows her by NPI
    tasks.append(poc("poc-204-flu", "peter", "10:44", "influenza", 204, kit=FLU_COVID,
                     influenza_a="positive", influenza_b="negative", **nurse))
    tasks.append(poc("poc-204-covid", "peter", "10:44", "covid", 204, kit=FLU_COVID,
                     result="negative", **nurse))
    tasks.append(poc("poc-204-strep", "peter", "10:46", "strep", 204, kit=STREP_KIT,
                     result="negative", **nurse))
    tasks.append(done)
    # 11:00 — Victor and Hana do not come
    tasks.append(appt(205, "victor", "no_show", "11:00", "11:20", current_status="booked"))
    tasks.append(appt(206, "hana", "no_show", "11:20", "11:40", current_status="booked"))
    # 11:45 — a two-day-old, not yet named: weight and recumbent length, no BMI
    tasks.append({"task": "vitals", "id": "vitals-newborn-1", "patient": pat("baby"),
                  "effective": t("11:45"), "performer": RN_PATEL,
                  "weight": {"value": 3210, "unit": "g"},
                  "length": {"value": 49.5, "unit": "cm"},
                  "head_circumference": {"value": 34.2, "unit": "cm"},
                  "weight_for_length_percentile": {"value": 41,
                                                   "chart": "WHO Girls, 0-2 years Chart"}})
    # 11:50 — Dr. Okafor reads Marcus's EKG: the same task, now signed, becomes final
    tasks.append({**EKG_MARCUS, "signed": {
        "by": {"npi": DR_OKAFOR["npi"]}, "at": t("11:50"),
        "impression": "Normal sinus rhythm. Normal axis. No acute ST-T changes."}})
    # 13:00 — Eli, sports physical, Tdap given, HPV given
    first, done = visit(207, "eli", "13:00", "13:30", "12:51", "13:03", "13:36",
                        "Sports physical", kind="CHECKUP", room=2, doctor=DR_LINDQVIST)
    tasks.extend(first)
    tasks.append(vitals(207, "eli", "13:05",
                        blood_pressure={"systolic": 108, "diastolic": 66},
                        heart_rate={"value": 80}, height={"value": 59.5, "unit": "[in_i]"},
                        weight={"value": 88, "unit": "[lb_av]"},
                        temperature={"value": 98.4, "unit": "[degF]"}))
    tasks.append(shot("imm-207-tdap", "eli", "13:20", 207, vaccine={"cvx": "115"},
                      manufacturer="SKB", lot_number="T9C44", expiration_date="2027-09-30",
                      dose_ml=0.5, site="LD", route="IM", administered_by=RN_PATEL,
                      ordered_by=DR_LINDQVIST, funding_source="VXC51", eligibility="V02",
                      vis=[{"document_type": "Tdap (Tetanus, Diphtheria, Pertussis) Vaccine "
                                             "VIS", "published": "2025-01-31",
                            "presented": DAY}]))
    tasks.append(shot("imm-207-hpv", "eli", "13:22", 207, vaccine={"cvx": "165"},
                      manufacturer="MSD", lot_number="Y012345", expiration_date="2027-04-30",
                      dose_ml=0.5, site="RD", route="IM", administered_by=RN_PATEL,
                      ordered_by=DR_LINDQVIST, funding_source="VXC51", eligibility="V02",
                      vis=[{"document": "253088698300029511210806", "published": "2021-08-06",
                            "presented": DAY}]))
    tasks.append(done)
    # 14:00 — Rosa checks in; her vitals were typed into a tablet without a time zone
    tasks.append(appt(208, "rosa", "check_in", "14:00", "14:20", current_status="booked",
                      at=t("13:55")))
    tasks.append({"task": "vitals", "id": "vitals-208", "patient": pat("rosa"),
                  "effective": f"{DAY}T14:03:00", "visit": "appt-208",
                  "heart_rate": {"value": 74}})
    tasks.append(intake(208, "rosa", "14:05", pregnancy_status="not-pregnant",
                        pregnancy_intent="does-not-want", no_known_drug_allergies=True))
    tasks.append({"task": "skin_test", "id": "tst-208", "patient": pat("rosa"),
                  "placement": {"placed": "2026-11-25T13:30:00-05:00", "site": "right-forearm",
                                "product": "Aplisol", "lot": "A3318B",
                                "expiration_date": "2027-03-31", "performer": RN_PATEL},
                  "reading": {"read": t("14:05"), "induration_mm": 4, "positive_from_mm": 10,
                              "reader": RN_PATEL, "visit": "appt-208"},
                  "note": "Annual health care worker screening"})
    tasks.append(poc("poc-208-hcg", "rosa", "14:08", "urine_hcg", 208, kit=HCG_KIT,
                     result="negative"))
    tasks.append(injection("inj-208-depo", "rosa", "14:12", 208,
                           medication={"rxnorm": "1000126",
                                       "name": "medroxyprogesterone acetate 150 mg/mL"},
                           dose={"value": 150, "unit": "mg"}, route="IM", site="RG",
                           lot_number="DP7720", expiration_date="2028-01-31"))
    # 16:00 — Tom books a follow-up for next week
    tasks.append({**appt(209, "tom", "book", "09:00", "09:20", appointment_type="FOLLOWUP",
                         reason="Lab review"),
                  "start": "2026-12-04T09:00:00-05:00", "end": "2026-12-04T09:20:00-05:00"})
    tasks.extend(front_office())
    return tasks


# --- issue 18 part B (w10): the front office at the end of the day ---
def front_office() -> list[dict]:
    """Calls, a confirmation, a recall and a result call-back, after the last patient.

    Reminders are sent at once here (the day is in the past: one scheduled and not sent
    would never go out, and is refused)."""
    return [
        # 16:05 — Tom's follow-up of next week is confirmed by SMS, sent at once
        {"task": "reminder", "id": "rem-209-confirm", "patient": pat("tom"),
         "purpose": "appointment_confirmation", "channel": "sms", "to": "217-555-0191",
         "scheduled": t("16:05"), "sent": t("16:05"),
         "appointment": {"id": "appt-209", "start": "2026-12-04T09:00:00-05:00",
                         "end": "2026-12-04T09:20:00-05:00"}},
        # 16:10 — Victor missed his 11:00: no answer; call again tomorrow
        {"task": "phone_call", "id": "call-205-noshow", "patient": pat("victor"),
         "direction": "outbound", "topic": "appointment",
         "about": [{"type": "appointment", "id": "appt-205"}], "outcome": "no_answer",
         "at": t("16:10"), "follow_up": {"due": "2026-11-30T12:00:00-05:00",
                                         "reason": "Call Victor to reschedule"}},
        # 16:30 — June's A1c to call back by Monday (no focus: the result is not in the
        # day, and a server refuses a reference to what it does not hold)
        {"task": "follow_up", "id": "fu-203-a1c", "patient": pat("june"),
         "created": t("16:30"), "due": "2026-11-30T17:00:00-05:00",
         "reason": "Call back with the A1c result", "owner": RN_PATEL},
        # 16:40 — Eli's second HPV dose is due in six months: a recall letter
        {"task": "reminder", "id": "recall-207-hpv", "patient": pat("eli"),
         "purpose": "recall_vaccine", "channel": "mail", "scheduled": t("16:40"),
         "sent": t("16:40"), "due": "2027-05-27"},
    ]
# --- end issue 18 part B ---


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "clinic.json").write_text(json.dumps(CLINIC, indent=2) + "\n")
    with open(OUT / "day.ndjson", "w") as out:
        for task in first_time_demographics(day()):
            out.write(json.dumps(task) + "\n")


if __name__ == "__main__":
    main()
