"""transaction() relinks conditional references to in-Bundle resources, skipping the walk
only where the resource's bytes show no such reference, and never changes its input."""

from __future__ import annotations

import copy
from dataclasses import replace
from decimal import Decimal

from mafhir.bundle import create, transaction
from mafhir.identity import identifier_query, resource_uuid
from mafhir.io import dumps

#: identifiers with what JSON and the query escape (quote, backslash, pipe, unicode)
ODD_VALUES = ["plain-1", 'quo"te', "back\\slash", "pi|pe", "café ü", "tab\there"]


def patient(value: str) -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": value}]}


def observation(value: str, pointer: str) -> dict:
    return {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:obs", "value": value}],
        "valueQuantity": {"value": Decimal("13.40"), "unit": "g/dL"},
        "subject": {"reference": pointer},
        "performer": [{"reference": "Practitioner?identifier=urn:npi|1", "display": "x"}],
        "component": [{"code": {"text": "nested"}, "extension": [
            {"url": "u", "valueReference": {"reference": pointer}}]}],
    }


def test_references_to_in_bundle_resources_become_their_full_urls_at_every_depth():
    for value in ODD_VALUES:
        pointer = f"Patient?{identifier_query('urn:mrn', value)}"
        obs = observation(f"o-{value}", pointer)
        before = copy.deepcopy(obs)
        bundle = transaction([create(patient(value)), create(obs)])
        linked = bundle["entry"][1]["resource"]
        url = resource_uuid("Patient", "urn:mrn", value)
        assert linked["subject"] == {"reference": url}, value
        assert linked["component"][0]["extension"][0]["valueReference"] == {"reference": url}
        # the Practitioner is not in the Bundle: its reference stays for the server
        assert linked["performer"][0]["reference"] == "Practitioner?identifier=urn:npi|1"
        assert obs == before and obs["subject"]["reference"] == pointer  # input untouched


def test_a_resource_with_nothing_to_relink_is_passed_through_as_it_is():
    other = observation("o-1", "Patient?identifier=urn:mrn|someone-else")
    entries = [create(patient("p-1")), create(other)]
    bundle = transaction(entries)
    assert bundle["entry"][1]["resource"] is other
    assert bundle["entry"][1]["resource"]["subject"]["reference"] == \
        "Patient?identifier=urn:mrn|someone-else"


def test_remembered_bytes_are_used_only_for_the_resource_they_were_written_from():
    pointer = f"Patient?{identifier_query('urn:mrn', 'p-1')}"
    unlinked = observation("o-1", "Patient?identifier=urn:mrn|nobody")
    entry = create(unlinked)
    entry.remember(dumps(unlinked))
    assert entry.blob == dumps(unlinked)
    # the same entry with another resource: the remembered bytes no longer apply, so the
    # reference in the new resource is found and relinked
    swapped = replace(entry, resource=observation("o-1", pointer))
    assert swapped.blob is None
    bundle = transaction([create(patient("p-1")), swapped])
    assert bundle["entry"][1]["resource"]["subject"]["reference"] == \
        resource_uuid("Patient", "urn:mrn", "p-1")


def test_what_orjson_cannot_write_is_still_walked():
    pointer = f"Patient?{identifier_query('urn:mrn', 'p-1')}"
    odd = observation("o-1", pointer)
    odd["extension"] = [{"url": "u", "valueString": object()}]  # not JSON: no bytes
    bundle = transaction([create(patient("p-1")), create(odd)])
    assert bundle["entry"][1]["resource"]["subject"]["reference"] == \
        resource_uuid("Patient", "urn:mrn", "p-1")
