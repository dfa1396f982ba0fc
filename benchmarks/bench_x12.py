"""271 → FHIR against pyx12's own parse of the same files, in one run.

A: mafhir reads each 271 — separators from the ISA, envelopes checked, loops and every EB
read, the CoverageEligibilityResponse built (``read_271`` + ``response_resource``).
B: pyx12 4.0.0 parses the same text: its map-driven ``X12ContextReader`` walking every
segment (what pyx12 does to read a document), and, for reference, its raw
``X12Reader`` tokenizer alone. The sides run in interleaved rounds (:mod:`rounds`: A, B, C,
A, B, C…), each reading all the files as many times as fill about ``--seconds`` (measured
once, before), and the per-round ratio of rates is printed as min / median, CPU beside wall
(the goal: A ≥ 1× B, the map-driven parse). Inputs: the corpus 271
(``../shared/corpus/x12/271``) and the 271s the stand-in writes for its member table
(pyx12 ships no 005010X279A1 map, so the context reader reads those with its 4010 271 map:
ISA12 and GS08 are rewritten for B only).

Run: ``python benchmarks/bench_x12.py [--seconds S] [--rounds R] [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
from pathlib import Path

import pyx12.error_handler
import pyx12.params
import pyx12.x12context
import pyx12.x12file

from mafhir_x12_eligibility.fhir import response_resource
from mafhir_x12_eligibility.read271 import read_271_text
from mafhir_x12_eligibility.standin import MEMBERS, answer_270
from rounds import emit, interleave, repeated, report

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MAFHIR_CORPUS", ROOT.parent / "shared" / "corpus"))
REF = {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}


def inputs() -> list[str]:
    texts = [p.read_text() for p in sorted((CORPUS / "x12" / "271").rglob("*"))
             if p.is_file()]
    request = (CORPUS / "x12/270/linuxforhealth-x12/subscriber-health-benefit-check.270"
               ).read_text()
    for member in MEMBERS:
        asked = request.replace("MI*11122333301", f"MI*{member}")
        kind, text = answer_270(asked)
        if kind.startswith("X12_271"):
            texts.append(text)
    return texts


def mafhir(texts: list[str]) -> int:
    n = 0
    for text in texts:
        for result in read_271_text(text):
            response_resource(result, request=REF, patient=REF, insurer=REF, coverage=REF,
                              created="2026-03-04T09:15:00Z")
            n += 1
    return n


def as_4010(text: str) -> str:
    """For pyx12's context reader only: the ISA12/GS08 its 271 map is registered under."""
    if text[84:89] == "00501":
        text = text[:84] + "00401" + text[89:]
    return text.replace("*005010X279A1~", "*004010X092A1~", 1)


def pyx12_context(texts: list[str]) -> int:
    params = pyx12.params.params()
    n = 0
    for text in texts:
        errh = pyx12.error_handler.errh_null()
        reader = pyx12.x12context.X12ContextReader(params, errh, io.StringIO(as_4010(text)))
        for _node in reader.iter_segments():
            n += 1
    return n


def pyx12_raw(texts: list[str]) -> int:
    n = 0
    for text in texts:
        for _seg in pyx12.x12file.X12Reader(io.StringIO(text)):
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and contender")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="0.3 s, 3 rounds")
    args = parser.parse_args()
    seconds, rounds = (0.3, 3) if args.quick else (args.seconds, args.rounds)
    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    texts = inputs()
    print(f"{len(texts)} 271s ({sum(len(t) for t in texts)} bytes)")
    n = len(texts)
    result = interleave({
        "pyx12 context parse": repeated(lambda: pyx12_context(texts), n, seconds),
        "mafhir 271→FHIR": repeated(lambda: mafhir(texts), n, seconds),
        "pyx12 raw tokenize": repeated(lambda: pyx12_raw(texts), n, seconds)}, rounds=rounds)
    ratios = report(result, baseline="pyx12 context parse", unit="files",
                    title="271 → FHIR (goal ≥ 1× pyx12's map-driven parse; its raw tokenizer "
                          "for reference)")
    emit("x12 271", ratios.only("mafhir 271→FHIR"), note=f"{len(texts)} 271 files")


if __name__ == "__main__":
    main()
