"""Tasks → validated FHIR JSON: mafhir against a plain fhir.resources baseline, same run.

Part 1 (throughput). Both sides parse the same task documents with the same task models
and build the same resource dicts with the same mappers; they differ in what makes the
output trustworthy and how it is written:

* baseline — every resource through ``fhir.resources`` (R4B) ``model_validate`` +
  ``model_dump_json``, the usual way to get validated FHIR JSON in Python;
* mafhir   — ``Pipeline`` (structure via the same models, plus the US Core profile rules,
  with already-validated shared resources remembered) and the transaction Bundle written
  with orjson.

Runs alternate (A, B, A, B, …) so machine noise hits both; the best of each is reported.

Part 2 (memory). ``mafhir map --ndjson`` on 100,000 tasks, NDJSON in and out, in a child
process; its peak RSS is read from the OS and compared with 10,000 tasks: streaming means
the peak does not grow with the input.

Run: ``make bench`` (or ``python benchmarks/bench_map.py [--tasks N] [--big N]``).
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
from collections.abc import Iterator
from pathlib import Path

from fhir.resources.R4B import get_fhir_model_class

from mafhir.bundle import transaction
from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.demo import demo_day_dir
from mafhir.io import dumps
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry

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


def throughput(n: int, rounds: int) -> None:
    """Best tasks/s of each side over alternating runs, and their ratio."""
    ctx = MapContext(clinic=load_clinic(str(demo_day_dir() / "clinic.json")))
    tasks = make_tasks(n)
    get_registry()
    run_mafhir(tasks[:50], ctx)  # warm caches and imports on both sides
    run_baseline(tasks[:50], ctx)
    best: dict[str, float] = {"baseline": 0.0, "mafhir": 0.0}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, fn in (("baseline", run_baseline), ("mafhir", run_mafhir)):
            start = time.perf_counter()
            resources, _ = fn(tasks, ctx)
            elapsed = time.perf_counter() - start
            best[name] = max(best[name], n / elapsed)
            counts[name] = resources
    print(f"throughput: {n} tasks ({counts['mafhir']} resources), "
          f"best of {rounds} alternating runs")
    print(f"  baseline (model_validate + model_dump_json): {best['baseline']:8.0f} tasks/s")
    print(f"  mafhir   (pipeline + US Core rules + orjson): {best['mafhir']:8.0f} tasks/s")
    print(f"  ratio mafhir / baseline: {best['mafhir'] / best['baseline']:.2f}")


def peak_rss_mb(n: int, workdir: Path) -> tuple[float, float]:
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
    return kb / 1024, n / elapsed


def memory(big: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small_mb, _ = peak_rss_mb(big // 10, Path(tmp))
        big_mb, rate = peak_rss_mb(big, Path(tmp))
    print("memory: mafhir map --ndjson, NDJSON → NDJSON, peak RSS of the process")
    print(f"  {big // 10:>7} tasks: {small_mb:6.1f} MB")
    print(f"  {big:>7} tasks: {big_mb:6.1f} MB  ({rate:.0f} tasks/s end to end)")
    print(f"  growth for 10x the tasks: {big_mb / small_mb:.2f}x (limit 250 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big", type=int, default=100_000, help="tasks for the memory run")
    args = parser.parse_args()
    throughput(args.tasks, args.rounds)
    memory(args.big)


if __name__ == "__main__":
    main()
