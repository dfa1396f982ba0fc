"""VXU^V04 → US Core Immunization + Patient: every VXU of the public corpus converts with
no error and every RXA/RXR/OBX fact is found in the FHIR, counted from python-hl7's own
reading of the message (not mafhir's parser); hand-checked values for the NIST message;
refusals, deletes and historical sources; 0 US Core 6.1.0/7.0.0 problems (tests/uscore.py).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_iis_in import clinic, corpus_dir, ctx_for, resources, theirs, uscore_problems

from mafhir.context import MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.plugins import get_registry
from mafhir.validation import check_bundle

CVX = "http://hl7.org/fhir/sid/cvx"
NDC = "http://hl7.org/fhir/sid/ndc"
MVX = "http://hl7.org/fhir/sid/mvx"


@pytest.fixture(scope="module")
def registry():
    return get_registry()


def _vxus() -> list[Path]:
    return sorted((corpus_dir() / "hl7v2" / "vxu").glob("*/*.hl7"))


def _c(field, comp: int = 0) -> str:
    """Component ``comp`` (0-based) of a python-hl7 field's first repetition."""
    try:
        rep = field[0] if isinstance(field[0], list) and not isinstance(field[0], str) \
            else field
        value = rep[comp] if isinstance(rep, list) else (rep if comp == 0 else "")
        return str(value[0] if isinstance(value, list) and len(value) == 1 else value)
    except (IndexError, TypeError):
        return ""


def _text(resource) -> str:
    return json.dumps(resource, default=str)


def _group_rows(msg):
    """(RXA, RXR or None, [OBX…]) per order group, read with python-hl7 only."""
    groups, in_order = [], False
    for seg in msg:
        name = str(seg[0])
        if name == "ORC":
            in_order = True
        elif name == "RXA":
            groups.append([seg, None, []])
            in_order = False
        elif name == "RXR" and groups and not in_order:
            groups[-1][1] = seg
        elif name == "OBX" and groups and not in_order:
            groups[-1][2].append(seg)
    return groups


def _field(seg, n: int):
    return seg[n] if len(seg) > n else ""


def _rxa_fact_kept(imm: dict, n: int, v: str) -> bool:
    """Is the value of RXA-n where mapping-reference §3.9 puts it?"""
    if n == 15:
        return imm["lotNumber"] == v
    if n == 16:
        return imm["expirationDate"].replace("-", "") == v[:8]
    if n == 17:
        return {"system": MVX, "value": v} in imm["contained"][0]["identifier"]
    if n == 6:
        return v == "999" or imm["doseQuantity"]["value"] == Decimal(v)
    if n == 9:
        return imm["primarySource"] is (v == "00")
    return any(p["function"]["coding"][0]["code"] == "AP" for p in imm["performer"])


@pytest.mark.corpus
def test_every_corpus_vxu_converts_and_keeps_every_rxa_rxr_obx_fact(registry):
    corpus = corpus_dir()
    paths = _vxus()
    assert len(paths) == 6
    facts = 0
    for path in paths:
        data = path.read_bytes()
        converted = convert(registry, parse(data), ctx_for(data))
        errors = [i for i in check_bundle(converted.bundle, registry.profiles)
                  if i.severity in ("error", "fatal")]
        assert errors == [], (path.name, errors)
        imms = resources(converted.bundle, "Immunization")
        for patient in resources(converted.bundle, "Patient"):
            assert uscore_problems(patient, corpus) == [], path.name
        groups = _group_rows(theirs(data))
        assert len(imms) == len(groups), path.name
        for imm, (rxa, rxr, obxs) in zip(imms, groups, strict=True):
            assert uscore_problems(imm, corpus) == [], path.name
            text = _text(imm)
            code = _c(_field(rxa, 5))
            assert {"code": code} in [{"code": c["code"].replace("-", "")}
                                      for c in imm["vaccineCode"]["coding"]] or \
                code in text, (path.name, code)
            assert any(c["system"] == CVX for c in imm["vaccineCode"]["coding"])
            day = str(_field(rxa, 3))[:8]
            assert imm["occurrenceDateTime"].replace("-", "")[:8] == day
            facts += 2
            for n in (15, 16, 17, 6, 9, 10):
                value = _c(_field(rxa, n))
                if value:
                    assert _rxa_fact_kept(imm, n, value), (path.name, n, value)
                    facts += 1
            if rxr is not None:
                for n, key in ((1, "route"), (2, "site")):
                    value = _c(_field(rxr, n))
                    if value:
                        assert value in [c["code"] for c in imm[key]["coding"]], (path.name, n)
                        facts += 1
            for obx in obxs:
                loinc, value = _c(obx[3]).strip(), _c(obx[5])
                if loinc == "64994-7":
                    assert value in [c["coding"][0]["code"] for c in imm["programEligibility"]]
                elif loinc == "30963-3":
                    assert imm["fundingSource"]["coding"][0]["code"] == value
                elif loinc == "69764-9":
                    assert value in [e.get("documentType") for e in imm["education"]]
                elif loinc in ("29769-7", "29768-9") and value[:8].isdigit():
                    key = "presentationDate" if loinc == "29769-7" else "publicationDate"
                    assert value[:8] in [e.get(key, "").replace("-", "")
                                         for e in imm["education"]]
                else:  # any other row: its value is in the Immunization, said somewhere
                    assert value in text, (path.name, loinc)
                facts += 1
    assert facts > 60  # the messages really were looked into


@pytest.mark.corpus
def test_the_nist_vxu_gives_the_doses_read_by_hand(registry):
    """microsoft-fhir-converter/VXU.hl7 (the NIST IZ-AD-2.1 test message), read by eye:
    dose 1 is TENIVAC by NDC 49281-0215-88 (CDC crosswalk: CVX 113), given 2015-06-24,
    0.5 mL, lot 315841 expiring 2015-12-16, Sanofi (PMC), IM
    right deltoid, private funds, not VFC eligible, Td VIS presented the same day; doses
    2 and 3 are historical influenza (CVX 88) of 2014-10-12 and 2013-11-12."""
    data = (corpus_dir() / "hl7v2" / "vxu" / "microsoft-fhir-converter" / "VXU.hl7").read_bytes()
    bundle = convert(registry, parse(data), ctx_for(data)).bundle
    patient = resources(bundle, "Patient")[0]
    assert patient["birthDate"] == "1983-06-15" and patient["gender"] == "female"
    first, flu1, flu2 = resources(bundle, "Immunization")
    assert [(c["system"], c["code"]) for c in first["vaccineCode"]["coding"]] == [
        (CVX, "113"), (NDC, "49281-0215-88")]
    assert first["occurrenceDateTime"] == "2015-06-24"  # RXA-3 is a date: no time made up
    assert first["doseQuantity"]["value"] == Decimal("0.5")
    assert first["doseQuantity"]["code"] == "mL"
    assert (first["lotNumber"], first["expirationDate"]) == ("315841", "2015-12-16")
    assert first["contained"][0]["identifier"] == [{"system": MVX, "value": "PMC"}]
    assert first["route"]["coding"][0]["code"] == "IM"
    assert first["site"]["coding"][0]["code"] == "RD"
    assert first["fundingSource"]["coding"][0]["code"] == "PHC70"
    assert first["programEligibility"][0]["coding"][0]["code"] == "V01"
    assert first["education"] == [{"documentType": "253088698300028811170411",
                                   "presentationDate": "2015-06-24"}]
    assert first["primarySource"] is True and first["status"] == "completed"
    assert first["identifier"][0]["value"] == "13696"
    for imm, day in ((flu1, "2014-10-12"), (flu2, "2013-11-12")):
        assert imm["vaccineCode"]["coding"][0]["code"] == "88"
        assert imm["occurrenceDateTime"] == day
        assert imm["primarySource"] is False
        assert imm["reportOrigin"]["coding"][0]["code"] == "01"
        assert "doseQuantity" not in imm  # 999: the amount is unknown, not 999 mL


def _vxu(rxa: str, rxr: str = "", obx: str = "", pid3: str = "MR-77^^^BIRCH^MR") -> str:
    return "\r".join(s for s in (
        "MSH|^~\\&|EHR|BIRCH|IIS|STATE|20261203101500-0600||VXU^V04^VXU_V04|CTRL-1|P|2.5.1|||"
        "ER|AL|||||Z22^CDCPHINVS",
        f"PID|1||{pid3}||Lopez^Ana^^^^^L||20240105|F",
        "ORC|RE||DOSE-9^BIRCH", rxa, rxr, obx) if s) + "\r"


def _one(text: str, registry, c=None):
    c = c or clinic()
    ctx = V2Context(map=MapContext(clinic=c), namespaces={"BIRCH": c.mrn_namespace})
    converted = convert(registry, parse(text), ctx)
    return converted, resources(converted.bundle, "Immunization")[0]


def test_a_refusal_is_not_done_with_the_parents_reason(registry):
    _, imm = _one(_vxu("RXA|0|1|20261203||03^MMR^CVX|999||||||||||||00^Parental "
                               "decision^NIP002||RE"), registry)
    assert imm["status"] == "not-done"
    codes = [c["code"] for c in imm["statusReason"]["coding"]]
    assert codes[0] == "PATOBJ" and "00" in codes
    assert uscore_problems(imm, corpus_dir()) == []


def test_a_delete_replaces_the_dose_as_entered_in_error(registry):
    converted, imm = _one(_vxu("RXA|0|1|20261203||08^HepB^CVX|0.5|mL^^UCUM||00^new^NIP001"
                               "|||||||||||CP|D"), registry)
    entry = converted.bundle["entry"][1]
    assert imm["status"] == "entered-in-error"
    assert entry["request"]["method"] == "PUT"
    assert entry["request"]["url"].endswith("DOSE-9")


def test_a_historical_dose_from_another_provider_names_its_origin(registry):
    _, imm = _one(_vxu("RXA|0|1|20250301||20^DTaP^CVX|999|||02^from other provider^NIP001"
                       "|||||||||||CP|A"), registry)
    assert imm["primarySource"] is False
    assert imm["reportOrigin"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/immunization-origin",
        "code": "provider"}


def test_a_partial_dose_is_subpotent(registry):
    _, imm = _one(_vxu("RXA|0|1|20261203||140^Flu^CVX|0.25|mL^^UCUM||00^new^NIP001"
                       "|||||||||||PA|A"), registry)
    assert imm["status"] == "completed" and imm["isSubpotent"] is True


def test_a_vxu_with_no_date_is_refused_naming_rxa_3(registry):
    with pytest.raises(InputError) as err:
        _one(_vxu("RXA|0|1|||08^HepB^CVX|0.5|mL^^UCUM"), registry)
    assert [p.location for p in err.value.problems] == ["RXA[1]-3"]


def test_a_vxu_without_the_clinics_mrn_is_held_for_review(registry):
    with pytest.raises(InputError) as err:
        _one(_vxu("RXA|0|1|20261203||08^HepB^CVX", pid3="77^^^OTHER^MR"), registry)
    assert err.value.problems[0].code == "business-rule"
    assert err.value.problems[0].location == "PID-3"


def test_an_unknown_observation_is_kept_in_a_note_with_a_warning(registry):
    converted, imm = _one(_vxu("RXA|0|1|20261203||08^HepB^CVX|0.5|mL^^UCUM||00^new^NIP001",
                               "RXR|C28161^IM^NCIT|LT^left thigh^HL70163",
                               "OBX|1|CE|31044-1^Reaction^LN|1|39579001^Anaphylaxis^SCT"
                               "||||||F"), registry)
    assert "39579001" in imm["note"][0]["text"]
    assert [w.location for w in converted.warnings] == ["OBX[1]-5"]
    assert imm["route"]["coding"][0]["code"] == "IM"
    assert imm["site"]["coding"][0]["code"] == "LT"


def test_a_vxu_over_mllp_is_stored_converted_delivered_and_acked(registry, tmp_path):
    """What ``mafhir listen`` does with a VXU: on a real loopback socket, AA once the
    Bundle (Patient + the dose) is delivered; the same message again is answered from the
    store, not delivered twice. (Enhanced mode, ER/AL, sends the application ACK to the
    sender's own port: the listener's ``--ack-to``, tested with the core.)"""
    from mafhir.hl7v2 import ConvertHandler, MessageStore, MLLPClient, MLLPListener, Receiver

    c = clinic()
    ctx = V2Context(map=MapContext(clinic=c), namespaces={"BIRCH": c.mrn_namespace})
    delivered: list[dict] = []
    store = MessageStore(tmp_path / "in.sqlite")
    text = _vxu("RXA|0|1|20261203||08^HepB^CVX|0.5|mL^^UCUM||00^new^NIP001|||||||||||CP|A")
    text = text.replace("|ER|AL|", "|||")  # original mode: the ACK on this connection
    with MLLPListener("127.0.0.1", 0, Receiver(store, ConvertHandler(
            registry, ctx, delivered.append))) as listener, \
            MLLPClient(*listener.address, timeout=10) as client:
        first = client.send(text)
        again = client.send(text)
    store.close()
    assert b"MSA|AA|CTRL-1" in first and b"MSA|AA|CTRL-1" in again
    assert len(delivered) == 1
    assert [e["resource"]["resourceType"] for e in delivered[0]["entry"]] == [
        "Patient", "Immunization"]
