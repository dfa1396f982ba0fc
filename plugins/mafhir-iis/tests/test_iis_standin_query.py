"""The stand-in IIS's answers to queries it cannot or should not answer in full: a query
without its tag (AE naming QPD-2, as the corpus's izgw-63 answer does), two patients
matching the same demographics (TM), read back by the same RSP reader the clinic uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from helpers_iis_in import clinic, theirs
from mafhir_iis.rsp import QueryRefused, read_rsp
from mafhir_iis.standin import PatientRecord, Registry
from mafhir_iis.standin.answer import answer

from mafhir.context import MapContext
from mafhir.hl7v2 import V2Context

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _qbp(tag: str, qpd3: str = "") -> bytes:
    return ("MSH|^~\\&|MAFHIR|BIRCH|IIS|STATE|20261203||QBP^Q11^QBP_Q11|Q1|P|2.5.1|||ER|AL"
            f"|||||Z34^CDCPHINVS\rQPD|Z34^Request Immunization History^CDCPHINVS|{tag}|{qpd3}"
            "|Twin^Sam^^^^^L||20200202|M\rRCP|I|5^RD&records&HL70126\r").encode()


def _ctx() -> V2Context:
    return V2Context(map=MapContext(clinic=clinic()))


def test_a_query_without_its_tag_is_refused_naming_qpd_2():
    reply = answer(_qbp(""), Registry(), NOW)
    assert str(theirs(reply).segment("MSH")[9]) == "RSP^K11^RSP_K11"
    with pytest.raises(QueryRefused) as err:
        read_rsp(reply, _ctx())
    assert err.value.problems[0].location == "QPD[1]-2"
    assert "required field missing" in str(err.value)


def test_two_patients_with_the_same_demographics_are_too_many():
    registry = Registry()
    for n in ("A-1", "A-2"):
        registry.record(PatientRecord(n, "BIRCH", "Twin", "Sam", "20200202", "M"), [], "B", n)
    result = read_rsp(answer(_qbp("T-1"), registry, NOW), _ctx())
    assert (result.outcome, result.query_tag) == ("too-many", "T-1")
