"""``mafhir sync`` memory: peak RSS of the process for N and 10×N records, to ``dir:`` (the
embedded default) and to ``local:`` (the SQLite store) in the same run.

Flat means the 10× run peaks about where the small one does (the issue's limit: 150 MB
at 10,000 and at 100,000 records). The dir connector used to keep every resource in
memory until it closed (351 MB at 10,000); it now keeps them in a SQLite file.

Run: ``python benchmarks/bench_sync_memory.py [--records N]`` (N and 10×N; default 1000).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from outbox_helpers import clinic_ctx, vitals_task  # noqa: E402

CODE = ("import sys; from mafhir.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(hwm.split()[1], file=sys.stderr)\n")


def peak(n: int, to: str, work: Path) -> tuple[float, float]:
    """(peak RSS in MB, records per second) of one sync of ``n`` vitals tasks."""
    source = work / f"t-{n}.ndjson"
    with open(source, "w") as out:
        for i in range(n):
            out.write(json.dumps(vitals_task(i, i, performer=False)) + "\n")
    clinic = work / "clinic.json"
    clinic.write_text(clinic_ctx().clinic.model_dump_json())
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CODE, "sync", "--to", to, "--db",
                           str(work / f"o-{n}-{abs(hash(to))}.db"), "--clinic", str(clinic),
                           "--no-progress", "--json", str(source)],
                          capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    return int(proc.stderr.strip().splitlines()[-1]) / 1024, n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    args = parser.parse_args()
    n = args.records
    print(f"mafhir sync, peak RSS (VmHWM) of the process; {n} and {10 * n} vitals records")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, make in (("dir", lambda k: f"dir:{work / f'out-{k}'}"),
                            ("local", lambda k: f"local:{work / f's-{k}.db'}")):
            small, _ = peak(n, make(n), work)
            big, rate = peak(10 * n, make(10 * n), work)
            print(f"  {label:5} {n:>7}: {small:6.1f} MB   {10 * n:>7}: {big:6.1f} MB   "
                  f"growth {big / small:.2f}x   ({rate:.0f} records/s)")


if __name__ == "__main__":
    main()
