"""Core pieces: identities, bundles, the shared resources, input reading, validation."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import pytest

from conftest import CLINIC, CTX, assert_valid_bundle, load_json
from mafhir.bundle import create, transaction, update
from mafhir.errors import InputError
from mafhir.fhirtypes import fhir_datetime
from mafhir.identity import identifier_query
from mafhir.io import iter_documents
from mafhir.mappers.common import (
    organization_entry,
    patient_from_fhir,
    patient_refs,
    practitioner_entry,
    practitioner_from_fhir,
)
from mafhir.tasks.common import PatientRef, PractitionerRef, npi_is_valid
from mafhir.validation import check_bundle, check_resource

NEW_PATIENT = PatientRef(
    mrn="1032702", system="http://hospital.smarthealthit.org", family="Baxter",
    given=["Amy", "V."], gender="female", birth_date="1987-02-20", phone="555-555-5555",
    email="amy.shaw@example.com",
)


# ------------------------------------------------------------------ datatypes and identity
@pytest.mark.parametrize(("value", "text"), [
    (datetime(2026, 3, 4, 9, 15, tzinfo=timezone(timedelta(hours=-5))),
     "2026-03-04T09:15:00-05:00"),
    (datetime(2026, 3, 4, 14, 15, 7, tzinfo=UTC), "2026-03-04T14:15:07Z"),
    (datetime(2026, 3, 4, 9, 15, 0, 123000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
     "2026-03-04T09:15:00.123+05:30"),
])
def test_fhir_datetime_keeps_seconds_offset_and_precision(value, text):
    assert fhir_datetime(value) == text


def test_fhir_datetime_refuses_naive_times():
    with pytest.raises(ValueError, match="offset"):
        fhir_datetime(datetime(2026, 3, 4, 9, 15))


@pytest.mark.parametrize(("npi", "ok"), [
    ("1234567893", True),   # CMS's published example NPI
    ("1234567890", False),  # wrong check digit
    ("123456789", False), ("12345678934", False), ("abcdefghij", False),
])
def test_npi_check_digit(npi, ok):
    assert npi_is_valid(npi) is ok


def test_identifier_query_escapes_search_specials():
    assert identifier_query("urn:x", "a|b,c$d\\e") == "identifier=urn:x|a\\|b\\,c\\$d\\\\e"


# ------------------------------------------------------------------ shared resources
def test_new_patient_matches_the_us_core_patient_example(corpus, registry):
    example = load_json(corpus / "us-core/7.0.0/examples/Patient-example.json")
    refs = patient_refs(NEW_PATIENT, CTX)
    (entry,) = refs.entries
    ours = entry.resource
    # the MRN identifier as US Core writes it
    theirs_mrn = example["identifier"][0]
    assert ours["identifier"][0]["type"]["coding"] == theirs_mrn["type"]["coding"]
    assert ours["identifier"][0]["system"] == theirs_mrn["system"]
    assert ours["identifier"][0]["value"] == theirs_mrn["value"]
    assert ours["gender"] == example["gender"] and ours["birthDate"] == example["birthDate"]
    current = example["name"][1]
    assert ours["name"][0]["family"] == current["family"]
    assert ours["name"][0]["given"] == current["given"]
    assert {(t["system"], t["value"]) for t in ours["telecom"]} == {
        (t["system"], t["value"]) for t in example["telecom"]}
    assert ours["meta"]["profile"] == [example["meta"]["profile"][0].split("|")[0]]
    assert [i for i in check_resource(ours, registry.profiles)
            if not i.diagnostics.startswith("dom-6")] == []  # narrative: mafhir writes none
    # and the example itself passes our Patient rules
    assert [i for i in check_resource(example, registry.profiles) if i.severity == "error"] == []


def test_patient_round_trip_keeps_demographics():
    (entry,) = patient_refs(NEW_PATIENT, CTX).entries
    assert patient_from_fhir(entry.resource) == NEW_PATIENT


def test_known_patient_is_a_conditional_reference_without_a_resource():
    refs = patient_refs(PatientRef(mrn="A-77"), CTX)
    assert refs.entries == ()
    assert refs.ref == {"reference": f"Patient?identifier={CLINIC.mrn_namespace}|A-77"}
    assert patient_from_fhir(None, refs.ref) == PatientRef(mrn="A-77", system=CLINIC.mrn_namespace)


def test_partial_demographics_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="gender"):
        PatientRef(mrn="1", family="Doe")


def test_practitioner_matches_the_us_core_example(corpus, registry):
    example = load_json(corpus / "us-core/7.0.0/examples/Practitioner-practitioner-1.json")
    npi = next(i["value"] for i in example["identifier"]
               if i["system"] == "http://hl7.org/fhir/sid/us-npi")
    person = PractitionerRef(npi=npi, family=example["name"][0]["family"],
                             given=example["name"][0].get("given", []))
    (entry,) = practitioner_entry(person).entries
    assert entry.resource["identifier"] == [{"system": "http://hl7.org/fhir/sid/us-npi",
                                            "value": npi}]
    assert [i for i in check_resource(entry.resource, registry.profiles)
            if not i.diagnostics.startswith("dom-6")] == []  # narrative: mafhir writes none
    assert practitioner_from_fhir(entry.resource) == person


def test_profile_rules_catch_broken_shared_resources(registry):
    (patient,) = patient_refs(NEW_PATIENT, CTX).entries
    broken = {k: v for k, v in patient.resource.items() if k not in ("gender", "identifier")}
    found = {(i.expression, i.code) for i in check_resource(broken, registry.profiles)}
    assert ("Patient.gender", "required") in found
    assert ("Patient.identifier", "required") in found
    (org,) = organization_entry(CLINIC).entries
    no_active = {k: v for k, v in org.resource.items() if k != "active"}
    assert [i.expression for i in check_resource(no_active, registry.profiles)
            if not i.diagnostics.startswith("dom-6")] == ["Organization.active"]


# ------------------------------------------------------------------ bundles
def obs(value: str, subject: dict) -> dict:
    return {"resourceType": "Observation", "identifier": [{"system": "urn:t", "value": value}],
            "status": "final", "code": {"text": "t"}, "subject": subject}


def test_transaction_is_deterministic_conditional_and_linked(registry):
    patient = patient_refs(NEW_PATIENT, CTX)
    entries = [*patient.entries, create(obs("o1", patient.ref))]
    first, second = transaction(entries), transaction(list(entries))
    assert first == second
    p_entry, o_entry = first["entry"]
    assert p_entry["request"] == {"method": "POST", "url": "Patient",
                                  "ifNoneExist": "identifier=http://hospital.smarthealthit.org|1032702"}
    assert p_entry["fullUrl"].startswith("urn:uuid:")
    assert o_entry["resource"]["subject"] == {"reference": p_entry["fullUrl"]}
    assert_valid_bundle(entries, registry)


def test_transaction_keeps_each_resource_once_and_the_later_state():
    a = create(obs("o1", {"reference": "Patient/1"}))
    changed = {**a.resource, "status": "amended"}
    b = update(changed)
    bundle = transaction([a, b])
    (only,) = bundle["entry"]
    assert only["resource"]["status"] == "amended"
    assert only["request"] == {"method": "PUT", "url": "Observation?identifier=urn:t|o1"}
    # a later create of something already updated stays an update
    bundle = transaction([b, create(changed)])
    assert bundle["entry"][0]["request"]["method"] == "PUT"


def test_bundle_rules_catch_duplicates_missing_requests_and_dangling_refs(registry):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": obs("a", {"reference": "urn:uuid:404"}),
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:1", "resource": obs("b", {"reference": "Patient/1"})},
    ]}
    expressions = {i.expression for i in check_bundle(bundle, registry.profiles)}
    assert "Bundle.entry[1].fullUrl" in expressions          # bdl-7
    assert "Bundle.entry[1].request" in expressions          # bdl-3
    assert "Bundle.entry[0].resource.subject" in expressions  # dangling urn:uuid


def test_structure_errors_carry_fhir_paths(registry):
    bad = obs("a", {"reference": "Patient/1"}) | {"effectiveDateTime": "2026-03-04T09:15",
                                                   "fooBar": 1}
    found = {i.expression for i in check_resource(bad, registry.profiles)}
    assert {"Observation.effectiveDateTime", "Observation.fooBar"} <= found


def test_r4b_only_resource_types_are_refused(registry):
    (issue,) = check_resource({"resourceType": "SubscriptionTopic", "status": "active",
                               "url": "http://x"}, registry.profiles)
    assert "not an R4" in issue.diagnostics


# ------------------------------------------------------------------ input reading
@pytest.mark.parametrize("text", [
    b'{"a": 1}',
    b'[{"a": 1}, {"a": 2}]',
    b'{"a": 1}\n{"a": 2}\n\n',
    b'{\n  "a": 1\n}\n',
])
def test_reads_object_list_and_ndjson(text):
    docs = list(iter_documents(io.BytesIO(text)))
    assert [d for _, d in docs] == [{"a": 1}, {"a": 2}][: len(docs)]
    assert [i for i, _ in docs] == list(range(len(docs)))


def test_a_bad_ndjson_line_is_reported_in_place_and_the_rest_read():
    docs = list(iter_documents(io.BytesIO(b'{"a": 1}\n{not json\n{"a": 3}\n'), label="in.ndjson"))
    assert docs[0] == (0, {"a": 1}) and docs[2] == (2, {"a": 3})
    assert isinstance(docs[1][1], InputError)
    assert docs[1][1].problems[0].location == "in.ndjson line 2"


def test_not_json_at_all_is_an_input_error():
    with pytest.raises(InputError, match="not valid JSON"):
        list(iter_documents(io.BytesIO(b"MSH|^~\\&|")))


def test_identifier_query_keeps_url_specials_out_of_the_query():
    query = identifier_query("urn:x", "lab#12&a+b c%")
    assert query == "identifier=urn:x|lab%2312%26a%2Bb%20c%25"
    from mafhir.identity import identifier_from_reference

    assert identifier_from_reference(f"Observation?{query}") == ("Observation", "urn:x",
                                                                 "lab#12&a+b c%")
    assert identifier_from_reference("Patient?identifier=urn:x|a\\|b") == ("Patient", "urn:x",
                                                                          "a|b")
    assert identifier_from_reference("Patient/123") is None


def test_dir_connector_keeps_what_a_conditional_create_finds(tmp_path):
    from mafhir.connectors.dir import DirectoryConnector

    first = obs("o1", {"reference": "Patient/1"}) | {"status": "final"}
    later = obs("o1", {"reference": "Patient/1"}) | {"status": "preliminary"}
    connector = DirectoryConnector(tmp_path)
    connector.send(transaction([create(first)]))
    connector.send(transaction([create(later)]))  # ifNoneExist: the first stays
    connector.close()
    import json as _json

    (line,) = (tmp_path / "Observation.ndjson").read_text().splitlines()
    assert _json.loads(line)["status"] == "final"
    connector = DirectoryConnector(tmp_path)
    connector.send(transaction([create(first)]))
    connector.send(transaction([update(later)]))  # an update replaces
    connector.close()
    (line,) = (tmp_path / "Observation.ndjson").read_text().splitlines()
    assert _json.loads(line)["status"] == "preliminary"


def test_observation_invariants_hold_for_every_observation_not_only_vital_signs():
    """obs-6 (no dataAbsentReason beside a value) and obs-7 (no component repeating the
    code while there is a value) are FHIR R4's, for a lab result as for a vital sign."""
    from mafhir.plugins import get_registry

    lab = {"resourceType": "Observation", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
           "valueQuantity": {"value": 13.4, "unit": "g/dL"},
           "dataAbsentReason": {"coding": [{
               "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
               "code": "error"}]},
           "component": [{"code": {"coding": [{"system": "http://loinc.org",
                                                "code": "718-7"}]},
                          "valueString": "x"}]}
    found = [i.diagnostics for i in check_resource(lab, get_registry().profiles)]
    assert any("obs-6" in d for d in found) and any("obs-7" in d for d in found)
    fine = {k: v for k, v in lab.items() if k not in ("dataAbsentReason", "component")}
    assert not any("obs-" in i.diagnostics for i in check_resource(fine,
                                                                   get_registry().profiles))
