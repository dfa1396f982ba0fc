"""Throughput of the outbox (``mafhir sync``) against posting the same Bundles directly.

On one SEKMET run, in interleaved rounds (``rounds.py``: every side once per round, the
ratio taken within the round, min / median over the rounds, CPU beside wall), each side
with fresh identifiers every round, prepared before the clock starts:

1. baseline — a keep-alive ``requests.Session`` posting the transaction Bundles in a loop
   (no outbox, no ledger, no retries);
2. the outbox on SQLite — the same Bundles enqueued then drained, with 1 worker thread
   (the like-for-like cost of the outbox: target ≥ 0.8×) and with the default 4;
3. ``--pg``: the outbox on PostgreSQL — 1 ``mafhir worker`` process against 4 of them
   (wall from the outbox's own attempt times, so process start-up is not counted; CPU of
   the worker processes), and the same behind a 50 ms network round trip;
4. re-sync — ``mafhir sync``'s whole work (read, map, enqueue, deliver) over N vitals
   tasks and over the realistic demo day (``fixtures/clinic-day/day.ndjson``), then the
   same input again: nothing is sent, and it must take a small fraction (target < 1%) of
   the first run of the same round.

CPU is the benchmark process's own (every thread: mapping, the outbox, HTTP), or the
children's for worker processes; SEKMET's CPU is not in it. Prints rates and ratios;
asserts nothing about time (machines differ).

    python benchmarks/bench_sync.py [--records 1000] [--rounds 5] [--rerun 2000] [--pg]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.outbox import Engine, Enqueuer, RetryPolicy, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.pipeline import Mapped, Pipeline
from mafhir.plugins import get_registry
from mafhir.testing import Fault, FaultProxy, fhir_server
from rounds import Rounds, Side, emit, emit_figure, interleave, report, reported

ROOT = Path(__file__).resolve().parents[1]
DAY = ROOT / "fixtures" / "clinic-day"
MAFHIR = Path(sys.executable).parent / "mafhir"
#: Round trip added in front of the server to stand for a network between clinic and EHR.
WAN_DELAY = 0.05
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
JSON = dict[str, Any]


def clinic() -> MapContext:
    return MapContext(clinic=Clinic(name="Bench Clinic", system=f"urn:mafhir:bench:{uuid.uuid4()}"))


def tasks(n: int, patients: int) -> list[JSON]:
    return [{"task": "vitals", "id": f"b-{i}",
             "patient": {"mrn": f"B{i % patients:06d}", "family": "Bench", "given": ["Ann"],
                         "gender": "female", "birth_date": "1980-01-01"},
             "effective": f"2026-11-27T{8 + i % 10:02d}:{i % 60:02d}:00-05:00",
             "heart_rate": {"value": 60 + i % 40}} for i in range(n)]


def bundles(n: int, patients: int) -> list[JSON]:
    """``n`` transaction Bundles (a Patient and an Observation each) under a fresh clinic."""
    pipeline = Pipeline(get_registry(), clinic())
    return [transaction(r.entries) for r in pipeline.run(enumerate(tasks(n, patients)))
            if isinstance(r, Mapped)]


def supply(make: Callable[[], Any], count: int) -> Callable[[], Any]:
    """``count`` inputs made now (outside any clock), handed out one per call."""
    made: Iterator[Any] = iter([make() for _ in range(count)])
    return lambda: next(made)


# ---------------------------------------------------------------------- the sides
def post_all(base: str, day: list[JSON]) -> None:
    session = requests.Session()
    for b in day:
        session.post(base, json=b, headers=HEADERS).raise_for_status()
    session.close()


def post_parallel(base: str, day: list[JSON], clients: int) -> None:
    """The server's ceiling: ``clients`` threads posting with plain sessions at once."""
    threads = [threading.Thread(target=post_all, args=(base, day[k::clients]))
               for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def through_outbox(url: str, base: str, day: list[JSON], threads: int) -> None:
    """Enqueue then drain: the whole cost of going through the outbox."""
    store = open_store(url)
    Enqueuer(store, resolve_destination(base), get_registry()).add_bundles(
        (f"bench#{i}", b) for i, b in enumerate(day))
    tally = Engine(store, threads=threads, poll=0.01).run()
    store.close()
    if tally.sent != len(day) or tally.dead:
        raise RuntimeError(f"outbox run incomplete: {tally}")


def pg_workers(base: str, day: list[JSON], processes: int) -> tuple[float, float]:
    """(CPU of the worker processes, wall from their first attempt to their last)."""
    import psycopg

    name = f"mafhir_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        store = open_store(url)
        Enqueuer(store, resolve_destination(base), get_registry()).add_bundles(
            (f"bench#{i}", b) for i, b in enumerate(day))
        procs = [subprocess.Popen([str(MAFHIR), "worker", "--db", url, "--once", "--threads",
                                   "1", "--json"], stdout=subprocess.DEVNULL)
                 for _ in range(processes)]
        cpu = 0.0
        for p in procs:
            _, _, usage = os.wait4(p.pid, 0)
            cpu += usage.ru_utime + usage.ru_stime
        with store.engine.connect() as conn:
            first, last, n = conn.exec_driver_sql(
                "SELECT min(started_at), max(finished_at), count(*) FROM outbox_attempts "
                "WHERE result='sent'").one()
        store.close()
        if n != len(day):
            raise RuntimeError(f"PostgreSQL workers sent {n} of {len(day)}")
        return cpu, last - first
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Resync:
    """A first ``mafhir sync`` of an input into a fresh outbox, then the same input again."""

    def __init__(self, destination: Callable[[Path], str], make_input: Callable[[Path], tuple[
            Path, MapContext]], tmp: Path) -> None:
        self.destination, self.make_input, self.tmp = destination, make_input, tmp
        self.state: tuple[Any, str, Path, MapContext] | None = None
        self.sent: list[int] = []

    def _sync(self) -> Any:
        from rich.console import Console

        from mafhir.outbox.cli import run_sync

        assert self.state is not None
        store, dest, path, ctx = self.state
        engine = Engine(store, threads=4, poll=0.01, retry=RetryPolicy())
        return run_sync(store, dest, [str(path)], ctx=ctx, engine=engine,
                        console=Console(stderr=True, quiet=True))

    def first(self) -> None:
        if self.state is not None:
            self.state[0].close()
        work = Path(tempfile.mkdtemp(dir=self.tmp))
        path, ctx = self.make_input(work)
        self.state = (open_store(str(work / "outbox.db")), resolve_destination(
            self.destination(work)), path, ctx)
        tally = self._sync()
        if tally.dead or not tally.sent:
            raise RuntimeError(f"first sync incomplete: {tally}")
        self.sent.append(tally.sent)

    def again(self) -> None:
        tally = self._sync()
        if tally.sent or tally.writes or tally.dead or tally.enqueued:
            raise RuntimeError(f"the re-run sent something: {tally}")


def vitals_input(n: int) -> Callable[[Path], tuple[Path, MapContext]]:
    def make(work: Path) -> tuple[Path, MapContext]:
        path = work / "vitals.ndjson"
        path.write_text("".join(json.dumps(t) + "\n" for t in tasks(n, max(1, n // 10))))
        return path, clinic()
    return make


def day_input(work: Path) -> tuple[Path, MapContext]:
    """The demo day under a clinic namespace of its own (fresh identifiers each round)."""
    known = json.loads((DAY / "clinic.json").read_text())
    old, new = known["system"], f"urn:mafhir:bench:{uuid.uuid4()}"
    path = work / "day.ndjson"
    path.write_text((DAY / "day.ndjson").read_text().replace(old, new))
    return path, MapContext(clinic=Clinic(**{**known, "system": new}))


# ---------------------------------------------------------------------- printing
def wall_rates(result: Rounds, unit: str) -> None:
    for name, walls in result.wall.items():
        rates = [result.units[name] / w for w in walls]
        print(f"  {name:<44} wall {statistics.median(rates):,.0f} {unit}/s median "
              f"(best {max(rates):,.0f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=None, help="(1,000; --quick 100)")
    ap.add_argument("--rounds", type=int, default=None, help="(5; --quick 2)")
    ap.add_argument("--rerun", type=int, default=None,
                    help="vitals tasks of the re-sync (2,000; --quick 200)")
    ap.add_argument("--parts", default="throughput,resync",
                    help="what to measure, of: throughput, resync")
    ap.add_argument("--pg", action="store_true", help="also PostgreSQL worker processes")
    ap.add_argument("--pg-records", type=int, default=1000)
    ap.add_argument("--wan-records", type=int, default=200)
    ap.add_argument("--quick", action="store_true",
                    help="make bench: 100 records, 2 rounds, re-sync of 200 vitals tasks")
    args = ap.parse_args()
    args.records = args.records or (100 if args.quick else 1000)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.rerun = args.rerun or (200 if args.quick else 2000)
    base = fhir_server().base_url
    n, total = args.records, args.rounds + 1  # + the warm-up round
    print(f"FHIR server {base}; {n} records a side a round (Patient + Observation per "
          "transaction Bundle, 1 record = 1 clinic task)")
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        if "throughput" in parts:
            throughput(base, n, total, args, tmp)
            emit("sync", reported("outbox throughput")[-1].only(
                "outbox SQLite, 1 worker thread", "outbox SQLite, 4 worker threads"),
                note=f"{n:,} records to SEKMET", by="wall")
        if args.pg:
            pg_part(base, args)
        if "resync" in parts:
            before = len(reported())
            resync(base, args, tmp)
            labels = (f"{args.rerun:,} vitals tasks → SEKMET", "the demo day → SEKMET",
                      "the demo day → local:")
            for label, ratios in zip(labels, reported()[before:], strict=True):
                low, median = ratios["re-run, unchanged input"]["cpu"]
                emit_figure("sync re-sync", f"re-run of {label}", (100 * low, 100 * median),
                            "%", note="CPU share of the first run; target < 1%",
                            rounds=ratios.rounds)


def throughput(base: str, n: int, total: int, args: argparse.Namespace, tmp: str) -> None:
    day = {name: supply(lambda: bundles(n, n // 5), total)
           for name in ("baseline", "sqlite-1", "sqlite-4", "ceiling")}
    counter = iter(range(10**6))
    sides = {
        "baseline: requests.Session, no outbox": Side(
            lambda: post_all(base, day["baseline"]()), n),
        "outbox SQLite, 1 worker thread": Side(
            lambda: through_outbox(f"{tmp}/o{next(counter)}.db", base, day["sqlite-1"](), 1),
            n),
        "outbox SQLite, 4 worker threads": Side(
            lambda: through_outbox(f"{tmp}/o{next(counter)}.db", base, day["sqlite-4"](), 4),
            n),
        "server ceiling: 4 plain clients at once": Side(
            lambda: post_parallel(base, day["ceiling"](), 4), n),
    }
    result = interleave(sides, rounds=args.rounds)
    report(result, baseline="baseline: requests.Session, no outbox", unit="records",
           title="outbox throughput against posting the same Bundles (target: 1 thread "
                 "≥ 0.8× by wall)")
    wall_rates(result, "records")


def resync(base: str, args: argparse.Namespace, tmp: str) -> None:
    for label, make, dest in (
            (f"{args.rerun} vitals tasks → SEKMET", vitals_input(args.rerun),
             lambda w: base),
            ("the demo day → SEKMET", day_input, lambda w: base),
            ("the demo day → local:", day_input, lambda w: f"local:{w / 'store.db'}")):
        job = Resync(dest, make, Path(tmp))
        result = interleave({"first run": Side(job.first),
                             "re-run, unchanged input": Side(job.again)},
                            rounds=args.rounds)
        print(f"re-sync of {label} ({job.sent[-1]} items sent by a first run):")
        report(result, baseline="first run", unit="share of the first run",
               higher_is_better=False)
        for kind in ("cpu", "wall"):
            table = getattr(result, kind)
            shares = [100 * a / b for a, b in zip(table["re-run, unchanged input"],
                                                  table["first run"], strict=True)]
            print(f"    re-run / first run, {kind}: min {min(shares):.2f}% median "
                  f"{statistics.median(shares):.2f}% (target < 1%)")


def pg_part(base: str, args: argparse.Namespace) -> None:
    try:
        n, total = args.pg_records, args.rounds + 1
        day = {k: supply(lambda: bundles(n, n // 5), total) for k in ("1", "4")}
        result = interleave({"PostgreSQL, 1 worker process": Side(
                                lambda: pg_workers(base, day["1"](), 1), n),
                             "PostgreSQL, 4 worker processes": Side(
                                lambda: pg_workers(base, day["4"](), 4), n)},
                            rounds=args.rounds)
        report(result, baseline="PostgreSQL, 1 worker process", unit="records",
               title="PostgreSQL workers (target: 4 ≥ 2× of 1)")
        wall_rates(result, "records")
        # A real EHR is across a network: with 50 ms of round trip added by a loopback
        # proxy, the destination waits rather than computes, and workers add up.
        with FaultProxy(base) as proxy:
            proxy.add(Fault.slow(WAN_DELAY), method="POST", times=10**9)
            n = args.wan_records
            day = {k: supply(lambda: bundles(n, n // 5), total) for k in ("1", "4")}
            result = interleave({"1 worker, 50 ms away": Side(
                                    lambda: pg_workers(proxy.base_url, day["1"](), 1), n),
                                 "4 workers, 50 ms away": Side(
                                    lambda: pg_workers(proxy.base_url, day["4"](), 4), n)},
                                rounds=args.rounds)
        report(result, baseline="1 worker, 50 ms away", unit="records",
               title=f"PostgreSQL workers, {WAN_DELAY * 1000:.0f} ms network round trip")
        wall_rates(result, "records")
    except Exception as exc:  # PostgreSQL down: say so, measure the rest
        print(f"PostgreSQL: not measured ({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
