"""Compiled packages read on demand (``profiles/lazytables.py``) give exactly what decoding
the shipped file whole gives (``json``), from a fresh cache, from the cache it wrote, after
the cache file is damaged, and where no cache can be written."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from mafhir.profiles.context import Definitions
from mafhir.profiles.lazytables import LazyTable, load_lazy
from mafhir.profiles.validator import SHIPPED

PACKAGES = sorted(SHIPPED.glob("*.json.gz"))


def _whole(path: Path) -> dict:
    with gzip.open(path, "rb") as stream:
        return json.loads(stream.read())


def _same(lazy: dict, whole: dict) -> None:
    assert (lazy["name"], lazy["version"]) == (whole["name"], whole["version"])
    for table in ("structures", "valuesets"):
        assert sorted(lazy[table]) == sorted(whole[table])
        for url, entry in whole[table].items():
            assert lazy[table][url] == entry, url


@pytest.mark.parametrize("path", PACKAGES, ids=lambda p: p.name)
def test_every_entry_reads_back_as_the_whole_file_has_it(path, tmp_path):
    whole = _whole(path)
    first = load_lazy(path, cache=tmp_path)
    assert isinstance(first["structures"], LazyTable)
    (written,) = (tmp_path / "compiled-v1").glob("*.idx")
    _same(first, whole)
    again = load_lazy(path, cache=tmp_path)  # from the index written above
    assert isinstance(again["structures"], LazyTable)
    _same(again, whole)
    for url, entry in whole["structures"].items():
        assert again["structures"].version_of(url) == (entry.get("version") or "")
    written.write_bytes(written.read_bytes()[:100])  # damaged: rebuilt, never misread
    _same(load_lazy(path, cache=tmp_path), whole)
    assert written.stat().st_size > 100


def test_without_a_usable_cache_the_file_is_decoded_whole(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    assert load_lazy(PACKAGES[0], cache=blocker) == _whole(PACKAGES[0])


def test_definitions_see_the_same_structures_and_value_sets_either_way(tmp_path):
    lazy, whole = Definitions(), Definitions()
    for path in PACKAGES:
        lazy.add(load_lazy(path, cache=tmp_path))
        whole.add(_whole(path))
    us_core = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
    for url in (us_core, f"{us_core}|6.1.0", f"{us_core}|7.0.0",
                "http://hl7.org/fhir/StructureDefinition/Observation"):
        a, b = lazy.structure(url), whole.structure(url)
        assert a is not None and b is not None, url
        assert (a.url, a.version, a.type, a.kind, a.base, a.derivation) == \
            (b.url, b.version, b.type, b.kind, b.base, b.derivation), url
    some = sorted(_whole(PACKAGES[-1])["valuesets"])[:5]
    for url in some:
        a, b = lazy.valueset(url), whole.valueset(url)
        assert a is not None and b is not None, url
        assert (a.codes, a.open) == (b.codes, b.open), url
