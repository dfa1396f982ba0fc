"""VXU^V04 → FHIR (the iis plugin's ``to_fhir``) against python-hl7's bare parse of the
same messages, in one run.

Messages: every VXU of the public corpus (``../shared/corpus/hl7v2/vxu``, or
``$MAFHIR_CORPUS``), repeated to N. Bare: ``hl7.parse`` of each text (no conversion, no
checks). mafhir: parse + convert to a transaction Bundle (Patient, Immunizations, every
RXA/RXR/OBX fact); a second line adds the structure and US Core checks. Runs alternate
(bare, mafhir) and the best of each is reported with the ratio mafhir / bare — the goal
of issue 15 is ≥ 0.5 for the conversion.

Run: ``python benchmarks/bench_iis_in.py [--n N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import hl7

from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.plugins import get_registry
from mafhir.validation import check_bundle

CORPUS = Path(os.environ.get("MAFHIR_CORPUS",
                             Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))


def messages() -> list[str]:
    paths = sorted((CORPUS / "hl7v2" / "vxu").glob("*/*.hl7"))
    if not paths:
        raise SystemExit(f"no VXU messages under {CORPUS} (set MAFHIR_CORPUS)")
    out = []
    for path in paths:
        text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
        out.append("\r".join(line for line in text.split("\r") if line.strip()))
    return out


def context(texts: list[str]) -> V2Context:
    """The clinic maps every sender's PID-3 authority to its MRN (as each sender is set up)."""
    clinic = Clinic(name="Bench", system="urn:mafhir:bench")
    names = {rep.c(4, 1) for t in texts for rep in parse(t).first("PID").reps(3)}
    return V2Context(map=MapContext(clinic=clinic),
                     namespaces={n: clinic.mrn_namespace for n in names if n})


def timed(fn, items: list[str]) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=600, help="messages per run")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    base = messages()
    texts = (base * (args.n // len(base) + 1))[:args.n]
    registry = get_registry()
    ctx = context(base)

    def ours(text: str) -> None:
        convert(registry, parse(text), ctx)

    def checked(text: str) -> None:
        bundle = convert(registry, parse(text), ctx).bundle
        assert not [i for i in check_bundle(bundle, registry.profiles)
                    if i.severity in ("error", "fatal")]

    ours(texts[0])  # warm the code tables
    runs = [(timed(hl7.parse, texts), timed(ours, texts), timed(checked, texts))
            for _ in range(args.rounds)]
    bare, mine, full = (max(r[i] for r in runs) for i in range(3))
    print(f"VXU^V04 → FHIR, {len(base)} corpus messages repeated to {args.n}, best of "
          f"{args.rounds}")
    print(f"  {'bare: python-hl7 hl7.parse':<50} {bare:8.0f} messages/s")
    print(f"  {'mafhir: parse + convert (to_fhir)':<50} {mine:8.0f} messages/s  "
          f"ratio {mine / bare:.2f}")
    print(f"  {'mafhir: parse + convert + R4/US Core checks':<50} {full:8.0f} messages/s  "
          f"ratio {full / bare:.2f}")


if __name__ == "__main__":
    main()
