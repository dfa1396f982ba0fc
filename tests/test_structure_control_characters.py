"""check_structure refuses a forbidden control character wherever a string holds it (the
models let them through), now that the fast path's yes is what says "none here": at the
top level, in a remembered complex value, in a list, in a contained resource, in a
primitive's ``_field`` extension; and lets tab, CR, LF and an escaped backslash through."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mafhir.validation.fastpath import accepts
from mafhir.validation.structure import check_structure

LOINC = "http://loinc.org"

OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-04T09:15:00-05:00",
    "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                      "code": "/min"},
    "note": [{"text": "calm"}, {"text": "seated"}],
}


def _set(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def test_the_clean_resource_passes_and_is_taken_by_the_fast_path():
    assert check_structure(OBS) == []
    assert accepts(OBS)


@pytest.mark.parametrize("char", ["\x00", "\x08", "\x0b", "\x0c", "\x1f"])
@pytest.mark.parametrize(("path", "where"), [
    (("status",), "Observation.status"),
    (("code", "coding", 0, "display"), "Observation.code.coding[0].display"),
    (("note", 1, "text"), "Observation.note[1].text"),
    (("subject", "reference"), "Observation.subject.reference"),
])
def test_a_control_character_is_named_where_it_is(char, path, where):
    assert check_structure(OBS) == []  # the clean values are remembered first
    value: Any = OBS
    for part in path:
        value = value[part]
    bad = _set(OBS, path, value[:2] + char + value[2:])
    found = check_structure(bad)
    if path == ("status",):  # not a code any more: the models refuse it first
        assert found and all(i.severity == "error" for i in found)
        return
    assert [(i.expression, i.code) for i in found] == [(where, "value")]
    assert f"U+{ord(char):04X}" in found[0].diagnostics
    assert not accepts(bad)


def test_in_a_contained_resource_and_in_a_primitive_extension():
    contained = {**OBS, "contained": [{"resourceType": "Patient", "id": "p1",
                                       "name": [{"family": "Do\x01e"}]}],
                 "subject": {"reference": "#p1"}}
    found = check_structure(contained)
    assert [i.expression for i in found] == ["Observation.contained[0].name[0].family"]
    ext = {**OBS, "_status": {"extension": [{"url": "http://example.org/x",
                                             "valueString": "a\x02b"}]}}
    found = check_structure(ext)
    assert [i.expression for i in found] == ["Observation._status.extension[0].valueString"]


def test_tab_newline_return_and_an_escaped_backslash_are_allowed():
    fine = _set(OBS, ("note", 0, "text"), "line\tone\r\nline two")
    assert check_structure(fine) == []
    assert accepts(fine)
    path = _set(OBS, ("note", 0, "text"), "C:\\bin\\file")  # backslash b, backslash f
    assert check_structure(path) == []
    assert accepts(path)
