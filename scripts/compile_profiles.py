"""Regenerate the compiled profile tables that ship with mafhir.

Reads the FHIR packages of the public corpus (the R4 core subset and the US Core 6.1.0
and 7.0.0 package archives) and writes ``src/mafhir/profiles/compiled/*.json.gz``.
``tests/test_profiles_corpus.py`` runs the same and compares the bytes.

    python scripts/compile_profiles.py [CORPUS] [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from mafhir.profiles.compiler import compile_package, write_compiled
from mafhir.profiles.packages import read_folder, read_tgz

ROOT = Path(__file__).resolve().parents[1]


def build(corpus: Path, out: Path) -> list[Path]:
    core = read_folder(corpus / "fhir-r4-core")
    written = []
    for package, context in [
        (core, []),
        (read_tgz(corpus / "us-core/packages/hl7.fhir.us.core-6.1.0.tgz"), [core]),
        (read_tgz(corpus / "us-core/packages/hl7.fhir.us.core-7.0.0.tgz"), [core]),
    ]:
        path = out / f"{package.name}-{package.version}.json.gz"
        write_compiled(compile_package(package, context), path)
        written.append(path)
    return written


if __name__ == "__main__":
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "corpus"
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "src/mafhir/profiles/compiled"
    for path in build(corpus, out):
        print(f"{path} {path.stat().st_size} bytes")
