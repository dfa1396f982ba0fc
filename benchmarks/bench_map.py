"""Tasks → validated FHIR JSON: mafhir against a plain fhir.resources baseline, same run.

Part 1 (throughput), in interleaved rounds (``rounds.py``: every side once per round, the
ratio taken within the round, min and median over rounds, CPU beside wall). All sides parse
the same task documents with the same task models and build the same resource dicts with
the same mappers; they differ in what makes the output trustworthy and how it is written:

* plain    — every resource through ``fhir.resources`` (R4B) ``model_validate`` +
  ``model_dump_json``, the usual way to get validated FHIR JSON in Python;
* baseline+ — the same models, given what mafhir has besides its checks: orjson to write,
  and validated resources remembered (a resource seen before is not validated again);
* mafhir   — ``Pipeline`` (R4 structure from the models' compiled table, the
  StructureDefinitions' profile check by the compiled walk, mafhir's own rules, validated
  shared resources remembered) and the transaction Bundle written with orjson.

Then the check alone against the floor: the fast structure + profile check of each
resource (``check_structure`` + the compiled walk) against ``orjson.dumps`` of it.

``--no-invariants`` leaves the StructureDefinitions' FHIRPath invariants out of every
check (they are "not evaluated"): what mafhir would cost with invariants compiled to
closures, while that work is elsewhere. Never a conformance setting.

Part 2 (memory). ``mafhir map --ndjson`` on 100,000 tasks, NDJSON in and out, in a child
process; its peak RSS (VmHWM) and wall time are printed and compared with a tenth of the
tasks: streaming means the peak does not grow with the input (limit 150 MB).

Run: ``make bench`` (or ``python benchmarks/bench_map.py [--tasks N] [--rounds N] [--big N]
[--quick]``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

from mafhir.bundle import transaction
from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.demo import demo_day_dir
from mafhir.io import dumps
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry
from mafhir.validation.structure import check_structure
from mafhir.validation.validator import _engine
from rounds import Side, emit, emit_figure, interleave, report, reported

STATELESS = ("vitals", "immunization", "coverage", "poc_test", "ekg", "skin_test")


def templates() -> list[dict]:
    """The demo day's tasks that need no earlier state and map cleanly, as templates."""
    ctx = MapContext(clinic=load_clinic(str(demo_day_dir() / "clinic.json")))
    with open(demo_day_dir() / "day.ndjson", "rb") as stream:
        tasks = [json.loads(line) for line in stream]
    keep = [t for t in tasks if t["task"] in STATELESS or t.get("action") == "book"]
    pipeline = Pipeline(get_registry(), ctx)
    return [t for i, t in enumerate(keep)
            if not isinstance(next(iter(pipeline.run([(i, t)]))), Failed)]


def iter_tasks(n: int) -> Iterator[dict]:
    """``n`` distinct tasks: templates with new task ids, MRNs and appointment ids."""
    base = templates()
    for i in range(n):
        task = copy.deepcopy(base[i % len(base)])
        task["id"] = f"{task['id']}-{i}"
        task["patient"]["mrn"] = f"B{i % 5000:05d}"  # 5,000 patients, seen several times
        if "appointment_id" in task:
            task["appointment_id"] = f"bench-{i}"
        yield task


def make_tasks(n: int) -> list[dict]:
    return list(iter_tasks(n))


def run_baseline(tasks: list[dict], ctx: MapContext) -> tuple[int, int]:
    registry = get_registry()
    pipeline = Pipeline(registry, ctx, validate=False)  # parse + map only
    size = resources = 0
    for i, raw in enumerate(tasks):
        task = pipeline.parse(i, raw)
        for entry in registry.mapper(task.task).to_fhir(task, ctx):
            model = get_fhir_model_class(entry.resource["resourceType"])
            size += len(model.model_validate(entry.resource).model_dump_json(exclude_none=True))
            resources += 1
    return resources, size


def run_mafhir(tasks: list[dict], ctx: MapContext) -> tuple[int, int]:
    pipeline = Pipeline(get_registry(), ctx)
    size = resources = 0
    for result in pipeline.run(enumerate(tasks)):
        if isinstance(result, Failed):
            raise SystemExit(f"benchmark input failed: {result.problems}")
        size += len(dumps(transaction(result.entries)))
        resources += len(result.entries)
    return resources, size


def run_baseline_plus(tasks: list[dict], ctx: MapContext) -> tuple[int, int]:
    """The models with orjson and a cache of validated resources, as mafhir has."""
    registry = get_registry()
    pipeline = Pipeline(registry, ctx, validate=False)
    valid: set[bytes] = set()
    size = resources = 0
    for i, raw in enumerate(tasks):
        task = pipeline.parse(i, raw)
        for entry in registry.mapper(task.task).to_fhir(task, ctx):
            blob = dumps(entry.resource)
            if blob not in valid:
                get_fhir_model_class(entry.resource["resourceType"]).model_validate(
                    entry.resource)
                if len(valid) >= Pipeline.CACHE_SIZE:
                    valid.clear()
                valid.add(blob)
            size += len(blob)
            resources += 1
    return resources, size


def throughput(n: int, rounds: int) -> None:
    """Per-round ratios of mafhir to the plain and the given-the-same baselines."""
    ctx = MapContext(clinic=load_clinic(str(demo_day_dir() / "clinic.json")))
    tasks = make_tasks(n)
    counts = {"mafhir": run_mafhir(tasks, ctx)[0]}

    def side(run: Callable[[list[dict], MapContext], tuple[int, int]]) -> Side:
        def once() -> None:  # its (resources, bytes) are not a (cpu, wall) pair
            run(tasks, ctx)
        return Side(once, n)

    result = interleave({
        "plain (model_validate + model_dump_json)": side(run_baseline),
        "baseline+ (models, orjson, validated cache)": side(run_baseline_plus),
        "mafhir (pipeline + profiles + rules + orjson)": side(run_mafhir),
    }, rounds=rounds)
    title = f"throughput: {n} tasks ({counts['mafhir']} resources)"
    report(result, baseline="plain (model_validate + model_dump_json)", unit="tasks",
           title=title)
    print("  against the baseline given the same orjson and cache:")
    plus = {k: v for k, v in result.cpu.items() if not k.startswith("plain")}
    result.cpu, result.wall = plus, {k: result.wall[k] for k in plus}
    report(result, baseline="baseline+ (models, orjson, validated cache)", unit="tasks")


def floor(n: int, rounds: int) -> None:
    """The fast structure + profile check of each resource against orjson writing it."""
    ctx = MapContext(clinic=load_clinic(str(demo_day_dir() / "clinic.json")))
    pipeline = Pipeline(get_registry(), ctx, validate=False)
    resources = [e.resource for r in pipeline.run(enumerate(make_tasks(n)))
                 if not isinstance(r, Failed) for e in r.entries]
    engine = _engine()

    def check() -> None:
        for resource in resources:
            if check_structure(resource) or engine.validate(resource, errors_only=True):
                raise SystemExit("benchmark input has errors")

    def write() -> None:
        for resource in resources:
            dumps(resource)

    result = interleave({"orjson.dumps alone": Side(write, len(resources)),
                         "fast check alone (structure + compiled walk)":
                             Side(check, len(resources))}, rounds=rounds)
    report(result, baseline="orjson.dumps alone", unit="resources", higher_is_better=False,
           title=f"the check against the floor: {len(resources)} resources, each once")


def peak_rss_mb(n: int, workdir: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `mafhir map --ndjson` on ``n`` tasks."""
    source = workdir / f"tasks-{n}.ndjson"
    with open(source, "w") as out:  # streamed, so this process stays small too
        for task in iter_tasks(n):
            out.write(json.dumps(task) + "\n")
    target = workdir / f"bundles-{n}.ndjson"
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent
    code = ("import sys; from mafhir.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print(hwm.split()[1], file=sys.stderr)\n")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, "map", "--ndjson", "--clinic",
         str(demo_day_dir() / "clinic.json"), "-o", str(target), str(source)],
        capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if not target.exists():
        raise SystemExit(f"map failed: {proc.stderr[-2000:]}")
    kb = int(proc.stderr.strip().splitlines()[-1])
    os.unlink(source)
    os.unlink(target)
    return kb / 1024, elapsed


def memory(big: int) -> dict[int, float]:
    """Peak RSS in MB of ``map --ndjson`` on a tenth of ``big`` tasks and on ``big``."""
    small = max(1, big // 10)
    with tempfile.TemporaryDirectory() as tmp:
        small_mb, small_wall = peak_rss_mb(small, Path(tmp))
        big_mb, big_wall = peak_rss_mb(big, Path(tmp))
    print("memory: mafhir map --ndjson, NDJSON → NDJSON, peak RSS of the process")
    print(f"  {small:>7} tasks: {small_mb:6.1f} MB  {small_wall:7.1f} s wall "
          f"({small / small_wall:,.0f} tasks/s end to end)")
    print(f"  {big:>7} tasks: {big_mb:6.1f} MB  {big_wall:7.1f} s wall "
          f"({big / big_wall:,.0f} tasks/s end to end)")
    print(f"  growth for {big / small:.0f}x the tasks: {big_mb / small_mb:.2f}x "
          f"(limit 150 MB: {'met' if big_mb <= 150 else 'NOT met'})")
    return {small: small_mb, big: big_mb}


#: The mafhir side of the throughput rounds (its name in the reports).
MAFHIR = "mafhir (pipeline + profiles + rules + orjson)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=None,
                        help="tasks per throughput round (2,000; --quick 500)")
    parser.add_argument("--rounds", type=int, default=None, help="(5; --quick 3)")
    parser.add_argument("--big", type=int, default=None,
                        help="tasks for the memory run (100,000; --quick 10,000; 0: none)")
    parser.add_argument("--no-invariants", action="store_true",
                        help="leave FHIRPath invariants out (see the module's docstring)")
    parser.add_argument("--quick", action="store_true",
                        help="make bench: 500 tasks, 3 rounds, memory at 1,000 and 10,000")
    args = parser.parse_args()
    tasks = args.tasks or (500 if args.quick else 2000)
    rounds = args.rounds or (3 if args.quick else 5)
    big = args.big if args.big is not None else 10_000 if args.quick else 100_000
    if args.no_invariants:
        _engine()._evaluate = None
        print("invariants NOT evaluated (--no-invariants)")
    throughput(tasks, rounds)
    floor(tasks, rounds)
    plain, plus, check = reported()[-3:]  # the two throughput reports, then the floor's
    note = f"{tasks:,} tasks" + (", invariants not evaluated" if args.no_invariants else "")
    emit("map", plain.only(MAFHIR), note=note)
    emit("map", plus.only(MAFHIR), note=note)
    emit("map", check, note="per resource")
    if big > 0:
        for n, mb in memory(big).items():
            emit_figure("map --ndjson", f"peak RSS, {n:,} tasks", (mb, mb), "MB",
                        note="limit 150 MB")


if __name__ == "__main__":
    main()
