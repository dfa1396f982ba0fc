"""Interleaved rounds and per-round ratios: the one way every benchmark here compares sides.

Why: the machine is shared, so the best run of each side can come from different moments
of load and decide the result by luck. Here each round runs every side once, back to back
(A, B, C, A, B, C, …), and the ratio is taken *within* a round, then summarised as min and
median over the rounds. CPU time (``time.process_time`` in-process, ``os.wait4`` for a
child) is reported beside wall time: CPU is what load disturbs least.

Use::

    from rounds import Side, interleave, report

    result = interleave({"baseline": Side(run_a, units=n), "mafhir": Side(run_b, units=n)},
                        rounds=5)
    report(result, baseline="baseline", unit="tasks")

``Side.fn`` returns nothing, or a ``(cpu, wall)`` pair when it measured itself (a child
process, say: see :func:`child`).

``make bench`` (``benchmarks/run_all.py``) runs every benchmark with ``--quick`` and builds
one table from what they print. The protocol is one line per compared side on stdout::

    BENCH-RESULT {"bench": "map", "side": "mafhir", "baseline": "plain", "kind": "speed",
                  "cpu": [min, median], "wall": [min, median], "rounds": 5, "cores": 2, ...}

A benchmark adopts it in one line, with the ratios :func:`report` returns::

    emit("map", report(result, baseline="plain", unit="tasks"))

A measured quantity that is no ratio (a peak RSS in MB, a share in %) is a ``"figure"``
line, with ``"value": [min, median]`` and its ``"unit"`` instead of ``cpu``/``wall``
(:func:`emit_figure`). :func:`reported` gives back every :func:`report` of the run, so a
benchmark's ``main`` can emit what its parts reported without changing them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESULT_PREFIX", "Ratios", "Rounds", "Side", "child", "emit", "emit_figure",
           "interleave", "parse_results", "repeated", "report", "reported", "stopwatch",
           "summary"]

#: What starts a result line on a benchmark's stdout (see :func:`emit`).
RESULT_PREFIX = "BENCH-RESULT "


@dataclass
class Side:
    """One contender: a callable doing the whole measured work once, and how much work that is."""

    fn: Callable[[], Any]
    units: float = 1.0


@dataclass
class Rounds:
    """Per side, the (cpu, wall) seconds of each round, in round order."""

    units: dict[str, float]
    cpu: dict[str, list[float]] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)


def child(argv: Sequence[str], **popen: Any) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one child process run to its end."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=popen.pop("stdout", subprocess.DEVNULL),
                            stderr=popen.pop("stderr", subprocess.DEVNULL), **popen)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}… exited {proc.returncode}")
    return usage.ru_utime + usage.ru_stime, wall


def repeated(once: Callable[[], Any], units: float, seconds: float) -> Side:
    """A side that runs ``once`` (``units`` of work) as many times as take about ``seconds``
    (timed once, now): short work measured over a stretch long enough to time."""
    start = time.perf_counter()
    once()
    reps = max(1, round(seconds / max(time.perf_counter() - start, 1e-6)))

    def run() -> None:
        for _ in range(reps):
            once()

    return Side(run, units=reps * units)


def stopwatch() -> Callable[[], tuple[float, float]]:
    """Start timing now; the function returned gives (CPU seconds, wall seconds) since. For a
    ``Side.fn`` that prepares untimed work first (builds its input, opens a connection) and
    returns ``stop()`` after the measured part."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    return lambda: (time.process_time() - cpu0, time.perf_counter() - wall0)


def _measure(side: Side) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    got = side.fn()
    if isinstance(got, tuple) and len(got) == 2:
        return float(got[0]), float(got[1])
    return time.process_time() - cpu0, time.perf_counter() - wall0


def interleave(sides: dict[str, Side], rounds: int = 5, warmup: int = 1) -> Rounds:
    """Run every side once per round, in turn; the first ``warmup`` rounds are not kept."""
    out = Rounds(units={name: side.units for name, side in sides.items()},
                 cpu={name: [] for name in sides}, wall={name: [] for name in sides})
    for r in range(warmup + rounds):
        for name, side in sides.items():
            cpu, wall = _measure(side)
            if r >= warmup:
                out.cpu[name].append(cpu)
                out.wall[name].append(wall)
    return out


def summary(values: list[float]) -> tuple[float, float]:
    """(min, median)."""
    return min(values), statistics.median(values)


def _rate(units: float, seconds: list[float]) -> str:
    rates = [units / s if s > 0 else float("inf") for s in seconds]
    if units <= 1:
        return ""
    return f"{statistics.median(rates):,.0f}/s median (best {max(rates):,.0f}/s)"


class Ratios(dict[str, dict[str, tuple[float, float]]]):
    """side → {"cpu": (min, median), "wall": (min, median)}, and what they were taken against
    (so :func:`emit` needs nothing else)."""

    def __init__(self, baseline: str, higher_is_better: bool, unit: str, rounds: int,
                 items: Mapping[str, dict[str, tuple[float, float]]] | None = None) -> None:
        super().__init__(items or {})
        self.baseline = baseline
        self.higher_is_better = higher_is_better
        self.unit = unit
        self.rounds = rounds
        self.title = ""

    def only(self, *sides: str) -> Ratios:
        """The same ratios for ``sides`` alone (what a summary table should show)."""
        out = Ratios(self.baseline, self.higher_is_better, self.unit, self.rounds,
                     {name: self[name] for name in sides})
        out.title = self.title
        return out


#: Every :func:`report` of this process, in order (see :func:`reported`).
_REPORTED: list[Ratios] = []


def reported(title: str = "") -> list[Ratios]:
    """The ratios of every :func:`report` so far (those whose title starts with ``title``),
    oldest first: what a benchmark's ``main`` emits after its parts ran, untouched."""
    return [r for r in _REPORTED if r.title.startswith(title)]


def report(result: Rounds, baseline: str, unit: str = "items", title: str = "",
           higher_is_better: bool = True) -> Ratios:
    """Print each side's throughput and its per-round ratio to ``baseline``; return the ratios.

    The ratio is baseline time / side time per unit of work (so > 1 means the side is faster)
    when ``higher_is_better``; otherwise side / baseline (a cost, as for start-up).
    """
    rounds = len(result.cpu[baseline])
    if title:
        print(f"{title} — {rounds} interleaved rounds, {os.cpu_count()} cores")
    ratios = Ratios(baseline, higher_is_better, unit, rounds)
    ratios.title = title
    _REPORTED.append(ratios)
    base_units = result.units[baseline]
    for name in result.cpu:
        units = result.units[name]
        line = f"  {name:<44}"
        cpu_rate = _rate(units, result.cpu[name])
        if cpu_rate:
            line += f" CPU {cpu_rate}"
        else:
            line += f" CPU {statistics.median(result.cpu[name]) * 1000:,.0f} ms median"
        print(line)
        if name == baseline:
            continue
        per: dict[str, tuple[float, float]] = {}
        for kind, table in (("cpu", result.cpu), ("wall", result.wall)):
            values = []
            for b, s in zip(table[baseline], table[name], strict=True):
                per_b, per_s = b / base_units, s / units
                values.append(per_b / per_s if higher_is_better else per_s / per_b)
            lo, med = summary(values)
            per[kind] = (lo, med)
        ratios[name] = per
        what = "speed" if higher_is_better else "cost"
        print(f"    {what} / {baseline}: CPU min {per['cpu'][0]:.2f}× median {per['cpu'][1]:.2f}×"
              f" · wall min {per['wall'][0]:.2f}× median {per['wall'][1]:.2f}× ({unit})")
    return ratios


def emit(name: str, ratios: Ratios, note: str = "", by: str = "cpu") -> None:
    """Print one ``BENCH-RESULT {json}`` line per side of ``ratios`` (what :func:`report`
    returned), for ``benchmarks/run_all.py``'s table. ``note`` qualifies the comparison
    (the workload, say) in the table; ``by="wall"`` makes the table show the wall-time
    ratio, for a comparison whose target is elapsed time (delivery over a network)."""
    if by not in ("cpu", "wall"):
        raise ValueError("by is 'cpu' or 'wall'")
    for side, per in ratios.items():
        line = {"bench": name, "side": side, "baseline": ratios.baseline,
                "kind": "speed" if ratios.higher_is_better else "cost",
                "cpu": list(per["cpu"]), "wall": list(per["wall"]), "unit": ratios.unit,
                "rounds": ratios.rounds, "cores": os.cpu_count(), "note": note}
        if by == "wall":
            line["by"] = "wall"
        print(RESULT_PREFIX + json.dumps(line), flush=True)


def emit_figure(name: str, side: str, figure: tuple[float, float], unit: str, note: str = "",
                rounds: int = 1) -> None:
    """Print one ``BENCH-RESULT`` line for a figure that is no ratio (peak RSS in MB, a
    share in %): ``figure`` is its (min, median) over ``rounds`` (see :func:`summary`)."""
    low, median = figure
    line = {"bench": name, "side": side, "baseline": "", "kind": "figure",
            "value": [low, median], "unit": unit, "rounds": rounds, "cores": os.cpu_count(),
            "note": note}
    print(RESULT_PREFIX + json.dumps(line), flush=True)


#: The keys every result line must have, with their types; then those of each kind.
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "bench": str, "side": str, "baseline": str, "kind": str}
_KIND_FIELDS: dict[str, dict[str, type]] = {
    "speed": {"cpu": list, "wall": list}, "cost": {"cpu": list, "wall": list},
    "figure": {"value": list, "unit": str}}


def parse_results(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The result lines among ``lines`` (a benchmark's stdout), decoded; a line that starts
    like one but is malformed raises ValueError naming what is wrong with it."""
    out = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text.startswith(RESULT_PREFIX.strip()):
            continue
        try:
            data = json.loads(text[len(RESULT_PREFIX.strip()):])
        except ValueError as exc:
            raise ValueError(f"line {number}: not JSON after {RESULT_PREFIX.strip()} "
                             f"({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"line {number}: a result is a JSON object")
        for key, kind in _FIELDS.items():
            if not isinstance(data.get(key), kind):
                raise ValueError(f"line {number}: '{key}' is missing or not a "
                                 f"{getattr(kind, '__name__', kind)}")
        if data["kind"] not in _KIND_FIELDS:
            raise ValueError(f"line {number}: 'kind' must be 'speed', 'cost' or 'figure'")
        for key, kind in _KIND_FIELDS[data["kind"]].items():
            if not isinstance(data.get(key), kind):
                raise ValueError(f"line {number}: '{key}' is missing or not a "
                                 f"{kind.__name__}")
            if kind is list:
                pair = data[key]
                if len(pair) != 2 or not all(isinstance(v, (int, float))
                                             and not isinstance(v, bool) for v in pair):
                    raise ValueError(f"line {number}: '{key}' must be [min, median]")
        if data.get("by", "cpu") not in ("cpu", "wall") or \
                (data["kind"] == "figure" and "by" in data):
            raise ValueError(f"line {number}: 'by' must be 'cpu' or 'wall', on a ratio")
        out.append(data)
    return out
