"""The FHIR pharmacy interface against SEKMET with its pharmacy simulator on: a
prescription posted comes back dispensed (a MedicationDispense SEKMET writes itself), a
refill request lands on the worklist, is decided, and the renewal is dispensed too."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from helpers_pharmacy import clinic, mapped, prescription, refill_request
from requests.adapters import HTTPAdapter

from mafhir.bundle import transaction
from mafhir.errors import InputError
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.testing import FhirServer, ServerUnavailable, start_fhir_server
from mafhir.testing.plugin import skip_or_fail
from mafhir.validation.validator import check_resource
from mafhir_pharmacy.channels import FhirPharmacy, _dispense_state
from mafhir_pharmacy.mappers import AlreadyAnswered
from mafhir_pharmacy.tasks import PrescriptionTask
from mafhir_pharmacy.worklist import LocalWorklist

WAIT = 30.0  # seconds; the simulator acts after FHIR_SIMULATOR_DELAY (0.3 s here)


@pytest.fixture(scope="module")
def pharmacy_server() -> Iterator[FhirServer]:
    """A SEKMET of this module's own with the filler simulator on."""
    try:
        server = start_fhir_server(env={"FHIR_SIMULATOR": "true", "FHIR_SIMULATOR_DELAY": "0.3"})
    except ServerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no FHIR test server: {exc}", pytrace=False)
        skip_or_fail(f"no FHIR test server: {exc}")
    yield server
    server.stop()


def one(found):
    found = list(found)
    assert len(found) == 1, found
    return found[0]


def read_set(pharmacy: FhirPharmacy, resource: dict) -> ResourceSet:
    """The resource and what it references directly, read from the server."""
    out = [resource]
    for key in ("for", "owner", "requester", "focus", "subject"):
        ref = (resource.get(key) or {}).get("reference", "")
        if "/" in ref and "?" not in ref:
            rtype, rid = ref.split("/")[-2:]
            out.append(pharmacy.client.read(rtype, rid)[0])
    return ResourceSet.of(out)


def test_prescription_reaches_the_pharmacy_and_comes_back_dispensed(pharmacy_server):
    c = clinic()
    (result,) = mapped([prescription()], c)
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    pharmacy.send(transaction(result.entries))
    stored = one(pharmacy.search("MedicationRequest",
                                 {"identifier": f"{c.system}/prescription|rx-5001"}))
    # what the server holds is still valid US Core (its references now Type/id)
    assert not [i for i in check_resource(stored, get_registry().profiles)
                if i.severity == "error"]
    status = pharmacy.wait_for_dispense("rx-5001", timeout=WAIT, interval=0.2)
    assert status.state == "dispensed"
    assert status.prescription == f"MedicationRequest/{stored['id']}"
    md = pharmacy.client.read(*status.dispense.split("/"))[0]
    assert md["authorizingPrescription"] == [{"reference": status.prescription}]
    assert md["quantity"]["value"] == 30
    pharmacy.send(transaction(result.entries))  # a re-send stores no second order
    assert len(list(pharmacy.search("MedicationRequest",
                                    {"identifier": f"{c.system}/prescription|rx-5001"}))) == 1
    pharmacy.close()


def test_refill_request_decided_and_renewal_dispensed(pharmacy_server, tmp_path):
    c = clinic()
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    (rx,) = mapped([prescription()], c)
    pharmacy.send(transaction(rx.entries))
    prior = one(pharmacy.search("MedicationRequest",
                                {"identifier": f"{c.system}/prescription|rx-5001"}))

    # the pharmacy's request, in FHIR form: a Task on the prescriber's worklist
    (req,) = mapped([refill_request()], c)
    pharmacy.send(transaction(req.entries))
    task = one(pharmacy.search("Task", {"identifier": f"{c.system}/refill_request|rr-1"}))
    assert task["status"] == "requested"
    assert task["focus"] == {"reference": f"MedicationRequest/{prior['id']}"}

    # onto the MA's worklist as read back from the server, then decided once
    (request,) = get_registry().mapper("refill_request").from_fhir(read_set(pharmacy, task))
    assert request.prescription == "rx-5001"
    worklist = LocalWorklist(tmp_path / "wl.sqlite")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    worklist.add_request(request)
    decision = worklist.decide("rr-1", "approved",
                               datetime.fromisoformat("2026-12-20T11:30:00-05:00"),
                               "rx-5001-r1", refills=1)
    with pytest.raises(AlreadyAnswered):
        worklist.decide("rr-1", "approved", datetime.now(UTC), "again")
    (answer,) = mapped([decision.model_dump(mode="json", exclude_none=True)], c)
    pharmacy.send(transaction(answer.entries))

    done = one(pharmacy.search("Task", {"identifier": f"{c.system}/refill_request|rr-1"}))
    assert done["id"] == task["id"] and done["status"] == "completed"
    renewal = one(pharmacy.search("MedicationRequest",
                                  {"identifier": f"{c.system}/prescription|rx-5001-r1"}))
    assert renewal["priorPrescription"] == {"reference": f"MedicationRequest/{prior['id']}"}
    assert renewal["dispenseRequest"]["numberOfRepeatsAllowed"] == 1
    assert done["output"][0]["valueReference"] == {"reference":
                                                   f"MedicationRequest/{renewal['id']}"}
    assert pharmacy.wait_for_dispense("rx-5001-r1", timeout=WAIT,
                                      interval=0.2).state == "dispensed"
    worklist.close()
    pharmacy.close()


def test_controlled_substance_is_not_posted(pharmacy_server):
    c = clinic()
    (result,) = mapped([prescription(medication={"rxnorm": "308048"}, dea="AR1234563",
                                     refills=0)], c)
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    with pytest.raises(InputError, match=r"entry\[\d\]: a schedule IV controlled substance"):
        pharmacy.send(transaction(result.entries))
    assert not list(pharmacy.search("MedicationRequest",
                                    {"identifier": f"{c.system}/prescription|rx-5001"}))
    with pytest.raises(InputError, match="no MedicationRequest for prescription 'rx-5001'"):
        pharmacy.follow("rx-5001")
    pharmacy.close()


def test_dispense_states():
    now = datetime(2026, 12, 30, tzinfo=UTC)
    prepared = (now - timedelta(days=20)).isoformat()
    assert _dispense_state({"status": "completed", "whenHandedOver": prepared}, now, 14) == \
        "dispensed"
    assert _dispense_state({"status": "in-progress", "whenPrepared": prepared}, now, 14) == \
        "not-picked-up"  # ready 20 days, never handed over
    assert _dispense_state({"status": "in-progress", "whenPrepared": prepared}, now, 30) == \
        "in-progress"
    assert _dispense_state({"status": "declined", "whenPrepared": prepared}, now, 14) == \
        "not-picked-up"
    assert _dispense_state({"status": "declined"}, now, 14) == "not-dispensed"


# ---------------------------------------------------------------- following by subscription
def _send_draft(pharmacy: FhirPharmacy, rx_id: str, c) -> dict:
    """Post the prescription as a draft (SEKMET's simulator dispenses only active orders),
    so the test decides when the pharmacy may act: after the Subscription is in place."""
    (result,) = mapped([prescription(rx_id)], c)
    bundle = transaction(result.entries)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationRequest":
            entry["resource"]["status"] = "draft"
    pharmacy.send(bundle)
    return one(pharmacy.search("MedicationRequest",
                               {"identifier": f"{c.system}/prescription|{rx_id}"}))


def _subscriptions_for(pharmacy: FhirPharmacy, mr_id: str) -> list[dict]:
    criteria = f"MedicationDispense?prescription=MedicationRequest/{mr_id}"
    return [s for s in pharmacy.search("Subscription") if s.get("criteria") == criteria]


def _in_thread(fn) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        try:
            out["status"] = fn()
        except BaseException as exc:  # surfaced by the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _until(check, what: str):
    """Wait (bounded) until ``check()`` is truthy; the test fails naming ``what``."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"never saw {what}")


def test_dispense_followed_by_rest_hook_subscription(pharmacy_server):
    c = clinic()
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    mr = _send_draft(pharmacy, "rx-sub-1", c)
    follower = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    thread, out = _in_thread(lambda: follower.wait_for_dispense(
        "rx-sub-1", timeout=WAIT, interval=60, subscribe=True))

    # SEKMET holds an active rest-hook Subscription pointing at a loopback endpoint
    (sub,) = _until(lambda: [s for s in _subscriptions_for(pharmacy, mr["id"])
                             if s["status"] == "active"], "an active Subscription")
    assert sub["channel"]["type"] == "rest-hook"
    assert sub["channel"]["endpoint"].startswith("http://127.0.0.1:")
    assert sub["channel"]["payload"] == "application/fhir+json"

    # the order becomes active; the simulator dispenses it; the notification wakes us
    mr["status"] = "active"
    pharmacy.client.update(mr)
    thread.join(WAIT + 10)
    assert "error" not in out, out.get("error")
    status = out["status"]
    # interval=60 s: a poll could not have answered within the wait; the hook did
    assert (status.state, status.via) == ("dispensed", "subscription")
    md = pharmacy.client.read(*status.dispense.split("/"))[0]
    assert md["authorizingPrescription"] == [{"reference": f"MedicationRequest/{mr['id']}"}]
    assert md["status"] == "completed"
    # and the Subscription is gone from the server once the wait is over
    assert _subscriptions_for(pharmacy, mr["id"]) == []
    follower.close()
    pharmacy.close()


def test_subscription_refused_falls_back_to_polling(pharmacy_server, caplog):
    from mafhir.testing import Fault, FaultProxy

    c = clinic()
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    mr = _send_draft(pharmacy, "rx-sub-2", c)
    with FaultProxy(pharmacy_server.base_url) as proxy:
        proxy.add(Fault.status_code(422), method="POST", path="/Subscription")
        follower = FhirPharmacy(proxy.base_url, clinic_system=c.system)
        with caplog.at_level(logging.WARNING, logger="mafhir_pharmacy.follow"):
            thread, out = _in_thread(lambda: follower.wait_for_dispense(
                "rx-sub-2", timeout=WAIT, interval=0.2, subscribe=True))
            _until(lambda: proxy.requests("POST", "/Subscription"), "the Subscription POST")
            mr["status"] = "active"
            pharmacy.client.update(mr)
            thread.join(WAIT + 10)
        follower.close()
    assert "error" not in out, out.get("error")
    assert (out["status"].state, out["status"].via) == ("dispensed", "poll")
    assert any("refused the Subscription" in r.getMessage() and "polling" in r.getMessage()
               for r in caplog.records)
    assert _subscriptions_for(pharmacy, mr["id"]) == []  # nothing was stored
    pharmacy.close()


def test_no_notification_in_time_falls_back_to_polling(pharmacy_server, caplog):
    c = clinic()
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    mr = _send_draft(pharmacy, "rx-sub-3", c)  # a draft: the pharmacy never acts
    with caplog.at_level(logging.WARNING, logger="mafhir_pharmacy.follow"):
        status = pharmacy.wait_for_dispense("rx-sub-3", timeout=1.0, interval=0.2,
                                            subscribe=True, notify_within=0.3)
    assert (status.state, status.via) == ("pending", "poll")
    assert any("no notification from Subscription/" in r.getMessage() and
               "polling" in r.getMessage() for r in caplog.records)
    # the Subscription existed on the server (its history) and was deleted
    history = pharmacy.client.request("GET", "Subscription/_history").body
    ours = [e for e in history.get("entry", []) if (e.get("resource") or {}).get("criteria")
            == f"MedicationDispense?prescription=MedicationRequest/{mr['id']}"]
    assert ours, "no Subscription was ever created"
    assert _subscriptions_for(pharmacy, mr["id"]) == []
    pharmacy.close()


class RoutedTo(HTTPAdapter):
    """Sends what is addressed to ``alias`` to ``real``: a client that believes its FHIR
    server is on another host, while SEKMET on loopback answers."""

    def __init__(self, alias: str, real: str) -> None:
        super().__init__()
        self.alias, self.real = alias, real

    def send(self, request, **kwargs):  # type: ignore[override]
        if request.url and request.url.startswith(self.alias):
            request.url = self.real + request.url[len(self.alias):]
        return super().send(request, **kwargs)


def test_a_server_elsewhere_is_followed_by_polling_never_subscribed(pharmacy_server, caplog):
    """A loopback rest-hook is unreachable from another host (and a Subscription there
    would post to that host's own loopback): no Subscription is created; it polls."""
    from mafhir_fhir_rest import FhirClient

    c = clinic()
    pharmacy = FhirPharmacy(pharmacy_server.base_url, clinic_system=c.system)
    mr = _send_draft(pharmacy, "rx-sub-4", c)
    alias = "http://pharmacy.example.invalid/fhir"
    remote = FhirClient(alias)
    remote.session.mount("http://pharmacy.example.invalid/",
                         RoutedTo(alias, pharmacy_server.base_url.rstrip("/")))
    follower = FhirPharmacy(remote, clinic_system=c.system)
    mr["status"] = "active"  # the simulator dispenses it
    pharmacy.client.update(mr)
    with caplog.at_level(logging.WARNING, logger="mafhir_pharmacy.follow"):
        status = follower.wait_for_dispense("rx-sub-4", timeout=WAIT, interval=0.2,
                                            subscribe=True)
    follower.close()
    assert (status.state, status.via) == ("dispensed", "poll")
    assert [r.getMessage() for r in caplog.records] == [
        "the pharmacy server is not on this machine; following by polling"]
    history = pharmacy.client.request("GET", "Subscription/_history").body
    assert [e for e in history.get("entry", []) if (e.get("resource") or {}).get("criteria")
            == f"MedicationDispense?prescription=MedicationRequest/{mr['id']}"] == []
    pharmacy.close()


# ---------------------------------------------------------------- refill requests polled
def _pharmacy_task(prior: dict, org_id: str, focus: str | None = None, refills: int = 3) -> dict:
    """A refill request as the pharmacy writes it on its server (hand-written)."""
    return {
        "resourceType": "Task", "status": "requested", "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                             "code": "fulfill"}]},
        "focus": {"reference": focus or f"MedicationRequest/{prior['id']}"},
        "for": prior["subject"], "owner": prior["requester"],
        "requester": {"reference": f"Organization/{org_id}"},
        "authoredOn": "2026-12-20T08:05:00-05:00",
        "input": [{"type": {"text": "requested refills"}, "valueUnsignedInt": refills}],
    }


def test_fhir_refill_requests_polled_decided_and_answered_there(pharmacy_server, tmp_path):
    from click.testing import CliRunner

    from mafhir.cli.main import build_cli

    def invoke(*args: str):
        return CliRunner().invoke(build_cli(), list(args))

    c = clinic()
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    (tmp_path / "rx.json").write_text(json.dumps(prescription()))
    base, wl = pharmacy_server.base_url, str(tmp_path / "wl.sqlite")
    common = ("--worklist", wl, "--clinic", str(tmp_path / "clinic.json"))
    sent = invoke("pharmacy", "send", str(tmp_path / "rx.json"), "--via",
                  f"pharmacy-fhir:{base}", *common)
    assert sent.exit_code == 0, sent.output
    pharmacy = FhirPharmacy(base, clinic_system=c.system)
    prior = one(pharmacy.search("MedicationRequest",
                                {"identifier": f"{c.system}/prescription|rx-5001"}))
    org = one(pharmacy.search("Organization", {"identifier": "1234567"}))

    # the pharmacy asks twice: once about our prescription, once about an order we never sent
    _, known = pharmacy.client.create(_pharmacy_task(prior, org["id"]))
    _, stray = pharmacy.client.create(_pharmacy_task(prior, org["id"],
                                                     focus="MedicationRequest/not-ours"))
    polled = invoke("pharmacy", "poll", "--at", base, *common)
    assert polled.exit_code == 0, polled.output
    got = json.loads(polled.stdout)
    known_id, stray_id = (f"fhir-{ref.split('/')[1]}" for ref in (known, stray))
    assert (got["requested"], got["review"]) == ([known_id], [stray_id])
    again = json.loads(invoke("pharmacy", "poll", "--at", base, *common).stdout)
    assert (again["requested"], again["review"]) == ([], [])  # the same request twice → once
    listed = [json.loads(line) for line in
              invoke("pharmacy", "worklist", "--worklist", wl).stdout.splitlines()]
    assert sorted((i["request"], i["status"], i["prescription"]) for i in listed) == sorted([
        (known_id, "requested", "rx-5001"),
        (stray_id, "review", "MedicationRequest:not-ours")])

    # a later request: only it is new on the next poll (the cursor moved)
    _, later = pharmacy.client.create(_pharmacy_task(prior, org["id"], refills=1))
    third = json.loads(invoke("pharmacy", "poll", "--at", base, *common).stdout)
    assert third["requested"] == [f"fhir-{later.split('/')[1]}"]

    # decided: the answer goes back to that server by itself
    decided = invoke("pharmacy", "decide", known_id, "--approve", "--refills", "1",
                     "--id", "rx-5001-r1", "--at", "2026-12-20T11:30:00-05:00", *common)
    assert decided.exit_code == 0, decided.output
    assert "sent" in decided.stderr
    task = pharmacy.client.read("Task", known.split("/")[1])[0]
    assert task["status"] == "completed"
    assert task["requester"] == {"reference": f"Organization/{org['id']}"}  # theirs, kept
    renewal = one(pharmacy.search("MedicationRequest",
                                  {"identifier": f"{c.system}/prescription|rx-5001-r1"}))
    assert task["output"][0]["valueReference"] == {"reference":
                                                   f"MedicationRequest/{renewal['id']}"}
    assert renewal["priorPrescription"] == {"reference": f"MedicationRequest/{prior['id']}"}
    assert (renewal["status"], renewal["intent"]) == ("active", "order")
    assert renewal["dispenseRequest"]["numberOfRepeatsAllowed"] == 1
    assert int(task["meta"]["versionId"]) == 2  # one update: theirs, answered once

    # a denial of the later one: the Task rejected with the reason, no renewal written
    denied = invoke("pharmacy", "decide", f"fhir-{later.split('/')[1]}", "--deny",
                    "needs-appointment", *common)
    assert denied.exit_code == 0, denied.output
    rejected = pharmacy.client.read("Task", later.split("/")[1])[0]
    assert rejected["status"] == "rejected"
    assert rejected["statusReason"]["coding"][0]["code"] == "needs-appointment"
    assert "output" not in rejected
    # nothing is owed any more; the stray one waits for review, untouched on the server
    assert invoke("pharmacy", "answer", *common).stderr == ""
    assert pharmacy.client.read("Task", stray.split("/")[1])[0]["status"] == "requested"
    pharmacy.close()
