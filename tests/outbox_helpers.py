"""Helpers of the outbox tests: backends (SQLite file, throwaway PostgreSQL database),
synthetic clinic tasks, and reading what a FHIR server holds."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from mafhir.context import Clinic, MapContext
from mafhir.testing.plugin import skip_or_fail

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
PG_URL = "postgresql://postgres@127.0.0.1:5432/{db}"


def require_postgres() -> None:
    """Skip (fail under CI=true) when PostgreSQL is not up on 127.0.0.1:5432."""
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN):
            pass
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable on 127.0.0.1:5432 ({str(exc).strip()[:120]})"
        skip_or_fail(reason)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database ``mafhir_test_<random>``, dropped afterwards; yields its URL."""
    import psycopg

    require_postgres()
    name = f"mafhir_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_URL.format(db=name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def outbox_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield str(tmp_path / "outbox.db")


def clinic_ctx() -> MapContext:
    """A clinic with its own identifier namespace, so runs never see each other's data."""
    return MapContext(clinic=Clinic(name="Outbox Test Clinic",
                                    system=f"urn:mafhir:test:{uuid.uuid4()}"))


def make_npi(rng: random.Random) -> str:
    """A random NPI with a valid check digit (Luhn over the prefix 80840 + 9 digits)."""
    body = f"{rng.randint(1, 2)}{rng.randint(0, 99_999_999):08d}"
    digits = [int(d) for d in "80840" + body]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit goes on the right
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


PRACTITIONERS = [{"npi": make_npi(random.Random()), "family": "Okafor", "given": ["Grace"]},
                 {"npi": make_npi(random.Random()), "family": "Lindqvist", "given": ["Erik"]}]


def vitals_task(i: int, patient: int, heart_rate: int | None = None,
                performer: bool = True) -> dict[str, Any]:
    """A vitals task (one heart rate → one Observation) for a new patient with demographics."""
    task: dict[str, Any] = {
        "task": "vitals", "id": f"v-{i}",
        "patient": {"mrn": f"P{patient:05d}", "family": f"Test{patient}", "given": ["Ann"],
                    "gender": "female", "birth_date": "1980-01-01"},
        "effective": f"2026-11-27T{8 + i % 10:02d}:{i % 60:02d}:00-05:00",
        "heart_rate": {"value": heart_rate if heart_rate is not None else 60 + i % 40},
    }
    if performer:
        task["performer"] = PRACTITIONERS[i % 2]
    return task


def appointment_tasks(patient: int) -> list[dict[str, Any]]:
    """One patient's appointment through its life: book, confirm, check in, start, complete."""
    base = {"task": "appointment", "appointment_id": f"appt-{patient}",
            "patient": {"mrn": f"P{patient:05d}", "family": f"Test{patient}",
                        "given": ["Ann"], "gender": "female", "birth_date": "1980-01-01"},
            "start": "2026-11-27T10:30:00-05:00", "end": "2026-11-27T10:50:00-05:00",
            "practitioner": PRACTITIONERS[patient % 2],
            "location": {"id": "exam-1", "name": "Exam Room 1"}}
    steps = [("book", {}), ("confirm", {}),
             ("check_in", {"at": "2026-11-27T10:25:00-05:00"}),
             ("start", {"at": "2026-11-27T10:31:00-05:00",
                        "checked_in_at": "2026-11-27T10:25:00-05:00"}),
             ("complete", {"at": "2026-11-27T10:49:00-05:00",
                           "checked_in_at": "2026-11-27T10:25:00-05:00"})]
    return [{**base, "id": f"appt-{patient}-{action}", "action": action, **extra}
            for action, extra in steps]


def write_ndjson(path: Path, docs: list[Any]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def server_identifiers(base_url: str, rtype: str, system_prefix: str) -> Counter[str]:
    """How many resources of ``rtype`` on the server carry each identifier under the prefix.

    Pages through every resource of the type (search by identifier system alone is not
    something every server does), counting only this test's namespace.
    """
    found: Counter[str] = Counter()
    url: str | None = f"{base_url}/{rtype}?_count=500"
    session = requests.Session()
    while url:
        page = session.get(url, headers={"Accept": "application/fhir+json"}, timeout=60)
        page.raise_for_status()
        body = page.json()
        for entry in body.get("entry") or []:
            for ident in entry["resource"].get("identifier") or []:
                if str(ident.get("system", "")).startswith(system_prefix):
                    found[f"{ident['system']}|{ident['value']}"] += 1
        url = next((link["url"] for link in body.get("link") or []
                    if link.get("relation") == "next"), None)
    return found


def server_history(base_url: str, rtype: str, rid: str) -> list[dict[str, Any]]:
    """Every version of one resource, oldest first."""
    r = requests.get(f"{base_url}/{rtype}/{rid}/_history?_count=100",
                     headers={"Accept": "application/fhir+json"}, timeout=30)
    r.raise_for_status()
    versions = [e["resource"] for e in r.json().get("entry") or []]
    return sorted(versions, key=lambda v: int(v["meta"]["versionId"]))


def search(base_url: str, rtype: str, **params: str) -> list[dict[str, Any]]:
    r = requests.get(f"{base_url}/{rtype}", params={**params, "_count": "500"},
                     headers={"Accept": "application/fhir+json"}, timeout=30)
    r.raise_for_status()
    return [e["resource"] for e in r.json().get("entry") or []
            if (e.get("search") or {}).get("mode", "match") == "match"]


def run_and_kill(cmd: Sequence[str], progressed: Callable[[], bool], rng: random.Random, *,
                 window: tuple[float, float] = (0.0, 0.4), early: float | None = None,
                 kill: bool = True, env: dict[str, str] | None = None,
                 cwd: Path | None = None, hang: float = 120.0) -> bool:
    """Run ``cmd`` and SIGKILL it a random moment (``window`` seconds) after
    ``progressed()`` first holds — or ``early`` seconds after it starts, when given (a kill
    while it starts or enqueues). With ``kill=False`` it runs to its end. Returns whether it
    was killed; fails the test when a run hangs for ``hang`` seconds. The SIGKILL proofs
    (tests/test_sync_crash.py, the x12 control numbers) share it."""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env if env is not None else dict(os.environ), cwd=cwd)
    started = time.monotonic()
    deadline = started + early if early is not None else None
    try:
        while proc.poll() is None:
            now = time.monotonic()
            if kill and deadline is None and progressed():
                deadline = now + rng.uniform(*window)
            if kill and deadline is not None and now >= deadline:
                proc.kill()
                return True
            if now - started > hang:
                proc.kill()
                pytest.fail(f"a run hung for {hang:.0f} seconds: {cmd[:2]}")
            time.sleep(0.02)
        return False
    finally:
        proc.wait()
