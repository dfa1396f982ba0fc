"""Helpers of the dashboard tests: a seeded outbox and inbound store whose patient has
names, an MRN and a birth date that can be searched for in every page, users of each
role, and signing in through the real login form."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mafhir.errors import Problem
from mafhir.hl7v2.receiver import Outcome, Receiver
from mafhir.hl7v2.store import MessageStore
from mafhir.outbox import Enqueuer, OutboxStore
from mafhir.plugins import get_registry
from outbox_helpers import clinic_ctx, write_ndjson

#: The fixture patient: none of these may appear in a masked page.
FAMILY, GIVEN, MRN, BIRTH = "Zebulon-Quist", "Marigold", "MRN778812", "1957-06-14"
PHI = (FAMILY, GIVEN, MRN, BIRTH, BIRTH.replace("-", ""))
PASSWORD = "correct-horse-battery"
DEST = "https://ehr.example.org/fhir"
SENDER = "LABSYS|REFLAB"


def phi_task(i: int) -> dict[str, Any]:
    return {"task": "vitals", "id": f"web-{i}",
            "patient": {"mrn": MRN, "family": FAMILY, "given": [GIVEN], "gender": "female",
                        "birth_date": BIRTH},
            "effective": f"2026-11-27T09:{i:02d}:00-05:00", "heart_rate": {"value": 70 + i}}


def refusal(i: int) -> str:
    """A server's OperationOutcome that names the patient (servers do)."""
    return json.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "business-rule",
         "diagnostics": f"Patient {FAMILY}, {GIVEN} (MRN {MRN}, born {BIRTH}) is merged"}]})


@dataclass
class Seeded:
    delivered: list[int]
    dead: list[int]
    pending: list[int]


def seed_outbox(store: OutboxStore, tmp_path: Path, n: int = 5, dead: int = 1) -> Seeded:
    """``n`` items for one patient to :data:`DEST`: the first ``n - dead - 1`` delivered,
    then ``dead`` dead letters (the server's refusal naming the patient), one pending —
    through the store's own enqueue, claim and record."""
    got = Enqueuer(store, DEST, get_registry(), clinic_ctx()).add_file(
        write_ndjson(tmp_path / "web.ndjson", [phi_task(i) for i in range(n)]))
    assert got.added == n
    out = Seeded([], [], [])
    for k in range(n - 1):
        (item,) = store.claim("seed", limit=1)
        if k < n - dead - 1:
            store.delivered(item, "seed", time.time(), "sent", 1)
            out.delivered.append(item.id)
        else:
            store.failed(item, "seed", time.time(),
                         f"HTTP 422: Patient {FAMILY} is merged", 422, None, refusal(k))
            out.dead.append(item.id)
    out.pending = [i.id for i in store.items_in("pending")]
    return out


PID = f"PID|1||{MRN}^^^MAPLE^MR||{FAMILY}^{GIVEN}||{BIRTH.replace('-', '')}|F"


def v2_message(control_id: str) -> bytes:
    return ("MSH|^~\\&|LABSYS|REFLAB|MAFHIR|MAPLE|20261203080000-0500||ORU^R01^ORU_R01|"
            f"{control_id}|P|2.5.1\r{PID}\rOBR|1||F1|24331-1^Lipid panel^LN\r").encode()


def seed_inbound(path: Path, statuses: tuple[str, ...] = ("processed", "review")
                 ) -> MessageStore:
    """Messages stored and answered by the real receiver, one per status given."""
    store = MessageStore(path)
    for n, status in enumerate(statuses):
        problems = (Problem("PID-3", "no clinic patient has this identifier", "not-found"),) \
            if status != "processed" else ()
        receiver = Receiver(store, lambda _m, s=status, p=problems: Outcome(s, p))
        receiver.receive(v2_message(f"C{n}"))
    return store


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: Any, name: str, password: str = PASSWORD) -> Any:
    """Sign in through the login form (its CSRF token first); the answer."""
    page = client.get("/login")
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf": csrf_of(page.text), "next": "/"})


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    """The real argon2id, with the cheapest parameters: the tests hash and verify dozens
    of passwords, each ~0.15 s at the library's defaults on a loaded 2-core machine."""
    from argon2 import PasswordHasher

    from mafhir.web import webstore

    monkeypatch.setattr(webstore, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                            parallelism=1))
