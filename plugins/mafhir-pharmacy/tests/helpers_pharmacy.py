"""Test data for the pharmacy plugin: a clinic with its own namespaces, tasks, and a
pharmacy stand-in on a real MLLP socket."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import Message, MessageStore, MLLPListener, Outcome, Receiver, Response
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry
from mafhir.testing.plugin import skip_or_fail

JSON = dict[str, Any]
NPI = "1234567893"  # passes the Luhn check


def clinic() -> Clinic:
    """A clinic whose identifier namespaces no other test (or helper) uses."""
    return Clinic(name="Maple Street Family Clinic", system=f"urn:mafhir:test:{uuid.uuid4()}",
                  npi=NPI)


def prescription(rx_id: str = "rx-5001", mrn: str = "MS-10022", **extra: Any) -> JSON:
    task: JSON = {
        "task": "prescription", "id": rx_id,
        "patient": {"mrn": mrn, "family": "Okafor", "given": ["Grace"], "gender": "female",
                    "birth_date": "1968-02-11"},
        "written": "2026-11-27T10:12:00-05:00",
        "prescriber": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
        "medication": {"rxnorm": "314076", "ndc": "00093-1111-01"},
        "sig": {"text": "Take 1 tablet by mouth once daily"},
        "quantity": {"value": 30, "unit": "{tbl}"}, "days_supply": 30, "refills": 3,
        "pharmacy": {"ncpdp_id": "1234567", "name": "Main Street Pharmacy",
                     "address": {"line": ["12 Main St"], "city": "Springfield", "state": "IL",
                                 "postal_code": "62701"}},
        "diagnoses": ["I10"],
    }
    task.update(extra)
    return task


def refill_request(request_id: str = "rr-1", rx_id: str = "rx-5001", **extra: Any) -> JSON:
    task: JSON = {
        "task": "refill_request", "id": request_id, "patient": {"mrn": "MS-10022"},
        "received": "2026-12-20T08:05:00-05:00", "prescription": rx_id,
        "prescriber": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
        "pharmacy": {"ncpdp_id": "1234567", "name": "Main Street Pharmacy"},
        "requested_quantity": {"value": 30, "unit": "{tbl}"}, "requested_refills": 3,
    }
    task.update(extra)
    return task


def run(tasks: list[JSON], c: Clinic) -> list:
    return list(Pipeline(get_registry(), MapContext(clinic=c)).run(enumerate(tasks)))


def mapped(tasks: list[JSON], c: Clinic) -> list:
    results = run(tasks, c)
    failed = [r for r in results if isinstance(r, Failed)]
    assert not failed, failed
    return results


def problems(tasks: list[JSON], c: Clinic) -> list[str]:
    """Every problem reported for the tasks, as text."""
    return [str(p) for r in run(tasks, c) if isinstance(r, Failed) for p in r.problems]


class PharmacyStandIn:
    """A pharmacy system on a real loopback MLLP socket: it keeps what it receives and
    answers with the ACK code asked for (through the shared Receiver)."""

    def __init__(self, path, outcome: str = "processed",
                 respond: Callable[[Message], Response] | None = None, port: int = 0) -> None:
        self.received: list[Message] = []
        self.outcome = outcome
        self.respond = respond  # an application response (RRE^O12…) instead of a bare ACK
        self.store = MessageStore(path)
        self.listener = MLLPListener("127.0.0.1", port, Receiver(self.store, self._handle))

    def _handle(self, msg: Message) -> Outcome:
        self.received.append(msg)
        response = self.respond(msg) if self.respond is not None else None
        return Outcome(self.outcome, response=response)  # type: ignore[arg-type]

    def __enter__(self) -> PharmacyStandIn:
        self.listener.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.stop()
        self.store.close()

    @property
    def target(self) -> str:
        host, port = self.listener.address
        return f"{host}:{port}"


def namespaces(c: Clinic) -> dict[str, str]:
    """The namespace table a clinic writes for its pharmacy: the authority under which the
    pharmacy echoes the clinic's MRN (``CLINIC``) is the clinic's MRN system."""
    return {"CLINIC": c.mrn_namespace}


def corpus_dir():
    """``../shared/corpus`` (or ``MAFHIR_CORPUS``); the test skips when it is absent."""
    import os
    from pathlib import Path


    root = Path(__file__).resolve().parents[3]
    path = Path(os.environ.get("MAFHIR_CORPUS", root.parent / "shared" / "corpus"))
    if not path.is_dir():
        skip_or_fail(f"the public corpus is not at {path}")
    return path


def rde_o25(placer: str, control_id: str, npi: str = NPI, ncpdp: str = "1234567",
            mrn_field: str = "MS-10022^^^CLINIC^MR") -> bytes:
    """An RDE^O25 as a pharmacy system sends it: the clinic's placer number echoed."""
    return (
        f"MSH|^~\\&|RXSYS|MAINST|MAFHIR|CLINIC|20261220080500-0500||RDE^O25^RDE_O25|"
        f"{control_id}|P|2.5.1\r"
        f"PID|1||{mrn_field}||Okafor^Grace||19680211|F\r"
        f"ORC|RF|{placer}|||||||20261220080500-0500|||{npi}^Reyes^Lena^^^^^^NPI&2.16.840.1."
        f"113883.4.6&ISO^L^^^NPI\r"
        f"RXE||314076^Lisinopril 10 MG Oral Tablet^RXNORM|1||{{tbl}}^{{tbl}}^UCUM||^Take 1 "
        f"tablet by mouth once daily||0|30|{{tbl}}^{{tbl}}^UCUM|3|||RX-778812|||||||||||||||||"
        f"||||||||{ncpdp}^Main Street Pharmacy^NCPDP\r"
        f"TQ1|1||QD||||||R\r"
        f"RXR|PO^Oral^HL70162\r"
    ).encode()
