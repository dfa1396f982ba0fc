"""Issue 10/11 defects of inbound v2, one test each: the patient's demographics, identity
from assigning authorities, NPI check digits, times without an offset, composite values,
result groups, escapes and control characters, impossible times. Expected values are
written out by hand from the messages below (and the v2 / FHIR specifications)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from helpers_hl7v2_lab import (
    clinic,
    registry_fixture,  # noqa: F401 - the fixture
)

from mafhir.cli.main import build_cli
from mafhir.context import Clinic, MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.context import default_tz
from mafhir.hl7v2.convert import convert
from mafhir.validation import check_bundle

SYSTEM = "https://maple-clinic.example.org/fhir/id"
MRN = f"{SYSTEM}/mrn"
ATTACHMENT = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Observation.value"
STRUCTURED = "urn:mafhir:StructureDefinition/observation-v2-structured-value"
CDC = "urn:oid:2.16.840.1.113883.6.238"
MSH = "MSH|^~\\&|LABSYS|QUESTLAB|MAFHIR|CLINIC|20230922120000-0500||ORU^R01^ORU_R01|T-1|P|2.5.1\r"
PID = ("PID|1||MS-42^^^CLINIC^MR~ACC-9^^^QUESTLAB^PI||Rivera^Ana^M^Jr^Dr||19700601|F||"
       "2106-3^White^CDCREC|12 Elm St^Apt 3^Springfield^IL^62701^USA^H||"
       "^PRN^PH^^1^217^5550142||||||123-45-6789|||N^Not Hispanic or Latino^HL70189\r")
OBR = ("OBR|1|ORD-1^CLINIC|ACC-1^QUESTLAB|4548-4^Hemoglobin A1c^LN|||"
       "20230922114500-0500|||||||||||||||20230922120000-0500|||F\r")
OBX = "OBX|1|NM|4548-4^Hemoglobin A1c^LN||6.9|%^percent^UCUM|||||F\r"


def ctx(**extra) -> V2Context:
    c = clinic(SYSTEM)
    return V2Context(map=MapContext(clinic=c), tz=ZoneInfo("America/Chicago"),
                     namespaces={"CLINIC": c.mrn_namespace}, **extra)


def run(registry, text: str, context: V2Context | None = None):
    out = convert(registry, parse(text.encode()), context or ctx())
    errors = [i for i in check_bundle(out.bundle, registry.profiles)
              if i.severity in ("error", "fatal")]
    assert not errors, errors
    return out


def of(bundle: dict, rtype: str) -> list[tuple[str, dict]]:
    return [(e["fullUrl"], e["resource"]) for e in bundle["entry"]
            if e["resource"]["resourceType"] == rtype]


def refused(registry, text: str, context: V2Context | None = None) -> list[tuple[str, str]]:
    with pytest.raises(InputError) as err:
        convert(registry, parse(text.encode()), context or ctx())
    return [(p.location, p.code) for p in err.value.problems]


# ------------------------------------------------------------------ 2. demographics
def test_pid_becomes_a_us_core_patient_linked_from_every_resource(registry):
    bundle = run(registry, MSH + PID + OBR + OBX).bundle
    ((url, patient),) = of(bundle, "Patient")
    entry = next(e for e in bundle["entry"] if e["fullUrl"] == url)
    # a conditional create on the clinic MRN: what the EHR holds is not overwritten
    assert entry["request"] == {"method": "POST", "url": "Patient",
                                "ifNoneExist": f"identifier={MRN}|MS-42"}
    assert patient["identifier"][0]["system"] == MRN
    assert patient["identifier"][0]["value"] == "MS-42"
    assert patient["name"] == [{"family": "Rivera", "given": ["Ana", "M"], "prefix": ["Dr"],
                                "suffix": ["Jr"]}]
    assert patient["birthDate"] == "1970-06-01"
    assert patient["gender"] == "female"
    assert patient["address"] == [{"use": "home", "line": ["12 Elm St", "Apt 3"],
                                   "city": "Springfield", "state": "IL",
                                   "postalCode": "62701", "country": "USA"}]
    assert patient["telecom"] == [{"system": "phone", "value": "+1 (217) 5550142",
                                   "use": "home"}]
    race, ethnicity = patient["extension"][:2]
    assert race["extension"][0] == {"url": "ombCategory", "valueCoding": {
        "system": CDC, "code": "2106-3", "display": "White"}}
    assert ethnicity["extension"][0] == {"url": "ombCategory", "valueCoding": {
        "system": CDC, "code": "2186-5", "display": "Not Hispanic or Latino"}}
    subjects = {r.get("subject", {}).get("reference") for e in bundle["entry"]
                if (r := e["resource"])["resourceType"] != "Patient"}
    assert subjects == {url}


def test_patient_update_is_only_by_configuration(registry):
    bundle = run(registry, MSH + PID + OBR + OBX, ctx(patient_update=True)).bundle
    (entry,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert entry["request"] == {"method": "PUT", "url": f"Patient?identifier={MRN}|MS-42"}


# ------------------------------------------------------------------ 3. identity
@pytest.mark.parametrize("pid3", [
    "MS-42^^^^MR",                       # no assigning authority
    "ACC-9^^^QUESTLAB^PI",               # the lab's own number
    "123-45-6789^^^^SS",                 # an SSN-shaped value
    "MS-42^^^MRN^MR",                    # a literal placeholder authority
    "123-45-6789^^^CLINIC^SS",           # an SSN, even under the clinic's authority
])
def test_an_identifier_of_no_clinic_authority_goes_to_review(registry, pid3):
    text = MSH + PID.replace("MS-42^^^CLINIC^MR~ACC-9^^^QUESTLAB^PI", pid3) + OBR + OBX
    with pytest.raises(InputError) as err:
        convert(registry, parse(text.encode()), ctx())
    assert [(p.location, p.code) for p in err.value.problems] == [("PID-3", "business-rule")]
    assert "123-45-6789" not in str(err.value) and "MS-42" not in str(err.value)


def test_an_ssn_is_kept_as_an_ssn_never_the_key(registry):
    bundle = run(registry, MSH + PID + OBR + OBX).bundle
    ((_, patient),) = of(bundle, "Patient")
    assert patient["identifier"][0]["value"] == "MS-42"  # the key is the MRN
    assert {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"}.items() <= \
        next(i for i in patient["identifier"] if i["value"] == "123-45-6789").items()
    lab = next(i for i in patient["identifier"] if i["value"] == "ACC-9")
    assert lab["system"] != MRN and "QUESTLAB" in lab["system"]  # the sender's namespace


# ------------------------------------------------------------------ 4. NPI
@pytest.mark.parametrize(("npi", "valid"), [("1234567893", True), ("1234567890", False),
                                            ("12345", False)])
def test_an_npi_is_one_only_when_its_check_digit_holds(registry, npi, valid):
    orc = f"ORC|RE|ORD-1^CLINIC|ACC-1^QUESTLAB|||||||||{npi}^Reyes^Lena^^^^^^NPI\r"
    out = run(registry, MSH + PID + orc + OBR + OBX)
    ((_, sr),) = of(out.bundle, "ServiceRequest")
    ident = sr["requester"]["identifier"]
    assert ident["value"] == npi
    assert (ident["system"] == "http://hl7.org/fhir/sid/us-npi") is valid
    npi_warnings = [(w.location, w.code) for w in out.warnings if "NPI" in w.message]
    assert npi_warnings == ([] if valid else [("ORC[1]-12", "value")])


# ------------------------------------------------------------------ 5. time zones
LOCAL = MSH.replace("20230922120000-0500", "202309221200") + PID + \
    OBR.replace("20230922114500-0500", "202309221145").replace("20230922120000-0500", "") + \
    OBX


def test_no_zone_configured_refuses_instead_of_utc(registry, monkeypatch):
    monkeypatch.delenv("MAFHIR_TZ", raising=False)
    assert default_tz() is None
    bare = V2Context(map=MapContext(clinic=clinic(SYSTEM)), namespaces={"CLINIC": MRN})
    # the first time read without an offset is named; nothing is pinned to UTC
    assert refused(registry, LOCAL, bare) == [("MSH-7", "business-rule")]


def test_the_senders_zone_is_applied_and_stated(registry):
    c = clinic(SYSTEM)
    per_sender = V2Context(map=MapContext(clinic=c), namespaces={"CLINIC": MRN},
                           sender_tz={"LABSYS^QUESTLAB": "America/Chicago"},
                           tz=ZoneInfo("Europe/Paris"))  # the sender's own zone wins
    out = run(registry, LOCAL, per_sender)
    ((_, dr),) = of(out.bundle, "DiagnosticReport")
    assert dr["effectiveDateTime"] == "2023-09-22T11:45:00-05:00"  # CDT in September
    (zone,) = [w for w in out.warnings if w.location == "MSH-7"]
    assert "America/Chicago" in zone.message and "LABSYS^QUESTLAB" in zone.message


def test_the_clinics_zone_is_the_fallback(registry):
    c = Clinic(name="Maple", system=SYSTEM, time_zone="America/Denver")
    out = run(registry, LOCAL, V2Context(map=MapContext(clinic=c), namespaces={"CLINIC": MRN}))
    ((_, dr),) = of(out.bundle, "DiagnosticReport")
    assert dr["effectiveDateTime"] == "2023-09-22T11:45:00-06:00"  # MDT
    assert any("America/Denver" in w.message for w in out.warnings)
    with pytest.raises(ValueError, match="IANA"):
        Clinic(name="Maple", system=SYSTEM, time_zone="Central")


# ------------------------------------------------------------------ 6. composite values
def test_composite_values_become_fhir_types_not_joined_v2(registry):
    rows = ("OBX|1|XTN|11290-4^Phone^LN||^WPN^PH^^1^217^5550100^12||||||F\r"
            "OBX|2|XAD|56799-0^Address^LN||9 Oak Rd^^Peoria^IL^61602^USA^B||||||F\r"
            "OBX|3|XPN|56800-6^Name^LN||Stone^Mia^^^Ms||||||F\r"
            "OBX|4|CX|56801-4^Id^LN||A-77^^^CLINIC^MR||||||F\r"
            "OBX|5|RP|11502-2^Report^LN||https://lab.example/r/1^LAB^AP^PDF||||||F\r")
    bundle = run(registry, MSH + PID + OBR + rows).bundle
    obs = [r for _, r in of(bundle, "Observation")]
    assert all("^" not in o.get("valueString", "") for o in obs)
    phone, address, name, ident, pointer = obs

    def structured(o):
        (ext,) = [x for x in o["extension"] if x["url"] == STRUCTURED]
        return ext

    assert structured(phone)["valueContactPoint"] == {
        "system": "phone", "value": "+1 (217) 5550100 ext. 12", "use": "work"}
    assert structured(address)["valueAddress"] == {
        "use": "work", "line": ["9 Oak Rd"], "city": "Peoria", "state": "IL",
        "postalCode": "61602", "country": "USA"}
    assert address["valueString"] == "9 Oak Rd Peoria IL 61602 USA B"
    assert structured(name)["valueHumanName"] == {"family": "Stone", "given": ["Mia"],
                                                  "prefix": ["Ms"]}
    assert structured(ident)["valueIdentifier"]["system"] == MRN
    (att,) = [x for x in pointer["extension"] if x["url"] == ATTACHMENT]
    assert att["valueAttachment"] == {"url": "https://lab.example/r/1",
                                      "contentType": "application/pdf"}


# ------------------------------------------------------------------ 7. result groups
def test_every_value_is_in_the_report_and_uncoded_groups_are_not_made(registry):
    rows = ("OBX|1|NM|718-7^Hemoglobin^LN|1|13.1|g/dL^^UCUM|||||F\r"
            "OBX|2|NM|4544-3^Hematocrit^LN|1|39|%^^UCUM|||||F\r")
    uncoded = OBR.replace("4548-4^Hemoglobin A1c^LN", "CBC^Complete blood count")
    bundle = run(registry, MSH + PID + uncoded + rows).bundle
    by_url = dict(of(bundle, "Observation"))
    ((_, dr),) = of(bundle, "DiagnosticReport")
    listed = [by_url[r["reference"]] for r in dr["result"]]
    assert [o["code"]["coding"][0]["code"] for o in listed] == ["718-7", "4544-3"]
    assert not any("hasMember" in o for o in by_url.values())  # no grouper without a system
    coded = run(registry, MSH + PID + OBR + rows).bundle
    by_url = dict(of(coded, "Observation"))
    ((_, dr),) = of(coded, "DiagnosticReport")
    listed = [by_url[r["reference"]] for r in dr["result"]]
    assert ["hasMember" in o for o in listed] == [True, False, False]
    assert all("value" + "Quantity" in o for o in listed[1:])


# ------------------------------------------------------------------ 8. escapes, controls
def test_an_invalid_escape_is_kept_visibly(registry):
    row = "OBX|1|ST|8251-1^Comment^LN||bad \\XZZ\\ and \\X0\\ kept||||||F\r"
    bundle = run(registry, MSH + PID + OBR + row).bundle
    ((_, obs),) = of(bundle, "Observation")
    assert obs["valueString"] == "bad \\XZZ\\ and \\X0\\ kept"


@pytest.mark.parametrize("control", ["\x00", "\x0b", "\x1c", "\\X00\\", "\\X0B\\"])
def test_control_characters_are_refused_naming_the_field(registry, control):
    row = f"OBX|1|ST|8251-1^Comment^LN||a{control}b||||||F\r"
    assert refused(registry, MSH + PID + OBR + row) == [("OBX[1]-5", "value")]


def test_validate_refuses_control_characters(tmp_path):
    bundle = tmp_path / "b.json"
    bundle.write_text('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource":'
                      ' {"resourceType": "Patient", "name": [{"family": "A\\u000bB"}]}}]}')
    result = CliRunner().invoke(build_cli(), ["validate", str(bundle)])
    assert result.exit_code != 0
    assert "control character U+000B" in result.output


# ------------------------------------------------------------------ 9. impossible times
@pytest.mark.parametrize(("when", "part"), [("20231301120000-0500", "month (characters 5-6)"),
                                            ("20230230120000-0500", "day (characters 7-8)"),
                                            ("20230922120000+9999", "UTC offset")])
def test_an_impossible_obx_14_is_an_error_not_obr_7(registry, when, part):
    row = OBX.replace("|||||F\r", f"|||||F|||{when}\r")
    with pytest.raises(InputError) as err:
        convert(registry, parse((MSH + PID + OBR + row).encode()), ctx())
    (problem,) = err.value.problems
    assert (problem.location, problem.code) == ("OBX[1]-14", "value")
    assert part in problem.message and when[:8] not in problem.message


def test_convert_names_a_bad_offset_without_a_traceback(tmp_path):
    source = tmp_path / "oru.hl7"
    source.write_text(MSH + PID + OBR + OBX.replace("|||||F\r", "|||||F|||202309221145+9999\r"))
    result = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", str(source),
                                              "--namespace", "CLINIC=urn:mafhir:clinic/mrn"])
    assert result.exit_code == 2
    assert "OBX[1]-14" in result.stderr and "UTC offset" in result.stderr
    assert "Traceback" not in result.output and "ValueError" not in result.output



# ------------------------------------------------------------------ the shared PID reader
def test_patient_from_pid_is_usable_on_its_own():
    from mafhir.hl7v2.patient import patient_from_pid

    pid = parse((MSH + PID.replace("|19700601|F|", "|197006010912|F|")).encode()).first("PID")
    found = patient_from_pid(pid, ctx(), "LABSYS|QUESTLAB", ZoneInfo("America/Chicago"))
    assert found.reference == {"reference": f"Patient?identifier={MRN}|MS-42"}
    assert found.entry.if_none_exist == f"identifier={MRN}|MS-42"
    assert found.resource["birthDate"] == "1970-06-01"
    # the time of birth is kept, in the sender's zone (CDT in June)
    assert found.resource["_birthDate"]["extension"][0]["valueDateTime"] == \
        "1970-06-01T09:12:00-05:00"
    bad = parse((MSH + PID.replace("|19700601|F|", "|19701301|Q|")).encode()).first("PID")
    with pytest.raises(InputError) as err:
        patient_from_pid(bad, ctx(), "LABSYS|QUESTLAB", None)
    assert sorted((p.location, p.code) for p in err.value.problems) == [
        ("PID-7", "value"), ("PID-8", "code-invalid")]
    assert "month (characters 5-6)" in str(err.value) and "19701301" not in str(err.value)


def test_an_obx_identifier_under_the_npi_authority_is_checked_too(registry):
    row = ("OBX|1|CX|56801-4^Ordering provider id^LN||"
           "1234567890^^^NPI&2.16.840.1.113883.4.6&ISO||||||F\r")
    out = run(registry, MSH + PID + OBR + row)
    ((_, obs),) = of(out.bundle, "Observation")
    (ext,) = [x for x in obs["extension"] if x["url"] == STRUCTURED]
    assert ext["valueIdentifier"]["system"] != "http://hl7.org/fhir/sid/us-npi"
    assert [(w.location, w.code) for w in out.warnings if "NPI" in w.message] == \
        [("OBX[1]-5", "value")]


@pytest.mark.parametrize(("obx6", "code", "unit"), [
    ("mcg/mL^^UCUM", "ug/mL", "mcg/mL"),  # declared UCUM, but "mcg" is no UCUM atom
    ("furlong^^UCUM", None, "furlong"),  # declared UCUM, not a unit UCUM knows
    ("MG/DL^milligram per deciliter^L", "mg/dL", "milligram per deciliter"),
])
def test_every_obx6_unit_is_checked_by_the_ucum_library(registry, obx6, code, unit):
    """OBX-6 is read from the sender's text and checked by UCUM even when CWE-3 says
    UCUM; the sender's words stay as ``unit``, a code only when UCUM accepts it."""
    from ucumvert import InvalidUcumError, parse_ucum

    with pytest.raises(InvalidUcumError):  # independent: the sender's code is not UCUM
        parse_ucum(obx6.split("^")[0])
    out = run(registry, MSH + PID + OBR + OBX.replace("%^percent^UCUM", obx6))
    ((_, obs),) = of(out.bundle, "Observation")
    quantity = obs["valueQuantity"]
    assert str(quantity["value"]) == "6.9" and quantity["unit"] == unit
    assert quantity.get("code") == code
    assert quantity.get("system") == ("http://unitsofmeasure.org" if code else None)
    if code:
        parse_ucum(code)  # what is sent as UCUM is UCUM
