"""Code-system names and units as real senders write them → canonical URIs and UCUM.

Expected URIs are FHIR's own (hl7.org/fhir/sid/…, terminology.hl7.org); expected UCUM
codes are hand-checked against the UCUM specification's tables (``umol/L``, ``[IU]/L``,
``mg/g{creat}``, ``/min``, ``Cel``), not read back from the code under test.
"""

from __future__ import annotations

import pytest

from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context, parse, to_fhir
from mafhir.hl7v2.datatypes import codeable
from mafhir.hl7v2.datatypes import system_for as reexported
from mafhir.hl7v2.terminology import (
    is_ucum,
    local_systems,
    local_systems_from_settings,
    system_for,
    system_name,
    ucum_code,
)

ICD9 = "http://hl7.org/fhir/sid/icd-9-cm"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"


@pytest.mark.parametrize(("name", "uri"), [
    ("I9", ICD9), ("I9C", ICD9), ("I9CDX", ICD9), ("ICD9CM", ICD9),
    ("I10", ICD10CM), ("I10C", ICD10CM), ("ICD10CM", ICD10CM), ("ICD-10-CM", ICD10CM),
    ("icd10cm", ICD10CM), ("SCT", SCT), ("SNM", SCT), ("SNOMED-CT", SCT), ("LN", LOINC),
    ("LOINC", LOINC),
])
def test_known_code_systems_get_their_canonical_uri_never_an_invented_urn(name, uri):
    assert system_for(name) == uri
    assert reexported(name) == uri  # datatypes keeps the name for its callers


def test_a_local_99zzz_name_takes_the_senders_configured_system():
    own = "https://lab.example.org/codes/tests"
    assert system_for("99ABC").startswith("urn:mafhir:v2-0396:")  # not configured: kept
    with local_systems({"99ABC": own}):
        assert system_for("99ABC") == own
        assert system_name(own) == "99ABC"
        msg = parse(b"MSH|^~\\&|LABSYS|QUEST|MAFHIR|CLINIC|20261128061500-0500||ORU^R01|L1|P|"
                    b"2.5.1\rOBX|1|ST|K123^Potassium panel^99ABC||x\r")
        concept = codeable(msg.first("OBX").v(3))
        assert concept["coding"][0]["system"] == own
    assert system_for("99ABC").startswith("urn:mafhir:v2-0396:")  # scoped to the block


def test_local_systems_are_read_per_sender_from_settings():
    settings = {"code-system.LABSYS^QUEST.99QST": "https://quest.example/codes",
                "code-system.99ALL": "https://shared.example/codes",
                "code-system.OTHER^X.99QST": "https://other.example/codes"}
    assert local_systems_from_settings(settings, "LABSYS|QUEST") == {
        "99QST": "https://quest.example/codes", "99ALL": "https://shared.example/codes"}


@pytest.mark.parametrize(("written", "ucum"), [
    ("µmol/L", "umol/L"),        # micro sign U+00B5
    ("\u03bcmol/L", "umol/L"),   # Greek mu
    ("umol/l", "umol/L"), ("g/l", "g/L"), ("U/L", "U/L"), ("IU/L", "[IU]/L"),
    ("mIU/mL", "m[IU]/mL"), ("mg/g crea", "mg/g{creat}"), ("beats/min", "/min"),
    ("mEq/L", "meq/L"), ("mmHg", "mm[Hg]"), ("mg/hr", "mg/h"), ("K/uL", "10*3/uL"),
    ("10^9/L", "10*9/L"), ("mL/min/1.73m2", "mL/min/{1.73_m2}"), ("C", "Cel"),
    ("mg/dL", "mg/dL"), ("mmol/mol", "mmol/mol"), ("%", "%"),
])
def test_units_as_written_become_checked_ucum(written, ucum):
    assert ucum_code(written) == ucum
    assert is_ucum(ucum)


@pytest.mark.parametrize("written", ["xyz", "per hpf-ish", "mg/dl crea x", ""])
def test_a_unit_that_is_not_ucum_gets_no_code(written):
    assert ucum_code(written) is None


def test_the_ucum_check_refuses_what_is_not_ucum():
    assert not is_ucum("beats/min")  # 'beats' is no UCUM atom
    assert not is_ucum("µmol/L")
    assert is_ucum("mg/g{creat}")


def test_lab_result_units_get_ucum_codes_and_keep_their_text(registry):
    """An ORU^R01 whose OBX-6 units are written as labs write them (no coding system)."""
    clinic = Clinic(name="Maple Street Family Clinic", system="urn:mafhir:test:units")
    ctx = V2Context(map=MapContext(clinic=clinic))
    text = (
        "MSH|^~\\&|LABSYS|QUEST|MAFHIR|CLINIC|20261128061500-0500||ORU^R01^ORU_R01|U1|P|2.5.1\r"
        "PID|1||MS-1^^^MAFHIR&urn:mafhir:test:units/mrn&URI^MR||Doe^Ann||19610402|F\r"
        "OBR|1|ord-1^MAFHIR^urn:mafhir:test:units/lab_order^URI|ACC-1^QUEST|2160-0^Creat^LN"
        "|||20261127092000-0500|||||||||||||||20261128061000-0500|||F\r"
        "OBX|1|NM|14682-9^Creatinine [Moles/volume] in Serum or Plasma^LN||88|µmol/L|"
        "45-90||||F\r"
        "OBX|2|NM|1920-8^AST^LN||31|IU/L|10-40||||F\r"
        "OBX|3|NM|14959-1^Microalbumin/Creatinine^LN||12|mg/g crea|0-30||||F\r"
    )
    bundle = to_fhir(registry, parse(text.encode()), ctx)
    quantities = {r["code"]["coding"][0]["code"]: r["valueQuantity"]
                  for e in bundle["entry"] if (r := e["resource"])["resourceType"] ==
                  "Observation"}
    assert quantities["14682-9"] == {"value": 88, "unit": "µmol/L",
                                     "system": "http://unitsofmeasure.org", "code": "umol/L"}
    assert quantities["1920-8"]["code"] == "[IU]/L"
    assert quantities["1920-8"]["unit"] == "IU/L"
    assert quantities["14959-1"]["code"] == "mg/g{creat}"
    assert quantities["14959-1"]["unit"] == "mg/g crea"


def test_every_known_spelling_maps_to_checked_ucum():
    from mafhir.hl7v2.terminology import UNIT_SPELLINGS

    assert [code for code in UNIT_SPELLINGS.values() if not is_ucum(code)] == []
