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
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Rounds", "Side", "child", "interleave", "report", "summary"]


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


def report(result: Rounds, baseline: str, unit: str = "items", title: str = "",
           higher_is_better: bool = True) -> dict[str, dict[str, tuple[float, float]]]:
    """Print each side's throughput and its per-round ratio to ``baseline``; return the ratios.

    The ratio is baseline time / side time per unit of work (so > 1 means the side is faster)
    when ``higher_is_better``; otherwise side / baseline (a cost, as for start-up).
    """
    rounds = len(result.cpu[baseline])
    if title:
        print(f"{title} — {rounds} interleaved rounds, {os.cpu_count()} cores")
    ratios: dict[str, dict[str, tuple[float, float]]] = {}
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
