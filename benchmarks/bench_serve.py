"""The dashboard's overview with 100,000 items in the outbox, side by side with the CLI.

Builds an outbox (SQLite by default, or ``--db postgresql://…``) of N items over five
destinations — most delivered over the last two days, some pending, retrying and dead —
then times, in interleaved rounds (:mod:`rounds`) on the same store:

* ``GET /`` (the overview page: counts, last success and error, the hour's and the day's
  throughput) over real HTTP on loopback from ``mafhir serve``'s app under uvicorn,
  signed in; and ``GET /api/status`` (the same data as JSON, token authentication);
* ``mafhir outbox status --json`` run in-process (click's runner: no interpreter start).

Per round the cost of each against the CLI's is taken, printed as min / median, CPU (this
process: the server runs in a thread of it) beside wall, with each side's median wall time.
Goal: the overview under 100 ms at N = 100,000.

Run: ``python benchmarks/bench_serve.py [--n N] [--rounds R] [--db URL] [--quick]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests
from click.testing import CliRunner
from sqlalchemy import case, literal, update

from mafhir.cli.main import build_cli
from mafhir.outbox import open_store
from mafhir.outbox.schema import items
from rounds import Side, emit, interleave, report

DESTINATIONS = [f"https://ehr{k}.example.org/fhir" for k in range(4)] + ["dir:/srv/lab-out"]
PASSWORD = "benchmark-password"


def build(db: str, n: int) -> None:
    """N item rows (as enqueue writes them, in one executemany: enqueue's own path takes
    over a minute for 100,000 here), then given states and times in one UPDATE: 90 %
    delivered, 3 % retrying, 2 % dead, 5 % pending, spread over the last two days."""
    store = open_store(db)
    now = time.time()
    with store.engine.begin() as conn:
        conn.execute(items.insert(), [
            {"destination": DESTINATIONS[i % 5], "okey": f"p{i % 9000}", "idem_key": f"k{i}",
             "payload": b"{}", "source": "bench", "kind": "vitals", "state": "pending",
             "attempts": 0, "next_at": 0.0, "created_at": now, "updated_at": now}
            for i in range(n)])
    slot = items.c.id % 100
    at = literal(now) - (items.c.id * 7919) % 172800
    with store.engine.begin() as conn:
        conn.execute(update(items).values(
            state=case((slot < 90, "delivered"), (slot < 93, "retry"), (slot < 95, "dead"),
                       else_="pending"),
            updated_at=at,
            delivered_at=case((slot < 90, at), else_=None),
            last_error=case((slot.between(90, 92), "HTTP 503: unavailable"),
                            (slot.between(93, 94), "HTTP 422: refused"), else_=None)))
    store.close()


def serve(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--db", default=None, help="default: a SQLite file in a temp dir")
    parser.add_argument("--quick", action="store_true", help="N = 20,000, 5 rounds")
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds = 20_000, 5

    from mafhir.web.app import WebConfig, create_app
    from mafhir.web.webstore import WebStore

    tmp = tempfile.TemporaryDirectory()
    db = args.db or str(Path(tmp.name) / "outbox.db")
    started = time.perf_counter()
    build(db, args.n)
    print(f"outbox of {args.n} items built in {time.perf_counter() - started:.1f} s ({db})")
    users = WebStore(db)
    users.add_user("bench", "viewer", PASSWORD)
    token = users.new_token("bench")
    app = create_app(WebConfig(db=db))
    server, thread, port = serve(app)
    base = f"http://127.0.0.1:{port}"
    web = requests.Session()
    page = web.get(f"{base}/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    web.post(f"{base}/login", data={"username": "bench", "password": PASSWORD, "csrf": csrf})
    api = {"Authorization": f"Bearer {token}"}
    runner, cli = CliRunner(), build_cli()

    def overview() -> None:
        answer = web.get(f"{base}/")
        assert answer.status_code == 200 and "Destinations" in answer.text

    def status_api() -> None:
        assert requests.get(f"{base}/api/status", headers=api).status_code == 200

    def cli_status() -> None:
        result = runner.invoke(cli, ["outbox", "status", "--db", db, "--json"])
        assert result.exit_code == 0, result.output

    result = interleave({"mafhir outbox status --json": Side(cli_status),
                         "GET / (overview page)": Side(overview),
                         "GET /api/status (JSON)": Side(status_api)}, rounds=args.rounds)
    server.should_exit = True
    thread.join(10)
    app.state.dashboard.close()
    users.close()
    ratios = report(result, baseline="mafhir outbox status --json", unit="one request",
                    title=f"N = {args.n}: the dashboard against the CLI's status",
                    higher_is_better=False)
    overview_ms = statistics.median(result.wall["GET / (overview page)"]) * 1000
    print(f"  overview median wall {overview_ms:.1f} ms; goal under 100 ms: "
          f"{'met' if overview_ms < 100 else 'NOT met'}")
    emit("serve", ratios, note=f"outbox of {args.n:,} items")


if __name__ == "__main__":
    main()
