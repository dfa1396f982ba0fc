"""FHIR decimals keep their digits: ``13.40`` written, stored in the outbox and delivered
is still ``13.40`` (a lab reports the precision it measured; 13.4 would claim less)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner

from mafhir import io
from mafhir.cli.main import build_cli


@pytest.mark.parametrize("value, text", [
    (Decimal("13.40"), b"13.40"), (Decimal("0.050"), b"0.050"), (Decimal("120"), b"120"),
    (Decimal("-2.500"), b"-2.500"), (Decimal("1E+2"), b"100"), (Decimal("7.0"), b"7.0"),
])
def test_decimals_are_written_digit_for_digit(value, text):
    assert io.dumps({"value": value}) == b'{"value":' + text + b"}"


def test_non_finite_decimals_are_refused_not_written_as_invalid_json():
    with pytest.raises(TypeError):
        io.dumps({"value": Decimal("NaN")})


def test_loads_reads_every_decimal_exactly_and_refuses_what_json_has_not():
    exact = io.loads(b'{"a": 13.40, "b": [0.5, 2], "c": "v1.0", "d": 0.1234567890123456789}')
    assert str(exact["a"]) == "13.40" and exact["b"][1] == 2 and isinstance(exact["b"][1], int)
    assert io.dumps(exact) == b'{"a":13.40,"b":[0.5,2],"c":"v1.0","d":0.1234567890123456789}'
    plain = io.loads(b'{"a": 13.4}')  # the same type whatever else the document holds
    assert plain["a"] == Decimal("13.4")
    assert io.loads(b'{"x": 1e3}')["x"] == Decimal("1E+3")
    assert io.loads(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890
    for bad in (b'{"a": 1.10, "b": NaN}', b'{"a": Infinity}', b'[-Infinity]'):
        with pytest.raises(ValueError):
            io.loads(bad)


def test_huge_exponents_stay_short():
    assert io.dumps([Decimal("1e999999999")]) == b"[1E+999999999]"
    assert io.dumps([Decimal("1.5e-50")]) == b"[1.5E-50]"


def test_documents_fhir_exact_tasks_as_floats():
    from io import BytesIO

    text = (b'{"resourceType": "Observation", "valueQuantity": {"value": 13.40}}\n'
            b'{"task": "vitals", "temperature": {"value": 98.60}}\n')
    (_, fhir), (_, task) = io.iter_documents(BytesIO(text))
    assert str(fhir["valueQuantity"]["value"]) == "13.40"
    value = task["temperature"]["value"]
    assert isinstance(value, float) and value == 98.6


def _bundle() -> dict:
    mrn = {"system": "urn:mafhir:test:decimals/mrn", "value": "D-1"}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:7c2a9f3e-1b7e-4c5e-9a51-2f0d7e3b6c11",
         "resource": {"resourceType": "Patient", "identifier": [mrn],
                      "name": [{"family": "Decimal", "given": ["Dana"]}], "gender": "female"},
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": "identifier=urn:mafhir:test:decimals/mrn|D-1"}},
        {"fullUrl": "urn:uuid:0b6f7a52-43d1-4f0e-8d3b-5a1c9e2f4d77",
         "resource": {"resourceType": "Observation", "status": "final",
                      "category": [{"coding": [{
                          "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                          "code": "laboratory"}]}],
                      "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                      "subject": {"reference": "urn:uuid:7c2a9f3e-1b7e-4c5e-9a51-2f0d7e3b6c11"},
                      "effectiveDateTime": "2026-11-27T09:30:00-05:00",
                      "valueQuantity": {"value": "@@", "unit": "g/dL",
                                        "system": "http://unitsofmeasure.org", "code": "g/dL"}},
         "request": {"method": "POST", "url": "Observation"}}]}


def test_the_outbox_delivers_the_digits_it_was_given(tmp_path):
    """A Bundle file with ``13.40`` → ``mafhir sync`` (stored, claimed, sent) → ``13.40``."""
    text = json.dumps(_bundle()).replace('"@@"', "13.40")
    source = tmp_path / "in.json"
    source.write_text(text)
    out = tmp_path / "out"
    result = CliRunner().invoke(build_cli(), [
        "sync", str(source), "--db", str(tmp_path / "o.db"), "--to", f"dir:{out}", "--json"])
    assert result.exit_code == 0, result.output
    (sent,) = (out / "bundles").glob("*.json")
    assert b'"value": 13.40' in sent.read_bytes()
    assert b"13.40" in (out / "Observation.ndjson").read_bytes()


def test_the_local_store_reads_back_what_it_was_given(tmp_path):
    from mafhir.outbox.local import LocalStore

    store = LocalStore(tmp_path / "local.db")
    try:
        store.put({"resourceType": "Observation", "id": "o-1", "status": "final",
                           "code": {"text": "Hemoglobin"},
                           "valueQuantity": {"value": Decimal("13.40"), "unit": "g/dL"}})
        again = store.read("Observation", "o-1")
        assert str(again["valueQuantity"]["value"]) == "13.40"
        assert b'"value":13.40' in io.dumps(again)
    finally:
        store.close()
