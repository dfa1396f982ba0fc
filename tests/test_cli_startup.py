"""Start-up stays light (issue 19 item 11, issue 14): ``mafhir --help`` loads no command
module, no database driver and no FHIR model — each command loads what it needs when it
runs. Checked by what is imported, not by time (benchmarks/bench_startup.py times it)."""

from __future__ import annotations

import json
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
