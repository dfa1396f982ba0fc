"""The FHIR poll cursor, against a hand-written pharmacy server (a stand-in that answers
``Task?…&_lastUpdated=geX`` by comparing instants, as a FHIR server does): the cursor is
the *latest* instant seen — not the largest text — and a Task that cannot be read is
recorded as unreadable instead of holding the cursor back, then read again once the
pharmacy corrects it. Every timestamp is written by hand."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pytest
from click.testing import CliRunner
from helpers_pharmacy import NPI, clinic, prescription

from mafhir.cli.main import build_cli
from mafhir.errors import InputError, Problem
from mafhir_pharmacy.fhirrefill import later, poll_refill_requests
from mafhir_pharmacy.tasks import PrescriptionTask
from mafhir_pharmacy.worklist import LocalWorklist

JSON = dict[str, Any]
NCPDP = "http://terminology.hl7.org/NamingSystem/NCPDPProviderIdentificationNumber"
SOURCE = "http://pharmacy.example.invalid/fhir"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class PharmacyServer:
    """Hand-written resources; ``search`` filters and sorts Tasks by instant."""

    def __init__(self, system: str) -> None:
        self.resources: dict[str, JSON] = {
            "MedicationRequest/mr-1": {
                "resourceType": "MedicationRequest", "id": "mr-1",
                "identifier": [{"system": f"{system}/prescription", "value": "rx-5001"}],
                "subject": {"reference": "Patient/pt-1"},
                "requester": {"reference": "Practitioner/pr-1"}},
            "Patient/pt-1": {"resourceType": "Patient", "id": "pt-1",
                             "identifier": [{"system": f"{system}/mrn", "value": "MS-10022"}],
                             "name": [{"family": "Okafor", "given": ["Grace"]}],
                             "gender": "female", "birthDate": "1968-02-11"},
            "Practitioner/pr-1": {"resourceType": "Practitioner", "id": "pr-1",
                                  "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi",
                                                  "value": NPI}],
                                  "name": [{"family": "Reyes", "given": ["Lena"]}]},
            "Organization/org-1": {"resourceType": "Organization", "id": "org-1",
                                   "identifier": [{"system": NCPDP, "value": "1234567"}],
                                   "name": "Main Street Pharmacy"},
        }
        self.tasks: list[JSON] = []
        self.searches: list[list[tuple[str, str]]] = []

    def task(self, task_id: str, last_updated: str, requester: bool = True) -> JSON:
        task: JSON = {
            "resourceType": "Task", "id": task_id, "status": "requested", "intent": "order",
            "meta": {"lastUpdated": last_updated},
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                                 "code": "fulfill"}]},
            "focus": {"reference": "MedicationRequest/mr-1"},
            "for": {"reference": "Patient/pt-1"}, "owner": {"reference": "Practitioner/pr-1"},
            "authoredOn": "2026-12-20T08:05:00-05:00"}
        if requester:
            task["requester"] = {"reference": "Organization/org-1"}
        self.tasks = [t for t in self.tasks if t["id"] != task_id] + [task]
        return task

    def search(self, resource_type: str, params: list[tuple[str, str]]):
        assert resource_type == "Task"
        self.searches.append(list(params))
        since = next((v[2:] for k, v in params if k == "_lastUpdated"), None)
        found = [t for t in self.tasks if since is None or
                 instant(t["meta"]["lastUpdated"]) >= instant(since)]
        yield from copy.deepcopy(sorted(found, key=lambda t: instant(t["meta"]["lastUpdated"])))

    def read(self, rtype: str, rid: str) -> tuple[JSON, None]:
        try:
            return copy.deepcopy(self.resources[f"{rtype}/{rid}"]), None
        except KeyError:
            raise InputError([Problem(rtype, "not found")]) from None


@pytest.mark.parametrize(("a", "b", "latest"), [
    ("2026-12-20T10:00:00Z", "2026-12-20T10:00:00.5Z", "2026-12-20T10:00:00.5Z"),
    ("2026-12-20T10:00:00.5Z", "2026-12-20T10:00:00Z", "2026-12-20T10:00:00.5Z"),
    ("2026-12-20T10:00:00Z", "2026-12-20T06:00:01-05:00", "2026-12-20T06:00:01-05:00"),
    ("2026-12-20T10:59:59+01:00", "2026-12-20T10:00:00Z", "2026-12-20T10:00:00Z"),
    ("2026-12-20T11:00:01+01:00", "2026-12-20T10:00:00Z", "2026-12-20T11:00:01+01:00"),
    (None, "2026-12-20T10:00:00Z", "2026-12-20T10:00:00Z"),
    ("2026-12-20T10:00:00Z", "not a time", "2026-12-20T10:00:00Z"),
    ("2026-12-20T10:00:00Z", "2026-12-21", "2026-12-20T10:00:00Z"),  # no zone: no instant
])
def test_later_compares_instants_not_text(a, b, latest):
    assert later(a, b) == latest


def test_cursor_is_the_latest_instant_and_an_unreadable_task_does_not_pin_it(tmp_path):
    c = clinic()
    server = PharmacyServer(c.system)
    worklist = LocalWorklist(tmp_path / "wl.sqlite")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    # in instant order: t-a 10:00:00Z, t-bad 10:00:00.2Z (no requester), t-b 10:00:00.5Z,
    # t-c 06:00:01-05:00 = 11:00:01Z. As text t-a's stamp is the largest of all four.
    server.task("t-a", "2026-12-20T10:00:00Z")
    server.task("t-bad", "2026-12-20T10:00:00.2Z", requester=False)
    server.task("t-b", "2026-12-20T10:00:00.5Z")
    server.task("t-c", "2026-12-20T06:00:01-05:00")

    first = poll_refill_requests(server, worklist, c.system, SOURCE)
    assert first.requested == ["fhir-t-a", "fhir-t-b", "fhir-t-c"]
    assert [str(p) for p in first.problems] == [
        "Task/t-bad: Task.requester: the pharmacy Organization is missing"]
    assert first.unreadable == ["fhir-t-bad"]
    assert first.cursor == "2026-12-20T06:00:01-05:00"  # 11:00:01Z: the latest instant
    assert worklist.cursor(SOURCE) == "2026-12-20T06:00:01-05:00"
    # the unreadable Task is kept, by id and reason, for the MA — not dropped
    assert worklist.unreadable() == [
        ("fhir-t-bad", f"pharmacy-fhir:{SOURCE}", "Task/t-bad",
         "Task.requester: the pharmacy Organization is missing")]

    # the next poll asks from the cursor on: only the boundary Task comes back, seen again
    second = poll_refill_requests(server, worklist, c.system, SOURCE)
    assert server.searches[-1][-1] == ("_lastUpdated", "ge2026-12-20T06:00:01-05:00")
    assert (second.requested, second.problems, second.seen_again) == ([], [], 1)

    # the pharmacy corrects the Task (a new version, a later lastUpdated): it is read now
    server.task("t-bad", "2026-12-20T12:00:00Z")
    third = poll_refill_requests(server, worklist, c.system, SOURCE)
    assert (third.requested, third.problems) == (["fhir-t-bad"], [])
    assert third.cursor == "2026-12-20T12:00:00Z"
    assert worklist.unreadable() == []
    assert worklist.state("fhir-t-bad") == "requested"
    worklist.close()


def test_the_same_unreadable_version_is_reported_once_and_listed(tmp_path):
    c = clinic()
    server = PharmacyServer(c.system)
    wl = tmp_path / "wl.sqlite"
    worklist = LocalWorklist(wl)
    server.task("t-bad", "2026-12-20T10:00:00Z", requester=False)  # the only Task: the boundary
    first = poll_refill_requests(server, worklist, c.system, SOURCE)
    again = poll_refill_requests(server, worklist, c.system, SOURCE)
    worklist.close()
    assert (len(first.problems), first.cursor) == (1, "2026-12-20T10:00:00Z")
    assert (again.problems, again.seen_again) == ([], 1)
    listed = CliRunner().invoke(build_cli(), ["pharmacy", "worklist", "--worklist", str(wl),
                                              "--status", "unreadable"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {"status": "unreadable", "request": "fhir-t-bad", "task": "Task/t-bad",
         "source": f"pharmacy-fhir:{SOURCE}",
         "reason": "Task.requester: the pharmacy Organization is missing"}]
    assert "Okafor" not in listed.stdout


def test_a_task_failing_in_an_unexpected_way_is_recorded_by_error_class(tmp_path):
    """A prescriber without an NPI makes the mapper fail outside its checks (no field
    named): the Task is recorded with the error's class, never the values."""
    c = clinic()
    server = PharmacyServer(c.system)
    server.resources["Practitioner/pr-1"]["identifier"] = []
    worklist = LocalWorklist(tmp_path / "wl.sqlite")
    server.task("t-odd", "2026-12-20T10:00:00Z")
    result = poll_refill_requests(server, worklist, c.system, SOURCE)
    assert [str(p) for p in result.problems] == [
        "Task/t-odd: Task: could not be read (StopIteration)"]
    assert result.cursor == "2026-12-20T10:00:00Z"
    assert [u[0] for u in worklist.unreadable()] == ["fhir-t-odd"]
    worklist.close()
