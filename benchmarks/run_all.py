"""``make bench``: every benchmark in its quick mode, then one Markdown table of the ratios.

Each ``benchmarks/bench_*.py`` that has a ``--quick`` flag is run with it, as a child
process, its output passed through as it comes; the ``BENCH-RESULT {json}`` lines it prints
(:func:`rounds.emit`) are collected, and at the end one table — benchmark, what is compared,
the CPU ratio's median [min] over the rounds, cores — is printed, ready for the README. A
benchmark without ``--quick`` is listed as not run (``--full`` runs every one at its
default size instead: much longer); one that fails or prints no result says so in its row.

``--json FILE`` saves what was measured (every result line, each benchmark's problem, the
core count); ``--before FILE`` (such a file, from an earlier run or another branch) puts a
"before" column beside this run's "after", each headed with the core count it was measured
on: the README's before/after table. A row is the same comparison in both when bench,
side, baseline and kind agree; one measured on a single side shows "—" on the other.

``--after FILE`` runs nothing and prints the table of a saved run (beside ``--before``'s).

Run: ``python benchmarks/run_all.py [--full] [--only NAME…] [--out FILE] [--json FILE]
[--before FILE] [--after FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rounds import RESULT_PREFIX, parse_results

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


def _number(value: float) -> str:
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 \
        else f"{value:,.0f}"


def measured(result: dict[str, Any]) -> str:
    """The result's cell: a ratio's CPU median [min] (wall, marked so, for a result emitted
    ``by="wall"``), or a figure's median [min] and unit (one value alone when min and
    median agree, as with a single round)."""
    if result["kind"] == "figure":
        low, median = result["value"]
        unit = f" {result['unit']}" if result["unit"] and result["unit"] != "%" \
            else result["unit"]
        text = f"{_number(median)}{unit}"
        return text if low == median else f"{text} [{_number(low)}{unit}]"
    if result.get("by") == "wall":
        return _ratio(result["wall"]) + " wall"
    return _ratio(result["cpu"])


def compared(result: dict[str, Any]) -> str:
    """How a result reads in the table: side vs baseline, which way is better, the note."""
    if result["kind"] == "figure":
        text = result["side"]
    else:
        better = "speed: higher is better" if result["kind"] == "speed" \
            else "cost: lower is better"
        text = f"{result['side']} vs {result['baseline']} ({better})"
    if result.get("note"):
        text += f"; {result['note']}"
    return text


def key(result: dict[str, Any]) -> tuple[str, str, str, str]:
    """What makes two results the same comparison (the note may name other sizes)."""
    return result["bench"], result["side"], result["baseline"], result["kind"]


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
                        f"{measured(result)} | {cores if cores is not None else '?'} |")
    return "\n".join(rows)


def _cores(outcomes: Iterable[Outcome]) -> str:
    found = sorted({str(r["cores"]) for o in outcomes for r in o.results
                    if r.get("cores") is not None})
    return "/".join(found) or "?"


def before_after(before: Sequence[Outcome], after: Sequence[Outcome]) -> str:
    """The Markdown table of this run's results ("after") beside an earlier run's
    ("before"), each column headed with the cores it ran on. Rows in this run's order,
    then what only the earlier run measured; a problem shows in its column."""
    old = {key(r): r for o in before for r in o.results}
    old_problems = {o.name: o.problem for o in before if o.problem}
    rows = [f"| benchmark | what is compared | before, CPU median [min] ({_cores(before)} "
            f"cores) | after, CPU median [min] ({_cores(after)} cores) |",
            "|---|---|---|---|"]
    seen = set()
    for outcome in after:
        if outcome.problem:
            was = old_problems.get(outcome.name) or "—"
            rows.append(f"| {_cell(outcome.name)} | {_cell(outcome.problem)} | {_cell(was)} "
                        f"| — |")
        for result in outcome.results:
            seen.add(key(result))
            prior = old.get(key(result))
            rows.append(f"| {_cell(result['bench'])} | {_cell(compared(result))} | "
                        f"{measured(prior) if prior else '—'} | {measured(result)} |")
    for outcome in before:
        for result in outcome.results:
            if key(result) not in seen:
                rows.append(f"| {_cell(result['bench'])} | {_cell(compared(result))} | "
                            f"{measured(result)} | — |")
    return "\n".join(rows)


def save(outcomes: Iterable[Outcome], path: str | Path) -> None:
    """Write what was measured as JSON (what ``--before`` reads back)."""
    data = {"cores": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "benchmarks": [{"name": o.name, "results": o.results, "problem": o.problem}
                           for o in outcomes]}
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")


def load(path: str | Path) -> list[Outcome]:
    """What :func:`save` wrote; each result line checked as a benchmark's output is."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: not a run_all.py --json file")
    out = []
    for item in data["benchmarks"]:
        lines = [RESULT_PREFIX + json.dumps(r) for r in item.get("results", [])]
        out.append(Outcome(str(item["name"]), parse_results(lines),
                           str(item.get("problem") or "")))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="every benchmark at its default size (not --quick)")
    parser.add_argument("--only", nargs="+", default=(), metavar="NAME",
                        help="only these (startup, map, …)")
    parser.add_argument("--out", default=None, help="also write the table to this file")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="save the results as JSON (for a later --before)")
    parser.add_argument("--before", default=None, metavar="FILE",
                        help="a --json file of an earlier run: print before beside after")
    parser.add_argument("--after", default=None, metavar="FILE",
                        help="run nothing: the table of this --json file (with --before: "
                             "both side by side)")
    args = parser.parse_args(argv)
    before = load(args.before) if args.before else None  # a bad file fails before the run
    outcomes = load(args.after) if args.after else []
    started = time.monotonic()
    for path in benchmarks(args.only) if not args.after else []:
        if args.full:
            outcomes.append(run(path, []))
        elif has_quick(path):
            outcomes.append(run(path, ["--quick"]))
        else:
            name = path.stem.removeprefix("bench_")
            print(f"\n=== {path.name}: no --quick yet, not run (--full runs it)", flush=True)
            outcomes.append(Outcome(name, problem="not run: no --quick yet (--full runs it)"))
    if args.json:
        save(outcomes, args.json)
    text = table(outcomes) if before is None else before_after(before, outcomes)
    print(f"\n{len(outcomes)} benchmarks in {time.monotonic() - started:.0f} s, "
          f"{os.cpu_count()} cores\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 1 if any(o.problem and not o.problem.startswith("not run") for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
