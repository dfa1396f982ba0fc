"""The outbox on both backends (the same tests, parametrized): enqueue, order, ledger,
re-run, dead letters, quarantine, audit, the delivery hook — to the local store and to the
real FHIR test server."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from mafhir import plugins
from mafhir.cli.main import build_cli
from mafhir.hookspecs import hookimpl
from mafhir.outbox import Engine, Enqueuer, LocalStore, RetryPolicy, open_store
from mafhir.outbox.delivery import resolve_destination
from mafhir.outbox.keys import ordering_key
from mafhir.outbox.model import NewItem
from mafhir.plugins import get_registry
from mafhir.testing import Fault
from mafhir.validation import check_resource
from outbox_helpers import (
    PRACTITIONERS,
    appointment_tasks,
    clinic_ctx,
    outbox_url,
    search,
    server_history,
    server_identifiers,
    vitals_task,
    write_ndjson,
)

BACKENDS = ["sqlite", "postgres"]
#: The Appointment after book, confirm, check-in, start, complete (each task tags it).
STATUSES = ["booked", "booked", "checked-in", "checked-in", "fulfilled"]


def steps(p: int) -> list[str]:
    return [f"appt-{p}-{a}" for a in ("book", "confirm", "check_in", "start", "complete")]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    with outbox_url(request.param, tmp_path) as url:
        s = open_store(url)
        yield s
        s.close()


def fast_engine(store, **kw) -> Engine:
    kw.setdefault("retry", RetryPolicy(max_attempts=6, base=0.02, cap=0.2))
    kw.setdefault("poll", 0.05)
    kw.setdefault("rng", random.Random(7))
    return Engine(store, **kw)


def enqueue(store, destination, docs, tmp_path, ctx, name="in.ndjson"):
    path = write_ndjson(tmp_path / name, docs)
    return Enqueuer(store, destination, get_registry(), ctx).add_file(path)


# ---------------------------------------------------------------------- local destination
def test_local_day_is_delivered_once_and_a_rerun_sends_nothing(store, tmp_path):
    ctx = clinic_ctx()
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    docs = [vitals_task(i, patient=i % 5) for i in range(20)]
    got = enqueue(store, dest, docs, tmp_path, ctx)
    assert (got.added, got.skipped, got.quarantined) == (20, 0, 0)
    tally = fast_engine(store, threads=3).run()
    assert (tally.sent, tally.dead) == (20, 0)
    local = LocalStore(tmp_path / "store.db")
    # 20 Observations, 5 patients, 2 practitioners — each exactly once
    assert local.counts() == {"Observation": 20, "Patient": 5, "Practitioner": 2}
    patient = local.find("Patient", f"{ctx.clinic.system}/mrn", "P00003")
    obs = list(local.search("Observation", patient=f"Patient/{patient['id']}"))
    assert len(obs) == 4  # tasks 3, 8, 13, 18
    assert all(o["subject"]["reference"] == f"Patient/{patient['id']}" for o in obs)

    # the same input again: nothing enqueued, nothing sent
    again = enqueue(store, dest, docs, tmp_path, ctx)
    assert (again.added, again.skipped) == (0, 20)
    rerun = fast_engine(store).run()
    assert (rerun.sent, rerun.writes) == (0, 0)
    assert local.counts()["Observation"] == 20


def test_one_patients_work_goes_out_in_order(store, tmp_path):
    ctx = clinic_ctx()
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    docs = []
    for p in range(4):  # interleave patients, keep each patient's steps in order
        docs.extend(appointment_tasks(p))
    docs = [d for step in range(5) for d in docs[step::5]]
    enqueue(store, dest, docs, tmp_path, ctx)
    tally = fast_engine(store, threads=4).run()
    assert tally.dead == 0
    local = LocalStore(tmp_path / "store.db")
    for p in range(4):
        appt = local.find("Appointment", f"{ctx.clinic.system}/appointment", f"appt-{p}")
        history = local.history("Appointment", appt["id"])
        assert [v["status"] for v in history] == STATUSES
        assert [v["meta"]["tag"][0]["code"] for v in history] == steps(p)


def test_claims_take_one_item_per_patient_and_never_the_same_twice(store):
    dest = "local:/nonexistent"
    store.enqueue([NewItem(dest, okey=f"p{i % 3}", idem_key=f"k{i}", payload=b"{}")
                   for i in range(9)])
    first = store.claim("w1", limit=9)
    assert [i.idem_key for i in first] == ["k0", "k1", "k2"]  # the head of each patient
    assert store.claim("w2", limit=9) == []  # the rest wait behind their patient's head
    store.delivered(first[0], "w1", 0.0, "sent", 1)
    nxt = store.claim("w2", limit=9)
    assert [i.idem_key for i in nxt] == ["k3"]
    # a dead head no longer blocks its patient
    store.failed(first[1], "w1", 0.0, "boom", 400, None)
    assert [i.idem_key for i in store.claim("w3", limit=9)] == ["k4"]


def test_concurrent_claims_never_overlap(store):
    store.enqueue([NewItem("d", okey=f"p{i}", idem_key=f"k{i}", payload=b"{}")
                   for i in range(200)])
    taken: list[int] = []
    lock = threading.Lock()

    def grab(name):
        while batch := store.claim(name, limit=3):
            with lock:
                taken.extend(i.id for i in batch)

    threads = [threading.Thread(target=grab, args=(f"w{n}",)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == 200 and len(set(taken)) == 200


def test_a_changed_record_is_an_update_an_unchanged_one_is_not_sent(store, tmp_path):
    ctx = clinic_ctx()
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    enqueue(store, dest, [vitals_task(1, 1, heart_rate=70), vitals_task(2, 1, heart_rate=80)],
            tmp_path, ctx)
    fast_engine(store).run()
    # task 1 corrected (same id, new value); task 2 unchanged
    enqueue(store, dest, [vitals_task(1, 1, heart_rate=72), vitals_task(2, 1, heart_rate=80)],
            tmp_path, ctx)
    tally = fast_engine(store).run()
    assert (tally.sent, tally.writes) == (1, 1)  # only the corrected Observation
    local = LocalStore(tmp_path / "store.db")
    obs = {o["effectiveDateTime"]: o for o in local.search("Observation")}
    assert len(obs) == 2
    one = next(o for o in obs.values() if o["valueQuantity"]["value"] == 72)
    assert one["meta"]["versionId"] == "2"  # updated in place, not a second resource
    assert [v["valueQuantity"]["value"] for v in local.history("Observation", one["id"])] \
        == [70, 72]
    two = next(o for o in obs.values() if o["valueQuantity"]["value"] == 80)
    assert two["meta"]["versionId"] == "1"
    patient = local.find("Patient", f"{ctx.clinic.system}/mrn", "P00001")
    assert patient["meta"]["versionId"] == "1"


def test_bad_input_is_quarantined_and_the_rest_goes_through(store, tmp_path):
    ctx = clinic_ctx()
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    good = [vitals_task(i, i) for i in range(3)]
    bad_task = {**vitals_task(9, 9), "pulse": 80}
    collection = {"resourceType": "Bundle", "type": "collection", "entry": []}
    broken_bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0f0f0f0f-0000-4000-8000-000000000001",
         "resource": {"resourceType": "Observation", "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}}]}
    path = tmp_path / "mixed.ndjson"
    lines = [json.dumps(good[0]), "{not json", json.dumps(bad_task), json.dumps(good[1]),
             json.dumps(collection), json.dumps(broken_bundle), json.dumps(good[2])]
    path.write_text("\n".join(lines) + "\n")
    got = Enqueuer(store, dest, get_registry(), ctx).add_file(path)
    assert (got.added, got.quarantined) == (3, 4)
    text = "\n".join(got.problems)
    assert "mixed.ndjson line 2: not valid JSON" in text
    assert "task[2].pulse: unknown field" in text
    assert "mixed.ndjson[4].type: must be a transaction or batch Bundle" in text
    assert "mixed.ndjson[5] → Bundle.entry[0].resource.status" in text  # names the element
    assert "P00009" not in text  # no MRN in the reasons
    kept = store.quarantined()
    assert [q["idx"] for q in kept] == [1, 2, 4, 5]
    assert json.loads(kept[1]["raw"])["id"] == "v-9"  # kept, not dropped
    assert fast_engine(store).run().sent == 3


def test_bundles_are_accepted_as_input_and_ordered_by_their_patient(store, tmp_path):
    from mafhir.bundle import transaction
    from mafhir.pipeline import Pipeline

    ctx = clinic_ctx()
    mapped = list(Pipeline(get_registry(), ctx).run(enumerate(appointment_tasks(7))))
    bundles = [transaction(m.entries) for m in mapped]
    assert len({ordering_key(b) for b in bundles}) == 1
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    got = enqueue(store, dest, bundles, tmp_path, ctx, "bundles.ndjson")
    assert got.added == 5
    assert fast_engine(store, threads=4).run().dead == 0
    local = LocalStore(tmp_path / "store.db")
    appt = local.find("Appointment", f"{ctx.clinic.system}/appointment", "appt-7")
    assert appt["status"] == "fulfilled"


# ---------------------------------------------------------------------- the delivery hook
class Stamp:
    """A vendor tweak and an audit in one wrapper: tags every resource, records the answer."""

    def __init__(self):
        self.seen = []

    @hookimpl(wrapper=True)
    def deliver_bundle(self, delivery):
        for entry in delivery.bundle["entry"]:
            meta = entry["resource"].setdefault("meta", {})
            meta["tag"] = [{"system": "urn:vendor", "code": "via-outbox"}]
        result = yield
        self.seen.append((delivery.item_id, delivery.response["type"]))
        return result


def test_hook_deliver_bundle(tmp_path):
    plugins.reset()
    try:
        stamp = Stamp()
        plugins.register(stamp, name="stamp")
        store = open_store(str(tmp_path / "o.db"))
        dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
        enqueue(store, dest, [vitals_task(1, 1, performer=False)], tmp_path, clinic_ctx())
        assert fast_engine(store).run().sent == 1
        local = LocalStore(tmp_path / "store.db")
        (obs,) = local.search("Observation")
        assert obs["meta"]["tag"] == [{"system": "urn:vendor", "code": "via-outbox"}]
        assert stamp.seen == [(1, "transaction-response")]
    finally:
        plugins.reset()


# ---------------------------------------------------------------------- the real server
def test_fhir_server_once_each_and_a_rerun_makes_zero_writes(store, tmp_path, fault_proxy):
    ctx = clinic_ctx()
    dest = resolve_destination(fault_proxy.base_url)
    docs = [vitals_task(i, patient=i % 6) for i in range(30)]
    enqueue(store, dest, docs, tmp_path, ctx)
    tally = fast_engine(store, threads=4).run()
    assert (tally.sent, tally.dead) == (30, 0)
    base = fault_proxy.upstream
    observations = server_identifiers(base, "Observation", ctx.clinic.system)
    assert len(observations) == 30 and set(observations.values()) == {1}
    patients = server_identifiers(base, "Patient", ctx.clinic.system)
    assert len(patients) == 6 and set(patients.values()) == {1}
    # shared practitioners (NPI) are created once even with 4 workers in parallel
    for npi in (p["npi"] for p in PRACTITIONERS):
        assert len(search(base, "Practitioner",
                          identifier=f"http://hl7.org/fhir/sid/us-npi|{npi}")) == 1

    writes_before = len([s for s in fault_proxy.requests() if s.method in ("POST", "PUT")])
    # a re-run of the same input through a fresh enqueue of new, equal items (another
    # outbox: only the ledger can know) still sends nothing
    enqueue(store, dest, docs, tmp_path, ctx)
    assert fast_engine(store).run().sent == 0
    # an outbox whose items are re-enqueued under new keys: the ledger answers
    again = [NewItem(dest, i.okey, "re-" + i.idem_key, i.payload, i.source, i.kind)
             for i in store.items_in("delivered")]
    assert store.enqueue(again) == 30
    tally = fast_engine(store).run()
    assert (tally.unchanged, tally.sent, tally.writes) == (30, 0, 0)
    writes_after = len([s for s in fault_proxy.requests() if s.method in ("POST", "PUT")])
    assert writes_after == writes_before


def test_a_permanent_error_is_dead_lettered_with_its_outcome_then_replayed(store, tmp_path,
                                                                         fault_proxy):
    ctx = clinic_ctx()
    dest = resolve_destination(fault_proxy.base_url)
    fault_proxy.add(Fault.status_code(400), method="POST")
    enqueue(store, dest, [vitals_task(1, 1, performer=False)], tmp_path, ctx)
    tally = fast_engine(store).run()
    assert (tally.dead, tally.retried) == (1, 0)  # straight to dead letters
    (dead,) = store.items_in("dead")
    assert "HTTP 400" in dead.reason
    assert json.loads(dead.outcome)["issue"][0]["diagnostics"] == "injected 400"
    runner = CliRunner()
    shown = runner.invoke(build_cli(), ["outbox", "dead", "--db", store.url, "--show",
                                        str(dead.id)])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["outcome"]["resourceType"] == "OperationOutcome"
    assert [h["result"] for h in doc["history"]] == ["dead"]
    replay = runner.invoke(build_cli(), ["outbox", "replay", str(dead.id), "--db", store.url])
    assert replay.exit_code == 0, replay.output
    assert fast_engine(store).run().sent == 1
    assert len(server_identifiers(fault_proxy.upstream, "Observation", ctx.clinic.system)) == 1
    assert [a["result"] for a in store.attempts_of(dead.id)] == ["dead", "sent"]


def test_dead_letters_are_discarded_only_with_a_reason(store, tmp_path, fault_proxy):
    dest = resolve_destination(fault_proxy.base_url)
    fault_proxy.add(Fault.status_code(422), method="POST")
    enqueue(store, dest, [vitals_task(1, 1, performer=False)], tmp_path, clinic_ctx())
    fast_engine(store).run()
    (dead,) = store.items_in("dead")
    runner = CliRunner()
    refused = runner.invoke(build_cli(), ["outbox", "discard", str(dead.id), "--db", store.url])
    assert refused.exit_code != 0 and "--reason" in refused.output
    ok = runner.invoke(build_cli(), ["outbox", "discard", str(dead.id), "--db", store.url,
                                     "--reason", "duplicate of a chart entry"])
    assert ok.exit_code == 0, ok.output
    kept = store.get(dead.id)
    assert (kept.state, kept.reason) == ("discarded", "duplicate of a chart entry")
    status = runner.invoke(build_cli(), ["outbox", "status", "--db", store.url, "--json"])
    assert json.loads(status.output)["destinations"][dest] == {"discarded": 1}


def test_audit_trail_and_provenance_sent_along(store, tmp_path, fhir_base_url):
    ctx = clinic_ctx()
    dest = resolve_destination(fhir_base_url)
    enqueue(store, dest, [vitals_task(1, 1, performer=False)], tmp_path, ctx)
    assert fast_engine(store, send_provenance=True).run().sent == 1
    (item,) = store.items_in("delivered")
    (attempt,) = store.attempts_of(item.id)
    assert (attempt["result"], attempt["writes"]) == ("sent", 2)
    kept = {a["resource_type"]: json.loads(a["resource"]) for a in store.audit_of(item.id)}
    (obs,) = search(fhir_base_url, "Observation",
                    identifier=f"{ctx.clinic.system}/vitals|v-1-heart-rate") or \
        [o for o in search(fhir_base_url, "Observation",
                           **{"subject.identifier": f"{ctx.clinic.system}/mrn|P00001"})]
    targets = {t["reference"] for t in kept["Provenance"]["target"]}
    assert f"Observation/{obs['id']}" in targets
    assert kept["AuditEvent"]["outcome"] == "0"
    assert kept["AuditEvent"]["agent"][0]["network"]["address"] == dest
    for resource in kept.values():
        assert [i for i in check_resource(resource, {}) if i.severity == "error"] == []
    (sent_prov,) = search(fhir_base_url, "Provenance", target=f"Observation/{obs['id']}")
    assert sent_prov["entity"][0]["role"] == "source"


def test_fhir_server_history_shows_each_patients_steps_in_order(store, tmp_path,
                                                               fhir_base_url):
    ctx = clinic_ctx()
    dest = resolve_destination(fhir_base_url)
    docs = [d for p in range(6) for d in appointment_tasks(p)]
    random.Random(3).shuffle(docs)  # patients interleaved…
    docs.sort(key=lambda d: ("book", "confirm", "check_in", "start", "complete")
              .index(d["action"]))  # …each patient's steps still in order
    enqueue(store, dest, docs, tmp_path, ctx)
    assert fast_engine(store, threads=4).run().dead == 0
    for p in range(6):
        (appt,) = search(fhir_base_url, "Appointment",
                         identifier=f"{ctx.clinic.system}/appointment|appt-{p}")
        history = server_history(fhir_base_url, "Appointment", appt["id"])
        assert [v["status"] for v in history] == STATUSES
        assert [v["meta"]["tag"][0]["code"] for v in history] == steps(p)


def test_sync_command_end_to_end_with_summary(tmp_path):
    day = Path(__file__).resolve().parents[1] / "fixtures" / "clinic-day"
    runner = CliRunner()
    args = ["sync", str(day / "day.ndjson"), "--clinic", str(day / "clinic.json"),
            "--db", str(tmp_path / "o.db"), "--to", f"local:{tmp_path / 's.db'}", "--json"]
    first = runner.invoke(build_cli(), args)
    assert first.exit_code == 1  # the day's one bad task is quarantined
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    day_items = 63 + 4  # + the 4 front-office tasks of issue 18 part B (w10)
    assert (summary["enqueued"], summary["sent"], summary["quarantined"]) == \
        (day_items, day_items, 1)
    counts = LocalStore(tmp_path / "s.db").counts()
    # the demo day's Observations (tests/test_cli.py counts them)
    assert (counts["Patient"], counts["Observation"], counts["Appointment"]) == (13, 108, 12)
    second = json.loads(runner.invoke(build_cli(), args).stdout.strip().splitlines()[-1])
    assert (second["enqueued"], second["skipped"], second["sent"], second["writes"]) \
        == (0, day_items, 0, 0)


def test_json_payload_roundtrip_is_exact(store):
    payload = orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [],
                            "x": 0.1230})
    store.enqueue([NewItem("d", "k", "i", payload)])
    (item,) = store.claim("w")
    assert item.payload == payload


def test_the_documented_deliver_bundle_example_runs(tmp_path):
    import re
    import types

    docs = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    section = docs.split("### deliver_bundle\n", 1)[1].split("\n### ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    example = types.ModuleType("example_deliver_bundle")
    exec(compile(code, "docs/plugins.md:deliver_bundle", "exec"), example.__dict__)
    plugins.reset()
    try:
        plugins.register(example, name="vendor-tag")
        store = open_store(str(tmp_path / "o.db"))
        dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
        enqueue(store, dest, [vitals_task(1, 1, performer=False)], tmp_path, clinic_ctx())
        assert fast_engine(store).run().sent == 1
        assert [(1, dest, 2)] == example.SENT
        (patient,) = LocalStore(tmp_path / "store.db").search("Patient")
        assert {"system": "urn:example:vendor", "code": "mafhir"} in patient["meta"]["tag"]
    finally:
        plugins.reset()


def test_a_silent_workers_items_come_back_when_its_lease_ends(store):
    store.enqueue([NewItem("d", okey="p", idem_key="k0", payload=b"{}")])
    (taken,) = store.claim("gone-worker", lease=0.3)
    assert store.claim("w2") == []  # leased: nobody else may take it
    import time

    time.sleep(0.4)
    (again,) = store.claim("w2", lease=60)
    assert again.id == taken.id
    # the silent worker's late result no longer counts: the item is w2's now
    store.delivered(taken, "gone-worker", 0.0, "sent", 1)
    assert store.get(taken.id).state == "inflight"
    store.delivered(again, "w2", 0.0, "sent", 1)
    assert store.get(taken.id).state == "delivered"


def test_sqlite_allows_one_worker_process_per_file(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "o.db"
    store = open_store(str(db))
    engine = Engine(store)
    engine.prepare()  # this process holds the file's worker lock
    other = subprocess.run([str(Path(sys.executable).parent / "mafhir"), "worker", "--db",
                            str(db), "--once"], capture_output=True, text=True, timeout=60)
    assert other.returncode != 0
    assert "another process is running workers on this SQLite outbox" in other.stderr
    assert "PostgreSQL" in other.stderr


# ---------------------------------------------------------------------- a racy server
class RacyServer:
    """A test double whose conditional create is not atomic: look, wait, then write."""

    def __init__(self, window=None):
        import time

        self.rows: list[dict] = []
        self.lock = threading.Lock()
        # what happens between looking and writing: a pause, or (to prove the race without
        # relying on the scheduler) a barrier every sender reaches before any writes
        self.window = window or (lambda: time.sleep(0.003))

    def _find(self, rtype, ident):
        with self.lock:
            return next((r for r in self.rows if r["resourceType"] == rtype
                         and ident in {f"{i['system']}|{i['value']}"
                                       for i in r.get("identifier", [])}), None)

    def send(self, bundle):
        import uuid

        answers = []
        for entry in bundle["entry"]:
            res, req = entry["resource"], entry["request"]
            cond = req.get("ifNoneExist") or (req["url"].split("?", 1)[1]
                                             if "?" in req["url"] else None)
            found = self._find(res["resourceType"], cond.split("=", 1)[1]) if cond else None
            self.window()  # the window a racy server leaves open
            if found is None:
                found = {**res, "id": str(uuid.uuid4())}
                with self.lock:
                    self.rows.append(found)
            answers.append({"response": {"status": "201 Created", "location":
                                         f"{res['resourceType']}/{found['id']}/_history/1"}})
        return {"resourceType": "Bundle", "type": "transaction-response", "entry": answers}

    def count(self, rtype):
        return Counter(f"{i['system']}|{i['value']}" for r in self.rows
                       if r["resourceType"] == rtype for i in r["identifier"][:1])


def test_exactly_once_even_against_a_racy_conditional_create(store, tmp_path):
    from mafhir.bundle import transaction
    from mafhir.pipeline import Pipeline
    from mafhir.registry import ConnectorSpec

    ctx = clinic_ctx()
    docs = [vitals_task(i, patient=i % 20) for i in range(60)]
    bundles = [transaction(m.entries) for m in Pipeline(get_registry(), ctx).run(
        enumerate(docs))]

    # the double really is racy: two senders of the same Bundle that both look before
    # either writes (a barrier, not the scheduler's luck) make duplicates
    both_looked = threading.Barrier(2, timeout=30)
    direct = RacyServer(window=both_looked.wait)
    threads = [threading.Thread(target=direct.send, args=(bundles[0],)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(direct.count("Practitioner").values()) > 1

    racy = RacyServer()

    class Plugin:
        @hookimpl
        def register_connectors(self, register):
            register(ConnectorSpec("racy", lambda target: type(
                "C", (), {"send": lambda self, b: racy.send(b), "close": lambda self: None})()))

    plugins.reset()
    try:
        plugins.register(Plugin(), name="racy")
        enqueue(store, "racy:test", docs, tmp_path, ctx)
        tally = fast_engine(store, threads=8).run()
        assert (tally.sent, tally.dead) == (60, 0)
    finally:
        plugins.reset()
    assert set(racy.count("Practitioner").values()) == {1}  # 2 practitioners, once each
    assert len(racy.count("Practitioner")) == 2
    assert set(racy.count("Patient").values()) == {1} and len(racy.count("Patient")) == 20
    assert set(racy.count("Observation").values()) == {1}


def test_a_dead_letter_can_be_fixed_and_replayed(store, tmp_path):
    dest = resolve_destination(f"local:{tmp_path / 'store.db'}")
    obs = {"resourceType": "Observation", "id": "other", "status": "final",
           "code": {"text": "note"}, "identifier": [{"system": "urn:t", "value": "1"}]}
    wrong = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0f0f0f0f-0000-4000-8000-000000000002", "resource": obs,
         "request": {"method": "PUT", "url": "Observation/abc"}}]}
    enqueue(store, dest, [wrong], tmp_path, clinic_ctx(), "b.ndjson")
    assert fast_engine(store).run().dead == 1
    (dead,) = store.items_in("dead")
    assert "resource.id: differs from the id in request.url" in dead.reason
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({**wrong, "entry": [{**wrong["entry"][0],
                                                     "resource": {**obs, "id": "abc"}}]}))
    runner = CliRunner()
    out = runner.invoke(build_cli(), ["outbox", "replay", str(dead.id), "--with", str(fixed),
                                      "--db", store.url])
    assert out.exit_code == 0, out.output
    assert fast_engine(store).run().sent == 1
    assert LocalStore(tmp_path / "store.db").read("Observation", "abc")["code"] == {"text": "note"}


def test_a_wrong_destination_is_refused_before_anything_is_queued(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no mafhir.toml here
    monkeypatch.delenv("MAFHIR_CONFIG", raising=False)
    out = CliRunner().invoke(build_cli(), ["sync", "--to", "nosuch", "--db",
                                           str(tmp_path / "o.db")])
    assert out.exit_code != 0
    assert "'nosuch' is not a URL and no mafhir.toml was found" in out.output


def test_sync_shows_progress_and_a_summary(tmp_path):
    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    path = write_ndjson(tmp_path / "t.ndjson", [vitals_task(i, i, performer=False)
                                                for i in range(3)])
    out = CliRunner().invoke(build_cli(), ["sync", str(path), "--clinic", str(clinic),
                                           "--db", str(tmp_path / "o.db"), "--to",
                                           f"local:{tmp_path / 's.db'}", "--progress"])
    assert out.exit_code == 0, out.output
    assert "3/3" in out.stderr and "sent 3" in out.stderr  # the bar, with counts
    summary = out.stderr[out.stderr.index("mafhir sync"):]
    assert "sent" in summary and "unchanged" in summary and "dead" in summary


def test_resend_sends_everything_again_without_duplicates(store, tmp_path):
    ctx = clinic_ctx()
    clinic = tmp_path / "clinic.json"
    clinic.write_text(ctx.clinic.model_dump_json())
    path = write_ndjson(tmp_path / "t.ndjson", [vitals_task(i, i % 2) for i in range(4)])
    # the first delivery went to a server that has since lost everything: a local store
    # we throw away stands for it
    lost = tmp_path / "lost.db"
    base = ["sync", str(path), "--clinic", str(clinic), "--db", store.url, "--json"]
    runner = CliRunner()
    first = runner.invoke(build_cli(), [*base, "--to", f"local:{lost}"])
    assert json.loads(first.stdout.splitlines()[-1])["sent"] == 4
    for f in tmp_path.glob("lost.db*"):
        f.unlink()
    again = runner.invoke(build_cli(), [*base, "--to", f"local:{lost}"])
    assert json.loads(again.stdout.splitlines()[-1])["sent"] == 0  # the outbox remembers
    resent = runner.invoke(build_cli(), [*base, "--to", f"local:{lost}", "--resend"])
    tally = json.loads(resent.stdout.splitlines()[-1])
    assert (tally["enqueued"], tally["sent"]) == (4, 4)
    counts = LocalStore(lost).counts()
    assert counts == {"Observation": 4, "Patient": 2, "Practitioner": 2}
