"""The plugin system: hooks (each tested by name), discovery, allow/block lists, failures."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from mafhir import hookspecs, plugins
from mafhir.errors import PluginError
from mafhir.pipeline import Mapped, Pipeline
from mafhir.validation import check_resource

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "docs" / "plugins.md").read_text()
MAFHIR = Path(sys.executable).parent / "mafhir"
HOOKS = sorted(
    name for name, fn in vars(hookspecs).items()
    if callable(fn) and hasattr(fn, "mafhir_spec")
)


def doc_example(hook: str) -> str:
    """The runnable Python example under the hook's heading in docs/plugins.md."""
    section = DOCS.split(f"### {hook}\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"docs/plugins.md has no python example for {hook}"
    return blocks[0]


def load_example(hook: str) -> types.ModuleType:
    module = types.ModuleType(f"example_{hook}")
    sys.modules[module.__name__] = module  # so pydantic can resolve the example's annotations
    exec(compile(doc_example(hook), f"docs/plugins.md:{hook}", "exec"), module.__dict__)
    return module


@pytest.fixture
def fresh():
    plugins.reset()
    yield
    plugins.reset()


def test_hooks_exist():
    assert {"register_commands", "register_connectors", "register_mappers",
            "register_profiles"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    sig = inspect.signature(getattr(hookspecs, hook))
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    assert f"{hook}({params}) -> {sig.return_annotation}" in DOCS


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    """A ``test_hook_<name>`` exists for every hook (here or in another test module)."""
    pattern = re.compile(rf"^def test_hook_{hook}\(", flags=re.M)
    sources = [*ROOT.glob("tests/test_*.py"), *ROOT.glob("plugins/*/tests/test_*.py")]
    assert any(pattern.search(p.read_text()) for p in sources), f"write test_hook_{hook}"


def test_hook_register_mappers(fresh):
    plugins.register(load_example("register_mappers"), name="reminders")
    registry = plugins.get_registry()
    assert "reminder_call" in registry.mappers
    task = {"task": "reminder_call", "id": "call-1", "at": "2026-03-04T16:00:00-05:00",
            "patient": {"mrn": "A100"}, "note": "Reminded of Thursday 9:00 visit"}
    (result,) = Pipeline(registry).run([(0, task)])
    assert isinstance(result, Mapped)
    (entry,) = result.entries
    comm = entry.resource
    assert comm["resourceType"] == "Communication"
    assert comm["sent"] == "2026-03-04T16:00:00-05:00"
    assert comm["subject"] == {"reference": "Patient?identifier=urn:mafhir:clinic/mrn|A100"}
    assert entry.if_none_exist == "identifier=urn:mafhir:clinic/communication|call-1"
    assert [i for i in check_resource(comm, registry.profiles)
            if not i.diagnostics.startswith("dom-6")] == []  # narrative: mafhir writes none


def test_hook_register_profiles(fresh):
    example = load_example("register_profiles")
    plugins.register(example, name="reminder-rules")
    registry = plugins.get_registry()
    resource = {"resourceType": "Communication", "status": "completed",
                "meta": {"profile": [example.URL]}}
    issues = [i for i in check_resource(resource, registry.profiles)
              if not i.diagnostics.startswith("dom-6")]  # narrative: mafhir writes none
    assert [(i.severity, i.expression) for i in issues] == [
        ("error", "Communication.sent"), ("error", "Communication.payload")]
    resource |= {"sent": "2026-03-04T16:00:00Z", "payload": [{"contentString": "hi"}]}
    assert [i for i in check_resource(resource, registry.profiles)
            if not i.diagnostics.startswith("dom-6")] == []


def test_hook_register_connectors(fresh):
    plugins.register(load_example("register_connectors"), name="counting")
    spec = plugins.get_registry().connectors["counting"]
    connector = spec.factory("anywhere")
    connector.send({"resourceType": "Bundle", "type": "transaction", "entry": [{}, {}]})
    assert connector.sent == 2
    assert "dir" in plugins.get_registry().connectors  # the built-in one is still there


def test_hook_register_commands(fresh):
    from mafhir.cli.main import build_cli

    plugins.register(load_example("register_commands"), name="hello")
    result = CliRunner().invoke(build_cli(), ["hello-clinic"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello from a plugin\n"


def test_two_plugins_registering_one_kind_is_an_error_naming_both(fresh):
    plugins.register(load_example("register_mappers"), name="first")
    plugins.register(load_example("register_mappers"), name="second")
    with pytest.raises(PluginError, match=r"'second'.*'reminder_call'.*'first'"):
        plugins.get_registry()


def test_a_misspelt_hook_is_refused(fresh):
    from mafhir import hookimpl

    class Typo:
        @hookimpl
        def register_mapper(self, register):  # missing the s
            raise AssertionError("never called")

    with pytest.raises(PluginError, match="register_mapper"):
        plugins.register(Typo(), name="typo")
    assert "typo" not in [i.name for i in plugins.plugin_infos()]


# --------------------------------------------------------------------------- entry points
GOOD = '''
import click
from mafhir import hookimpl

@hookimpl
def register_commands(cli):
    @cli.command("good-hello")
    def good_hello():
        click.echo("good plugin here")
'''

BROKEN = "raise ImportError('this plugin is broken on purpose')\n"

TYPO = '''
from mafhir import hookimpl

@hookimpl
def register_mapper(register):
    pass
'''


def _distribution(root: Path, name: str, module: str, source: str) -> None:
    """An installed distribution as importlib.metadata finds it: module + dist-info."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    short = module.removeprefix("mafhir_")
    (info / "entry_points.txt").write_text(f"[mafhir]\n{short} = {module}\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    _distribution(root, "mafhir-good", "mafhir_good", GOOD)
    _distribution(root, "mafhir-broken", "mafhir_broken", BROKEN)
    _distribution(root, "mafhir-typo", "mafhir_typo", TYPO)
    return root


def run_cli(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MAFHIR_LOAD_PLUGINS", "MAFHIR_DISABLE_PLUGINS")}
    environ["PYTHONPATH"] = str(site)
    environ.update(env)
    return subprocess.run([str(MAFHIR), *args], capture_output=True, text=True, env=environ,
                          timeout=60)


def listed(site: Path, **env: str) -> dict[str, dict]:
    proc = run_cli(site, "plugins", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)}


def test_entry_point_plugins_are_discovered_and_reported(site):
    found = listed(site)
    assert found["good"]["version"] == "1.2.3"
    assert found["good"]["hooks"] == ["register_commands"]
    assert found["good"]["error"] is None
    assert "ImportError: this plugin is broken on purpose" in found["broken"]["error"]
    assert "register_mapper" in found["typo"]["error"]
    assert found["mafhir.mappers.vitals"]["builtin"] is True
    # the broken one does not stop the good one from working
    proc = run_cli(site, "good-hello")
    assert proc.returncode == 0 and proc.stdout == "good plugin here\n"


def test_allow_list_loads_only_the_named_plugins(site):
    found = listed(site, MAFHIR_LOAD_PLUGINS="good")
    assert "good" in found and "broken" not in found and "typo" not in found
    assert "mafhir.cli.builtin" in found  # built-ins are not subject to the allow-list
    none = listed(site, MAFHIR_LOAD_PLUGINS="")
    assert not [name for name, p in none.items() if not p["builtin"]]


def test_block_list_skips_plugins_and_builtins(site):
    found = listed(site, MAFHIR_DISABLE_PLUGINS="broken,mafhir.connectors.dir")
    assert "broken" not in found and "good" in found
    assert "mafhir.connectors.dir" not in found
    assert "mafhir.mappers.vitals" in found


def test_an_installed_plugin_whose_hook_raises_is_reported_and_the_rest_work(fresh):
    from mafhir import hookimpl

    class HalfBroken:
        @hookimpl
        def register_connectors(self, register):
            register(load_example("register_connectors").CountingConnector)  # not a spec
            raise RuntimeError("vendor config missing")

        @hookimpl
        def register_mappers(self, register):
            load_example("register_mappers").register_mappers(register)

    plugins.register(HalfBroken(), name="half-broken")
    registry = plugins.get_registry()
    (info,) = [i for i in plugins.plugin_infos() if i.name == "half-broken"]
    assert "RuntimeError: vendor config missing" in info.error
    assert "reminder_call" not in registry.mappers  # nothing of a failed plugin is kept
    assert "vitals" in registry.mappers and "dir" in registry.connectors
