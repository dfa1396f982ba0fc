"""QBP^Q11 written from a FHIR Patient: read back by python-hl7 (not mafhir's parser) and
compared field by field with the CDC guide's layout as the corpus's own QBP example
(izgw-57) shows it; what the registry needs and the Patient lacks is refused by name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers_iis_in import clinic, corpus_dir, theirs
from mafhir_iis.query import qbp_q11

from mafhir.context import MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context

CHILD = {
    "resourceType": "Patient",
    "identifier": [{"type": {"coding": [{"code": "MR"}]}, "system": "urn:clinic:mrn",
                    "value": "MR-1001"}],
    "name": [{"use": "official", "family": "Child", "given": ["Bobbie", "Q"]}],
    "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
                   "valueString": "Que"}],
    "birthDate": "2005-05-12", "gender": "male",
    "address": [{"line": ["10 East Main St"], "city": "Myfaircity", "state": "GA",
                 "postalCode": "30001"}],
}


def _ctx() -> V2Context:
    return V2Context(map=MapContext(clinic=clinic()), application="MAFHIR",
                     facility="BIRCH-IIS-01", receiving=("IIS", "STATEIIS"),
                     now=datetime(2026, 12, 3, 15, 0, tzinfo=UTC))


@pytest.mark.parametrize(("kind", "name"), [("Z34", "Request Immunization History"),
                                            ("Z44", "Request Evaluated History and Forecast")])
def test_a_query_has_the_guides_fields(kind, name):
    text = qbp_q11(CHILD, kind, ctx=_ctx(), query_tag="Q-77", control_id="C-77",
                   max_records=5)
    msg = theirs(text)
    msh, qpd, rcp = msg.segment("MSH"), msg.segment("QPD"), msg.segment("RCP")
    assert str(msh[9]) == "QBP^Q11^QBP_Q11" and str(msh[10]) == "C-77"
    assert str(msh[12]) == "2.5.1" and (str(msh[15]), str(msh[16])) == ("ER", "AL")
    assert str(msh[21]) == f"{kind}^CDCPHINVS"
    assert (str(msh[4]), str(msh[5]), str(msh[6])) == ("BIRCH-IIS-01", "IIS", "STATEIIS")
    assert str(qpd[1]) == f"{kind}^{name}^CDCPHINVS"
    assert str(qpd[2]) == "Q-77"
    assert str(qpd[3]) == "MR-1001^^^MAFHIR&urn:clinic:mrn&URI^MR"
    assert str(qpd[4]) == "Child^Bobbie^Q^^^^L"
    assert str(qpd[5]) == "Que^^^^^^M"
    assert (str(qpd[6]), str(qpd[7])) == ("20050512", "M")
    assert str(qpd[8]) == "10 East Main St^^Myfaircity^GA^30001^^L"
    assert str(rcp) == "RCP|I|5^RD&records&HL70126"


@pytest.mark.corpus
def test_the_layout_matches_the_corpus_example():
    """izgw-57 is a real Z34: the same segments, and QPD/RCP fields in the same places."""
    example = theirs((corpus_dir() / "hl7v2" / "qbp-rsp" / "izgateway-v2tofhir" /
                      "izgw-57-QBP_Q11_QBP_Q11.hl7").read_bytes())
    ours = theirs(qbp_q11(CHILD, "Z34", ctx=_ctx(), query_tag="1057", control_id="1",
                          max_records=5))
    assert [str(s[0]) for s in ours] == [str(s[0]) for s in example]
    for n in (1, 4, 6, 7):
        assert str(ours.segment("QPD")[n]) == str(example.segment("QPD")[n]), n
    for n in (5, 8):  # the example's mother has a given name, its address no ZIP
        mine, theirs_ = (str(m.segment("QPD")[n]).split("^") for m in (ours, example))
        assert (mine[0], mine[6]) == (theirs_[0], theirs_[6]), n
    assert str(ours.segment("RCP")) == str(example.segment("RCP"))


def test_what_the_registry_needs_is_refused_by_name():
    bare = {"resourceType": "Patient", "name": [{"family": "Child"}]}
    with pytest.raises(InputError) as err:
        qbp_q11(bare, "Z44", ctx=_ctx(), query_tag="", control_id="C")
    assert [p.location for p in err.value.problems] == [
        "Patient.identifier", "Patient.name", "Patient.birthDate", "query_tag"]
    assert "Child" not in str(err.value)  # no patient data in the error


def test_an_unknown_query_kind_is_refused():
    with pytest.raises(InputError):
        qbp_q11(CHILD, "Z99", ctx=_ctx(), query_tag="Q", control_id="C")  # type: ignore[arg-type]
