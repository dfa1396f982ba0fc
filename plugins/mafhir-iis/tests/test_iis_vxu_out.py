"""VXU^V04 out: every fact where the CDC guide puts it, read back by two parsers.

Expected values are written by hand from the tasks and mapping-reference §3.5–3.7 (and,
for placement, from the NIST VXU of the public corpus); each message is read back with
mafhir's parser and, independently, with python-hl7 (``hl7.parse``).
"""

from __future__ import annotations

from typing import Any

import hl7
import pytest
from helpers_iis import FACILITY, V2CTX, corpus_dir, flu_shot, refusal, resources_of
from mafhir_iis.vxu_out import VxuSettings, vxu_v04

from mafhir.errors import InputError
from mafhir.hl7v2 import parse
from mafhir.resourceset import ResourceSet

SETTINGS = VxuSettings(facility_id=FACILITY, receiving_application="WIR",
                       receiving_facility="WIR", sending_organisation="Maple Clinic",
                       publicity="02", protection="N", registry_status="A")

Where = tuple[str, int, int, int, int]  # segment, occurrence, field, component, sub


def read_both(text: str, expected: dict[Where, str]) -> None:
    """Every expected value, read by mafhir and by python-hl7, equals the hand-written one."""
    ours = parse(text)
    theirs = hl7.parse(text)
    for (seg, occ, fld, comp, sub), want in expected.items():
        segments = ours.all(seg)
        got = segments[occ - 1].get(fld, comp, sub) if occ <= len(segments) else None
        other = str(theirs.extract_field(seg, occ, fld, 1, comp, sub))
        assert (got, other) == (want, want), f"{seg}[{occ}]-{fld}.{comp}.{sub}"


def w(seg: str, fld: int, comp: int = 1, occ: int = 1, sub: int = 1) -> Where:
    return (seg, occ, fld, comp, sub)


def test_given_dose_every_fact_in_its_field():
    text = vxu_v04(resources_of(flu_shot()), V2CTX, SETTINGS)
    assert text.endswith("\r")
    read_both(text, {
        w("MSH", 3): "MAFHIR", w("MSH", 4): FACILITY, w("MSH", 5): "WIR", w("MSH", 6): "WIR",
        w("MSH", 7): "20251001183000+0000", w("MSH", 9, 1): "VXU", w("MSH", 9, 2): "V04",
        w("MSH", 9, 3): "VXU_V04", w("MSH", 11): "P", w("MSH", 12): "2.5.1",
        w("MSH", 15): "ER", w("MSH", 16): "AL", w("MSH", 21, 1): "Z22",
        w("MSH", 21, 2): "CDCPHINVS", w("MSH", 22): "Maple Clinic",
        w("PID", 3, 1): "MRN-42", w("PID", 3, 5): "MR",
        w("PID", 5, 1): "Doe", w("PID", 5, 2): "Jane", w("PID", 5, 3): "Q", w("PID", 5, 7): "L",
        w("PID", 7): "20150304", w("PID", 8): "F",
        w("PID", 11, 1): "12 Elm St", w("PID", 11, 3): "Madison", w("PID", 11, 4): "WI",
        w("PID", 11, 5): "53703",
        w("PID", 13, 2): "PRN", w("PID", 13, 3): "PH", w("PID", 13, 6): "555",
        w("PID", 13, 7): "2013344",
        w("PD1", 11, 1): "02", w("PD1", 11, 3): "HL70215", w("PD1", 12): "N",
        w("PD1", 16): "A",
        w("ORC", 1): "RE", w("ORC", 3, 1): "imm-2025-001", w("ORC", 12, 1): "1245319599",
        w("ORC", 12, 13): "NPI",
        w("RXA", 1): "0", w("RXA", 2): "1", w("RXA", 3): "20251001091500-0400",
        w("RXA", 5, 1): "140", w("RXA", 5, 2): "Influenza, split virus, trivalent, PF",
        w("RXA", 5, 3): "CVX", w("RXA", 5, 4): "49281-0425-50", w("RXA", 5, 6): "NDC",
        w("RXA", 6): "0.5", w("RXA", 7, 1): "mL", w("RXA", 7, 3): "UCUM",
        w("RXA", 9, 1): "00", w("RXA", 9, 3): "NIP001",
        w("RXA", 10, 1): "1234567893", w("RXA", 10, 2): "Rivera", w("RXA", 11, 4): FACILITY,
        w("RXA", 15): "UT8531AA", w("RXA", 16): "20260630",
        w("RXA", 17, 1): "PMC", w("RXA", 17, 3): "MVX",
        w("RXA", 18): "", w("RXA", 20): "CP", w("RXA", 21): "A",
        w("RXR", 1, 1): "C28161", w("RXR", 1, 3): "NCIT", w("RXR", 1, 4): "IM",
        w("RXR", 1, 6): "HL70162", w("RXR", 2, 1): "LD", w("RXR", 2, 3): "HL70163",
        # eligibility, funding, VIS by barcode (document + presented share OBX-4)
        w("OBX", 2, occ=1): "CE", w("OBX", 3, 1, occ=1): "64994-7",
        w("OBX", 5, 1, occ=1): "V03", w("OBX", 5, 3, occ=1): "HL70064",
        w("OBX", 11, occ=1): "F", w("OBX", 14, occ=1): "20251001",
        w("OBX", 17, 1, occ=1): "VXC40",
        w("OBX", 3, 1, occ=2): "30963-3", w("OBX", 5, 1, occ=2): "VXC51",
        w("OBX", 5, 3, occ=2): "CDCPHINVS",
        w("OBX", 3, 1, occ=3): "69764-9", w("OBX", 4, occ=3): "3",
        w("OBX", 5, 1, occ=3): "253088698300010311250131", w("OBX", 5, 3, occ=3): "cdcgs1vis",
        w("OBX", 2, occ=4): "TS", w("OBX", 3, 1, occ=4): "29769-7", w("OBX", 4, occ=4): "3",
        w("OBX", 5, occ=4): "20251001",
    })
    assert [s.name for s in parse(text).segments] == [
        "MSH", "PID", "PD1", "ORC", "RXA", "RXR", "OBX", "OBX", "OBX", "OBX"]


def test_refusal_of_a_minor_is_a_parental_decision_with_no_source():
    text = vxu_v04(resources_of(refusal()), V2CTX, SETTINGS)
    read_both(text, {
        w("RXA", 3): "20251001092000-0400", w("RXA", 5, 1): "140", w("RXA", 6): "999",
        w("RXA", 7): "", w("RXA", 9): "",  # IZ rule: RXA-9 empty unless CP/PA
        w("RXA", 15): "", w("RXA", 18, 1): "00", w("RXA", 18, 2): "Parental decision",
        w("RXA", 18, 3): "NIP002", w("RXA", 20): "RE", w("RXA", 21): "A",
    })
    assert parse(text).first("RXR") is None


def test_adult_refusal_is_the_patients_decision_and_religious_is_01():
    adult = {"mrn": "MRN-7", "system": flu_shot()["patient"]["system"], "family": "Roe",
             "given": ["Ann"], "birth_date": "1970-01-02", "gender": "female"}
    text = vxu_v04(resources_of(refusal(patient=adult)), V2CTX, SETTINGS)
    read_both(text, {w("RXA", 18, 1): "03", w("RXA", 20): "RE"})
    text = vxu_v04(resources_of(refusal(reason_not_given="RELIG")), V2CTX, SETTINGS)
    read_both(text, {w("RXA", 18, 1): "01", w("RXA", 18, 2): "Religious exemption"})
    text = vxu_v04(resources_of(refusal(reason_not_given="OSTOCK")), V2CTX, SETTINGS)
    read_both(text, {w("RXA", 18): "", w("RXA", 20): "NA"})


@pytest.mark.parametrize(("origin", "nip001"), [
    ("provider", "02"), ("record", "03"), ("recall", "04"), ("jurisdiction", "05"),
    ("school", "07"), (None, "01")])
def test_historical_dose_source(origin, nip001):
    task = {"task": "immunization", "id": "hist-1", "patient": flu_shot()["patient"],
            "status": "historical", "vaccine": {"cvx": "88"}, "occurred_date": "2019-10-15"}
    if origin:
        task["report_origin"] = origin
    text = vxu_v04(resources_of(task), V2CTX, SETTINGS)
    read_both(text, {w("RXA", 3): "20191015", w("RXA", 5, 1): "88", w("RXA", 6): "999",
                     w("RXA", 9, 1): nip001, w("RXA", 9, 3): "NIP001",
                     w("RXA", 11): "", w("RXA", 20): "CP"})


def test_vis_by_vaccine_type_and_edition_date():
    task = flu_shot(vis=[{"reference": "https://www.cdc.gov/vaccines/hcp/vis/flu.html",
                          "published": "2025-01-31", "presented": "2025-10-01"}],
                    funding_source=None, eligibility=None)
    text = vxu_v04(resources_of(task), V2CTX, SETTINGS)
    read_both(text, {
        w("OBX", 3, 1, occ=1): "30956-7", w("OBX", 5, 1, occ=1): "140",
        w("OBX", 5, 3, occ=1): "CVX", w("OBX", 4, occ=1): "1",
        w("OBX", 3, 1, occ=2): "29768-9", w("OBX", 5, occ=2): "20250131",
        w("OBX", 4, occ=2): "1",
        w("OBX", 3, 1, occ=3): "29769-7", w("OBX", 5, occ=3): "20251001",
        w("OBX", 4, occ=3): "1",
    })


def test_us_core_immunization_with_guardian_and_protection():
    """Any US Core Immunization (not one of mafhir's tasks): a guardian from
    Patient.contact, mother's maiden name, race/ethnicity, a restricted record."""
    patient: dict[str, Any] = {
        "resourceType": "Patient", "id": "p1",
        "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                         "v3-Confidentiality", "code": "R"}]},
        "extension": [
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
             "extension": [{"url": "ombCategory", "valueCoding": {
                 "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2028-9",
                 "display": "Asian"}}, {"url": "text", "valueString": "Asian"}]},
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
             "extension": [{"url": "ombCategory", "valueCoding": {
                 "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2186-5",
                 "display": "Not Hispanic or Latino"}},
                 {"url": "text", "valueString": "Not Hispanic or Latino"}]},
            {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
             "valueString": "Lam"}],
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.72.5.9.1", "value": "D26376273",
                        "type": {"coding": [{"code": "MR"}]}}],
        "name": [{"family": "Snow", "given": ["Madelynn", "Ainsley"]}],
        "gender": "female", "birthDate": "2007-07-06",
        "contact": [{"relationship": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}]}],
            "name": {"family": "Lam", "given": ["Morgan"]}}],
    }
    imm = {"resourceType": "Immunization", "id": "i1", "status": "completed",
           "identifier": [{"system": "urn:ehr:imm", "value": "IZ-783274"}],
           "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "150"}]},
           "patient": {"reference": "Patient/p1"},
           "occurrenceDateTime": "2012-08-14", "primarySource": True, "lotNumber": "Z0860BB",
           "isSubpotent": True}
    text = vxu_v04(ResourceSet.of([patient, imm]), V2CTX, SETTINGS)
    read_both(text, {
        w("PID", 3, 1): "D26376273", w("PID", 5, 1): "Snow", w("PID", 5, 3): "Ainsley",
        w("PID", 6, 1): "Lam", w("PID", 6, 7): "M", w("PID", 7): "20070706",
        w("PID", 10, 1): "2028-9", w("PID", 10, 3): "CDCREC",
        w("PID", 22, 1): "2186-5", w("PID", 22, 3): "CDCREC",
        w("PD1", 12): "Y",  # the record is restricted, whatever the clinic's default
        w("NK1", 1): "1", w("NK1", 2, 1): "Lam", w("NK1", 2, 2): "Morgan",
        w("NK1", 3, 1): "MTH", w("NK1", 3, 3): "HL70063",
        w("ORC", 3, 1): "IZ-783274", w("RXA", 3): "20120814", w("RXA", 15): "Z0860BB",
        w("RXA", 20): "PA", w("RXA", 9, 1): "00",
    })


def test_adult_gets_no_nk1_and_entered_in_error_is_a_delete():
    adult = {"mrn": "MRN-7", "system": flu_shot()["patient"]["system"], "family": "Roe",
             "given": ["Ann"], "birth_date": "1970-01-02", "gender": "female"}
    resources = resources_of(flu_shot(patient=adult))
    resources.of_type("Immunization")[0]["status"] = "entered-in-error"
    text = vxu_v04(resources, V2CTX, SETTINGS)
    assert parse(text).first("NK1") is None
    read_both(text, {w("RXA", 21): "D", w("ORC", 3, 1): "imm-2025-001"})


def test_what_the_guide_requires_is_refused_naming_each_field():
    resources = resources_of(flu_shot())
    patient = resources.of_type("Patient")[0]
    del patient["birthDate"]
    del patient["name"]
    imm = resources.of_type("Immunization")[0]
    imm["vaccineCode"] = {"coding": [{"system": "http://hl7.org/fhir/sid/ndc",
                                      "code": "49281-0425-50"}]}
    del imm["occurrenceDateTime"]
    imm["occurrenceString"] = "fall 2019"
    with pytest.raises(InputError) as info:
        vxu_v04(resources, V2CTX, VxuSettings())
    found = {p.location: p.code for p in info.value.problems}
    assert found == {"iis.facility_id": "required", "Patient.name": "required",
                     "Patient.birthDate": "required", "Immunization.vaccineCode": "required",
                     "Immunization.occurrence[x]": "required"}
    messages = " ".join(p.message for p in info.value.problems)
    for field in ("MSH-4", "PID-5", "PID-7", "RXA-5", "RXA-3"):
        assert field in messages
    assert "Doe" not in messages and "2015" not in messages  # no patient data


def test_a_site_without_a_route_is_refused_not_dropped():
    resources = resources_of(flu_shot())
    del resources.of_type("Immunization")[0]["route"]
    with pytest.raises(InputError) as info:
        vxu_v04(resources, V2CTX, SETTINGS)
    assert [p.location for p in info.value.problems] == ["Immunization.route"]


def test_same_doses_same_control_id_changed_dose_new_one():
    first = parse(vxu_v04(resources_of(flu_shot()), V2CTX, SETTINGS)).control_id
    again = parse(vxu_v04(resources_of(flu_shot()), V2CTX, SETTINGS)).control_id
    changed = parse(vxu_v04(resources_of(flu_shot(lot_number="OTHER1")), V2CTX,
                            SETTINGS)).control_id
    assert first == again != changed


@pytest.fixture(name="corpus")
def _corpus():
    return corpus_dir()


def _corpus_vxu(corpus, name: str):
    return parse((corpus / "hl7v2" / "vxu" / "microsoft-fhir-converter" / name).read_bytes())


@pytest.mark.corpus
def test_field_placement_matches_the_nist_vxu_of_the_corpus(corpus):
    """The NIST conformance VXU (IZ-AD-2.1) rebuilt from FHIR: each fact lands in the field
    the reference message has it in (the values here are copied from that message)."""
    ref = _corpus_vxu(corpus, "VXU.hl7")
    patient = {"resourceType": "Patient", "id": "p",
               "identifier": [{"system": "urn:nist:mpi", "value": "90012"}],
               "name": [{"family": "Wong", "given": ["Elise"]}], "birthDate": "1983-06-15",
               "gender": "female"}
    imm = {"resourceType": "Immunization", "status": "completed",
           "identifier": [{"system": "urn:nist:aa", "value": "13696"}],
           "vaccineCode": {"coding": [
               {"system": "http://hl7.org/fhir/sid/cvx", "code": "115"},
               {"system": "http://hl7.org/fhir/sid/ndc", "code": "49281-0215-88"}]},
           "patient": {"reference": "Patient/p"}, "occurrenceDateTime": "2015-06-24",
           "primarySource": True, "lotNumber": "315841", "expirationDate": "2015-12-16",
           "manufacturer": {"identifier": {"system": "http://hl7.org/fhir/sid/mvx",
                                           "value": "PMC"}},
           "doseQuantity": {"value": 0.5, "unit": "mL", "system": "http://unitsofmeasure.org",
                            "code": "mL"},
           "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                           "v3-RouteOfAdministration", "code": "IM"}]},
           "site": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActSite",
                                "code": "RD"}]},
           "fundingSource": {"coding": [{"system": "urn:oid:2.16.840.1.114222.4.5.274",
                                         "code": "PHC70"}]},
           "programEligibility": [{"coding": [{
               "system": "http://terminology.hl7.org/CodeSystem/v2-0064", "code": "V01"}]}],
           "education": [{"documentType": "253088698300028811170411",
                          "presentationDate": "2015-06-24"}]}
    ours = parse(vxu_v04(ResourceSet.of([patient, imm]), V2CTX, SETTINGS))
    pairs = [("PID", 3, 1), ("PID", 5, 1), ("PID", 5, 2), ("PID", 5, 7), ("PID", 7),
             ("PID", 8), ("ORC", 1), ("ORC", 3, 1), ("RXA", 1), ("RXA", 2), ("RXA", 3),
             ("RXA", 6), ("RXA", 7, 1), ("RXA", 9, 1), ("RXA", 15), ("RXA", 16),
             ("RXA", 17, 1), ("RXA", 17, 3), ("RXA", 20), ("RXA", 21), ("RXR", 1, 1),
             ("RXR", 1, 3), ("RXR", 2, 1), ("RXR", 2, 3)]
    for seg, fld, *comp in pairs:
        a, b = ours.first(seg), ref.first(seg)
        assert a is not None and b is not None
        assert a.get(fld, *comp) == b.get(fld, *comp), f"{seg}-{fld}"
    # RXA-5: the reference sends the NDC alone; ours sends CVX with the NDC beside it
    assert ours.first("RXA").get(5, 4) == ref.first("RXA").get(5, 1)
    assert ours.first("RXA").get(5, 6) == ref.first("RXA").get(5, 3) == "NDC"
    by_code = {o.get(3): o for o in ours.all("OBX")}
    for want in [o for o in ref.all("OBX")][:4]:
        got = by_code[want.get(3)]
        assert got.get(5) == want.get(5), want.get(3)
        assert got.get(5, 3) == want.get(5, 3), want.get(3)
        assert got.get(11) == want.get(11) == "F"
    assert by_code["64994-7"].get(17) == ref.all("OBX")[1].get(17) == "VXC40"
    assert by_code["69764-9"].get(4) == by_code["29769-7"].get(4)


def test_one_patients_doses_are_one_order_group_each_and_two_patients_are_refused():
    text = vxu_v04(resources_of(flu_shot(), refusal()), V2CTX, SETTINGS)
    msg = parse(text)
    assert [o.get(3) for o in msg.all("ORC")] == ["imm-2025-001", "imm-2025-002"]
    assert [r.get(20) for r in msg.all("RXA")] == ["CP", "RE"]
    assert len(msg.all("PID")) == 1
    other = flu_shot("imm-x", patient={**flu_shot()["patient"], "mrn": "MRN-99"})
    with pytest.raises(InputError) as info:
        vxu_v04(resources_of(flu_shot(), other), V2CTX, SETTINGS)
    assert [p.location for p in info.value.problems] == ["Immunization.patient"]


def test_convert_command_writes_the_vxu(tmp_path):
    import json

    from click.testing import CliRunner

    from mafhir.cli.main import build_cli

    (tmp_path / "dose.json").write_text(json.dumps(flu_shot()))
    result = CliRunner().invoke(build_cli(), ["convert", "--to", "hl7v2", "--message",
                                              "VXU^V04", str(tmp_path / "dose.json")])
    assert result.exit_code == 0, result.output
    msg = parse(result.stdout)
    assert msg.type == "VXU^V04" and msg.first("RXA").get(15) == "UT8531AA"
    assert msg.msh.get(21) == "Z22"
