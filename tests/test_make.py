"""``make test`` runs the whole suite on every core; ``make test FAST=1`` leaves out the
tests marked slow (issue 12.7). Read from make's dry run, so nothing is run."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_line(*args: str) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(["make", "-n", "test", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    (line,) = [ln for ln in done.stdout.splitlines() if " -m pytest" in ln]
    return shlex.split(line)


def test_make_test_runs_everything_in_parallel():
    argv = pytest_line()
    assert argv[argv.index("-n") + 1] == "auto"
    assert "-m" not in argv[argv.index("pytest"):]
    assert "--durations=30" in argv


def test_make_test_fast_skips_the_slow_marker():
    argv = pytest_line("FAST=1")
    assert argv[argv.index("-m", argv.index("pytest")) + 1] == "not slow"
