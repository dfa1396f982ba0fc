"""Profile validation speed: resources per second through ``mafhir.profiles`` against a
profile, side by side with fhir.resources' ``model_validate`` of the same resources.

The resources are the US Core 7.0.0 package's examples (from ``../shared/corpus``),
each checked against the profiles it claims. The two sides alternate in rounds (A, B,
A, B...) so a busy machine hits both; per round the ratio of rates is taken, and the
minimum and median of those ratios are printed with CPU time beside wall time. The
engine does more than the models (profiles, slicing, bindings), so the ratio says what
that costs; it is printed whatever it is.

Run: ``python benchmarks/bench_validate.py [--rounds N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

from mafhir.profiles import Validator
from mafhir.profiles.packages import read_tgz
from rounds import Side, emit, interleave, report

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MAFHIR_CORPUS", ROOT.parent / "shared" / "corpus"))
PACKAGE = CORPUS / "us-core/packages/hl7.fhir.us.core-7.0.0.tgz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds (make bench)")
    args = parser.parse_args()
    if not PACKAGE.is_file():
        sys.exit(f"bench_validate: {PACKAGE} is absent (the corpus; MAFHIR_CORPUS)")
    package = read_tgz(PACKAGE, examples=True)
    resources = [r for r in package.examples.values() if r.get("resourceType") != "Bundle"]
    models = [(get_fhir_model_class(r["resourceType"]), r) for r in resources]
    validator = Validator.default(prefer="us-core@7.0.0")

    def engine() -> None:
        for r in resources:
            validator.validate(r)

    def pydantic() -> None:
        for model, r in models:
            model.model_validate(r)

    n = len(resources)
    # the warm-up round compiles the trees and builds the model classes
    result = interleave({"model_validate": Side(pydantic, units=n),
                         "profile engine": Side(engine, units=n)},
                        rounds=3 if args.quick else args.rounds)
    ratios = report(result, baseline="model_validate", unit="resources",
                    title=f"{n} US Core 7.0.0 example resources: the profile engine against "
                          "fhir.resources' model_validate")
    emit("validate", ratios, note=f"{n} US Core 7.0.0 examples")


if __name__ == "__main__":
    main()
