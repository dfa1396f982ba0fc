"""HL7 v2: RDE^O11 written and read back, the corpus's RDE messages read, refill requests
and answers — and the whole loop on real MLLP sockets on loopback. Field values are checked
through python-hl7's parse of the same text, not mafhir's reader."""

from __future__ import annotations

from dataclasses import replace

import hl7
import pytest
from helpers_pharmacy import (
    PharmacyStandIn,
    clinic,
    corpus_dir,
    mapped,
    namespaces,
    prescription,
    rde_o25,
)

from mafhir.bundle import transaction
from mafhir.context import MapContext
from mafhir.errors import InputError, PermanentError
from mafhir.hl7v2 import (
    MessageStore,
    MLLPClient,
    MLLPListener,
    Receiver,
    V2Context,
    from_fhir,
    parse,
    read_ack,
    to_fhir,
)
from mafhir.hl7v2.convert import convert
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.validation import check_bundle
from mafhir_pharmacy.channels import V2Pharmacy
from mafhir_pharmacy.mappers import AlreadyAnswered
from mafhir_pharmacy.tasks import PrescriptionTask
from mafhir_pharmacy.v2in import refill_request_tasks
from mafhir_pharmacy.worklist import LocalWorklist, RefillHandler


def theirs(text: str) -> hl7.Message:
    return hl7.parse(text.replace("\n", "\r").strip("\r"))


def seg(msg: hl7.Message, name: str, n: int = 0):
    return list(msg.segments(name))[n]


def v2ctx(c) -> V2Context:
    from datetime import UTC, datetime

    return V2Context(map=MapContext(clinic=c), now=datetime(2026, 11, 27, 15, 20, tzinfo=UTC),
                     receiving=("RXSYS", "MAINST"), namespaces=namespaces(c))


def rde_for(tasks, c) -> str:
    results = mapped(tasks, c)
    resources = ResourceSet.from_bundle(transaction(e for r in results for e in r.entries))
    return from_fhir(get_registry(), "RDE^O11", resources, v2ctx(c))


def test_rde_o11_fields():
    c = clinic()
    text = rde_for([prescription(patient={"mrn": "MS-10022", "family": "O'Brien|Smith",
                                          "given": ["Ana^María"], "gender": "female"},
                                 sig={"text": "Take 2 capsules by mouth every 6 hours as "
                                              "needed for pain for 5 days"},
                                 medication={"rxnorm": "308191"},
                                 quantity={"value": 20, "unit": "{cap}"}, refills=0,
                                 substitution_allowed=False)], c)
    m = theirs(text)
    assert str(m.segment("MSH")[9]) == "RDE^O11^RDE_O11"
    assert str(m.segment("MSH")[12]) == "2.5.1"
    pid = seg(m, "PID")
    assert m.unescape(str(pid[5][0][0])) == "O'Brien|Smith"  # escaped on the wire, \F\
    assert "\\F\\" in str(pid[5])
    assert str(pid[3][0][0]) == "MS-10022"
    orc, rxe, tq1, rxr = seg(m, "ORC"), seg(m, "RXE"), seg(m, "TQ1"), seg(m, "RXR")
    assert str(orc[1]) == "NW"
    assert str(orc[2]) == f"rx-5001^MAFHIR^{c.system}/prescription^URI"
    assert str(orc[9]) == "20261127101200-0500"
    assert str(orc[12][0][0]) == "1234567893"
    assert str(rxe[2]) == "308191^amoxicillin 500 MG Oral Capsule^RXNORM"
    assert (str(rxe[3]), str(rxe[5][0][0])) == ("2", "{cap}")
    assert str(rxe[9]) == "1"  # table 0167: substitution not allowed by the prescriber
    assert (str(rxe[10]), str(rxe[12]), str(rxe[15])) == ("20", "0", "rx-5001")
    assert str(rxe[27]) == "I10^^I10C"
    assert str(rxe[40]) == "1234567^Main Street Pharmacy^NCPDP"
    assert str(tq1[3]) == "Q6H~PRN"
    assert str(tq1[6]) == "5^d&day&UCUM"
    assert str(tq1[10]) == "as needed for pain"
    assert str(rxr[1]) == "PO^Oral^HL70162^26643006^Oral route^SCT"


def test_rde_o11_reads_back_as_the_same_order():
    c = clinic()
    text = rde_for([prescription(sig={"text": "1 tab po bid prn pain"})], c)
    bundle = to_fhir(get_registry(), parse(text), v2ctx(c))
    assert not [i for i in check_bundle(bundle, get_registry().profiles)
                if i.severity == "error"]
    (mr,) = [e["resource"] for e in bundle["entry"]
             if e["resource"]["resourceType"] == "MedicationRequest"]
    assert mr["identifier"][0]["system"] == f"{c.system}/prescription"
    assert mr["identifier"][0]["value"] == "rx-5001"
    assert mr["medicationCodeableConcept"]["coding"][0]["code"] == "314076"
    assert mr["dispenseRequest"]["quantity"]["value"] == 30
    assert mr["dispenseRequest"]["numberOfRepeatsAllowed"] == 3
    dosage = mr["dosageInstruction"][0]
    assert dosage["timing"]["repeat"]["frequency"] == 2
    assert dosage["asNeededCodeableConcept"] == {"text": "pain"}
    assert dosage["route"]["coding"][0]["code"] == "26643006"
    assert mr["requester"]["reference"] == \
        "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893"


@pytest.mark.corpus
def test_corpus_rde_o11_is_read_and_what_it_lacks_is_named():
    data = (corpus_dir() / "hl7v2/rde-rds/microsoft-fhir-converter/RDE-O11-02.hl7").read_bytes()
    c = clinic()
    ctx = replace(v2ctx(c), namespaces={"test1": c.mrn_namespace})  # the sender's MRN authority
    converted = convert(get_registry(), parse(data), ctx)
    bundle = converted.bundle
    mrs = [e["resource"] for e in bundle["entry"]
           if e["resource"]["resourceType"] == "MedicationRequest"]
    m = theirs(data.decode())
    rxes = list(m.segments("RXE"))
    assert len(mrs) == len(rxes) == 2
    for mr, rxe in zip(mrs, rxes, strict=True):
        assert mr["medicationCodeableConcept"]["coding"][0]["code"] == str(rxe[2][0][0])
        assert mr["medicationCodeableConcept"]["coding"][0]["system"] == \
            "http://hl7.org/fhir/sid/ndc"
        assert mr["dispenseRequest"]["numberOfRepeatsAllowed"] == int(str(rxe[12]))
        assert mr["dispenseRequest"]["quantity"]["value"] == int(str(rxe[10]))
        assert any(i["value"] == str(rxe[15]) for i in mr["identifier"])
        # ORC-12 is empty and no PRT names an ordering provider (OP): kept, flagged
        assert mr["requester"] == {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "unknown"}]}
    assert [(w.location, w.code) for w in converted.warnings] == [
        ("ORC[1]-12", "incomplete"), ("ORC[2]-12", "incomplete")]
    assert not [i for i in check_bundle(bundle, get_registry().profiles)
                if i.severity == "error"]


@pytest.mark.parametrize("name", ["RDE-O11-02.hl7", "RDE-O25-01.hl7"])
def test_pharmacy_pid_follows_the_shared_identity_rules(name):
    """Issue 10.3 for the pharmacy: PID-3 is the clinic MRN only under an authority the
    clinic maps to its MRN system; otherwise held for review (business-rule on PID-3),
    and the SSN (PID-3 type SS) is never the key."""
    data = (corpus_dir() / "hl7v2/rde-rds/microsoft-fhir-converter" / name).read_bytes()
    pid = theirs(data.decode()).segment("PID")  # read independently with python-hl7
    mrn, ssn = str(pid[3][0][0]), str(pid[3][1][0])
    assert (str(pid[3][0][3][0]), str(pid[3][1][3])) == ("test1", "USSSA")
    c = clinic()
    unmapped = replace(v2ctx(c), namespaces={})
    with pytest.raises(InputError) as err:
        convert(get_registry(), parse(data), unmapped)
    assert [(p.location, p.code) for p in err.value.problems] == [("PID-3", "business-rule")]
    assert mrn not in str(err.value) and ssn not in str(err.value)  # no patient data
    # the SSN's authority mapped to the clinic's MRN system is still no key
    ssn_only = replace(v2ctx(c), namespaces={"USSSA": c.mrn_namespace})
    with pytest.raises(InputError) as err:
        convert(get_registry(), parse(data), ssn_only)
    assert [(p.location, p.code) for p in err.value.problems] == [("PID-3", "business-rule")]
    mapped_ctx = replace(v2ctx(c), namespaces={"test1": c.mrn_namespace})
    if name.startswith("RDE-O25"):  # a refill request: the worklist Task's patient
        (task,) = refill_request_tasks(parse(data), mapped_ctx)
        assert (task.patient.system, task.patient.mrn) == (c.mrn_namespace, mrn)
        return
    bundle = convert(get_registry(), parse(data), mapped_ctx).bundle
    (entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    key = entry["resource"]["identifier"][0]
    assert (key["system"], key["value"]) == (c.mrn_namespace, mrn)
    assert entry["request"]["ifNoneExist"].endswith("|" + mrn)
    assert not any(i["system"] == c.mrn_namespace and i["value"] == ssn
                   for i in entry["resource"]["identifier"])


def test_rde_o25_problems_name_segment_and_field():
    """What is there but wrong is refused by field (what is absent is kept, flagged: see
    test_pharmacy_corpus): an NCPDP id that is not 7 digits, an NPI that fails its check."""
    c = clinic()
    data = rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RF-9", npi="1234567890",
                   ncpdp="12AB")
    with pytest.raises(InputError) as err:
        refill_request_tasks(parse(data), v2ctx(c))
    assert {(p.location, p.code) for p in err.value.problems} == {
        ("ORC[1]-12", "value"), ("RXE[1]-40", "value")}
    assert "Okafor" not in str(err.value)  # no patient data in the error


def test_rde_o11_over_mllp_is_acked_and_failures_are_named(tmp_path):
    c = clinic()
    results = mapped([prescription()], c)
    bundle = transaction(results[0].entries)
    with PharmacyStandIn(tmp_path / "rx.sqlite") as pharmacy:
        channel = V2Pharmacy(pharmacy.target, ctx=v2ctx(c), timeout=10)
        summary = channel.send(bundle)
        channel.close()
        (got,) = pharmacy.received
    assert summary["acks"][0]["ack"] == "AA"
    assert summary["acks"][0]["acknowledges"] == got.control_id
    assert got.type == "RDE^O11" and got.first("RXE").get(2) == "314076"
    with PharmacyStandIn(tmp_path / "rx2.sqlite", outcome="error") as pharmacy:
        channel = V2Pharmacy(pharmacy.target, ctx=v2ctx(c), timeout=10)
        with pytest.raises(PermanentError, match="answered AE"):
            channel.send(bundle)
        channel.close()


def test_a_controlled_substance_never_leaves_by_v2(tmp_path):
    c = clinic()
    (result,) = mapped([prescription(medication={"rxnorm": "308048"}, dea="AR1234563",
                                     refills=0, channel="ncpdp-script")], c)
    with PharmacyStandIn(tmp_path / "rx.sqlite") as pharmacy:
        channel = V2Pharmacy(pharmacy.target, ctx=v2ctx(c), timeout=10)
        with pytest.raises(InputError, match="schedule IV controlled substance cannot go"):
            channel.send(transaction(result.entries))
        channel.close()
        assert pharmacy.received == []


def test_refill_loop_over_mllp(tmp_path):
    """RDE^O25 in → worklist → decision → RRE^O26 out, each on a real socket."""
    c = clinic()
    ctx = v2ctx(c)
    registry = get_registry()
    worklist = LocalWorklist(tmp_path / "worklist.sqlite")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    placer = f"rx-5001^MAFHIR^{c.system}/prescription^URI"
    store = MessageStore(tmp_path / "clinic.sqlite")
    handler = RefillHandler(registry, ctx, worklist)
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address, timeout=10) as pharmacy_side:
        first = pharmacy_side.send(rde_o25(placer, "RF-1"))
        assert read_ack(first).code == "AA"
        assert pharmacy_side.send(rde_o25(placer, "RF-1")) == first  # re-sent: same ACK
        unknown = read_ack(pharmacy_side.send(rde_o25(
            f"rx-9999^MAFHIR^{c.system}/prescription^URI", "RF-2")))
        assert unknown.code == "AE" and "ORC[1]-2" in unknown.errors[0]
        assert parse(unknown.text).first("ERR").get(3, 1) == "204"
        bad = read_ack(pharmacy_side.send(rde_o25(placer, "RF-3", npi="")))
        assert bad.code == "AE" and bad.errors[0].startswith("ORC[1]-12")
    assert store.counts() == {"processed": 1, "review": 1, "error": 1}
    ((state, request),) = worklist.items("requested")
    assert state == "requested"
    assert (request.prescription, request.message_id) == ("rx-5001", "RF-1")
    assert request.requested_quantity.value == 30
    assert [s for s, _ in worklist.items("review")] == ["review"]

    # the prescriber approves a 90-day supply; deciding again, or an unknown id, fails
    from datetime import datetime

    at = datetime.fromisoformat("2026-12-20T11:30:00-05:00")
    decision = worklist.decide(request.id, "approved", at, "rx-5001-r1", quantity=90)
    with pytest.raises(AlreadyAnswered, match="already answered"):
        worklist.decide(request.id, "denied", at, "x", reason="other")
    with pytest.raises(InputError, match="no refill request 'nope'"):
        worklist.decide("nope", "approved", at, "y")
    (result,) = mapped([decision.model_dump(mode="json", exclude_none=True)], c)
    answer = from_fhir(registry, "RRE^O26",
                       ResourceSet.from_bundle(transaction(result.entries)), ctx)
    with PharmacyStandIn(tmp_path / "pharmacy.sqlite") as pharmacy, \
            MLLPClient(*pharmacy.target.split(":")[:1], int(pharmacy.target.split(":")[1]),
                       timeout=10) as to_pharmacy:
        assert read_ack(to_pharmacy.send(answer)).code == "AA"
        (got,) = pharmacy.received
    m = theirs(got.text)
    assert str(m.segment("MSH")[9]) == "RRE^O26^RRE_O26"
    assert str(seg(m, "MSA")[2]) == "RF-1"  # answers the pharmacy's RDE^O25
    orc, rxe = seg(m, "ORC"), seg(m, "RXE")
    assert (str(orc[1]), str(orc[2][0][0])) == ("AF", "rx-5001")
    assert (str(rxe[10]), str(rxe[15])) == ("90", "rx-5001-r1")
    # the renewal is itself a prescription now: a later request for it matches
    assert worklist.prescription("rx-5001-r1").quantity.value == 90
    worklist.close()
    store.close()


def test_denied_refill_answer():
    c = clinic()
    worklist = LocalWorklist(":memory:")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    (request,) = refill_request_tasks(
        parse(rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RF-7")), v2ctx(c))
    worklist.add_request(request)
    from datetime import datetime

    decision = worklist.decide(request.id, "denied",
                               datetime.fromisoformat("2026-12-21T09:00:00-05:00"), "d-1",
                               reason="needs-appointment")
    (result,) = mapped([decision.model_dump(mode="json", exclude_none=True)], c)
    text = from_fhir(get_registry(), "RRE^O26",
                     ResourceSet.from_bundle(transaction(result.entries)), v2ctx(c))
    orc = seg(theirs(text), "ORC")
    assert (str(orc[1]), str(orc[2][0][0])) == ("DF", "rx-5001")
    assert str(orc[16]) == "needs-appointment^Patient needs an appointment before a renewal^L"
    assert "RXE" not in text


def test_rre_o12_that_refuses_an_order_fails_naming_the_prescription(tmp_path):
    """MSA AA with ORC-1 UA on the second order: the message was read, that prescription
    was not taken — the send fails and names it (table 0119), not the accepted one."""
    from mafhir.hl7v2 import Response

    def rre_o12(msg):
        orcs = msg.all("ORC")
        controls = ["OK", "UA"]
        return Response(("RRE", "O12", "RRE_O12"),
                        [["ORC", controls[i], orc.get(2)] for i, orc in enumerate(orcs)])

    c = clinic()
    results = mapped([prescription("rx-1"), prescription("rx-2")], c)
    bundle = transaction(e for r in results for e in r.entries)
    with PharmacyStandIn(tmp_path / "rx.sqlite", respond=rre_o12) as pharmacy:
        channel = V2Pharmacy(pharmacy.target, ctx=v2ctx(c), timeout=10)
        with pytest.raises(PermanentError) as err:
            channel.send(bundle)
        channel.close()
        (got,) = pharmacy.received  # one patient: both orders in one RDE^O11
    assert [o.get(2) for o in got.all("ORC")] == ["rx-1", "rx-2"]
    assert "prescription 'rx-2' (ORC-1 UA)" in str(err.value)
    assert "rx-1" not in str(err.value)
    assert "RRE^O12" in str(err.value)
    assert "Okafor" not in str(err.value)

    # the same reply with both orders OK is a success
    with PharmacyStandIn(tmp_path / "rx2.sqlite", respond=lambda m: Response(
            ("RRE", "O12", "RRE_O12"), [["ORC", "OK", o.get(2)] for o in m.all("ORC")])) as ok:
        channel = V2Pharmacy(ok.target, ctx=v2ctx(c), timeout=10)
        assert channel.send(bundle)["acks"][0]["ack"] == "AA"
        channel.close()


def _without_prescriber(data: bytes) -> bytes:
    """The same RDE^O25 with ORC-12 emptied, as v2.8 senders send it (no PRT OP either)."""
    lines = data.decode().split("\r")
    orc = next(i for i, line in enumerate(lines) if line.startswith("ORC|"))
    fields = lines[orc].split("|")
    fields[12] = ""
    lines[orc] = "|".join(fields)
    return "\r".join(lines).encode()


def test_refill_request_naming_no_prescriber_is_kept_flagged_and_strict_refuses(tmp_path):
    """Kept on the worklist with no owner (AA); deciding it asks for a prescriber by name;
    a --strict listener refuses it instead (AE naming ORC[1]-12), over real sockets."""
    c = clinic()
    ctx = v2ctx(c)
    placer = f"rx-5001^MAFHIR^{c.system}/prescription^URI"
    data = _without_prescriber(rde_o25(placer, "RF-7"))
    for strict, expected in ((False, "AA"), (True, "AE")):
        worklist = LocalWorklist(tmp_path / f"worklist-{strict}.sqlite")
        worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
        store = MessageStore(tmp_path / f"clinic-{strict}.sqlite")
        handler = RefillHandler(get_registry(), ctx, worklist, strict=strict)
        with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
                MLLPClient(*listener.address, timeout=10) as pharmacy_side:
            ack = read_ack(pharmacy_side.send(data))
        assert ack.code == expected
        if strict:
            assert ack.errors[0].startswith("ORC[1]-12")
            assert worklist.items("requested") == []
        else:
            ((_, request),) = worklist.items("requested")
            assert request.prescriber is None and request.message_id == "RF-7"
            from datetime import datetime

            with pytest.raises(InputError) as err:
                worklist.decide(request.id, "approved",
                                datetime.fromisoformat("2026-12-20T11:30:00-05:00"), "r1")
            assert [(p.location, p.code) for p in err.value.problems] == \
                [("request", "required")]
        worklist.close()
        store.close()


def test_rde_o11_units_get_checked_ucum_and_keep_the_senders_text():
    """RXE-5 'mcg' (no coding system) is UCUM 'ug', shown as sent; RXE-11 a SNOMED dose
    form (385055001 Tablet) is no unit: text only, never read as UCUM's number 385055001."""
    c = clinic()
    text = rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RX-U1").decode()
    text = text.replace("RDE^O25^RDE_O25", "RDE^O11^RDE_O11")
    text = text.replace("|1||{tbl}^{tbl}^UCUM||", "|25||mcg||", 1)
    text = text.replace("|30|{tbl}^{tbl}^UCUM|", "|30|385055001^Tablet^SCT|", 1)
    bundle = to_fhir(get_registry(), parse(text.encode()), v2ctx(c))
    (mr,) = [e["resource"] for e in bundle["entry"]
             if e["resource"]["resourceType"] == "MedicationRequest"]
    assert mr["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": 25, "unit": "mcg", "system": "http://unitsofmeasure.org", "code": "ug"}
    assert mr["dispenseRequest"]["quantity"] == {"value": 30, "unit": "Tablet"}


@pytest.mark.parametrize(("message", "location"), [("RDE^O11", "MedicationRequest"),
                                                   ("RRE^O26", "Task")])
def test_nothing_to_send_is_refused_with_a_code(message, location):
    with pytest.raises(InputError) as err:
        from_fhir(get_registry(), message, ResourceSet(), v2ctx(clinic()))
    assert [(p.location, p.code) for p in err.value.problems] == [(location, "required")]


def test_rde_o11_reads_the_prescriber_and_enterer_from_prt_when_orc12_is_empty():
    """v2.7+: ORC-12 empty, the ordering provider in a PRT with participation OP (and the
    entering person, EP): read from there, with no gap reported."""
    c = clinic()
    text = rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RX-P1").decode()
    text = text.replace("RDE^O25^RDE_O25", "RDE^O11^RDE_O11").replace("|2.5.1\r", "|2.8\r")
    lines = text.split("\r")
    orc = next(i for i, line in enumerate(lines) if line.startswith("ORC|"))
    fields = lines[orc].split("|")
    fields[12] = ""
    lines[orc] = "|".join(fields)
    lines.insert(orc + 1, "PRT|1|AD||OP^Ordering Provider^HL70912|1245319599^Okafor^Grace^^^^^^"
                          "NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI")
    lines.insert(orc + 2, "PRT|2|AD||EP^Entering Person^HL70912|MA-77^Lopez^Rita")
    converted = convert(get_registry(), parse("\r".join(lines).encode()), v2ctx(c))
    (mr,) = [e["resource"] for e in converted.bundle["entry"]
             if e["resource"]["resourceType"] == "MedicationRequest"]
    assert mr["requester"] == {"reference": "Practitioner?identifier=http://hl7.org/fhir/sid/"
                                            "us-npi|1245319599", "display": "Grace Okafor"}
    assert mr["recorder"] == {"identifier": {"value": "MA-77"}, "display": "Rita Lopez"}
    assert converted.warnings == ()


def test_a_refill_for_an_unmapped_mrn_authority_is_held_for_review_over_mllp(tmp_path):
    """A refill request whose PID-3 authority the clinic does not map to its MRN system is
    kept and held for review (AE, ERR 207 on PID-3), never put on the worklist."""
    c = clinic()
    placer = f"rx-5001^MAFHIR^{c.system}/prescription^URI"
    data = rde_o25(placer, "RF-U", mrn_field="MS-10022^^^OTHERLAB^MR")
    worklist = LocalWorklist(tmp_path / "worklist.sqlite")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    store = MessageStore(tmp_path / "clinic.sqlite")
    handler = RefillHandler(get_registry(), v2ctx(c), worklist)
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address, timeout=10) as pharmacy_side:
        reply = pharmacy_side.send(data)
    ack = read_ack(reply)
    err = parse(ack.text).first("ERR")
    assert ack.code == "AE" and (err.get(2, 1), err.get(2, 3), err.get(3, 1)) == \
        ("PID", "3", "207")
    assert "MS-10022" not in ack.text  # the ACK names the field, not the identifier
    assert [r.status for r in store.messages()] == ["review"]
    assert worklist.items("requested") == []
    worklist.close()
    store.close()
