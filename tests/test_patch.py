"""mafhir.patch: JSON Patch (RFC 6902) on a resource, PATCH entries in a transaction, and
their resolution into a versioned update. Expected documents are the RFC's own
Appendix A examples and values written by hand."""

from __future__ import annotations

import base64
import json

import pytest

from mafhir.bundle import transaction, update
from mafhir.errors import InputError
from mafhir.patch import apply, operations, patch, resolve

SYS = "https://maple.example.org/id/appointment"
BOOKED = {"resourceType": "Appointment", "identifier": [{"system": SYS, "value": "A-1"}],
          "status": "booked", "comment": "Bring the card",
          "participant": [{"actor": {"display": "Exam Room 1"}, "status": "accepted"}]}


@pytest.mark.parametrize(("doc", "ops", "expected"), [
    # RFC 6902 A.1 adding an object member, A.2 adding an array element,
    # A.3 removing an object member, A.5 replacing a value
    ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}],
     {"foo": ["bar", "qux", "baz"]}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
     {"baz": "boo", "foo": "bar"}),
    # A.8 testing a value: success
    ({"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"},
      {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    # A.16 adding an array value at the end
    ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
     {"foo": ["bar", ["abc", "def"]]}),
])
def test_rfc_6902_examples(doc, ops, expected):
    assert apply(doc, ops) == expected


def test_a_failed_test_is_a_conflict_and_changes_nothing():
    # RFC 6902 A.9 testing a value: error
    doc = {"baz": "qux"}
    with pytest.raises(InputError) as caught:
        apply(doc, [{"op": "test", "path": "/baz", "value": "bar"}])
    (problem,) = caught.value.problems
    assert (problem.location, problem.code) == ("baz", "conflict")
    assert doc == {"baz": "qux"}


def test_replacing_what_is_not_there_is_not_found():
    # RFC 6902 4.3: the target location MUST exist for replace
    with pytest.raises(InputError) as caught:
        apply({"foo": "bar"}, [{"op": "replace", "path": "/baz", "value": 1}])
    assert caught.value.problems[0].code == "not-found"


def test_a_patch_entry_is_a_conditional_patch_of_a_binary():
    entry = patch("Appointment", SYS, "A-1", [{"op": "replace", "path": "/status",
                                              "value": "cancelled"}])
    assert (entry.method, entry.url) == ("PATCH", f"Appointment?identifier={SYS}|A-1")
    assert entry.resource["contentType"] == "application/json-patch+json"
    assert json.loads(base64.b64decode(entry.resource["data"])) == \
        [{"op": "replace", "path": "/status", "value": "cancelled"}]
    # the same fullUrl as the Appointment's own entry would have
    assert entry.full_url == update(BOOKED).full_url


def test_in_one_bundle_a_patch_lands_on_the_resource_and_patches_join():
    cancel = patch("Appointment", SYS, "A-1", [{"op": "replace", "path": "/status",
                                               "value": "cancelled"}])
    note = patch("Appointment", SYS, "A-1", [{"op": "add", "path": "/cancelationReason",
                                             "value": {"text": "by SMS"}}])
    (entry,) = transaction([update(BOOKED), cancel, note])["entry"]
    assert entry["request"] == {"method": "PUT", "url": f"Appointment?identifier={SYS}|A-1"}
    assert entry["resource"] == {**BOOKED, "status": "cancelled",
                                 "cancelationReason": {"text": "by SMS"}}
    (joined,) = transaction([cancel, note])["entry"]
    assert joined["request"]["method"] == "PATCH"
    assert [o["op"] for o in operations(joined["resource"])] == ["replace", "add"]


def test_resolve_reads_changes_and_writes_back_with_if_match():
    bundle = transaction([patch("Appointment", SYS, "A-1", [
        {"op": "test", "path": "/status", "value": "booked"},
        {"op": "replace", "path": "/status", "value": "cancelled"}])])
    asked = []

    def lookup(rtype, query):
        asked.append((rtype, query))
        return {**BOOKED, "id": "x7", "meta": {"versionId": "4"}}, "4"

    (entry,) = resolve(bundle, lookup)["entry"]
    assert asked == [("Appointment", f"identifier={SYS}|A-1")]
    assert entry["request"] == {"method": "PUT", "url": "Appointment/x7", "ifMatch": 'W/"4"'}
    assert entry["resource"]["status"] == "cancelled"
    assert entry["resource"]["participant"] == BOOKED["participant"]
    with pytest.raises(InputError) as caught:
        resolve(bundle, lambda rtype, query: None)
    assert caught.value.problems[0].code == "not-found"
