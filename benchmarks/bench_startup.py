"""Start-up: what a command costs before it does anything, against the interpreter alone.

Each command line is run as a fresh process, in interleaved rounds (A, B, C, … then again)
so that a busy machine slows every side alike; for each the child's CPU time (user + sys,
from ``os.wait4``) and wall time are taken, and the ratio to ``python -c pass`` of the same
round is reported as min / median over the rounds. ``python -c "import fhir.resources.R4B"``
is the second baseline: a Python FHIR tool's floor for loading its models.

Run: ``python benchmarks/bench_startup.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SMALL = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01",
         "name": [{"family": "Doe", "given": ["Jo"]}]}


def run(argv: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0
    return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.json"
        small.write_text(json.dumps(SMALL))
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import fhir.resources.R4B'":
                [sys.executable, "-c", "import fhir.resources.R4B.patient"],
            "mafhir --version": [str(BIN / "mafhir"), "--version"],
            "mafhir --help": [str(BIN / "mafhir"), "--help"],
            "mafhir validate small.json": [str(BIN / "mafhir"), "validate", str(small)],
            "mafhir map --help": [str(BIN / "mafhir"), "map", "--help"],
        }
        cpu: dict[str, list[float]] = {k: [] for k in cases}
        wall: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for name, argv in cases.items():
                c, w = run(argv)
                cpu[name].append(c)
                wall[name].append(w)
    base = "python -c pass"
    print(f"start-up, {args.rounds} interleaved rounds, {os.cpu_count()} cores; "
          f"ratio = this / `{base}` in the same round")
    print(f"{'command':40} {'CPU ms (med)':>13} {'wall ms (med)':>14} "
          f"{'CPU ratio min/med':>18} {'wall ratio min/med':>19}")
    for name in cases:
        rc = [c / b for c, b in zip(cpu[name], cpu[base], strict=True)]
        rw = [w / b for w, b in zip(wall[name], wall[base], strict=True)]
        print(f"{name:40} {statistics.median(cpu[name]) * 1e3:13.0f} "
              f"{statistics.median(wall[name]) * 1e3:14.0f} "
              f"{min(rc):8.1f} / {statistics.median(rc):<8.1f} "
              f"{min(rw):8.1f} / {statistics.median(rw):<8.1f}")


if __name__ == "__main__":
    main()
