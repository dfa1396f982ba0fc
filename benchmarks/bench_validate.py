"""Profile validation speed: resources per second through ``mafhir.profiles`` against a
profile, side by side with fhir.resources' ``model_validate`` of the same resources.

The resources are the US Core 7.0.0 package's examples (from ``../shared/corpus``),
each checked against the profiles it claims. The two sides alternate in rounds (A, B,
A, B...) so a busy machine hits both; per round the ratio of rates is taken, and the
minimum and median of those ratios are printed with CPU time beside wall time. The
engine does more than the models (profiles, slicing, bindings), so the ratio says what
that costs; it is printed whatever it is.

Run: ``python benchmarks/bench_validate.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

from mafhir.profiles import Validator
from mafhir.profiles.packages import read_tgz

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MAFHIR_CORPUS", ROOT.parent / "shared" / "corpus"))


def _timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    package = read_tgz(CORPUS / "us-core/packages/hl7.fhir.us.core-7.0.0.tgz", examples=True)
    resources = [r for r in package.examples.values() if r.get("resourceType") != "Bundle"]
    models = [(get_fhir_model_class(r["resourceType"]), r) for r in resources]
    validator = Validator.default(prefer="us-core@7.0.0")
    for r in resources:  # warm both: compiled trees, model classes
        validator.validate(r)
    for model, r in models:
        model.model_validate(r)

    def engine() -> None:
        for r in resources:
            validator.validate(r)

    def pydantic() -> None:
        for model, r in models:
            model.model_validate(r)

    n = len(resources)
    ratios, cpu_ratios, rates = [], [], []
    for _ in range(args.rounds):
        ew, ec = _timed(engine)
        mw, mc = _timed(pydantic)
        ratios.append(mw / ew)
        cpu_ratios.append(mc / ec)
        rates.append((n / ew, n / mw, ec, mc))
    print(f"{n} US Core 7.0.0 example resources, {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} cores")
    for i, (er, mr, ec, mc) in enumerate(rates):
        print(f"round {i}: engine {er:7.0f}/s wall, {n / ec:7.0f}/s cpu   "
              f"model_validate {mr:7.0f}/s wall, {n / mc:7.0f}/s cpu   "
              f"ratio {er / mr:.2f}x wall, {mc / ec:.2f}x cpu")
    print(f"engine/model_validate rate ratio (wall): min {min(ratios):.2f}x, "
          f"median {statistics.median(ratios):.2f}x")
    print(f"engine/model_validate rate ratio (cpu):  min {min(cpu_ratios):.2f}x, "
          f"median {statistics.median(cpu_ratios):.2f}x")


if __name__ == "__main__":
    main()
