"""The profile index (mafhir.profileindex): a plugin's hook runs once and is remembered by
URL, type and title; later its rules load when first checked; changed code, or an index
that no longer matches, never gives stale rules."""

from __future__ import annotations

import json
import os

import pytest

from mafhir import profileindex
from mafhir.errors import PluginError
from mafhir.registry import Profile

URL = "http://example.org/StructureDefinition/thing"


class Plugin:
    """A register_profiles hook counting its runs; its rule names the resource's id."""

    def __init__(self) -> None:
        self.runs = 0
        self.url = URL

    def hook(self, register) -> None:
        self.runs += 1
        register(Profile(self.url, "Basic", lambda r: [f"checked {r['id']}"], "A thing"))


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("MAFHIR_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "rules.py").write_text("RULES = 1\n")
    profileindex._folder_digest.cache_clear()
    yield folder
    profileindex._folder_digest.cache_clear()


def test_the_hook_runs_once_then_the_index_answers_until_a_rule_is_checked(source):
    plugin = Plugin()
    (first,) = profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    assert plugin.runs == 1 and first.check({"id": "a"}) == ["checked a"]
    (later,) = profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    assert plugin.runs == 1  # known from the index: nothing loaded
    assert (later.url, later.resource_type, later.title) == (URL, "Basic", "A thing")
    assert later.check({"id": "b"}) == ["checked b"] and plugin.runs == 2
    assert later.check({"id": "c"}) == ["checked c"] and plugin.runs == 2


def test_changed_code_is_indexed_afresh_and_the_old_index_removed(source):
    plugin = Plugin()
    profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    (source / "rules.py").write_text("RULES = 2  # changed\n")
    profileindex._folder_digest.cache_clear()  # a new process
    plugin.url = URL + "-v2"
    (found,) = profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    assert plugin.runs == 2 and found.url == URL + "-v2"
    assert len(os.listdir(os.environ["MAFHIR_CACHE_DIR"] + "/profile-index")) == 1


def test_an_index_that_no_longer_matches_the_hook_is_refused_and_dropped(source):
    plugin = Plugin()
    profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    plugin.url = URL + "-other"  # the same files, other rules: an index must not be trusted
    (stale,) = profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    with pytest.raises(PluginError, match="differ from their index"):
        stale.check({"id": "a"})
    assert not os.listdir(os.environ["MAFHIR_CACHE_DIR"] + "/profile-index")


def test_without_sources_or_with_a_broken_index_the_hook_runs_now(source):
    plugin = Plugin()
    profileindex.indexed_profiles("thing", [], plugin.hook)
    assert plugin.runs == 1
    profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    (index,) = (source.parent / "cache" / "profile-index").iterdir()
    index.write_text(json.dumps({"profiles": [["only two", "fields"]]}))
    (found,) = profileindex.indexed_profiles("thing", [str(source)], plugin.hook)
    assert plugin.runs == 3 and found.check({"id": "x"}) == ["checked x"]
