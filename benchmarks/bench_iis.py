"""Immunization registry messages, measured side by side in one run.

Part 1 (VXU out). US Core Immunizations (+ Patient, Practitioners) of a day's doses —
given, refused and historical, with VIS, funding and eligibility — each written as a
VXU^V04 by ``mafhir_iis.vxu_out.vxu_v04``, against python-hl7 merely parsing the very
messages written. The sides run in interleaved rounds (:mod:`rounds`: A, B, A, B…), each
over about ``--seconds``, and the per-round ratio is printed as min / median, CPU beside
wall. The issue asks for VXU build at ≥ 0.5× the parse rate.

Part 2 (SOAP). The same VXUs submitted to the loopback stand-in IIS through the CDC SOAP
client, one at a time (each waits for its ACK): messages per second, for scale.

Part 3 (VXU in). Every VXU of the public corpus (``../shared/corpus/hl7v2/vxu`` or
``$MAFHIR_CORPUS``), then the VXUs of part 1, converted to FHIR by the plugin's
``to_fhir`` (parse + Patient + Immunizations, every RXA/RXR/OBX fact), against python-hl7's
bare parse of the same messages, in rounds; a second side adds the R4/US Core checks.
The issue asks for VXU → FHIR at ≥ 0.5× the parse rate.

Run: ``python benchmarks/bench_iis.py [--seconds S] [--doses N] [--rounds R] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hl7
from mafhir_iis.soap import Credentials, SoapClient
from mafhir_iis.standin import StandinIIS
from mafhir_iis.vxu_out import VxuSettings, vxu_v04

from mafhir.bundle import transaction
from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.pipeline import Pipeline
from mafhir.plugins import get_registry
from mafhir.resourceset import ResourceSet
from mafhir.validation import check_bundle
from rounds import emit, interleave, repeated, report, stopwatch

CLINIC = Clinic(name="Bench Clinic", system="https://bench.example.org/id", npi="1234567893")
SETTINGS = VxuSettings(facility_id="BENCH-1", receiving_application="IIS",
                       receiving_facility="IIS")
CTX = V2Context(map=MapContext(clinic=CLINIC), now=datetime(2025, 10, 1, 18, 0, tzinfo=UTC))


def task(i: int) -> dict:
    patient = {"mrn": f"B-{i}", "family": f"Doe{i}", "given": ["Sam"],
               "birth_date": "2016-02-03" if i % 2 else "1975-08-09", "gender": "male",
               "phone": "608-555-0100", "address": {"line": ["1 Main"], "city": "Madison",
                                                    "state": "WI", "postal_code": "53703"}}
    base = {"task": "immunization", "id": f"imm-{i}", "patient": patient,
            "occurred": "2025-10-01T09:15:00-04:00"}
    if i % 5 == 3:
        return {**base, "status": "not-given", "vaccine": {"cvx": "140"},
                "reason_not_given": "PATOBJ"}
    if i % 5 == 4:
        del base["occurred"]
        return {**base, "status": "historical", "vaccine": {"cvx": "03"},
                "occurred_date": "2017-03-01", "report_origin": "record"}
    return {**base, "vaccine": {"cvx": "140", "ndc": "49281-0425-50"}, "manufacturer": "PMC",
            "lot_number": f"L{i}", "expiration_date": "2026-06-30", "dose_ml": 0.5,
            "site": "LD", "route": "IM",
            "administered_by": {"npi": "1234567893", "family": "Rivera"},
            "vis": [{"document": "253088698300010311250131", "presented": "2025-10-01"}],
            "funding_source": "VXC51", "eligibility": "V03"}


def resource_sets(n: int) -> list[ResourceSet]:
    pipe = Pipeline(get_registry(), MapContext(clinic=CLINIC))
    return [ResourceSet.from_bundle(transaction(pipe.map_task(i, pipe.parse(i, task(i))).entries))
            for i in range(n)]


def each(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
    def once() -> None:
        for item in items:
            fn(item)

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per run")
    parser.add_argument("--doses", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="0.3 s, 20 doses, 3 rounds")
    args = parser.parse_args()
    seconds, doses, rounds = (0.3, 20, 3) if args.quick else (args.seconds, args.doses,
                                                              args.rounds)
    sets = resource_sets(doses)
    texts = [vxu_v04(rs, CTX, SETTINGS) for rs in sets]
    result = interleave({
        "python-hl7 parse of the same": repeated(each(hl7.parse, texts), len(texts), seconds),
        "VXU^V04 build (FHIR → v2)": repeated(
            each(lambda rs: vxu_v04(rs, CTX, SETTINGS), sets), len(sets), seconds)},
        rounds=rounds)
    emit("iis VXU out", report(result, baseline="python-hl7 parse of the same", unit="msgs",
                               title="VXU^V04 build against python-hl7's parse of the same "
                                     "messages (issue: ≥ 0.5×)"),
         note=f"{len(texts)} doses")
    with StandinIIS(username="bench", password="bench") as standin:
        client = SoapClient(standin.soap_url, Credentials("bench", "bench"), "BENCH-1")
        stop = stopwatch()
        for text in texts:
            client.submit(text)
        cpu, wall = stop()
        client.close()
    print(f"SOAP submit to the stand-in   {len(texts) / wall:8.0f} msg/s wall, "
          f"{cpu * 1000 / len(texts):.1f} ms CPU each ({len(texts)} VXUs, each waiting for "
          "its ACK)")
    corpus = corpus_vxus([])
    if corpus:
        vxu_in(corpus, seconds, rounds, "corpus VXUs")
    vxu_in(texts, seconds, rounds, "part 1's VXUs")


def corpus_vxus(fallback: list[str]) -> list[str]:
    root = Path(os.environ.get("MAFHIR_CORPUS",
                               Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
    out = []
    for path in sorted((root / "hl7v2" / "vxu").glob("*/*.hl7")):
        text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
        out.append("\r".join(line for line in text.split("\r") if line.strip()))
    return out or fallback


def vxu_in(texts: list[str], seconds: float, rounds: int, what: str) -> None:
    """Part 3: VXU → FHIR against python-hl7's bare parse of the same messages."""
    registry = get_registry()
    names = {rep.c(4, 1) for t in texts for rep in parse(t).first("PID").reps(3)}
    ctx = V2Context(map=MapContext(clinic=CLINIC),  # each sender's MRN authority mapped
                    namespaces={n: CLINIC.mrn_namespace for n in names if n})

    def to_fhir(text: str) -> None:
        convert(registry, parse(text), ctx)

    def checked(text: str) -> None:
        bundle = convert(registry, parse(text), ctx).bundle
        assert not check_bundle(bundle, registry.profiles, errors_only=True)

    n = len(texts)
    result = interleave({
        "python-hl7 parse of the same": repeated(each(hl7.parse, texts), n, seconds),
        "to_fhir": repeated(each(to_fhir, texts), n, seconds),
        "to_fhir + R4/US Core checks": repeated(each(checked, texts), n, seconds)},
        rounds=rounds)
    ratios = report(result, baseline="python-hl7 parse of the same", unit="msgs",
                    title=f"VXU^V04 → FHIR, {n} {what} (issue: to_fhir ≥ 0.5× the parse)")
    emit(f"iis VXU in ({what})", ratios)


if __name__ == "__main__":
    main()
