"""mafhir.entrypoints reads the entry points importlib.metadata finds, in its order and with
its versions: on this installation, and on distributions made up here (a dist-info and an
egg-info, a name installed twice, comments, extras, a name spelt otherwise)."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from mafhir import entrypoints

GROUP = "mafhir"


def _theirs(group: str) -> list[tuple[str, str, str | None]]:
    return [(ep.name, ep.value, ep.dist.version if ep.dist else None)
            for ep in metadata.entry_points(group=group)]


def _ours(group: str) -> list[tuple[str, str, str | None]]:
    assert entrypoints._plain()  # the case read without importlib.metadata
    return [(ep.name, ep.value, ep.version) for ep in entrypoints.entry_points(group)]


def test_this_installation_reads_the_same():
    assert _ours(GROUP) == _theirs(GROUP)
    assert len(_theirs(GROUP)) >= 6  # the plugins under plugins/: the comparison is real
    assert _ours("console_scripts") == _theirs("console_scripts")


@pytest.fixture
def made_up(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, dist, version, text in (
            (first, "Made.Up_Thing-1.2.dist-info", "1.2",
             "# a comment\n[mafhir]\nalpha = made_up.plugin\n  # another\n"
             "beta=made_up.plugin:hook [extra]\n\n[other]\ngamma = x:y\n"),
            (first, "older-0.1.egg-info", "0.1", "[mafhir]\ndelta = made_up.plugin:obj.attr\n"),
            (second, "made_up_thing-9.9.dist-info", "9.9", "[mafhir]\nshadowed = nowhere\n")):
        info = folder / dist
        info.mkdir(parents=True)
        header = "PKG-INFO" if dist.endswith("egg-info") else "METADATA"
        (info / header).write_text(f"Metadata-Version: 2.1\nName: x\nVersion: {version}\n\n"
                                   "Version: not this: the body\n")
        (info / "entry_points.txt").write_text(text)
    package = first / "made_up"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("class obj:\n    attr = 42\n\ndef hook():\n    pass\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    yield
    sys.modules.pop("made_up.plugin", None)
    sys.modules.pop("made_up", None)


def test_made_up_distributions_read_the_same_and_load_the_same(made_up):
    ours = _ours(GROUP)
    assert ours == _theirs(GROUP)
    names = [name for name, _, _ in ours]
    assert {"alpha", "beta", "delta"} <= set(names) and "shadowed" not in names
    assert dict((n, v) for n, _, v in ours)["delta"] == "0.1"
    loaded = {ep.name: ep.load() for ep in entrypoints.entry_points(GROUP)
              if ep.name in ("alpha", "beta", "delta")}
    theirs = {ep.name: ep.load() for ep in metadata.entry_points(group=GROUP)
              if ep.name in ("alpha", "beta", "delta")}
    assert loaded == theirs and loaded["delta"] == 42


def test_another_finder_listing_distributions_hands_over_to_importlib_metadata(monkeypatch):
    class Finder:
        def find_spec(self, *args):
            return None

        def find_distributions(self, *args, **kwargs):
            return iter(())

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    assert not entrypoints._plain()
    assert [(ep.name, ep.value, ep.version) for ep in entrypoints.entry_points(GROUP)] \
        == _theirs(GROUP)


def test_a_line_that_is_no_entry_is_refused_as_importlib_metadata_refuses_it():
    with pytest.raises(ValueError, match="no 'name = value'"):
        list(entrypoints._sections("[mafhir]\njust a name\n"))
