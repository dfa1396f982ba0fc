"""Throughput of ``mafhir send`` (FhirClient) against plain ``requests``, on one SEKMET run.

Three ways to deliver the same heart-rate Observations (transaction Bundles of 100):

* mafhir: ``FhirClient.send`` (capabilities, retries, logging, response checks);
* baseline: a keep-alive ``requests.Session`` posting the same Bundles in a loop;
* naive: one ``POST /Observation`` per resource on a keep-alive session.

Then pages through 10,000 Observations with ``FhirClient.search`` and reports the Python
memory held at page 2 and at the last page (streaming: it must not grow with the count).
The three run in interleaved rounds (:mod:`rounds`), each on Bundles built before its clock
starts, and the per-round ratio to the baseline is printed as min / median, CPU (this
process) beside wall. Prints ratios; asserts nothing about time (machines differ).

    python benchmarks/bench_send.py [--resources 2000] [--page-total 10000] [--quick]
"""

from __future__ import annotations

import argparse
import tracemalloc
import uuid

import requests

from mafhir.testing import fhir_server
from mafhir_fhir_rest.client import FhirClient
from rounds import Side, emit, interleave, report, stopwatch


def observation(system: str, i: int) -> dict:
    return {"resourceType": "Observation", "identifier": [{"system": system, "value": str(i)}],
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/bench"},
            "effectiveDateTime": "2026-03-04T09:15:00-05:00",
            "valueQuantity": {"value": 60 + i % 40, "unit": "/min",
                              "system": "http://unitsofmeasure.org", "code": "/min"}}


def bundles(system: str, n: int, size: int = 100) -> list[dict]:
    out = []
    for start in range(0, n, size):
        out.append({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": observation(system, i),
             "request": {"method": "POST", "url": "Observation",
                         "ifNoneExist": f"identifier={system}|{i}"}}
            for i in range(start, min(n, start + size))]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resources", type=int, default=2000)
    ap.add_argument("--naive", type=int, default=500)
    ap.add_argument("--page-total", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--quick", action="store_true",
                    help="500 resources, 100 naive, 2,000 paged, 3 rounds")
    args = ap.parse_args()
    if args.quick:
        args.resources, args.naive, args.page_total, args.rounds = 500, 100, 2000, 3
    base = fhir_server().base_url
    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

    client = FhirClient(base)
    client.capabilities()
    session = requests.Session()

    def with_mafhir() -> tuple[float, float]:
        prepared = bundles(f"urn:bench:{uuid.uuid4()}", args.resources)
        stop = stopwatch()
        for b in prepared:
            client.send(b)
        return stop()

    def baseline() -> tuple[float, float]:
        prepared = bundles(f"urn:bench:{uuid.uuid4()}", args.resources)
        stop = stopwatch()
        for b in prepared:
            r = session.post(base, json=b, headers=headers)
            r.raise_for_status()
        return stop()

    def naive() -> tuple[float, float]:
        system = f"urn:bench:{uuid.uuid4()}"
        stop = stopwatch()
        for i in range(args.naive):
            r = session.post(f"{base}/Observation", json=observation(system, i),
                             headers=headers)
            r.raise_for_status()
        return stop()

    result = interleave({"baseline": Side(baseline, units=args.resources),
                         "mafhir": Side(with_mafhir, units=args.resources),
                         "naive": Side(naive, units=args.naive)}, rounds=args.rounds)
    ratios = report(result, baseline="baseline", unit="resources",
                    title="transaction Bundles of 100 Observations to SEKMET: FhirClient.send "
                          "and one POST per resource against a requests.Session loop")
    emit("send", ratios.only("mafhir"), note="Bundles of 100 Observations to SEKMET")

    system = f"urn:bench:page:{uuid.uuid4()}"
    for b in bundles(system, args.page_total, 500):
        client.send(b)
    tracemalloc.start()
    held = {}
    count = 0
    last_page_at = args.page_total - 50
    for i, _ in enumerate(client.search("Observation", {"identifier": f"{system}|"}, count=500)):
        count += 1
        if i in (600, last_page_at):
            held[i] = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"paged {count} Observations; Python memory held at page 2: {held[600] / 1e6:.1f} MB,"
          f" at the last page: {held[last_page_at] / 1e6:.1f} MB"
          f" (last / page 2 = {held[last_page_at] / held[600]:.2f})")
    # for contrast, what keeping the result would hold (the growth streaming avoids)
    tracemalloc.start()
    kept = list(client.search("Observation", {"identifier": f"{system}|"}, count=500))
    whole = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"the same {len(kept)} Observations kept in a list: {whole / 1e6:.1f} MB")
    del kept
    client.close()


if __name__ == "__main__":
    main()
