"""Prescriptions per second through each pharmacy interface, against the bare transport.

FHIR: N prescription tasks, each mapped (pure mapper, R4 structure + US Core rules) and
posted to SEKMET (a server of its own, simulator off) as one transaction through the
``pharmacy-fhir`` channel — against a plain ``requests.Session`` posting the same,
already-built Bundles. HL7 v2: the same tasks mapped, written as RDE^O11 and sent over
MLLP on loopback with the ACK read (``pharmacy-v2``) — against a raw socket writing the
same, already-built messages in MLLP frames and reading each reply. The receiving side
is the shared MLLP listener with its SQLite store. Runs alternate (bare, mafhir, bare,
mafhir) and the best of each is reported with the ratio mafhir / bare.

Run: ``make bench`` (or ``python benchmarks/bench_pharmacy.py [--n N] [--rounds R]``).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
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


def fhir_round(base: str, n: int) -> tuple[float, float]:
    # bare: the same Bundles, pre-built, posted with a plain session
    bare_clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    bundles = [orjson.dumps(b) for b in mapped(tasks(n, "b"), bare_clinic)]
    session = requests.Session()
    t0 = time.perf_counter()
    for body in bundles:
        r = session.post(base, data=body, headers={"Content-Type": "application/fhir+json"})
        assert r.status_code == 200, r.text[:200]
    bare = n / (time.perf_counter() - t0)
    session.close()
    # mafhir: map + validate + send through the pharmacy-fhir channel
    clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    raw = tasks(n, "m")
    channel = FhirPharmacy(base, clinic_system=clinic.system)
    pipeline = Pipeline(get_registry(), MapContext(clinic=clinic))
    t0 = time.perf_counter()
    for result in pipeline.run(enumerate(raw)):
        assert not isinstance(result, Failed)
        channel.send(transaction(result.entries))
    ours = n / (time.perf_counter() - t0)
    channel.close()
    return bare, ours


def v2_round(n: int, tmp: Path) -> tuple[float, float]:
    def accept(msg):
        return Outcome("processed")

    clinic = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    ctx = V2Context(map=MapContext(clinic=clinic), now=datetime(2026, 11, 27, tzinfo=UTC))
    registry = get_registry()
    texts = [from_fhir(registry, "RDE^O11", ResourceSet.from_bundle(b), ctx).encode()
             for b in mapped(tasks(n, "v"), clinic)]
    store = MessageStore(tmp / f"bare-{uuid.uuid4().hex}.sqlite")
    with MLLPListener("127.0.0.1", 0, Receiver(store, accept)) as listener:
        sock = socket.create_connection(listener.address)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = FrameReader(1 << 20)
        t0 = time.perf_counter()
        for text in texts:
            sock.sendall(frame(text))
            reply = None
            while reply is None:
                for payload in reader.feed(sock.recv(65536)):
                    reply = payload
            assert b"MSA|AA" in reply
        bare = n / (time.perf_counter() - t0)
        sock.close()
    store.close()
    store = MessageStore(tmp / f"ours-{uuid.uuid4().hex}.sqlite")
    clinic2 = Clinic(name="Bench", system=f"urn:mafhir:bench:{uuid.uuid4()}")
    raw = tasks(n, "w")
    with MLLPListener("127.0.0.1", 0, Receiver(store, accept)) as listener:
        host, port = listener.address
        channel = V2Pharmacy(f"{host}:{port}")
        channel.use_clinic(clinic2)
        pipeline = Pipeline(registry, MapContext(clinic=clinic2))
        t0 = time.perf_counter()
        for result in pipeline.run(enumerate(raw)):
            assert not isinstance(result, Failed)
            summary = channel.send(transaction(result.entries))
            assert summary["acks"][0]["ack"] == "AA"
        ours = n / (time.perf_counter() - t0)
        channel.close()
    assert store.counts() == {"processed": n}
    store.close()
    return bare, ours


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="prescriptions per run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    get_registry()
    server = start_fhir_server()
    try:
        fhir = [fhir_round(server.base_url, args.n) for _ in range(args.rounds)]
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        v2 = [v2_round(args.n, Path(tmp)) for _ in range(args.rounds)]
    for name, runs, bare_what in (
            ("FHIR (SEKMET, one transaction per prescription)", fhir,
             "requests.Session POST of the same Bundles"),
            ("HL7 v2 RDE^O11 over MLLP (loopback, SQLite store FULL sync)", v2,
             "raw socket, same messages, MLLP frames")):
        bare = max(b for b, _ in runs)
        ours = max(o for _, o in runs)
        print(name)
        print(f"  {'bare: ' + bare_what:<52} {bare:8.0f} prescriptions/s")
        print(f"  {'mafhir: map + validate + channel + reply checked':<52} {ours:8.0f} "
              "prescriptions/s")
        print(f"  ratio mafhir / bare {ours / bare:.2f}")


if __name__ == "__main__":
    main()
