"""What a reminder's reply costs now that it changes only the Appointment's status.

Before, a reply rewrote the Appointment whole (one conditional PUT in a transaction) and
lost what the schedule feed had written; now it is a JSON Patch (mafhir.patch), which the
local store applies in place and the fhir-rest client resolves with one more request
(search the server's copy, patch it, PUT it back with If-Match). Each side delivers the
same number of replies, one Bundle each, to its own appointments:

* local store: whole-resource conditional PUT vs PATCH (read + write in one transaction);
* SEKMET (FHIR test server on loopback): whole-resource conditional PUT vs PATCH through
  ``FhirClient.send``.

Prints per-round ratios (interleaved rounds, CPU beside wall); asserts nothing.

    python benchmarks/bench_reply.py [--replies 50] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

from mafhir.bundle import transaction, update
from mafhir.connectors.local import LocalStore
from mafhir.patch import patch
from mafhir.testing import fhir_server
from mafhir_fhir_rest.client import FhirClient
from rounds import Side, emit, interleave, report


def appointment(system: str, i: int, status: str = "booked") -> dict:
    """An Appointment as the schedule feed writes one: patient, clinician, room, note."""
    return {"resourceType": "Appointment", "identifier": [{"system": system, "value": str(i)}],
            "status": status, "start": "2030-06-10T09:30:00-05:00",
            "end": "2030-06-10T09:50:00-05:00", "minutesDuration": 20,
            "comment": "Event reason: Add\nBring the insurance card",
            "participant": [
                {"actor": {"display": "Patient"}, "required": "required", "status": "accepted"},
                {"actor": {"type": "Location", "display": "Exam Room 1"},
                 "required": "required", "status": "accepted"},
                {"actor": {"type": "Practitioner", "identifier": {
                    "system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}},
                 "required": "required", "status": "accepted"}]}


CANCEL = [{"op": "replace", "path": "/status", "value": "cancelled"},
          {"op": "add", "path": "/cancelationReason", "value": {"text": "pat-crs"}}]


def whole(system: str, n: int) -> list[dict]:
    return [transaction([update({**appointment(system, i, "cancelled"),
                                 "cancelationReason": {"text": "pat-crs"}})])
            for i in range(n)]


def patches(system: str, n: int) -> list[dict]:
    return [transaction([patch("Appointment", system, str(i), CANCEL)]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=int, default=None, help="(50; --quick 20)")
    parser.add_argument("--rounds", type=int, default=None, help="(5; --quick 3)")
    parser.add_argument("--quick", action="store_true", help="make bench: 20 replies, 3 rounds")
    args = parser.parse_args()
    args.replies = args.replies or (20 if args.quick else 50)
    args.rounds = args.rounds or (3 if args.quick else 5)
    n = args.replies
    systems = {name: f"urn:mafhir:bench:{name}:{uuid.uuid4()}"
               for name in ("local-whole", "local-patch", "rest-whole", "rest-patch")}

    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "store.db")
        client = FhirClient(fhir_server().base_url)
        try:
            for name, system in systems.items():
                target = store.send if name.startswith("local") else client.send
                for i in range(n):
                    target(transaction([update(appointment(system, i))]))
            local_whole, local_patch = whole(systems["local-whole"], n), \
                patches(systems["local-patch"], n)
            rest_whole, rest_patch = whole(systems["rest-whole"], n), \
                patches(systems["rest-patch"], n)
            local = interleave({
                "whole Appointment (conditional PUT)": Side(
                    lambda: [store.send(b) for b in local_whole], units=n),
                "status only (JSON Patch)": Side(
                    lambda: [store.send(b) for b in local_patch], units=n)},
                rounds=args.rounds)
            emit("reply local", report(local, baseline="whole Appointment (conditional PUT)",
                                       unit="replies", title=f"reply → local store, {n} replies"),
                 note=f"{n} replies")
            rest = interleave({
                "whole Appointment (conditional PUT)": Side(
                    lambda: [client.send(b) for b in rest_whole], units=n),
                "status only (JSON Patch: search + PUT If-Match)": Side(
                    lambda: [client.send(b) for b in rest_patch], units=n)},
                rounds=args.rounds)
            emit("reply SEKMET", report(rest, baseline="whole Appointment (conditional PUT)",
                                        unit="replies",
                                        title=f"reply → SEKMET (FhirClient), {n} replies"),
                 note=f"{n} replies")
        finally:
            client.close()
            store.close()


if __name__ == "__main__":
    main()
