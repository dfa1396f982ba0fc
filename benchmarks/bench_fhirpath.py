"""Microseconds per invariant evaluation: ``mafhir.profiles.fhirpath.evaluate`` beside
fhirpathpy itself, in one run.

For the invariants on every resource or element (ele-1, ext-1, dom-2..dom-6, txt-1/2) the
module runs native Python; for those in the common subset (navigation, exists/empty/where,
and/or/implies, = and in on strings) its fast path; for the others fhirpathpy, parsed once.
Each row times the same invariant on the same focus three ways, alternating (A, B, C, A, B,
C...) so machine noise hits all; the best of the rounds is reported:

- ``mafhir``: ``evaluate(expression, focus, resource)``
- ``compiled``: ``fhirpathpy.compile(expression)`` called (what a careful caller would do)
- ``parsed``: ``fhirpathpy.evaluate(resource, expression)`` (parsing on every call)

ele-1 runs in fhirpathpy without its ``hasValue()`` half (fhirpathpy lacks the function), and
dom-3 not at all (fhirpathpy fails on it): their rows compare with what fhirpathpy can do.

Run: ``python benchmarks/bench_fhirpath.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from mafhir.profiles.fhirpath import _fast, evaluate, is_native

R4 = models["r4"]
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
ELE_1 = "hasValue() or (children().count() > id.count())"
DOM_3 = ("contained.where((('#'+id in (%resource.descendants().reference | "
         "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
         "%resource.descendants().as(url))) or descendants().where(reference = '#').exists() or "
         "descendants().where(as(canonical) = '#').exists() or "
         "descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()")

# (name, expression, focus, path, the expression fhirpathpy runs instead, or None)
CASES: list[tuple[str, str, Any, str | None, str | None]] = [
    ("ele-1 (element)", ELE_1, OBS["code"], "Observation.code",
     "children().count() > id.count()"),
    ("ext-1", "extension.exists() != value.exists()", OBS["extension"][0], "Extension", ""),
    ("dom-2", "contained.contained.empty()", OBS, None, ""),
    ("dom-3", DOM_3, OBS, None, None),
    ("dom-4", "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()", OBS,
     None, ""),
    ("dom-5", "contained.meta.security.empty()", OBS, None, ""),
    ("dom-6", "text.`div`.exists()", OBS, None, ""),
    ("txt-1/2 (htmlChecks)", "htmlChecks()", OBS["text"]["div"], "xhtml", None),
    ("vs-2", "(component.empty() and hasMember.empty()) implies "
             "(dataAbsentReason.exists() or value.exists())", OBS, None, ""),
    ("vs-3 (component)", "value.exists() or dataAbsentReason.exists()", OBS["component"][0],
     "Observation.component", ""),
    ("obs-7", "value.empty() or component.code.where(coding.intersect(%resource.code.coding)"
              ".exists()).empty()", OBS, None, ""),
    ("us-core-24", "code.coding.where(code in '72166-2'|'11367-0').exists() implies "
                   "value.is(CodeableConcept)", OBS, None, ""),
    ("vs-1 (dateTime)", "$this is dateTime implies $this.toString().length() >= 10",
     OBS["effectiveDateTime"], "dateTime", ""),
]


def best_of(fn: Callable[[], Any], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def row(name: str, expression: str, focus: Any, path: str | None, alternative: str | None,
        rounds: int, n: int) -> str:
    """One invariant timed three ways, alternating; best of ``rounds`` each."""
    other = expression if alternative == "" else alternative
    mine = partial(evaluate, expression, focus, OBS, path=path, key="txt-1")
    timings: dict[str, list[float]] = {"mine": [], "compiled": [], "parsed": []}
    theirs = parsed = None
    if other is not None:
        node = focus if path is None else ResourceNode.create_node(focus, path)
        theirs = partial(fhirpathpy.compile(other, model=R4), node, {"resource": OBS})
        parsed = partial(fhirpathpy.evaluate, node, other, {"resource": OBS}, model=R4)
    for _ in range(rounds):
        timings["mine"].append(best_of(mine, n))
        if theirs is not None and parsed is not None:
            timings["compiled"].append(best_of(theirs, n))
            timings["parsed"].append(best_of(parsed, max(n // 10, 10)))
    m = min(timings["mine"])
    how = "native" if is_native(expression) else "fast" if _fast(expression) else "fhirpathpy"
    if other is None:
        return f"{name:<22} {how:<10} {m:>10.2f} {'—':>12} {'—':>10} {'—':>11} {'—':>9}"
    c, p = min(timings["compiled"]), min(timings["parsed"])
    return (f"{name:<22} {how:<10} {m:>10.2f} {c:>12.2f} {p:>10.2f} {c / m:>10.1f}× "
            f"{p / m:>8.1f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=300, help="evaluations per timing")
    args = parser.parse_args()
    print(f"{'invariant':<22} {'how':<10} {'mafhir µs':>10} {'compiled µs':>12} "
          f"{'parsed µs':>10} {'× compiled':>11} {'× parsed':>9}")
    for case in CASES:
        print(row(*case, rounds=args.rounds, n=args.n))


if __name__ == "__main__":
    main()
