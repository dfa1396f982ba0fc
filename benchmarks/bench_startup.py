"""Start-up: what a command costs before it does anything, against the interpreter alone.

Each command line runs as a fresh process, in interleaved rounds (:mod:`rounds`): every
round runs each command once, back to back, and the ratio to ``python -c pass`` of the same
round is summarised as min / median over the rounds, CPU (user + sys of the child) beside
wall. ``python -c "import fhir.resources.R4B.patient"`` is the second baseline: the floor of
a Python FHIR tool that loads its models (`mafhir validate` checks with them).

The children run with a bytecode cache (a temporary ``PYTHONPYCACHEPREFIX``; an environment
that sets ``PYTHONDONTWRITEBYTECODE`` would otherwise recompile mafhir's sources on every
start), filled by the warm-up round, as an installed mafhir's ``__pycache__`` would be; the
same round fills mafhir's own caches (the compiled tables' index, the structure tables).

Run: ``python benchmarks/bench_startup.py [--rounds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from rounds import Side, child, emit, interleave, report

BIN = Path(sys.executable).parent
SMALL = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1980-01-01",
         "name": [{"family": "Doe", "given": ["Jo"]}]}
PASS = "python -c pass"
MODELS = "python -c 'import fhir.resources.R4B.patient'"
VALIDATE = "mafhir validate small.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds (make bench)")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "small.json"
        small.write_text(json.dumps(SMALL))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        mafhir = str(BIN / "mafhir")
        cases = {
            PASS: [sys.executable, "-c", "pass"],
            MODELS: [sys.executable, "-c", "import fhir.resources.R4B.patient"],
            "mafhir --version": [mafhir, "--version"],
            "mafhir --help": [mafhir, "--help"],
            VALIDATE: [mafhir, "validate", str(small)],
            "mafhir map --help": [mafhir, "map", "--help"],
        }
        result = interleave({name: Side(lambda argv=argv: child(argv, env=env))
                             for name, argv in cases.items()}, rounds=rounds)
    title = "start-up: each command's cost per process"
    vs_pass = report(result, baseline=PASS, unit="one start", title=title + f", against `{PASS}`",
                     higher_is_better=False)
    print()
    vs_models = report(result, baseline=MODELS, unit="one start",
                       title=title + f", against `{MODELS}`", higher_is_better=False)
    emit("startup", vs_pass.only("mafhir --help", "mafhir --version", VALIDATE))
    emit("startup", vs_models.only(VALIDATE))


if __name__ == "__main__":
    main()
