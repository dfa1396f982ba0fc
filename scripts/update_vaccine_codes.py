#!/usr/bin/env python3
"""Regenerate the CVX and MVX tables shipped in ``src/mafhir/codes/data``.

Inputs:

* the AIRA immunization code base (``immregistries/codebase``, ``base/sets``; Apache-2.0),
  as kept in the shared corpus: ``Vaccination CVX Code.xml`` and ``Vaccination Manufacturer
  Code.xml`` (required). They give every code, its label and the CDC full name
  (``description``, with CDC's "Notes:" appended), and AIRA's use dates.
* optionally the CDC CVX table itself in CDC's XML layout (``XML2.asp?rpt=cvx``, mirrored in
  the same repository as ``cdc-source/cvx.xml``; public domain), via ``--cdc-cvx``.

Why both: the AIRA set carries no CDC status and lags the CDC table. Its CVX labels keep
pre-2024 names (140 is "Influenza, seasonal, injectable, preservative free", not CDC's
"Influenza, split virus, trivalent, PF") and it still ends the use of the trivalent flu codes
that CDC reactivated for 2024/2025 (140, 153, 111 …). With ``--cdc-cvx`` the CDC status and
short description win; without it the status is derived from AIRA (``concept-type`` and
``use-date/not-after``, reactivated by a later trade name) and the output says so in its
header. The MVX status is always derived from AIRA (``not-after`` present → Inactive), which
matches the CDC MVX table for every code both have.

The CSVs start with ``#`` comment lines naming the sources and commits; then a header row.
CVX codes stay strings ("03", "08"). Run from the repository root::

    python scripts/update_vaccine_codes.py [--corpus ../shared/corpus] [--cdc-cvx cvx.xml]
    python scripts/update_vaccine_codes.py --check     # exit 1 when the shipped CSVs differ
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "mafhir" / "codes" / "data"
CODE_SETS = "code-sets/aira-immunization-codebase"
CVX_XML = "Vaccination CVX Code.xml"
MVX_XML = "Vaccination Manufacturer Code.xml"
TRADE_XML = "Vaccination Trade Name.xml"

#: CDC CVX statuses; the AIRA concept types that map onto them.
CONCEPT_STATUS = {"never active": "Never Active", "pending": "Pending", "foreign vaccine": "Non-US"}


def _text(value: str | None) -> str:
    """XML text with its line wrapping undone."""
    return re.sub(r"\s+", " ", value or "").strip()


def _full_name(description: str) -> str:
    """The CDC full vaccine name: AIRA's description without the appended CDC notes."""
    return _text(description).split(" Notes:", 1)[0].strip()


def _source(corpus: Path, name: str) -> str:
    """``repo@commit path`` of a corpus file, from the corpus manifest."""
    path = f"{CODE_SETS}/{name}"
    manifest = corpus / "manifest.json"
    if manifest.exists():
        for item in json.loads(manifest.read_text(encoding="utf-8")):
            if item.get("path") == path:
                commit = item["commit"][:12]
                return f"{item['repo']}@{commit} {item['source_path']} ({item['license']})"
    return f"{path} (corpus; no manifest entry)"


def _reactivated(corpus: Path) -> dict[str, list[tuple[str | None, str | None]]]:
    """Per CVX, the (not-before, not-after) of its trade names in the AIRA set."""
    root = ET.parse(corpus / CODE_SETS / TRADE_XML).getroot()
    out: dict[str, list[tuple[str | None, str | None]]] = defaultdict(list)
    for code in root.findall("code"):
        span = (code.findtext("use-date/not-before"), code.findtext("use-date/not-after"))
        for link in code.findall("reference/link-to"):
            if link.get("codeset") == "VACCINATION_CVX_CODE" and link.text:
                out[link.text.strip()].append(span)
    return out


def aira_cvx(corpus: Path) -> dict[str, dict[str, str]]:
    """Every CVX code of the AIRA set with a status derived from AIRA's own data."""
    trade = _reactivated(corpus)
    rows: dict[str, dict[str, str]] = {}
    for code in ET.parse(corpus / CODE_SETS / CVX_XML).getroot().findall("code"):
        value = _text(code.findtext("value"))
        concept = _text(code.findtext("concept-type"))
        ended = code.findtext("use-date/not-after")
        if concept in CONCEPT_STATUS:
            status = CONCEPT_STATUS[concept]
        elif ended and not any(nb and nb > ended and not na for nb, na in trade.get(value, [])):
            status = "Inactive"
        else:
            status = "Active"
        rows[value] = {
            "code": value,
            "status": status,
            "short_description": _text(code.findtext("label")),
            "full_name": _full_name(code.findtext("description") or ""),
        }
    return rows


def cdc_cvx(path: Path) -> dict[str, tuple[str, str]]:
    """CVX code → (status, short description) from a CDC ``cvx.xml``."""
    out = {}
    for info in ET.parse(path).getroot().iter("CVXInfo"):
        code = _text(info.findtext("CVXCode"))
        out[code] = (_text(info.findtext("Status")), _text(info.findtext("ShortDescription")))
    return out


def aira_mvx(corpus: Path) -> list[dict[str, str]]:
    rows = []
    for code in ET.parse(corpus / CODE_SETS / MVX_XML).getroot().findall("code"):
        rows.append({
            "code": _text(code.findtext("value")),
            "status": "Inactive" if code.findtext("use-date/not-after") else "Active",
            "name": _text(code.findtext("label")),
        })
    return sorted(rows, key=lambda r: r["code"])


def _sort_key(code: str) -> tuple[int, str]:
    return (int(code), code) if code.isdigit() else (10**9, code)


def render(comments: list[str], fields: list[str], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    for line in comments:
        buf.write(f"# {line}\n")
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def build(corpus: Path, cdc: Path | None, cdc_label: str) -> dict[str, str]:
    rows = aira_cvx(corpus)
    comments = [
        "CDC CVX codes (public domain), generated by scripts/update_vaccine_codes.py; do not edit.",
        f"codes, full names: {_source(corpus, CVX_XML)}",
    ]
    if cdc is not None:
        table = cdc_cvx(cdc)
        for code, (status, short) in table.items():
            row = rows.setdefault(code, {"code": code, "full_name": short})
            row["status"], row["short_description"] = status, short
        missing = sorted(set(rows) - set(table), key=_sort_key)
        comments.append(f"status, short descriptions: CDC cvx.xml ({cdc_label})")
        if missing:
            comments.append(f"not in the CDC table, status derived from AIRA: {' '.join(missing)}")
    else:
        comments.append("status derived from AIRA use dates (no CDC table given); "
                        "short descriptions are AIRA labels")
    cvx_rows = [rows[c] for c in sorted(rows, key=_sort_key)]
    mvx_comments = [
        "CDC MVX codes (public domain), generated by scripts/update_vaccine_codes.py; do not edit.",
        f"codes, names: {_source(corpus, MVX_XML)}",
        "status: Inactive when AIRA gives a use-date/not-after, else Active",
    ]
    return {
        "cvx.csv": render(comments, ["code", "status", "short_description", "full_name"],
                          cvx_rows),
        "mvx.csv": render(mvx_comments, ["code", "status", "name"], aira_mvx(corpus)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    corpus = os.environ.get("MAFHIR_CORPUS", ROOT.parent / "shared" / "corpus")
    parser.add_argument("--corpus", type=Path, default=Path(corpus))
    parser.add_argument("--cdc-cvx", type=Path, help="CDC cvx.xml (XML2.asp?rpt=cvx layout)")
    parser.add_argument("--cdc-label",
                        default="immregistries/codebase@641f2ea42152 cdc-source/cvx.xml",
                        help="where --cdc-cvx came from, for the CSV header")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    if not (args.corpus / CODE_SETS / CVX_XML).exists():
        print(f"AIRA code sets not found under {args.corpus / CODE_SETS}", file=sys.stderr)
        return 2
    outputs = build(args.corpus, args.cdc_cvx, args.cdc_label)
    stale = []
    for name, text in outputs.items():
        target = args.out / name
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target} ({text.count(chr(10))} lines)")
    if stale:
        print(f"out of date: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
