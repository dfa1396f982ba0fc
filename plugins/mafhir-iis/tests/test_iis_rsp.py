"""RSP^K11 read into a typed result: the corpus answers (IZ Gateway's test messages) with
values read by eye from the message and written here; NF, TM, PD and candidate lists are
answers, AE and AR are errors carrying the registry's own text; every Immunization passes
the independent US Core 6.1.0/7.0.0 checker (tests/uscore.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from helpers_iis_in import corpus_dir, ctx_for, theirs, uscore_problems
from mafhir_iis.rsp import QueryRefused, read_rsp

from mafhir.context import Clinic
from mafhir.errors import InputError
from mafhir.plugins import get_registry
from mafhir.validation import check_bundle

ORIGIN = "http://terminology.hl7.org/CodeSystem/immunization-origin"


def _answer(name: str):
    data = (corpus_dir() / "hl7v2" / "qbp-rsp" / "izgateway-v2tofhir" / name).read_bytes()
    return data, read_rsp(data, ctx_for(data))


def _clean(bundle) -> None:
    errors = [i for i in check_bundle(bundle, get_registry().profiles)
              if i.severity in ("error", "fatal")]
    assert errors == []


@pytest.mark.corpus
def test_a_z32_history_is_every_dose_the_registry_holds():
    """izgw-02: patient 234815 (born 2004-03-15); 19 doses, the first CVX 08 (hep B) on
    2004-03-15 of .05 mL, the last CVX 49 (Hib) on 2005-06-15; the registry warns that
    PD1-16 is missing (ERR severity W)."""
    data, result = _answer("izgw-02-RSP_K11_RSP_K11.hl7")
    assert (result.outcome, result.profile, result.query_tag) == ("found", "Z32", "QUERY-02")
    imms = result.of_type("Immunization")
    assert len(imms) == 19 == len(theirs(data).segments("RXA"))
    first, last = imms[0], imms[-1]
    assert first["vaccineCode"]["coding"][0]["code"] == "08"
    assert first["occurrenceDateTime"] == "2004-03-15"
    assert first["doseQuantity"]["value"] == Decimal("0.05")
    assert (last["vaccineCode"]["coding"][0]["code"], last["occurrenceDateTime"]) == \
        ("49", "2005-06-15")
    for imm in imms:
        assert imm["primarySource"] is False
        assert imm["reportOrigin"]["coding"][0] == {
            "system": ORIGIN, "code": "jurisdiction", "display": "Jurisdictional IIS"}
        assert uscore_problems(imm, corpus_dir()) == []
    assert result.of_type("Patient")[0]["birthDate"] == "2004-03-15"
    [err] = result.errors
    assert (err.location, err.severity, err.text) == (
        "PD1-16", "W", "patient immunization registry status is missing")
    _clean(result.bundle)


@pytest.mark.corpus
def test_a_z42_forecast_gives_a_recommendation_per_vaccine_group():
    """izgw-56 (CDC IG Z42 example): MMR (03), IPV (10) and DTaP (107) each due
    2015-02-14, answered 2015-01-31: due, not yet overdue."""
    _, result = _answer("izgw-56-RSP_K11_RSP_K11.hl7")
    assert (result.outcome, result.profile) == ("found", "Z42")
    [rec] = result.of_type("ImmunizationRecommendation")
    got = [(r["vaccineCode"][0]["coding"][0]["code"],
            {c["code"]["coding"][0]["code"]: c["value"] for c in r["dateCriterion"]},
            r["forecastStatus"]["coding"][0]["code"]) for r in rec["recommendation"]]
    assert got == [("03", {"30980-7": "2015-02-14"}, "due"),
                   ("10", {"30980-7": "2015-02-14"}, "due"),
                   ("107", {"30980-7": "2015-02-14"}, "due")]
    assert rec["date"].startswith("2015-01-31")
    assert result.of_type("Immunization") == []  # the 998 row is the forecast, not a dose
    _clean(result.bundle)


@pytest.mark.corpus
def test_a_z42_evaluates_each_dose_and_shows_an_unreadable_one():
    """izgw-55: dose 1 hep B (CVX 31) evaluated as dose 1 of 3 for hep B; dose 2 Hib
    (CVX 48) as dose 1 of 4 for Hib (17); dose 3's RXA-3 has day 51 (a defect of the
    example): left out, each problem named; hep B is due 2009-10-15."""
    _, result = _answer("izgw-55-RSP_K11_RSP_K11.hl7")
    imms = result.of_type("Immunization")
    assert [i["vaccineCode"]["coding"][0]["code"] for i in imms] == ["31", "48"]
    evals = result.of_type("ImmunizationEvaluation")
    assert [(e["targetDisease"]["coding"][0]["code"], e["doseNumberPositiveInt"],
             e["seriesDosesPositiveInt"]) for e in evals] == [("31", 1, 3), ("17", 1, 4)]
    assert {w.location for w in result.warnings} >= {"RXA[3]-3", "RXA[3]"}
    [rec] = result.of_type("ImmunizationRecommendation")
    assert rec["recommendation"][0]["dateCriterion"][0]["value"] == "2009-10-15"
    _clean(result.bundle)


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "outcome"), [("izgw-60-RSP_K11_RSP_K11.hl7", "not-found"),
                                                ("izgw-61-RSP_K11_RSP_K11.hl7", "too-many")])
def test_no_match_and_too_many_are_answers_not_errors(name, outcome):
    _, result = _answer(name)
    assert result.outcome == outcome
    assert result.bundle["entry"] == []


@pytest.mark.corpus
def test_a_candidate_list_names_each_candidate():
    """izgw-58 (Z31): two patients named Robert Child, born 2005-05-12."""
    _, result = _answer("izgw-58-RSP_K11_RSP_K11.hl7")
    assert result.outcome == "candidates"
    assert [c["birthDate"] for c in result.candidates] == ["2005-05-12", "2005-05-12"]


@pytest.mark.corpus
def test_an_application_error_carries_the_registrys_text():
    """izgw-63: MSA AE, ERR QPD^1^2 "required field missing" (HL70357 101)."""
    with pytest.raises(QueryRefused) as err:
        _answer("izgw-63-RSP_K11_RSP_K11.hl7")
    assert err.value.ack_code == "AE"
    assert "required field missing" in str(err.value)
    assert err.value.problems[0].location == "QPD[1]-2"
    assert not err.value.transient


def test_a_reject_is_an_error_with_the_registrys_text():
    text = ("MSH|^~\\&|IIS|STATE|EHR|BIRCH|20261203||RSP^K11^RSP_K11|R-9|P|2.5.1|||NE|NE"
            "|||||Z33^CDCPHINVS\rMSA|AR|Q-9\rERR||MSH^1^9|200^Unsupported message type^"
            "HL70357|E||||Query type not allowed for this facility\rQAK|Q-9|AR\r")
    with pytest.raises(QueryRefused) as err:
        read_rsp(text, ctx_for("MSH|^~\\&|\rPID|1||1^^^X^MR\r"))
    assert err.value.ack_code == "AR"
    assert "Query type not allowed for this facility" in str(err.value)
    assert err.value.problems[0].location == "MSH[1]-9"


def test_an_answer_that_is_not_an_rsp_is_refused_naming_msh_9():
    with pytest.raises(InputError) as err:
        read_rsp("MSH|^~\\&|IIS|S|E|B|20261203||ACK^V04^ACK|1|P|2.5.1\rMSA|AA|1\r",
                 ctx_for("MSH|^~\\&|\rPID|1||1^^^X^MR\r"))
    assert err.value.problems[0].location == "MSH-9"


def test_a_protected_record_is_an_answer():
    text = ("MSH|^~\\&|IIS|STATE|EHR|BIRCH|20261203||RSP^K11^RSP_K11|R-9|P|2.5.1|||NE|NE"
            "|||||Z33^CDCPHINVS\rMSA|AA|Q-9\rQAK|Q-9|PD|Z34^Request Immunization History"
            "^CDCPHINVS\r")
    result = read_rsp(text, ctx_for("MSH|^~\\&|\rPID|1||1^^^X^MR\r"))
    assert result.outcome == "protected" and result.query_tag == "Q-9"


def test_an_answer_naming_the_patient_by_registry_ids_only_files_under_the_patient_asked():
    """PID-3 holds only the IIS's own id (SR): without the patient asked about that is
    refused (business-rule: a registry id never matches a chart); with it, the dose is
    the asked patient's and no Patient is written."""
    text = ("MSH|^~\\&|MYIIS|STATE|EHR|BIRCH|20261203||RSP^K11^RSP_K11|R-5|P|2.5.1|||NE|NE"
            "|||||Z32^CDCPHINVS\rMSA|AA|Q-5\rQAK|Q-5|OK|Z34^Request Immunization History"
            "^CDCPHINVS\rQPD|Z34^Request Immunization History^CDCPHINVS|Q-5|MR-9^^^BIRCH^MR\r"
            "PID|1||987633^^^MYIIS^SR||Child^Robert^^^^^L||20050512|M\r"
            "ORC|RE||142324567^IIS\rRXA|0|1|20050725||03^MMR^CVX|0.5|mL^^UCUM||01^hist^NIP001"
            "\r")
    ctx = ctx_for("MSH|^~\\&|\rPID|1||1^^^BIRCH^MR\r")
    with pytest.raises(InputError) as err:
        read_rsp(text, ctx)
    assert err.value.problems[0].code == "business-rule"
    asked = {"resourceType": "Patient", "identifier": [{"system": "urn:clinic:mrn",
                                                        "value": "MR-9"}]}
    result = read_rsp(text, ctx, asked)
    [imm] = result.of_type("Immunization")
    assert result.of_type("Patient") == []
    assert imm["patient"] == {"reference": "Patient?identifier=urn:clinic:mrn|MR-9"}
    assert [w.location for w in result.warnings] == ["PID-3"]


def test_a_forecast_stamped_without_a_zone_keeps_its_date():
    """MSH-7 with a time but no offset, and no zone configured: the forecast's date is the
    day (nothing invented), and the dates due are read as dates (they need no zone)."""
    text = ("MSH|^~\\&|IIS|STATE|EHR|BIRCH|202612031400||RSP^K11^RSP_K11|R-6|P|2.5.1|||NE|NE"
            "|||||Z42^CDCPHINVS\rMSA|AA|Q-6\rQAK|Q-6|OK|Z44^Request Evaluated History and "
            "Forecast^CDCPHINVS\rPID|1||MR-1^^^BIRCH^MR||Child^Ann^^^^^L||20260601|F\r"
            "ORC|RE||9999^IIS\rRXA|0|1|20261203|20261203|998^No vaccine administered^CVX|999"
            "||||||||||||||NA\rOBX|1|CE|30956-7^vaccine type^LN|1|03^MMR^CVX||||||F\r"
            "OBX|2|DT|30980-7^Date vaccination due^LN|1|20270601||||||F\r"
            "OBX|3|DT|59778-1^Date dose is overdue^LN|1|20270701||||||F\r")
    zoneless = Clinic(name="No Zone Clinic", system="urn:mafhir:test:no-zone")
    result = read_rsp(text, ctx_for("MSH|^~\\&|\rPID|1||1^^^BIRCH^MR\r", zoneless))
    [rec] = result.of_type("ImmunizationRecommendation")
    assert rec["date"] == "2026-12-03"
    [one] = rec["recommendation"]
    assert one["forecastStatus"]["coding"][0]["code"] == "due"  # overdue only from 2027-07-01
    assert [c["value"] for c in one["dateCriterion"]] == ["2027-06-01", "2027-07-01"]


@pytest.mark.corpus
def test_every_corpus_answer_reads_to_valid_fhir_or_a_named_refusal():
    """Each RSP^K11 of the corpus: a result whose Bundle passes mafhir's checks and whose
    Patients and Immunizations pass the independent US Core checker — or, for the one AE
    (izgw-63), QueryRefused; one Immunization per RXA that is not a forecast (998) row."""
    paths = sorted((corpus_dir() / "hl7v2" / "qbp-rsp").glob("*/*RSP_K11*.hl7"))
    assert len(paths) == 17
    refused = []
    for path in paths:
        data = path.read_bytes()
        try:
            result = read_rsp(data, ctx_for(data))
        except QueryRefused:
            refused.append(path.name)
            continue
        _clean(result.bundle)
        for rtype in ("Patient", "Immunization"):
            for resource in result.of_type(rtype):
                assert uscore_problems(resource, corpus_dir()) == [], path.name
        doses = [s for s in theirs(data).segments("RXA") if not str(s[5]).startswith("998")] \
            if "RXA" in str(theirs(data)) else []
        unreadable = {w.location for w in result.warnings if w.location.startswith("RXA[")
                      and "-" not in w.location}
        assert len(result.of_type("Immunization")) == len(doses) - len(unreadable), path.name
    assert refused == ["izgw-63-RSP_K11_RSP_K11.hl7"]
