"""Throughput of the outbox (``mafhir sync``) against posting the same Bundles directly.

On one SEKMET run, with fresh identifiers for every measurement:

1. baseline — a keep-alive ``requests.Session`` posting the transaction Bundles in a loop
   (no outbox, no ledger, no retries);
2. the outbox on SQLite — the same Bundles enqueued then drained, with 1 worker thread
   (the like-for-like cost of the outbox) and with the default 4;
3. the outbox on PostgreSQL — 1 ``mafhir worker`` process against 4 of them (rates from the
   outbox's own attempt times, so process start-up is not counted);
4. a re-run — ``mafhir sync``'s work (read, map, enqueue, deliver) over N tasks, then the
   same input again: nothing is sent, and it must take a small fraction of the first time.

Prints rates and ratios; asserts nothing about time (machines differ).

    python benchmarks/bench_sync.py [--records 2000] [--rerun 10000] [--pg-records 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.outbox import Engine, Enqueuer, RetryPolicy, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.pipeline import Mapped, Pipeline
from mafhir.plugins import get_registry
from mafhir.testing import Fault, FaultProxy, fhir_server

MAFHIR = Path(sys.executable).parent / "mafhir"
#: Round trip added in front of the server to stand for a network between clinic and EHR.
WAN_DELAY = 0.05
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


def clinic() -> MapContext:
    return MapContext(clinic=Clinic(name="Bench Clinic", system=f"urn:mafhir:bench:{uuid.uuid4()}"))


def tasks(n: int, patients: int) -> list[dict]:
    return [{"task": "vitals", "id": f"b-{i}",
             "patient": {"mrn": f"B{i % patients:06d}", "family": "Bench", "given": ["Ann"],
                         "gender": "female", "birth_date": "1980-01-01"},
             "effective": f"2026-11-27T{8 + i % 10:02d}:{i % 60:02d}:00-05:00",
             "heart_rate": {"value": 60 + i % 40}} for i in range(n)]


def bundles(n: int, patients: int) -> list[dict]:
    pipeline = Pipeline(get_registry(), clinic())
    return [transaction(r.entries) for r in pipeline.run(enumerate(tasks(n, patients)))
            if isinstance(r, Mapped)]


def baseline(base: str, day: list[dict]) -> float:
    session = requests.Session()
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    t0 = time.perf_counter()
    for b in day:
        session.post(base, json=b, headers=headers).raise_for_status()
    return len(day) / (time.perf_counter() - t0)


def baseline_parallel(base: str, day: list[dict], clients: int) -> float:
    """The server's ceiling: ``clients`` threads posting with plain sessions at once."""
    import threading

    def post(part: list[dict]) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        for b in part:
            session.post(base, json=b, headers=headers).raise_for_status()

    threads = [threading.Thread(target=post, args=(day[k::clients],)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(day) / (time.perf_counter() - t0)


def outbox(url: str, base: str, day: list[dict], threads: int) -> float:
    store = open_store(url)
    t0 = time.perf_counter()
    Enqueuer(store, resolve_destination(base), get_registry()).add_bundles(
        (f"bench#{i}", b) for i, b in enumerate(day))
    tally = Engine(store, threads=threads, poll=0.01).run()
    rate = len(day) / (time.perf_counter() - t0)
    assert tally.sent == len(day) and tally.dead == 0, tally
    store.close()
    return rate


def pg_workers(base: str, day: list[dict], processes: int) -> float:
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
                                   "1", "--json"], stdout=subprocess.PIPE, text=True)
                 for _ in range(processes)]
        for p in procs:
            p.communicate()
        with store.engine.connect() as conn:
            first, last, n = conn.exec_driver_sql(
                "SELECT min(started_at), max(finished_at), count(*) FROM outbox_attempts "
                "WHERE result='sent'").one()
        store.close()
        assert n == len(day), (n, len(day))
        return n / (last - first)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rerun(base: str, n: int, tmp: Path) -> tuple[float, float]:
    from rich.console import Console

    from mafhir.outbox.cli import run_sync

    ctx = clinic()
    path = tmp / "rerun.ndjson"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks(n, max(1, n // 10))))
    store = open_store(str(tmp / "rerun.db"))
    times = []
    for _ in range(2):
        engine = Engine(store, threads=4, poll=0.01, retry=RetryPolicy())
        t0 = time.perf_counter()
        tally = run_sync(store, resolve_destination(base), [str(path)], ctx=ctx,
                         engine=engine, console=Console(stderr=True, quiet=True))
        times.append(time.perf_counter() - t0)
        assert tally.dead == 0
    assert tally.sent == 0 and tally.writes == 0, tally
    store.close()
    return times[0], times[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--pg-records", type=int, default=2000)
    ap.add_argument("--rerun", type=int, default=10_000)
    ap.add_argument("--wan-records", type=int, default=300)
    args = ap.parse_args()
    base = fhir_server().base_url
    print(f"FHIR server {base}; {args.records} records (Patient + Observation per "
          "transaction Bundle, 1 record = 1 clinic task)")
    with tempfile.TemporaryDirectory() as tmp:
        rates: dict[str, list[float]] = {"baseline": [], "sqlite-1": [], "sqlite-4": []}
        for run in range(2):  # alternate, so drift in the server hits all of them
            rates["baseline"].append(baseline(base, bundles(args.records, args.records // 5)))
            rates["sqlite-1"].append(outbox(f"{tmp}/b{run}-1.db", base,
                                            bundles(args.records, args.records // 5), 1))
            rates["sqlite-4"].append(outbox(f"{tmp}/b{run}-4.db", base,
                                            bundles(args.records, args.records // 5), 4))
        best = {k: max(v) for k, v in rates.items()}
        print(f"baseline (requests, no outbox)   {best['baseline']:8.0f} records/s")
        for k, label in (("sqlite-1", "outbox SQLite, 1 worker thread"),
                         ("sqlite-4", "outbox SQLite, 4 worker threads")):
            print(f"{label:32s} {best[k]:8.0f} records/s   ratio "
                  f"{best[k] / best['baseline']:.2f} (target >= 0.75)")
        ceiling = baseline_parallel(base, bundles(args.records, args.records // 5), 4)
        print(f"server ceiling: 4 plain clients at once {ceiling:8.0f} records/s   "
              f"×{ceiling / best['baseline']:.2f} of one")
        try:
            one = pg_workers(base, bundles(args.pg_records, args.pg_records // 5), 1)
            four = pg_workers(base, bundles(args.pg_records, args.pg_records // 5), 4)
            print(f"outbox PostgreSQL, 1 worker      {one:8.0f} records/s")
            print(f"outbox PostgreSQL, 4 workers     {four:8.0f} records/s   ×{four / one:.2f} "
                  "(target >= 2)")
            # A real EHR is across a network: with 50 ms of round trip added by a loopback
            # proxy, the destination waits rather than computes, and workers add up.
            with FaultProxy(base) as proxy:
                proxy.add(Fault.slow(WAN_DELAY), method="POST", times=10**9)
                n = args.wan_records
                one = pg_workers(proxy.base_url, bundles(n, n // 5), 1)
                four = pg_workers(proxy.base_url, bundles(n, n // 5), 4)
            print(f"same, {WAN_DELAY * 1000:.0f} ms network round trip: 1 worker {one:6.1f} "
                  f"records/s, 4 workers {four:6.1f} records/s   ×{four / one:.2f} "
                  "(target >= 2)")
        except Exception as exc:  # PostgreSQL down: say so, measure the rest
            print(f"PostgreSQL: not measured ({type(exc).__name__}: {exc})")
        first, second = rerun(base, args.rerun, Path(tmp))
        print(f"mafhir sync of {args.rerun} tasks: first run {first:.1f} s, re-run (nothing "
              f"to send) {second:.2f} s = {100 * second / first:.1f}% (target < 5%)")


if __name__ == "__main__":
    main()
