"""The local store (``local:`` destinations) on SQLite and PostgreSQL (issue 12, item 5):
the same transaction semantics on both, ``mafhir sync --to local:postgresql://…`` under
sync's worker threads, and SQLite files written by the previous release still open.
What the store holds is read back with sqlite3 / psycopg, not through mafhir."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from mafhir.connectors.local import LocalStore
from mafhir.errors import InputError
from mafhir.outbox.delivery import connect, resolve_destination
from outbox_helpers import clinic_ctx, postgres_database, vitals_task, write_ndjson

MRN = "urn:oid:2.16.840.1.113883.3.999"


def patient_entry(mrn: str, family: str, method: str = "PUT") -> dict:
    query = f"identifier={MRN}|{mrn}"
    request = ({"method": "PUT", "url": f"Patient?{query}"} if method == "PUT"
               else {"method": "POST", "url": "Patient", "ifNoneExist": query})
    return {"fullUrl": f"urn:uuid:p-{mrn}", "request": request,
            "resource": {"resourceType": "Patient", "name": [{"family": family}],
                         "identifier": [{"system": MRN, "value": mrn}]}}


def transaction(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def test_the_local_store_answers_a_transaction_alike_on_both_backends(store_at):
    store = LocalStore(store_at("local.db"))
    try:
        obs = {"fullUrl": "urn:uuid:o-1", "request": {"method": "POST", "url": "Observation"},
               "resource": {"resourceType": "Observation", "status": "final",
                            "code": {"text": "HR"}, "subject": {"reference": "urn:uuid:p-7"},
                            "effectiveDateTime": "2026-11-02T09:00:00Z"}}
        undated = {"request": {"method": "POST", "url": "Observation"},
                   "resource": {"resourceType": "Observation", "status": "final",
                                "code": {"text": "note"},
                                "subject": {"reference": f"Patient?identifier={MRN}|7"}}}
        first = store.send(transaction(patient_entry("7", "Okafor"), obs))
        assert [e["response"]["status"] for e in first["entry"]] == ["201 Created"] * 2
        pid = first["entry"][0]["response"]["location"].split("/")[1]
        again = store.send(transaction(patient_entry("7", "Okafor-Bello"),
                                       patient_entry("7", "ignored", method="POST"), undated))
        assert [e["response"]["location"] for e in again["entry"][:2]] == \
            [f"Patient/{pid}/_history/2", f"Patient/{pid}/_history/2"]
        assert store.read("Patient", pid)["name"] == [{"family": "Okafor-Bello"}]
        assert store.read("Patient", pid, version=1)["name"] == [{"family": "Okafor"}]
        assert [p["meta"]["versionId"] for p in store.history("Patient", pid)] == ["1", "2"]
        assert store.find("Patient", MRN, "7")["id"] == pid
        found = list(store.search("Observation", patient=f"Patient/{pid}"))
        assert [o["code"]["text"] for o in found] == ["note", "HR"]  # no date first
        assert [o["code"]["text"] for o in store.search(
            "Observation", date_from="2026-11-02", date_to="2026-11-03")] == ["HR"]
        assert store.counts() == {"Patient": 1, "Observation": 2}
        with pytest.raises(InputError) as err:  # all or nothing: the Patient is not kept
            store.send(transaction(patient_entry("8", "New"),
                                   {"request": {"method": "DELETE", "url": "Patient/x"},
                                    "resource": {"resourceType": "Patient"}}))
        assert err.value.problems[0].location == "Bundle.entry[1].request.method"
        assert store.find("Patient", MRN, "8") is None
    finally:
        store.close()


#: The schema the previous release (raw sqlite3) wrote, verbatim.
PREVIOUS_RELEASE = """
CREATE TABLE IF NOT EXISTS resources (
  rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
  patient TEXT, date TEXT, body BLOB NOT NULL, PRIMARY KEY (rtype, id));
CREATE INDEX IF NOT EXISTS ix_resources_patient ON resources (patient, rtype, date);
CREATE TABLE IF NOT EXISTS history (
  rtype TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL,
  PRIMARY KEY (rtype, id, version));
CREATE TABLE IF NOT EXISTS identifiers (
  rtype TEXT NOT NULL, ident TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (rtype, ident));
"""


def test_a_local_store_file_of_the_previous_release_opens_and_is_written_on(tmp_path):
    path = tmp_path / "old-store.db"
    body = json.dumps({"resourceType": "Patient", "id": "old-1", "meta": {"versionId": "1"},
                       "identifier": [{"system": MRN, "value": "1"}]}).encode()
    db = sqlite3.connect(path)
    db.executescript(PREVIOUS_RELEASE)
    db.execute("INSERT INTO resources VALUES ('Patient', 'old-1', 1, 'Patient/old-1', NULL, ?)",
               (body,))
    db.execute("INSERT INTO history VALUES ('Patient', 'old-1', 1, ?)", (body,))
    db.execute("INSERT INTO identifiers VALUES ('Patient', ?, 'old-1')",
               (f"identifier={MRN}|1",))
    db.commit()
    db.close()
    store = LocalStore(path)
    try:
        assert store.find("Patient", MRN, "1")["id"] == "old-1"
        answer = store.send(transaction(patient_entry("1", "Later")))
        assert answer["entry"][0]["response"]["location"] == "Patient/old-1/_history/2"
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM history WHERE id='old-1'").fetchone() == (2,)


def test_a_local_postgres_destination_keeps_no_credentials(monkeypatch):
    with postgres_database() as url:
        bare = url.replace("postgres@", "")  # the user comes from PGUSER, like a password
        monkeypatch.setenv("PGUSER", "postgres")
        assert resolve_destination(f"local:{bare}") == f"local:{bare}"
        with pytest.raises(InputError) as err:
            resolve_destination(f"local:{url.replace('postgres@', 'postgres:pw@')}")
        assert (err.value.problems[0].location, err.value.problems[0].code) == \
            ("--to", "security")
        connector = connect(f"local:{bare}")
        try:
            connector.send(transaction(patient_entry("9", "Pg")))
        finally:
            connector.close()
        with psycopg.connect(url) as conn:
            (body,) = conn.execute("SELECT body FROM resources WHERE rtype='Patient'").fetchone()
        assert json.loads(bytes(body))["name"] == [{"family": "Pg"}]


def test_mafhir_sync_to_a_local_postgres_store_holds_every_record_once(tmp_path):
    """sync's worker threads write one PostgreSQL local store: every Observation once, and
    each shared Practitioner created once (the writers take turns)."""
    n = 120
    ctx = clinic_ctx()
    with postgres_database() as url:
        bare = url.replace("postgres@", "")
        (tmp_path / "clinic.json").write_text(ctx.clinic.model_dump_json())
        source = write_ndjson(tmp_path / "tasks.ndjson", [vitals_task(i, i) for i in range(n)])
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "mafhir"), "sync", "--to", f"local:{bare}",
             "--db", str(tmp_path / "outbox.db"), "--clinic", str(tmp_path / "clinic.json"),
             "--json", "--no-progress", "--retry-base", "0.05", str(source)],
            capture_output=True, text=True, timeout=600, env={**os.environ, "PGUSER": "postgres"})
        assert proc.returncode == 0, proc.stderr[-2000:]
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["sent"] == n and summary["dead"] == 0
        with psycopg.connect(url) as conn:
            bodies = [json.loads(bytes(b)) for (b,) in
                      conn.execute("SELECT body FROM resources").fetchall()]
    obs = Counter(i["value"] for b in bodies if b["resourceType"] == "Observation"
                  for i in b.get("identifier", [])
                  if i["system"] == f"{ctx.clinic.system}/observation")
    assert obs == Counter({f"v-{i}/heart-rate": 1 for i in range(n)})
    assert Counter(b["resourceType"] for b in bodies) == \
        {"Observation": n, "Patient": n, "Practitioner": 2}


#: Identifier systems with a percent sign: before a digit (an escape's look-alike), before
#: two hex digits (reads as an escape when decoded twice), and beside the other characters
#: a URL query escapes. The first two name different systems and must not collide.
PERCENT_SYSTEMS = ("urn:oid:1.2%3", "urn:x:100%25off", "urn:x:100%off", "urn:x:a b+c&d#e%")


@pytest.mark.parametrize("system", PERCENT_SYSTEMS)
def test_conditional_writes_find_an_identifier_whose_system_has_a_percent(store_at, system):
    from mafhir.identity import identifier_query

    query = identifier_query(system, "42")
    create = {"fullUrl": "urn:uuid:p-42",
              "request": {"method": "POST", "url": "Patient", "ifNoneExist": query},
              "resource": {"resourceType": "Patient", "name": [{"family": "Create"}],
                           "identifier": [{"system": system, "value": "42"}]}}
    update = {"request": {"method": "PUT", "url": f"Patient?{query}"},
              "resource": {"resourceType": "Patient", "name": [{"family": "Update"}],
                           "identifier": [{"system": system, "value": "42"}]}}
    obs = {"request": {"method": "POST", "url": "Observation"},
           "resource": {"resourceType": "Observation", "status": "final",
                        "code": {"text": "HR"}, "subject": {"reference": f"Patient?{query}"}}}
    store = LocalStore(store_at("local.db"))
    try:
        first = store.send(transaction(create))
        pid = first["entry"][0]["response"]["location"].split("/")[1]
        again = store.send(transaction(create, update, obs))
        assert [e["response"]["location"] for e in again["entry"][:2]] == \
            [f"Patient/{pid}/_history/1", f"Patient/{pid}/_history/2"]
        assert store.counts() == {"Patient": 1, "Observation": 1}
        assert store.read("Patient", pid)["name"] == [{"family": "Update"}]
        assert store.find("Patient", system, "42")["id"] == pid
        (found,) = store.search("Observation")
        assert found["subject"] == {"reference": f"Patient/{pid}"}
    finally:
        store.close()


def test_systems_differing_only_by_an_escape_look_alike_stay_two_patients(tmp_path):
    store = LocalStore(tmp_path / "local.db")
    try:
        from mafhir.identity import identifier_query

        for system in ("urn:x:100%25off", "urn:x:100%off"):
            store.send(transaction({
                "request": {"method": "PUT",
                            "url": f"Patient?{identifier_query(system, '1')}"},
                "resource": {"resourceType": "Patient", "name": [{"family": system}],
                             "identifier": [{"system": system, "value": "1"}]}}))
        assert store.counts() == {"Patient": 2}
        for system in ("urn:x:100%25off", "urn:x:100%off"):
            assert store.find("Patient", system, "1")["name"] == [{"family": system}]
    finally:
        store.close()
