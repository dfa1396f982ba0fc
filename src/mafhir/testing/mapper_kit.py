"""The conformance kit for mapper plugins: what every task kind must do, checked in one
call on the plugin author's own sample tasks.

``check_mapper("reminder_call", [task, …])`` returns what the kind breaks (empty when it
keeps the contract): each sample parses with the kind's model; ``to_fhir`` is pure — the
same task gives the same FHIR twice (identifiers, not random ids, make conditional writes
idempotent); every resource written passes the checks ``mafhir`` runs before anything
leaves (R4 structure and the profiles it claims); the transaction Bundle of them all is
valid; and ``from_fhir`` reads back a task that writes the same FHIR (``round_trip=False``
for a kind that cannot be read back). ``mapper_suite`` turns it into a pytest test class.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..bundle import transaction
from ..context import MapContext
from ..plugins import get_registry
from ..resourceset import ResourceSet
from ..validation import check_bundle, check_resource

__all__ = ["check_mapper", "mapper_suite"]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _differences(given: dict[str, Any], back: dict[str, Any], where: str = "") -> list[str]:
    out = []
    for key in sorted(set(given) | set(back)):
        a, b = given.get(key), back.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{where}{key}.")
        elif _json(a) != _json(b):
            out.append(f"{where}{key}: given {_json(a)[:80]}, read back {_json(b)[:80]}")
    return out


def _by_url(bundle: dict[str, Any]) -> dict[str, Any]:
    """A Bundle's resources by the request that writes them (type and identifier)."""
    return {e["request"]["url"] + " " + (e["request"].get("ifNoneExist") or ""): e["resource"]
            for e in bundle.get("entry", [])}


def check_mapper(kind: str, samples: Sequence[dict[str, Any]], ctx: MapContext | None = None,
                 round_trip: bool = True) -> list[str]:
    """What task kind ``kind`` breaks of the mapper contract on ``samples``; empty if none."""
    registry = get_registry()
    mapper = registry.mappers.get(kind)
    if mapper is None:
        return [f"{kind}: no such task kind (registered: {', '.join(sorted(registry.mappers))})"]
    ctx = ctx or MapContext()
    problems: list[str] = []
    for n, raw in enumerate(samples):
        where = f"{kind} sample {n}"
        try:
            task = mapper.model.model_validate(raw)
        except Exception as exc:  # the sample itself is wrong: say so, go on
            problems.append(f"{where}: does not parse ({type(exc).__name__}: {exc})"[:500])
            continue
        first = [(e.full_url, e.method, e.url, e.resource) for e in mapper.to_fhir(task, ctx)]
        second = [(e.full_url, e.method, e.url, e.resource) for e in mapper.to_fhir(task, ctx)]
        if _json(first) != _json(second):
            problems.append(f"{where}: to_fhir is not deterministic (two runs wrote different "
                            f"FHIR: random ids or the clock?)")
        entries = mapper.to_fhir(task, ctx)
        if not entries:
            problems.append(f"{where}: to_fhir wrote nothing")
            continue
        for i, entry in enumerate(entries):
            for issue in check_resource(entry.resource, registry.profiles, f"entry[{i}]"):
                if issue.severity in ("error", "fatal"):
                    problems.append(f"{where}: {issue.expression}: {issue.diagnostics}")
        bundle = transaction(entries)
        for issue in check_bundle(bundle, registry.profiles):
            if issue.severity in ("error", "fatal"):
                problems.append(f"{where}: Bundle {issue.expression}: {issue.diagnostics}")
        if not round_trip:
            continue
        back = [t for t in mapper.from_fhir(ResourceSet.from_bundle(bundle))
                if getattr(t, "id", None) == getattr(task, "id", None)]
        if len(back) != 1:
            problems.append(f"{where}: from_fhir read back {len(back)} task(s) with id "
                            f"{getattr(task, 'id', None)!r}, not 1")
            continue
        # equal as FHIR: the task read back writes the same resources (a weight given in
        # lb and oz may read back as lb alone; what it says must not change)
        rewritten = transaction(mapper.to_fhir(back[0], ctx))
        problems += [f"{where}: round trip: {d}" for d in
                     _differences(_by_url(bundle), _by_url(rewritten))]
    return problems


def mapper_suite(kind: str, samples: Sequence[dict[str, Any]], ctx: MapContext | None = None,
                 round_trip: bool = True) -> type:
    """A pytest class with one test that runs :func:`check_mapper` on ``samples``::

        TestReminderCall = mapper_suite("reminder_call", [SAMPLE])
    """

    class MapperContract:
        def test_mapper_contract(self) -> None:
            problems = check_mapper(kind, samples, ctx, round_trip)
            assert not problems, "\n".join(problems)

    MapperContract.__name__ = f"MapperContract_{kind}"
    return MapperContract
