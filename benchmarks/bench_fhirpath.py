"""Invariants: the compiled closures against fhirpathpy, in interleaved rounds.

``mafhir.profiles.fhirpath.evaluate`` runs an invariant natively (ele-1, ext-1, dom-*, txt-*),
else as compiled closures (``fhirpath_compiler``), else through fhirpathpy. Here the same
invariant on the same focus is evaluated by each side in turn, every round (rounds.py):

- ``fhirpathpy``: ``evaluate`` with the closures switched off (fhirpathpy parsed once, with the
  module's gap-fillers: what the engine ran before);
- ``compiled``: ``evaluate`` as it runs now.

Rows: single invariants of R4 and US Core on a blood-pressure Observation, then the engine's
own calls while it validates what mapping the demo day writes (every non-native invariant it
evaluates, on the values it hands over). Ratios are fhirpathpy's time / compiled time per
evaluation (CPU and wall, min and median over rounds). With ``--map``, bench_map's mafhir side
(the whole pipeline) with invariants by fhirpathpy, compiled, and not evaluated at all: what
the invariants still cost.

Run: ``python benchmarks/bench_fhirpath.py [--rounds N] [--n N] [--tasks N] [--map] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from typing import Any
from unittest import mock

import mafhir.validation  # noqa: F401  (first: mafhir.profiles and mafhir.validation import each other)
from mafhir.profiles import fhirpath
from mafhir.profiles.fhirpath import evaluate, is_native
from mafhir.profiles.fhirpath_compiler import FALLBACKS, compile_fhirpath
from rounds import Ratios, Side, emit, interleave, report, summary

XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'
OBS: dict[str, Any] = {
    "resourceType": "Observation", "id": "bp", "meta": {"profile": [
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"]},
    "text": {"status": "generated", "div": f"<div {XHTML}><p>BP 120/80 mmHg</p></div>"},
    "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                              "observation-category", "code": "vital-signs"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "subject": {"reference": "Patient/example"},
    "effectiveDateTime": "2024-03-01T09:30:00-05:00",
    "component": [
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
         "valueQuantity": {"value": 120, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                           "code": "mm[Hg]"}},
        {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
         "valueQuantity": {"value": 80, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org",
                           "code": "mm[Hg]"}}],
    "extension": [{"url": "http://example.org/x", "valueString": "y"}],
}

Call = tuple[str, Any, Any]
# (name, expression, focus): the focus as the engine hands it (no path; the resource is OBS)
CASES: list[tuple[str, str, Any]] = [
    ("vs-2", "(component.empty() and hasMember.empty()) implies "
             "(dataAbsentReason.exists() or value.exists())", OBS),
    ("vs-3 (component)", "value.exists() or dataAbsentReason.exists()", OBS["component"][0]),
    ("obs-7", "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
              ".exists()).empty()", OBS),
    ("us-core-24", "code.coding.where(code in '72166-2'|'11367-0').exists() implies "
                   "value.is(CodeableConcept)", OBS),
    ("vs-1 (dateTime)", "$this is dateTime implies $this.toString().length() >= 10",
     OBS["effectiveDateTime"]),
    ("us-core-3 (Quantity)", "ofType(Quantity).system.empty() or ofType(Quantity).system = "
                             "'http://unitsofmeasure.org'", OBS["component"][0]["valueQuantity"]),
]


def _off(expression: str) -> None:
    return None


def _slow(call: Call) -> bool | None:
    with mock.patch.object(fhirpath, "_fast", _off):
        return evaluate(*call)


def _runner(calls: list[Call], slow: bool) -> Callable[[], None]:
    def run() -> None:
        if slow:
            with mock.patch.object(fhirpath, "_fast", _off):
                for call in calls:
                    evaluate(*call)
        else:
            for call in calls:
                evaluate(*call)
    return run


# The profile engine's evaluator, chosen per run: every Validator built from here on calls
# _engine_evaluate (the pipeline's is built once and cached, so the switch is made here).
_MODE = ["compiled"]
_CALLS: list[Call] = []


def _engine_evaluate(expression: str, value: Any, resource: Any) -> bool | None:
    mode = _MODE[0]
    if mode == "none":
        return True  # no invariant evaluated at all: the floor
    if mode == "record" and not is_native(expression):
        _CALLS.append((expression, value, resource))
    return evaluate(expression, value, resource)


def _with_engine_mode(mode: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        _MODE[0] = mode
        fast = fhirpath._fast
        if mode == "fhirpathpy":
            fhirpath._fast = _off  # type: ignore[assignment]
        try:
            return fn()
        finally:
            fhirpath._fast = fast
            _MODE[0] = "compiled"
    return run


def _map_setup(tasks: int) -> tuple[Callable[[], Any], Any]:
    from bench_map import make_tasks, run_mafhir
    from mafhir.clinic import load_clinic
    from mafhir.context import MapContext
    from mafhir.demo import demo_day_dir
    from mafhir.profiles import validator as profiles_validator

    profiles_validator.evaluator = lambda: _engine_evaluate  # type: ignore[assignment]
    ctx = MapContext(clinic=load_clinic(str(demo_day_dir() / "clinic.json")))
    work = make_tasks(tasks)

    def run() -> None:  # returns nothing: rounds.py reads a returned pair as (cpu, wall)
        run_mafhir(work, ctx)

    return run, work


def demo_day_calls(run: Callable[[], Any]) -> list[Call]:
    """The engine's non-native invariant calls while the pipeline maps the demo tasks."""
    _CALLS.clear()
    _with_engine_mode("record", run)()
    return list(_CALLS)


def mapping(run: Callable[[], Any], tasks: int, rounds: int) -> None:
    """bench_map's mafhir side (pipeline + transaction + orjson) with each evaluator."""
    result = interleave({mode: Side(_with_engine_mode(mode, run), units=tasks)
                         for mode in ("fhirpathpy", "compiled", "none")}, rounds=rounds)
    report(result, baseline="fhirpathpy", unit="tasks",
           title=f"bench_map's mafhir side, {tasks} tasks: invariants by fhirpathpy, compiled, "
                 "or not evaluated at all")


def row(name: str, calls: list[Call], rounds: int) -> Ratios:
    """One row of the table; its ratios (compiled against fhirpathpy) for the summary."""
    same = sum(evaluate(*c) is _slow(c) for c in calls)
    result = interleave({"fhirpathpy": Side(_runner(calls, slow=True), units=len(calls)),
                         "compiled": Side(_runner(calls, slow=False), units=len(calls))},
                        rounds=rounds)
    per = {}
    for kind, table in (("cpu", result.cpu), ("wall", result.wall)):
        ratios = [b / s for b, s in zip(table["fhirpathpy"], table["compiled"], strict=True)]
        per[kind] = summary(ratios)
    us = {side: statistics.median(result.cpu[side]) / len(calls) * 1e6 for side in result.cpu}
    print(f"  {name:<28} {len(calls):>6} {us['fhirpathpy']:>9.1f} {us['compiled']:>9.1f}   "
          f"CPU min {per['cpu'][0]:5.1f}× med {per['cpu'][1]:5.1f}× · wall min "
          f"{per['wall'][0]:5.1f}× med {per['wall'][1]:5.1f}×   "
          f"{'same' if same == len(calls) else f'{len(calls) - same} DIFFER'}")
    return Ratios("fhirpathpy", True, "evaluations", rounds, {"compiled": per})


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=None, help="(5; --quick 3)")
    parser.add_argument("--n", type=int, default=None,
                        help="evaluations per side per round (300; --quick 100)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="demo-day tasks mapped (300; --quick 100)")
    parser.add_argument("--map", action="store_true",
                        help="also time bench_map's mafhir side with each evaluator")
    parser.add_argument("--quick", action="store_true",
                        help="make bench: 3 rounds, 100 evaluations, 100 tasks")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.n = args.n or (100 if args.quick else 300)
    args.tasks = args.tasks or (100 if args.quick else 300)
    print(f"invariants: fhirpathpy vs compiled closures — {args.rounds} interleaved rounds, "
          f"{os.cpu_count()} cores; µs = median CPU per evaluation; ratio = fhirpathpy/compiled")
    print(f"  {'invariant':<28} {'calls':>6} {'fhirpathpy':>9} {'compiled':>9}")
    for name, expression, focus in CASES:
        assert compile_fhirpath(expression) is not None, expression
        row(name, [(expression, focus, OBS)] * args.n, args.rounds)
    fell_back = sum(FALLBACKS.values())
    run, _ = _map_setup(args.tasks)
    calls = demo_day_calls(run)
    demo = row(f"demo day ({args.tasks} tasks)", calls, args.rounds)
    print(f"  fallbacks to fhirpathpy in the compiled runs: {sum(FALLBACKS.values()) - fell_back}"
          f" (expressions: {len({c[0] for c in calls})})")
    if args.map:
        print()
        mapping(run, args.tasks, args.rounds)
    emit("fhirpath", demo, note=f"the invariants mapping {args.tasks} demo-day tasks evaluates")


if __name__ == "__main__":
    main()
