"""``mafhir sync`` memory: peak RSS of the process at each size, to ``dir:`` (the embedded
default) and to ``local:`` (the SQLite store), in interleaved rounds (``rounds.py``).

Each round runs every (destination, size) once as a fresh process; its peak RSS (the
child's ``ru_maxrss``), CPU and wall time are taken, and the ratio of each size's peak to
the smallest size's of the same round and destination is reported as min / median over the
rounds. Flat means the big runs peak about where the small one does (the issue's limit:
≤ 150 MB at 10,000 and at 100,000 records). The dir connector used to keep every resource
in memory until it closed (351 MB at 10,000); it now keeps them in a SQLite file.

Run: ``python benchmarks/bench_sync_memory.py [--records 1000 10000 100000] [--rounds 3]
[--to dir,local]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rounds import Side, emit_figure, interleave, report, summary

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from outbox_helpers import clinic_ctx, vitals_task  # noqa: E402

LIMIT_MB = 150.0
MAFHIR = Path(sys.executable).parent / "mafhir"


class Run:
    """One (destination, size): a fresh ``mafhir sync`` process each time it is called."""

    def __init__(self, work: Path, to: str, n: int, source: Path, clinic: Path) -> None:
        self.work, self.to, self.n, self.source, self.clinic = work, to, n, source, clinic
        self.peaks: list[float] = []
        self.calls = 0

    def __call__(self) -> tuple[float, float]:
        self.calls += 1
        out = self.work / f"{self.to}-{self.n}-{self.calls}"
        target = f"dir:{out}" if self.to == "dir" else f"local:{out}.store.db"
        start = time.perf_counter()
        proc = subprocess.Popen([str(MAFHIR), "sync", "--to", target,
                                 "--db", f"{out}.outbox.db", "--clinic", str(self.clinic),
                                 "--no-progress", "--json", str(self.source)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err = proc.stderr.read().decode() if proc.stderr else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"sync of {self.n} to {self.to} failed:\n{err[-2000:]}")
        self.peaks.append(usage.ru_maxrss / 1024)  # KiB on Linux
        return usage.ru_utime + usage.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=None,
                        help="(1,000 10,000; --quick 500 2,000)")
    parser.add_argument("--rounds", type=int, default=None, help="(3; --quick 1)")
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--to", default="dir,local",
                        help="destinations to measure, of: dir, local (comma-separated)")
    parser.add_argument("--quick", action="store_true",
                        help="make bench: 500 and 2,000 records, 1 round")
    args = parser.parse_args()
    args.records = args.records or ([500, 2000] if args.quick else [1000, 10_000])
    args.rounds = args.rounds or (1 if args.quick else 3)
    dests = [d for d in ("dir", "local") if d in args.to.split(",")]
    sizes = sorted(args.records)
    print(f"mafhir sync, peak RSS of the process; {', '.join(map(str, sizes))} vitals records")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clinic = work / "clinic.json"
        clinic.write_text(clinic_ctx().clinic.model_dump_json())
        sources = {}
        for n in sizes:
            sources[n] = work / f"t-{n}.ndjson"
            with open(sources[n], "w") as out:
                for i in range(n):
                    out.write(json.dumps(vitals_task(i, i, performer=False)) + "\n")
        runs = {(to, n): Run(work, to, n, sources[n], clinic)
                for to in dests for n in sizes}
        result = interleave({f"{to} {n:>7}": Side(run, n) for (to, n), run in runs.items()},
                            rounds=args.rounds, warmup=args.warmup)
        for to in dests:
            small = runs[(to, sizes[0])]
            report(type(result)(units={k: v for k, v in result.units.items() if k.startswith(to)},
                                cpu={k: v for k, v in result.cpu.items() if k.startswith(to)},
                                wall={k: v for k, v in result.wall.items() if k.startswith(to)}),
                   baseline=f"{to} {sizes[0]:>7}", unit="records",
                   title=f"sync to {to}: speed per record against {sizes[0]} records")
            for n in sizes:
                run = runs[(to, n)]
                lo, med = summary(run.peaks)
                growth = [b / s for b, s in zip(run.peaks, small.peaks, strict=True)]
                verdict = "ok" if max(run.peaks) <= LIMIT_MB else f"over {LIMIT_MB:.0f} MB"
                print(f"  {to:5} {n:>7}: peak RSS min {lo:6.1f} MB median {med:6.1f} MB "
                      f"(max {max(run.peaks):6.1f}, {verdict}); / {sizes[0]}: min "
                      f"{min(growth):.2f}× median {statistics.median(growth):.2f}×")
        for to in dests:  # only the destinations measured (--to)
            for n in sizes:
                peaks = runs[(to, n)].peaks
                emit_figure("sync memory", f"peak RSS, {n:,} records to {to}:",
                            summary(peaks), "MB", note=f"limit {LIMIT_MB:.0f} MB",
                            rounds=len(peaks))


if __name__ == "__main__":
    main()
