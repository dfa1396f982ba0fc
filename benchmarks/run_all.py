"""``make bench``: every benchmark in its quick mode, then one Markdown table of the ratios.

Each ``benchmarks/bench_*.py`` that has a ``--quick`` flag is run with it, as a child
process, its output passed through as it comes; the ``BENCH-RESULT {json}`` lines it prints
(:func:`rounds.emit`) are collected, and at the end one table — benchmark, what is compared,
the CPU ratio's median [min] over the rounds, cores — is printed, ready for the README. A
benchmark without ``--quick`` is listed as not run (``--full`` runs every one at its
default size instead: much longer); one that fails or prints no result says so in its row.

Run: ``python benchmarks/run_all.py [--full] [--only NAME…] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rounds import parse_results

HERE = Path(__file__).resolve().parent
#: Seconds one benchmark may take before it is stopped (its row then says so).
TIMEOUT = 900


@dataclass
class Outcome:
    """What one benchmark gave: its result lines, or why there are none."""

    name: str
    results: list[dict[str, Any]] = field(default_factory=list)
    problem: str = ""


def benchmarks(only: Sequence[str] = ()) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if only:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in only}
        found = [p for p in found if p.stem.removeprefix("bench_") in wanted]
    return found


def has_quick(path: Path) -> bool:
    """Does the benchmark declare a ``--quick`` flag? (read, not run: running it to ask
    would cost its imports)"""
    return '"--quick"' in path.read_text(encoding="utf-8")


def run(path: Path, args: list[str], timeout: float = TIMEOUT) -> Outcome:
    """Run one benchmark, echoing its output, and collect its result lines."""
    name = path.stem.removeprefix("bench_")
    print(f"\n=== {path.name} {' '.join(args)}".rstrip(), flush=True)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(path), *args], stdout=subprocess.PIPE,
                            text=True, cwd=HERE.parent, bufsize=1)
    watchdog = threading.Timer(timeout, proc.kill)  # a hung benchmark ends, not the run
    watchdog.start()
    lines: list[str] = []
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        code = proc.wait()
    finally:
        watchdog.cancel()
    outcome = Outcome(name)
    try:
        outcome.results = parse_results(lines)
    except ValueError as exc:
        outcome.problem = f"unreadable result ({exc})"
    else:
        if code != 0 and time.monotonic() - started >= timeout:
            outcome.problem = f"stopped after {timeout:.0f} s"
        elif code != 0:
            outcome.problem = f"failed (exit {code})"
        elif not outcome.results:
            outcome.problem = "printed no BENCH-RESULT (adopt rounds.emit)"
    print(f"=== {path.name}: {time.monotonic() - started:.0f} s", flush=True)
    return outcome


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ratio(pair: Sequence[float]) -> str:
    low, median = pair
    return f"{median:.2f}× [{low:.2f}×]"


def compared(result: dict[str, Any]) -> str:
    """How a result reads in the table: side vs baseline, which way is better, the note."""
    better = "speed: higher is better" if result["kind"] == "speed" \
        else "cost: lower is better"
    text = f"{result['side']} vs {result['baseline']} ({better})"
    if result.get("note"):
        text += f"; {result['note']}"
    return text


def table(outcomes: Iterable[Outcome]) -> str:
    """The Markdown table of every result, and a row for each benchmark without one."""
    rows = ["| benchmark | what is compared | ratio, CPU median [min] | cores |",
            "|---|---|---|---|"]
    for outcome in outcomes:
        if outcome.problem:
            rows.append(f"| {_cell(outcome.name)} | {_cell(outcome.problem)} | — | — |")
        for result in outcome.results:
            cores = result.get("cores")
            rows.append(f"| {_cell(result['bench'])} | {_cell(compared(result))} | "
                        f"{_ratio(result['cpu'])} | {cores if cores is not None else '?'} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="every benchmark at its default size (not --quick)")
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME",
                        help="only these (startup, map, …)")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    outcomes = []
    started = time.monotonic()
    for path in benchmarks(args.only):
        if args.full:
            outcomes.append(run(path, []))
        elif has_quick(path):
            outcomes.append(run(path, ["--quick"]))
        else:
            name = path.stem.removeprefix("bench_")
            print(f"\n=== {path.name}: no --quick yet, not run (--full runs it)", flush=True)
            outcomes.append(Outcome(name, problem="not run: no --quick yet (--full runs it)"))
    text = table(outcomes)
    print(f"\n{len(outcomes)} benchmarks in {time.monotonic() - started:.0f} s, "
          f"{os.cpu_count()} cores\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 1 if any(o.problem and not o.problem.startswith("not run") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
