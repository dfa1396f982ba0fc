"""Start-up stays light (issue 19 item 11, issue 14): ``mafhir --help`` loads no command
module, no database driver and no FHIR model — each command loads what it needs when it
runs. Checked by what is imported, not by time (benchmarks/bench_startup.py times it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click

from mafhir import plugins
from mafhir.cli.lazy import LazyGroup, load_target
from mafhir.cli.main import build_cli

HEAVY = ("sqlalchemy", "fhir.resources", "requests", "jwt", "hl7", "mafhir.outbox.store",
         "mafhir.pipeline", "mafhir.hl7v2.convert", "mafhir.validation", "mafhir.tasks",
         "mafhir.mappers", "mafhir.profiles")


def _imported_after(args: list[str]) -> set[str]:
    code = (f"import sys, json\nfrom mafhir.cli.main import main\ntry:\n    main({args!r})\n"
            "except SystemExit:\n    pass\nprint(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_help_and_version_load_nothing_heavy():
    for args in (["--help"], ["--version"]):
        loaded = _imported_after(args)
        assert not {m for m in loaded if m.startswith(HEAVY)}, args


def test_a_command_still_gets_what_it_needs():
    assert "sqlalchemy" in _imported_after(["outbox", "status", "--db", ":memory:"])


def test_every_lazy_command_is_listed_with_its_own_short_help():
    cli = build_cli()
    assert isinstance(cli, LazyGroup) and cli.lazy
    for name, (target, short_help) in cli.lazy.items():
        command = load_target(target)
        assert isinstance(command, click.Command)
        assert short_help == command.get_short_help_str(limit=1000), name


def test_deferred_builtins_declare_exactly_the_hooks_their_modules_implement():
    import importlib

    for modname, hooks in plugins.DEFERRED.items():
        module = importlib.import_module(modname)
        implemented = {n for n in dir(module)
                       if hasattr(getattr(module, n), "mafhir_impl")}
        assert set(hooks) == implemented, modname


# --- `mafhir validate one.json`: plugin rules and fhirpathpy load when they are needed ----

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female",
           "birthDate": "1980-01-01", "name": [{"family": "Doe", "given": ["Jo"]}]}
#: claims the lab plugin's profile, and lacks what US Core asks of a lab result
LAB_OBSERVATION = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                         "us-core-observation-lab"]},
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                      "code": "mmol/L"}}
RULE_MODULES = ("mafhir_hl7v2_lab.profiles", "mafhir_pharmacy.profiles", "mafhir.hl7v2",
                "mafhir.validation.profiles.common")


def _validate(path, cache) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``mafhir validate path`` in a fresh process with its own cache folder: its output,
    and the modules it had loaded at the end."""
    args = ["validate", str(path)]
    code = (f"import sys, json\nfrom mafhir.cli.main import main\ntry:\n    main({args!r})\n"
            "except SystemExit as e:\n    print('exit', e.code)\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)")
    env = {**os.environ, "MAFHIR_CACHE_DIR": str(cache)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300, env=env)
    *errors, modules = proc.stderr.strip().splitlines()
    proc.stderr = "\n".join(errors)
    return proc, set(json.loads(modules))


def test_validate_loads_rule_modules_only_for_a_resource_claiming_their_profile(tmp_path):
    patient, lab = tmp_path / "patient.json", tmp_path / "lab.json"
    patient.write_text(json.dumps(PATIENT))
    lab.write_text(json.dumps(LAB_OBSERVATION))
    cache = tmp_path / "cache"
    first, _ = _validate(patient, cache)  # no index yet: every plugin's hook runs
    assert list((cache / "profile-index").glob("hl7v2_lab-*.json"))
    again, loaded = _validate(patient, cache)
    assert (again.stdout, again.stderr) == (first.stdout, first.stderr)
    assert again.stdout.endswith("ok\nexit 0\n")
    assert not {m for m in loaded if m.startswith(RULE_MODULES)}
    assert not {m for m in loaded if m.startswith(("fhirpathpy", "antlr4"))}
    lab_first, _ = _validate(lab, tmp_path / "other-cache")  # hooks run directly
    lab_again, loaded = _validate(lab, cache)  # through the index's stand-ins
    assert "mafhir_hl7v2_lab.profiles" in loaded
    assert (lab_again.stdout, lab_again.stderr) == (lab_first.stdout, lab_first.stderr)
    assert "error" in lab_first.stdout and lab_first.stdout.endswith("exit 1\n")
