"""Every ORU^R01, OML^O21 and ORM^O01 of the public corpus converts to a Bundle that
passes validation, with every OBX value, unit, code, flag, range and status carried
over — checked field by field against python-hl7's reading of the same message."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers_hl7v2_lab import (
    Theirs,
    mr_authorities,
    registry_fixture,  # noqa: F401 - the fixture
    v2ctx,
)

from mafhir import io
from mafhir.cli.main import build_cli
from mafhir.errors import InputError
from mafhir.hl7v2 import parse, to_fhir
from mafhir.testing.plugin import skip_or_fail
from mafhir.validation import check_bundle

CORPUS = Path(os.environ.get("MAFHIR_CORPUS",
                             Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
#: OBX-11 → Observation.status, written out by hand from HL7 table 0085 and the
#: v2-to-FHIR IG concept map (mapping-reference §7.5).
STATUS = {"F": "final", "P": "preliminary", "C": "corrected", "I": "registered",
          "O": "registered", "S": "registered", "X": "cancelled", "D": "entered-in-error"}
INTERP_V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
SUBID = "http://hl7.org/fhir/StructureDefinition/observation-v2-subid"


def json_number(text: str) -> str:
    """How a v2 number is written in JSON, digit for digit, worked out here without mafhir:
    sign ``+`` dropped, ``.5`` → ``0.5``, ``5.`` → ``5``, leading zeros dropped; every
    digit after the point (trailing zeros included) kept."""
    t = text.strip()
    sign = "-" if t.startswith("-") else ""
    t = t.lstrip("+-")
    whole, _, frac = t.partition(".")
    whole = whole.lstrip("0") or "0"
    return sign + whole + (f".{frac}" if frac else "")


def written(quantity: dict, key: str = "value") -> str:
    """The digits of ``quantity[key]`` as mafhir writes them (the JSON text itself)."""
    m = re.search(rf'"{key}":(-?[0-9][0-9.eE+-]*)', io.dumps(quantity).decode())
    assert m, io.dumps(quantity)
    return m.group(1)


_RANGE_TEXT = re.compile(r"^\s*([+-]?\d*\.?\d+)\s*(?:-|to)\s*([+-]?\d*\.?\d+)\s*$")


def files(kind: str) -> list[Path]:
    if not (CORPUS / "MANIFEST.md").exists():
        return []
    return sorted((CORPUS / "hl7v2" / kind).glob("*/*.hl7"))


def _skip_if_absent():
    if not (CORPUS / "MANIFEST.md").exists():
        skip_or_fail(f"public corpus not found at {CORPUS} (set MAFHIR_CORPUS)")


def convert(path: Path, registry) -> dict | None:
    """The message's Bundle (checked), or None for one held for review (checked too)."""
    data = path.read_bytes()
    authorities = mr_authorities(data)
    if b"|ASCII" in data.split(b"\r", 1)[0] and max(data) > 0x7F:
        # the IG's ORM/OML declare ASCII but carry UTF-8 (U+FFFD): read as bytes they are
        # refused (MSH-18, tests/test_hl7v2_message.py); the converter is tested on the text
        data = data.decode("utf-8")  # type: ignore[assignment]
    if not authorities:  # no MRN the clinic can recognise: held for review on PID-3
        with pytest.raises(InputError) as held:
            to_fhir(registry, parse(data), v2ctx(authorities=()))
        assert ("PID-3", "business-rule") in {(p.location, p.code) for p in
                                              held.value.problems}
        return None
    bundle = to_fhir(registry, parse(data), v2ctx(authorities=authorities))
    errors = [i for i in check_bundle(bundle, registry.profiles)
              if i.severity in ("error", "fatal")]
    assert not errors, "\n".join(map(str, errors))
    return bundle


def resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def check_obx(theirs: Theirs, obx, obs: dict) -> None:
    """One OBX against its Observation, from python-hl7's fields only."""
    code = theirs.comp_of(theirs.field(obx, 3), 1)
    if code:
        assert obs["code"]["coding"][0]["code"] == code
        if theirs.comp_of(theirs.field(obx, 3), 3) == "LN":
            assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
    vtype = theirs.field(obx, 2)
    values = theirs.reps(obx, 5)
    unit_code = theirs.comp_of(theirs.field(obx, 6), 1)
    unit_text = theirs.comp_of(theirs.field(obx, 6), 2) or unit_code
    if not values:
        assert "dataAbsentReason" in obs
    elif vtype == "NM" and len(values) == 1:
        q = obs["valueQuantity"]
        assert written(q) == json_number(theirs.comp_of(values[0], 1))
        if unit_code:
            assert q["unit"] == unit_text
    elif vtype in ("CE", "CWE", "IS"):
        concept = obs["valueCodeableConcept"]
        if theirs.comp_of(values[0], 1):
            assert concept["coding"][0]["code"] == theirs.comp_of(values[0], 1)
        else:  # no code, only a display: kept as text
            assert concept["text"] == theirs.comp_of(values[0], 2)
    elif vtype in ("TS", "DT", "DTM"):
        digits = theirs.comp_of(values[0], 1)
        assert obs["valueDateTime"].replace("-", "")[:8] == digits[:8]
    elif vtype in ("ST", "TX", "FT"):
        assert obs["valueString"] == "\n".join(theirs.msg.unescape(v) for v in values)
    elif vtype == "SN":
        raw = values[0]
        if theirs.comp not in raw:  # written flat, e.g. "<0.10"
            number = raw.lstrip("<>=")
            assert written(obs["valueQuantity"]) == json_number(number)
            if raw[0] in "<>":
                assert obs["valueQuantity"]["comparator"] == raw[: len(raw) - len(number)]
        else:
            assert written(obs["valueQuantity"]) == json_number(theirs.comp_of(raw, 2))
            if theirs.comp_of(raw, 1):
                assert obs["valueQuantity"]["comparator"] == theirs.comp_of(raw, 1)
    elif vtype == "ED":
        data, encoding = theirs.comp_of(values[0], 5), theirs.comp_of(values[0], 4)
        if not data:
            assert "dataAbsentReason" in obs
        else:
            (ext,) = [x for x in obs["extension"] if x["url"] == (
                "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value")]
            assert encoding == "Base64"  # what the corpus uses: carried as written
            assert ext["valueAttachment"]["data"] == data
            assert base64.b64decode(ext["valueAttachment"]["data"])
    elif vtype == "RP":  # a pointer: an Attachment by url (the IG's OBX-5 RP row)
        (ext,) = [x for x in obs["extension"] if x["url"] == (
            "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value")]
        assert ext["valueAttachment"]["url"] == theirs.comp_of(values[0], 1)
    else:  # repeated NM…: the text is kept
        assert obs["valueString"]
    sub_id = theirs.comp_of(theirs.field(obx, 4), 1)
    if sub_id:
        (ext,) = [x for x in obs["extension"] if x["url"] == SUBID]
        assert ext["extension"][0] == {"url": "original-sub-identifier", "valueString": sub_id}
    else:
        assert not [x for x in obs.get("extension", []) if x["url"] == SUBID]
    flags = [theirs.comp_of(r, 1) for r in theirs.reps(obx, 8)]
    assert [c["coding"][0]["code"] for c in obs.get("interpretation", [])] == \
        [f for f in flags if f]
    for f, concept in zip(flags, obs.get("interpretation", []), strict=False):
        if f in ("H", "L", "N", "A", "HH", "LL"):
            assert concept["coding"][0]["system"] == INTERP_V3
    ref_range = theirs.msg.unescape(theirs.field(obx, 7))
    if ref_range:
        assert obs["referenceRange"][0]["text"] == ref_range
        bounds = _RANGE_TEXT.match(ref_range)
        if "low" in obs["referenceRange"][0]:
            assert bounds, ref_range
            assert written(obs["referenceRange"][0]["low"]) == json_number(bounds.group(1))
            assert written(obs["referenceRange"][0]["high"]) == json_number(bounds.group(2))
    status = theirs.field(obx, 11)
    if status in STATUS:
        assert obs["status"] == STATUS[status]


@pytest.mark.corpus
@pytest.mark.parametrize("path", files("oru"), ids=lambda p: p.name)
def test_corpus_oru_converts_field_by_field(path, registry):
    bundle = convert(path, registry)
    if bundle is None:
        return
    theirs = Theirs(path.read_bytes())
    obxs = theirs.segments("OBX")
    everything = resources(bundle, "Observation")
    observations = [o for o in everything if "hasMember" not in o]  # one per OBX
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    for parent in (o for o in everything if "hasMember" in o):  # OBX-4 result groups
        members = [by_url[m["reference"]] for m in parent["hasMember"]]
        assert len(members) >= 2
        subs = {json.dumps([x for x in m["extension"] if x["url"] == SUBID]) for m in members}
        assert len(subs) == 1
    assert len(observations) == len(obxs)
    for obx, obs in zip(obxs, observations, strict=True):
        check_obx(theirs, obx, obs)
    reports = resources(bundle, "DiagnosticReport")
    obrs = theirs.segments("OBR")
    assert len(reports) == len(obrs)
    for obr, dr in zip(obrs, reports, strict=True):
        assert dr["code"]["coding"][0]["code"] == theirs.comp_of(theirs.field(obr, 4), 1)
        assert {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB",
                "display": "Laboratory"} in dr["category"][0]["coding"]
        filler = theirs.comp_of(theirs.field(obr, 3), 1)
        if filler:
            assert dr["identifier"][0]["value"] == filler
        assert all(r["reference"].startswith("urn:uuid:") for r in dr.get("result", []))
    spm_ids = [theirs.field(s, 2) for s in theirs.segments("SPM")]
    # one Specimen per distinct specimen id (two OBRs may report on the same tube)
    assert len(resources(bundle, "Specimen")) == len({i for i in spm_ids if i}) + \
        spm_ids.count("")
    for dr in reports:
        for ref in dr.get("basedOn", []):
            assert ref["reference"] in {e["fullUrl"] for e in bundle["entry"]}


@pytest.mark.corpus
@pytest.mark.parametrize("path", files("orm") + files("oml"), ids=lambda p: p.name)
def test_corpus_orders_convert(path, registry):
    bundle = convert(path, registry)
    if bundle is None:
        return
    theirs = Theirs(path.read_bytes())
    orders = resources(bundle, "ServiceRequest")
    obrs = theirs.segments("OBR")
    # one ServiceRequest per OBR (an ORC without OBR is an order too)
    assert len(orders) >= len(obrs) and len(orders) <= len(obrs) + len(theirs.segments("ORC"))
    placers = {i["value"].split("-")[0] for sr in orders for i in sr["identifier"]}
    for seg in (*theirs.segments("ORC"), *obrs):
        placer = theirs.comp_of(theirs.field(seg, 2), 1)
        if placer:
            assert placer.split("-")[0] in placers
    codes = [c["code"] for sr in orders for c in sr["code"].get("coding", [])]
    for obr in obrs:
        code = theirs.comp_of(theirs.field(obr, 4), 1)
        if code:
            assert code in codes
    dx = [theirs.comp_of(theirs.field(d, 3), 1) for d in theirs.segments("DG1")]
    coded = [c["coding"][0]["code"] if "coding" in c else "" for sr in orders
             for c in sr.get("reasonCode", [])]
    assert set(dx) <= set(coded)
    observations = resources(bundle, "Observation")
    for obx, obs in zip(theirs.segments("OBX"), observations, strict=True):
        check_obx(theirs, obx, obs)


@pytest.mark.corpus
def test_corpus_edge_case_orm_names_obx_5(registry):
    _skip_if_absent()
    path = CORPUS / "hl7v2/edge-cases/cdc-trusted-intermediary/orm_obx-5_is_not_a_numeric_value.hl7"
    text = path.read_bytes().replace(b"\nORC", b"\nPID|1||MRN-1^^^X^MR\nORC", 1)
    with pytest.raises(InputError) as err:
        to_fhir(registry, parse(text), v2ctx())
    assert [p.location for p in err.value.problems] == ["OBX[1]-5"]
    assert "NOVALUE" not in str(err.value)  # the reason, never the value
    with pytest.raises(InputError, match="PID"):
        to_fhir(registry, parse(path.read_bytes()), v2ctx())


@pytest.mark.corpus
def test_convert_cli_prints_a_valid_bundle(tmp_path, registry):
    _skip_if_absent()
    path = CORPUS / "hl7v2/oru/microsoft-fhir-converter/LRI_2.0-NG_CBC_Typ_Message.hl7"
    result = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", str(path),
                                              "--namespace", "NIST MPI=urn:mafhir:clinic/mrn"])
    assert result.exit_code == 0, result.output
    bundle = json.loads(result.stdout)
    out = tmp_path / "b.json"
    out.write_text(result.stdout)
    checked = CliRunner().invoke(build_cli(), ["validate", str(out)])
    assert checked.exit_code == 0 and checked.output.strip().endswith("ok")
    hgb = next(r for r in resources(bundle, "Observation")
               if r["code"]["coding"][0]["code"] == "718-7")
    # hand-read from the message: OBX|2|NM|718-7…||12.5|g/mL^…^UCUM|13 to 18|L|||F|||2011…-0800
    assert hgb["valueQuantity"] == {"value": 12.5, "unit": "grams per milliliter",
                                    "system": "http://unitsofmeasure.org", "code": "g/mL"}
    assert hgb["interpretation"][0]["coding"][0]["code"] == "L"
    assert hgb["referenceRange"] == [{
        "low": {"value": 13, "unit": "grams per milliliter",
                "system": "http://unitsofmeasure.org", "code": "g/mL"},
        "high": {"value": 18, "unit": "grams per milliliter",
                 "system": "http://unitsofmeasure.org", "code": "g/mL"},
        "text": "13 to 18"}]
    assert hgb["effectiveDateTime"] == "2011-01-03T14:34:28-08:00"
    assert hgb["status"] == "final"
    (dr,) = resources(bundle, "DiagnosticReport")
    assert dr["issued"] == "2011-01-04T17:00:28-08:00" and dr["status"] == "final"


def test_convert_cli_bad_message_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.hl7"
    bad.write_bytes(b"MSH|^~\\&|L|F|M|C|20261127||ORU^R01|1|P|2.5.1\r"
                    b"PID|1||MRN-1^^^X^MR\rOBR|1|o1||4548-4^A1c^LN\r"
                    b"OBX|1|NM|4548-4^A1c^LN||six point nine|%|||||F\r")
    result = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", str(bad)])
    assert result.exit_code == 2
    assert "OBX[1]-5" in result.stderr and "six" not in result.stderr
