"""ACK^V04 in: the real IIS acknowledgments of the corpus, and the guide's edge cases.

Each expectation is read off the ACK text by hand (its MSA-1, ERR-2/3/4/5/8).
"""

from __future__ import annotations

import pytest
from helpers_iis import corpus_dir
from mafhir_iis.ack import outcome, read_iis_ack

from mafhir.errors import PermanentError, TransientError

SENT = "9299381"  # the MSH-10 every corpus ACK acknowledges


@pytest.fixture(name="corpus")
def _corpus():
    return corpus_dir()


def corpus_ack(corpus, n: int) -> bytes:
    return (corpus / "hl7v2" / "ack" / "izgateway-v2tofhir" / f"izgw-{n}-ACK_V04_ACK.hl7"
            ).read_bytes()


@pytest.mark.corpus
def test_aa_is_delivered(corpus):
    assert outcome(read_iis_ack(corpus_ack(corpus, 48)), SENT) == {
        "message": "VXU^V04", "ack": "AA", "acknowledges": SENT}


@pytest.mark.corpus
def test_aa_with_a_warning_is_delivered_with_it(corpus):
    got = outcome(read_iis_ack(corpus_ack(corpus, 53)), SENT)
    assert got["ack"] == "AA"
    assert got["warnings"] == ["PID[2]: PID-2 is not supported -- data ignored"]


@pytest.mark.corpus
def test_ar_is_permanent_naming_the_field_and_the_registry_text(corpus):
    with pytest.raises(PermanentError) as info:
        outcome(read_iis_ack(corpus_ack(corpus, 49)), SENT)
    text = str(info.value)
    assert "(AR)" in text and "MSH[1]-12" in text
    assert "Unsupported HL7 Version ID" in text and "203 unsupported version id" in text
    assert info.value.code == "not-supported"


@pytest.mark.corpus
def test_ae_with_errors_is_permanent_with_each_err_and_the_0533_meaning(corpus):
    with pytest.raises(PermanentError) as info:
        outcome(read_iis_ack(corpus_ack(corpus, 51)), SENT)
    text = str(info.value)
    assert text.startswith("the registry refused the VXU^V04 (AE): ")
    assert "RXA[1]-5: Vaccine code not recognized" in text
    assert "103 table value not found" in text  # ERR-3 as the registry wrote it
    assert "application error 5 Table value not found" in text  # ERR-5, table 0533
    assert "RXA: RXA is required segment" in text
    assert info.value.code == "code-invalid"
    with pytest.raises(PermanentError) as info:
        outcome(read_iis_ack(corpus_ack(corpus, 54)), SENT)
    assert "PID[1]-7: Birth data after today" in str(info.value)
    assert "application error 1 Illogical Date error" in str(info.value)


@pytest.mark.corpus
def test_every_v04_ack_of_the_corpus_is_read(corpus):
    for n in range(48, 55):
        ack = read_iis_ack(corpus_ack(corpus, n))
        assert ack.acked_id == SENT and ack.code in ("AA", "AE", "AR")


def ack(code: str, *errs: str, acked: str = "M1") -> str:
    return "\r".join(["MSH|^~\\&|IIS|ST|MAFHIR|F|20251001||ACK^V04^ACK|A1|P|2.5.1",
                      f"MSA|{code}|{acked}", *errs]) + "\r"


WARN = "ERR||PID^1^11|101^Required field missing^HL70357|W|7^Required data missing^HL70533" \
       "|||Address missing"
INFO = "ERR||RXA^1^17||I|8^Data was ignored^HL70533|||Manufacturer ignored"
ERROR = "ERR||RXA^1^3|102^Data type error^HL70357|E|1^illogical date^HL70533|||Date in future"


def test_ae_with_only_warnings_is_delivered_and_reports_them():
    got = outcome(read_iis_ack(ack("AE", WARN, INFO)), "M1")
    assert got["ack"] == "AE"
    assert got["warnings"] == [
        "PID[1]-11: Address missing [101 Required field missing; application error 7 "
        "Required data missing]",
        "RXA[1]-17: Manufacturer ignored [application error 8 Data was ignored]"]


def test_ae_with_one_error_among_warnings_is_permanent():
    with pytest.raises(PermanentError) as info:
        outcome(read_iis_ack(ack("AE", WARN, ERROR)), "M1")
    # the error is named; the 0533 meaning is the guide's, not the registry's spelling
    assert "RXA[1]-3: Date in future [102 Data type error; application error 1 Illogical " \
           "Date error]" in str(info.value)
    assert "Address missing" not in str(info.value)
    assert info.value.code == "value"


def test_ae_without_severity_or_without_err_is_not_taken_for_a_warning():
    no_severity = "ERR||PID^1^5|101^Required field missing^HL70357|||||Name missing"
    for answer in (ack("AE", no_severity), ack("AE")):
        with pytest.raises(PermanentError):
            outcome(read_iis_ack(answer), "M1")


def test_an_ack_to_another_message_is_retried():
    with pytest.raises(TransientError):
        outcome(read_iis_ack(ack("AA", acked="OTHER")), "M1")


def test_not_an_ack_is_permanent_and_names_no_content():
    with pytest.raises(PermanentError) as info:
        read_iis_ack("MSH|^~\\&|IIS|ST|||20251001||ACK^V04|A1|P|2.5.1\r")
    assert "MSA" in str(info.value)
    with pytest.raises(PermanentError):
        outcome(read_iis_ack(ack("XX")), "M1")
