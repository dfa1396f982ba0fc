"""OBX-4 result groups and OBX-5 ED attachments, from a message written here and from the
corpus — expected values worked out by hand (base64 of the bytes, the message's codes)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from helpers_hl7v2_lab import registry_fixture, v2ctx  # noqa: F401 - the fixture

from mafhir.errors import InputError
from mafhir.hl7v2 import parse, to_fhir
from mafhir.testing.plugin import skip_or_fail
from mafhir.validation import check_bundle

CORPUS = Path(os.environ.get("MAFHIR_CORPUS",
                             Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
SUBID = "http://hl7.org/fhir/StructureDefinition/observation-v2-subid"
# the published R5→R4 cross-version extension for the choice element Observation.value[x]
# (typed by hand, not imported: the IG's table spells it differently)
ATTACHMENT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"
PDF_B64 = ("JVBERi0xLjQKMSAwIG9iaiA8PC9UeXBlL0NhdGFsb2c+PiBlbmRvYmoKdHJhaWxlciA8PC9Sb290IDEgMCBSP"
           "j4KJSVFT0YK")

HEAD = (
    "MSH|^~\\&|LABSYS|QUESTLAB|MAFHIR|CLINIC|20261128061500-0500||ORU^R01^ORU_R01|G-1|P|2.5.1\r"
    "PID|1||MS-1^^^X^MR||Doe^Jane||19610402|F\r"
    "OBR|1|ord-1^MAFHIR|ACC-1^QUESTLAB|630-4^Bacteria identified in Urine by Culture^LN|||"
    "20261127092000-0500|||||||||||||||20261128061000-0500|||F\r"
)
ORU = HEAD + (
    "OBX|1|CWE|630-4^Bacteria identified^LN|1|112283007^Escherichia coli^SCT||||||F\r"
    "OBX|2|SN|564-5^Colony count^LN|1|>^100000|{CFU}/mL^^UCUM|||||F\r"
    "OBX|3|CWE|630-4^Bacteria identified^LN|2|3092008^Staphylococcus aureus^SCT||||||F\r"
    "OBX|4|SN|564-5^Colony count^LN|2|^10000|{CFU}/mL^^UCUM|||||P\r"
    f"OBX|5|ED|11502-2^Laboratory report^LN||^AP^PDF^Base64^{PDF_B64}||||||F\r"
    "OBX|6|ED|11502-2^Laboratory report^LN|3|^TEXT^^A^Hello \\T\\ goodbye||||||F\r"
    "OBX|7|ED|72170-4^Photographic image^LN||^IM^JPEG^Hex^FFD8FFE0||||||F\r"
)


def convert(registry, text: str, authorities: tuple[str, ...] = ("X",)) -> dict:
    bundle = to_fhir(registry, parse(text.encode()), v2ctx(authorities=authorities))
    errors = [i for i in check_bundle(bundle, registry.profiles)
              if i.severity in ("error", "fatal")]
    assert not errors, errors
    return bundle


def parts(bundle: dict) -> tuple[dict, dict, list[dict]]:
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (dr,) = [r for r in by_url.values() if r["resourceType"] == "DiagnosticReport"]
    obs = [r for r in by_url.values() if r["resourceType"] == "Observation"]
    return by_url, dr, obs


def code(resource: dict) -> str:
    return resource["code"]["coding"][0]["code"]


def sub_id(obs: dict) -> str | None:
    found = [x for x in obs.get("extension", []) if x["url"] == SUBID]
    return found[0]["extension"][0]["valueString"] if found else None


def test_rows_sharing_a_sub_id_are_one_group(registry):
    by_url, dr, obs = parts(convert(registry, ORU))
    rows = [o for o in obs if "hasMember" not in o]
    parents = [o for o in obs if "hasMember" in o]
    assert len(rows) == 7 and len(parents) == 2
    assert [sub_id(o) for o in rows] == ["1", "1", "2", "2", None, "3", None]
    isolate1, isolate2 = parents
    assert [by_url[m["reference"]] for m in isolate1["hasMember"]] == rows[0:2]
    assert [by_url[m["reference"]] for m in isolate2["hasMember"]] == rows[2:4]
    assert code(isolate1) == code(isolate2) == "630-4"  # the OBR's test
    assert isolate1["status"] == "final"
    assert isolate2["status"] == "preliminary"  # one member is still preliminary (OBX-11 P)
    assert code(by_url[isolate1["hasMember"][0]["reference"]]) == "630-4"
    assert by_url[isolate1["hasMember"][1]["reference"]]["valueQuantity"]["comparator"] == ">"
    # the report lists every row itself (no value only behind hasMember), each group's
    # parent just before its first row
    listed = [by_url[r["reference"]] for r in dr["result"]]
    assert listed == [isolate1, rows[0], rows[1], isolate2, rows[2], rows[3], rows[4],
                      rows[5], rows[6]]
    assert isolate1["identifier"] != isolate2["identifier"]


# One OBR, its own rows with sub-id 1, then two specimens whose rows also use sub-id 1:
# OBX-4 groups rows within their context (the OBR's rows, or one SPM's), so these are
# three groups, not one.
TWO_SPECIMENS = HEAD + (
    "OBX|1|CWE|630-4^Bacteria identified^LN|1|112283007^Escherichia coli^SCT||||||F\r"
    "OBX|2|SN|564-5^Colony count^LN|1|>^100000|{CFU}/mL^^UCUM|||||F\r"
    "SPM|1|SPEC-A&LAB||122575003^Urine specimen^SCT\r"
    "OBX|3|CWE|630-4^Bacteria identified^LN|1|3092008^Staphylococcus aureus^SCT||||||F\r"
    "OBX|4|SN|564-5^Colony count^LN|1|^10000|{CFU}/mL^^UCUM|||||F\r"
    "SPM|2|SPEC-B&LAB||122575003^Urine specimen^SCT\r"
    "OBX|5|CWE|630-4^Bacteria identified^LN|1|40886007^Klebsiella oxytoca^SCT||||||F\r"
    "OBX|6|SN|564-5^Colony count^LN|1|^50000|{CFU}/mL^^UCUM|||||P\r"
)


def test_same_sub_id_under_different_specimens_are_separate_groups(registry):
    bundle = convert(registry, TWO_SPECIMENS)
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    by_url, dr, obs = parts(bundle)
    rows = [o for o in obs if "hasMember" not in o]
    parents = [o for o in obs if "hasMember" in o]
    assert len(rows) == 6 and len(parents) == 3
    # hand-read from the message: each group holds its own isolate and colony count
    organisms = [["112283007"], ["3092008"], ["40886007"]]
    counts = [(">", 100000), (None, 10000), (None, 50000)]
    for parent, organism, (comparator, n) in zip(parents, organisms, counts, strict=True):
        isolate, count = [by_url[m["reference"]] for m in parent["hasMember"]]
        assert [c["code"] for c in isolate["valueCodeableConcept"]["coding"]] == organism
        assert code(count) == "564-5" and sub_id(isolate) == sub_id(count) == "1"
        assert count["valueQuantity"].get("comparator") == comparator
        assert count["valueQuantity"]["value"] == n
        assert code(parent) == "630-4"
        assert isolate["specimen"] == count["specimen"] == parent["specimen"]
    assert [p["status"] for p in parents] == ["final", "final", "preliminary"]
    specimens = {s["identifier"][0]["value"]: url for url, s in by_url.items()
                 if s["resourceType"] == "Specimen"}
    assert sorted(specimens) == ["SPEC-A", "SPEC-B"]
    # the specimens' groups point at their own specimen (the OBR's rows at the first)
    assert [by_url[p["specimen"]["reference"]]["identifier"][0]["value"]
            for p in parents] == ["SPEC-A", "SPEC-A", "SPEC-B"]
    # every row reachable from the report directly, exactly once, after its own parent
    listed = [by_url[r["reference"]] for r in dr["result"]]
    assert listed == [parents[0], *rows[0:2], parents[1], *rows[2:4], parents[2], *rows[4:6]]
    reached = [id(by_url[m["reference"]]) for p in parents for m in p["hasMember"]]
    assert sorted(reached) == sorted(map(id, rows))
    assert len({p["identifier"][0]["value"] for p in parents}) == 3


def test_ed_values_become_attachments(registry):
    _, dr, obs = parts(convert(registry, ORU))
    pdf, text, jpeg = [o for o in obs if code(o) in ("11502-2", "72170-4")]
    expected = [
        {"contentType": "application/pdf", "data": PDF_B64},
        {"contentType": "text/plain", "data": "SGVsbG8gJiBnb29kYnll"},  # "Hello & goodbye"
        {"contentType": "image/jpeg", "data": "/9j/4A=="},  # bytes FF D8 FF E0
    ]
    for o, want in zip((pdf, text, jpeg), expected, strict=True):
        (ext,) = [x for x in o["extension"] if x["url"] == ATTACHMENT]
        assert ext["valueAttachment"] == want
        assert o["dataAbsentReason"]["coding"][0]["code"] == "unsupported"
        assert not [k for k in o if k.startswith("value")]
    assert base64.b64decode(PDF_B64).startswith(b"%PDF-1.4\n")
    assert base64.b64decode(expected[1]["data"]) == b"Hello & goodbye"
    assert dr["presentedForm"] == expected


@pytest.mark.parametrize(("ed", "where"), [
    ("^AP^PDF^Base64^JVBER@@@", "OBX[1]-5.5"),
    ("^AP^PDF^Hex^FFD8ZZ", "OBX[1]-5.5"),
    ("^AP^PDF^Q^JVBERi0x", "OBX[1]-5.4"),
])
def test_a_malformed_ed_is_an_error_naming_the_component(registry, ed, where):
    bad = HEAD + f"OBX|1|ED|11502-2^Laboratory report^LN||{ed}||||||F\r"
    with pytest.raises(InputError) as err:
        to_fhir(registry, parse(bad.encode()), v2ctx())
    assert [p.location for p in err.value.problems] == [where]
    assert "JVBER" not in str(err.value) and "FFD8" not in str(err.value)


def test_a_sub_id_group_that_is_not_a_number_is_an_error(registry):
    bad = HEAD + "OBX|1|NM|564-5^Colony count^LN|1^x^1|5|||||F\r"
    with pytest.raises(InputError) as err:
        to_fhir(registry, parse(bad.encode()), v2ctx())
    assert [p.location for p in err.value.problems] == ["OBX[1]-4.2"]


def corpus_file(rel: str) -> Path:
    path = CORPUS / "hl7v2" / rel
    if not path.exists():
        skip_or_fail(f"public corpus not found at {CORPUS} (set MAFHIR_CORPUS)")
    return path


@pytest.mark.corpus
def test_corpus_distinct_sub_ids_are_not_grouped(registry):
    # hand-read: OBX|1|NM|6153-1…|1|3.9, OBX|2|NM|6041-8…|2|0.59, OBX|3|SN|6265-3…|3|<0.10
    path = corpus_file("oru/hl7-v2-to-fhir-ig/ORU_R01.hl7")
    _, dr, obs = parts(convert(registry, path.read_text(), ("OrdOrg",)))
    assert [(code(o), sub_id(o)) for o in obs] == [("6153-1", "1"), ("6041-8", "2"),
                                                    ("6265-3", "3")]
    assert len(dr["result"]) == 3


@pytest.mark.corpus
def test_corpus_specimen_rows_sharing_a_sub_id_are_grouped(registry):
    # hand-read: under OBR 625-4, OBX|1|CWE|625-4…|1|27268008^Salmonella (the order's row),
    # then SPM|1, OBX|1|RP|1063-7…|1|https://testurl.com… and OBX|2|NM|8867-4…|1|27~25
    # (the specimen's rows); the ED before the OBR has no data (ED-5 empty)
    path = corpus_file("oru/microsoft-fhir-converter/ORU-R01-01.hl7")
    by_url, dr, obs = parts(convert(registry, path.read_text(), ("IA PHIMS Stage",)))
    (group,) = [o for o in obs if "hasMember" in o]
    members = [by_url[m["reference"]] for m in group["hasMember"]]
    assert [code(m) for m in members] == ["1063-7", "8867-4"]
    assert code(group) == "625-4" and "specimen" in group
    salmonella = next(o for o in obs if o.get("valueCodeableConcept", {}).get("coding", [{}])[0]
                      .get("code") == "27268008")
    assert sub_id(salmonella) == "1" and "hasMember" not in salmonella
    listed = [by_url[r["reference"]] for r in dr["result"]]
    assert group in listed and salmonella in listed and all(m in listed for m in members)
    (empty_ed,) = [o for o in obs if code(o) == "unknown"]  # OBX||ED|||App5^NS^… (no OBX-3)
    assert empty_ed["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "presentedForm" not in dr
