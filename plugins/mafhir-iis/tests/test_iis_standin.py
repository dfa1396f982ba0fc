"""The stand-in IIS: the guide's checks give the ACKs real registries give, over MLLP as over
SOAP, and its registry answers the query side (``Registry.history``).

Messages here are written by hand; expected ACK fields are read off the CDC guide's rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers_iis import FACILITY, V2CTX, flu_shot, resources_of, running_standin
from mafhir_iis.standin import DoseRecord, PatientQuery, PatientRecord, Registry
from mafhir_iis.standin.answer import answer
from mafhir_iis.vxu_out import VxuSettings, vxu_v04

from mafhir.hl7v2 import MLLPClient, parse

NOW = datetime(2025, 10, 2, 12, 0, tzinfo=UTC)
MSH = "MSH|^~\\&|EHR|CLINIC|IIS|ST|20251001||VXU^V04^VXU_V04|C1|P|2.5.1|||ER|AL|||||Z22^CDCPHINVS"
PID = "PID|1||M1^^^CLINIC^MR||Lee^Ann^^^^^L||19800506|F|||1 Main St^^Madison^WI^53703"
GROUP = ("ORC|RE||D1^EHR\r"
         "RXA|0|1|20251001||140^Flu^CVX|0.5|mL^^UCUM||00^New^NIP001||||||LOT1|20260101|"
         "PMC^Sanofi^MVX|||CP|A\r"
         "RXR|C28161^IM^NCIT|LD^Left deltoid^HL70163")


def reply(*segments: str) -> tuple[str, list[tuple[str, str, str, str, str]]]:
    """(MSA-1, [(ERR-2, ERR-3.1, ERR-4, ERR-5.1, ERR-8)]) of the stand-in's answer."""
    registry = Registry()
    ack = parse(answer(("\r".join(segments) + "\r").encode(), registry, NOW))
    assert ack.msh.get(9) == "ACK" and ack.msh.get(9, 2) == "V04"
    assert ack.msh.get(21) == "Z23"
    errs = [(e.v(2).text(), e.get(3), e.get(4), e.get(5), e.get(8)) for e in ack.all("ERR")]
    msa = ack.first("MSA")
    assert msa is not None and msa.get(2) == "C1"
    return msa.get(1), errs


def test_a_complete_adult_dose_is_aa():
    assert reply(MSH, PID, GROUP) == ("AA", [])


@pytest.mark.parametrize(("msh", "where", "condition"), [
    (MSH.replace("VXU^V04^VXU_V04", "ADT^A01^ADT_A01"), "MSH^1^9", "200"),
    (MSH.replace("|2.5.1|", "|2.3.1|"), "MSH^1^12", "203"),
    (MSH.replace("|P|2.5.1", "|X|2.5.1"), "MSH^1^11", "202"),
    (MSH.replace("|CLINIC|IIS", "||IIS"), "MSH^1^4", "101")])
def test_a_bad_header_is_ar(msh, where, condition):
    code, errs = reply(msh, PID, GROUP)
    assert code == "AR"
    assert [(e[0], e[1], e[2]) for e in errs] == [(where, condition, "E")]


@pytest.mark.parametrize(("pid", "where", "app"), [
    (PID.replace("M1^^^CLINIC^MR", ""), "PID^1^3", "7"),
    (PID.replace("Lee^Ann^^^^^L", ""), "PID^1^5", "7"),
    (PID.replace("19800506", ""), "PID^1^7", "7"),
    (PID.replace("19800506", "20300101"), "PID^1^7", "1"),
    (PID.replace("19800506", "19801350"), "PID^1^7", "2")])
def test_a_required_patient_field_is_ae_error_and_nothing_kept(pid, where, app):
    registry = Registry()
    ack = parse(answer(("\r".join([MSH, pid, GROUP]) + "\r").encode(), registry, NOW))
    assert ack.first("MSA").get(1) == "AE"
    err = ack.all("ERR")[0]  # (a birth in 2030 also puts the dose before it: a second ERR)
    assert (err.v(2).text(), err.get(4), err.get(5), err.get(5, 3)) == (where, "E", app,
                                                                         "HL70533")
    assert registry.doses() == [] and registry.receipts == []


@pytest.mark.parametrize(("group", "where", "condition"), [
    (GROUP.replace("ORC|RE||D1^EHR", "ORC|RE||"), "ORC^1^3", "101"),
    (GROUP.replace("|20251001||140", "|||140"), "RXA^1^3", "101"),
    (GROUP.replace("|20251001||140", "|19700101||140"), "RXA^1^3", "102"),  # before birth
    (GROUP.replace("140^Flu^CVX", "777^Nothing^CVX"), "RXA^1^5", "103"),
    (GROUP.replace("|CP|A", "|XX|A"), "RXA^1^20", "103"),
    (GROUP.replace("00^New^NIP001", "").replace("|CP|A", "|RE|A"), "RXA^1^18", "101")])
def test_a_required_dose_field_is_ae_error(group, where, condition):
    code, errs = reply(MSH, PID, group)
    assert code == "AE"
    assert [(e[0], e[1], e[2]) for e in errs] == [(where, condition, "E")]


def test_expected_fields_missing_are_ae_warnings_and_the_dose_is_kept():
    pid = PID.replace("|F|||1 Main St^^Madison^WI^53703", "|")
    group = GROUP.replace("LOT1", "").replace("PMC^Sanofi^MVX", "XYZ^Nobody^MVX") \
        .replace("\rRXR|C28161^IM^NCIT|LD^Left deltoid^HL70163", "")
    registry = Registry()
    ack = parse(answer(("\r".join([MSH, pid, group]) + "\r").encode(), registry, NOW))
    assert ack.first("MSA").get(1) == "AE"
    assert [(e.v(2).text(), e.get(4), e.get(5)) for e in ack.all("ERR")] == [
        ("PID^1^8", "W", "7"), ("PID^1^11", "W", "7"), ("RXA^1^15", "W", "7"),
        ("RXA^1^17", "W", "8"), ("RXR^1", "W", "7")]
    [dose] = registry.doses()
    assert (dose.filler_id, dose.cvx, dose.lot, dose.route) == ("D1", "140", "", "")


def test_a_minor_without_nk1_is_warned():
    code, errs = reply(MSH, PID.replace("19800506", "20150304"), GROUP)
    assert (code, [(e[0], e[2]) for e in errs]) == ("AE", [("NK1^1", "W")])
    nk1 = "NK1|1|Lee^Mary^^^^^L|MTH^Mother^HL70063"
    assert reply(MSH, PID.replace("19800506", "20150304"), nk1, GROUP) == ("AA", [])


def test_unreadable_bytes_are_ar():
    ack = parse(answer(b"this is not HL7", Registry(), NOW))
    assert ack.first("MSA").get(1) == "AR"


def test_mllp_gets_the_same_answers_as_soap():
    text = vxu_v04(resources_of(flu_shot()), V2CTX,
                   VxuSettings(facility_id=FACILITY, receiving_application="WIR"))
    with running_standin() as standin:
        assert standin.mllp_address is not None
        with MLLPClient(*standin.mllp_address, timeout=5) as mllp:
            ack = parse(mllp.send(text))
        assert ack.first("MSA").get(1) == "AE"  # a child without NK1: warned, kept
        assert ack.first("MSA").get(2) == parse(text).control_id
        assert [d.filler_id for d in standin.registry.doses()] == ["imm-2025-001"]


def _dose(patient: PatientRecord, filler: str, when: str, action: str = "A") -> DoseRecord:
    return DoseRecord(patient=patient, filler_id=filler, cvx="140", administered=when,
                      action=action)


def test_registry_history_by_id_or_demographics_oldest_first():
    registry = Registry()
    ann = PatientRecord("M1", "CLINIC", "Lee", "Ann", "19800506", "F")
    twin = PatientRecord("M2", "CLINIC", "Lee", "Ann", "19800506", "F")
    registry.record(ann, [_dose(ann, "d2", "20251001"), _dose(ann, "d1", "20240915")], "F",
                    "c1")
    registry.record(ann, [_dose(ann, "d2", "20251001")], "F", "c2")  # a resend: one dose
    assert [d.filler_id for d in registry.history(PatientQuery(id="M1"))] == ["d1", "d2"]
    assert registry.history(PatientQuery(id="M1", authority="OTHER")) == []
    by_name = PatientQuery(family="lee", given="ANN", birth_date="19800506")
    assert [p.id for p in registry.patients(by_name)] == ["M1"]
    assert len(registry.history(by_name)) == 2
    registry.record(twin, [_dose(twin, "t1", "20250101")], "F", "c3")
    assert len(registry.patients(by_name)) == 2  # too many candidates (QAK TM)
    assert registry.history(by_name) == []
    assert registry.patients(PatientQuery(id="nobody")) == []  # not found (QAK NF)
    registry.record(ann, [_dose(ann, "d1", "20240915", action="D")], "F", "c4")
    assert [d.filler_id for d in registry.history(PatientQuery(id="M1"))] == ["d2"]
    assert len(registry.receipts) == 4


def test_other_message_types_reach_the_answerer_registered_for_them():
    """The seam the query side uses: an answerer for QBP sees the message and the registry."""
    seen = []

    def qbp(msg, registry, now):
        seen.append((msg.type, len(registry.doses())))
        return b"MSH|^~\\&|IIS|ST|||20251001||RSP^K11^RSP_K11|R1|P|2.5.1\rMSA|AA|Q1\r"

    qbp_text = ("MSH|^~\\&|EHR|CLINIC|IIS|ST|20251001||QBP^Q11^QBP_Q11|Q1|P|2.5.1|||ER|AL"
                "|||||Z44^CDCPHINVS\rQPD|Z44^Request Evaluated History and Forecast^CDCPHINVS"
                "|q1|M1^^^CLINIC^MR\rRCP|I|5^RD&records&HL70126\r")
    with running_standin(answerers={"QBP": qbp}) as standin, \
            MLLPClient(*(standin.mllp_address or ("", 0)), timeout=5) as mllp:
        assert parse(mllp.send(qbp_text)).type == "RSP^K11"
        ack = parse(mllp.send(qbp_text.replace("QBP^Q11^QBP_Q11", "ADT^A01^ADT_A01")))
    assert seen == [("QBP^Q11", 0)]
    assert ack.first("MSA").get(1) == "AR"  # no answerer: the VXU check refuses the type
