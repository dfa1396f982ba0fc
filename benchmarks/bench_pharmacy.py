"""Prescriptions per second through each pharmacy interface, against the bare transport.

FHIR: N prescription tasks, each mapped (pure mapper, R4 structure + US Core rules) and
posted to SEKMET (a server of its own, simulator off) as one transaction through the
``pharmacy-fhir`` channel — against a plain ``requests.Session`` posting the same,
already-built Bundles. HL7 v2: the same tasks mapped, written as RDE^O11 and sent over
MLLP on loopback with the ACK read (``pharmacy-v2``) — against a raw socket writing the
same, already-built messages in MLLP frames and reading each reply. The receiving side
is the shared MLLP listener with its SQLite store. The sides run in interleaved rounds
(:mod:`rounds`: bare, mafhir, bare, mafhir…); only the sending part is timed (the bare side's
Bundles and messages are built before its clock starts), and the per-round ratio
mafhir / bare is printed as min / median, CPU beside wall.

Run: ``make bench`` (or ``python benchmarks/bench_pharmacy.py [--n N] [--rounds R] [--quick]``).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import requests

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import (
    MessageStore,
    MLLPListener,
    Outcome,
    Receiver,
    V2Context,
    from_fhir,
)
from mafhir.hl7v2.mllp import FrameReader, frame
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.testing import start_fhir_server
from mafhir_pharmacy.channels import FhirPharmacy, V2Pharmacy
from rounds import Side, emit, interleave, report, stopwatch

DRUGS = ["314076", "197361", "308191", "860975", "310798", "197499"]


def tasks(n: int, tag: str) -> list[dict]:
    out = []
    for i in range(n):
        out.append({
            "task": "prescription", "id": f"rx-{tag}-{i}",
            "patient": {"mrn": f"MS-{i % 50:05d}", "family": "Okafor", "given": ["Grace"],
                        "gender": "female", "birth_date": "1968-02-11"},
            "written": "2026-11-27T10:12:00-05:00",
            "prescriber": {"npi": "1234567893", "family": "Reyes", "given": ["Lena"]},
            "medication": {"rxnorm": DRUGS[i % len(DRUGS)]},
            "sig": {"text": "Take 1 tablet by mouth twice daily for 10 days"},
            "quantity": {"value": 20, "unit": "{tbl}"}, "days_supply": 10, "refills": 1,
            "pharmacy": {"ncpdp_id": "1234567", "name": "Main Street Pharmacy"},
            "diagnoses": ["I10"]})
    return out


def mapped(raw: list[dict], clinic: Clinic) -> list[dict]:
    pipeline = Pipeline(get_registry(), MapContext(clinic=clinic))
    out = []
    for result in pipeline.run(enumerate(raw)):
        assert not isinstance(result, Failed), result
        out.append(transaction(result.entries))
    return out


def fhir_bare(base: str, n: int) -> tuple[float, float]:
    """The same Bundles, pre-built, posted with a plain session."""
    clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    bundles = [orjson.dumps(b) for b in mapped(tasks(n, "b"), clinic)]
    session = requests.Session()
    stop = stopwatch()
    for body in bundles:
        r = session.post(base, data=body, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 200, r.text[:200]
    took = stop()
    session.close()
    return took


def fhir_mafhir(base: str, n: int) -> tuple[float, float]:
    """Map + validate + send through the pharmacy-fhir channel."""
    clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    raw = tasks(n, "m")
    channel = FhirPharmacy(base, clinic_system=clinic.system)
    pipeline = Pipeline(get_registry(), MapContext(clinic=clinic))
    stop = stopwatch()
    for result in pipeline.run(enumerate(raw)):
        assert not isinstance(result, Failed)
        channel.send(transaction(result.entries))
    took = stop()
    channel.close()
    return took


def _accept(msg: object) -> Outcome:
    return Outcome("processed")


def v2_bare(n: int, tmp: Path) -> tuple[float, float]:
    """A raw socket writing the same, pre-built messages in MLLP frames, reading each ACK."""
    clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    ctx = V2Context(map=MapContext(clinic=clinic), now=datetime(2026, 11, 27, tzinfo=UTC))
    registry = get_registry()
    texts = [from_fhir(registry, "RDE^O11", ResourceSet.from_bundle(b), ctx).encode()
             for b in mapped(tasks(n, "v"), clinic)]
    store = MessageStore(tmp / f"bare-{uuid.uuid4().hex}.sqlite")
    with MLLPListener("127.0.0.1", 0, Receiver(store, _accept)) as listener:
        sock = socket.create_connection(listener.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader(1 << 20)
        stop = stopwatch()
        for text in texts:
            sock.sendall(frame(text))
            reply = None
            while reply is None:
                for payload in reader.feed(sock.recv(65536)):
                    reply = payload
            assert b"MSA|AA" in reply
        took = stop()
        sock.close()
    store.close()
    return took


def v2_mafhir(n: int, tmp: Path) -> tuple[float, float]:
    """Map + validate + RDE^O11 through the pharmacy-v2 channel, each ACK checked."""
    store = MessageStore(tmp / f"ours-{uuid.uuid4().hex}.sqlite")
    clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    raw = tasks(n, "w")
    with MLLPListener("127.0.0.1", 0, Receiver(store, _accept)) as listener:
        host, port = listener.address
        channel = V2Pharmacy(f"{host}:{port}")
        channel.use_clinic(clinic)
        pipeline = Pipeline(get_registry(), MapContext(clinic=clinic))
        stop = stopwatch()
        for result in pipeline.run(enumerate(raw)):
            assert not isinstance(result, Failed)
            summary = channel.send(transaction(result.entries))
            assert summary["acks"][0]["ack"] == "AA"
        took = stop()
        channel.close()
    assert store.counts() == {"processed": n}
    store.close()
    return took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="prescriptions per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="60 prescriptions, 2 rounds")
    args = parser.parse_args(argv)
    n, rounds = (60, 2) if args.quick else (args.n, args.rounds)
    get_registry()
    server = start_fhir_server()
    try:
        fhir = interleave({
            "bare": Side(lambda: fhir_bare(server.base_url, n), units=n),
            "mafhir": Side(lambda: fhir_mafhir(server.base_url, n), units=n)}, rounds=rounds)
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        v2 = interleave({"bare": Side(lambda: v2_bare(n, Path(tmp)), units=n),
                         "mafhir": Side(lambda: v2_mafhir(n, Path(tmp)), units=n)},
                        rounds=rounds)
    emit("pharmacy FHIR", report(
        fhir, baseline="bare", unit="prescriptions",
        title="FHIR (SEKMET, one transaction per prescription): mafhir map + validate + "
              "pharmacy-fhir channel vs requests.Session POST of the same Bundles"),
        note="one transaction per prescription to SEKMET")
    print()
    emit("pharmacy v2", report(
        v2, baseline="bare", unit="prescriptions",
        title="HL7 v2 RDE^O11 over MLLP (loopback, SQLite store): mafhir map + validate + "
              "pharmacy-v2 channel vs a raw socket sending the same messages"),
        note="RDE^O11 over MLLP, loopback")


if __name__ == "__main__":
    main()
