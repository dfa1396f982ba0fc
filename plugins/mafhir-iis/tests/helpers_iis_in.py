"""Test data for the iis plugin (w4 part: queries, answers, VXU in): a clinic with its own
namespaces, the corpus, python-hl7's independent reading, and the US Core checker."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import hl7
from helpers_iis import corpus_dir

from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
import uscore  # noqa: E402 - the independent checker lives with the core tests

__all__ = ["clinic", "corpus_dir", "ctx_for", "resources", "theirs", "uscore_problems"]

JSON = dict[str, Any]
NPI = "1234567893"  # passes the Luhn check


def clinic() -> Clinic:
    """A clinic whose identifier namespaces no other test uses."""
    return Clinic(name="Birch Lane Pediatrics", system=f"urn:mafhir:test:{uuid.uuid4()}",
                  npi=NPI, time_zone="America/Chicago")


def theirs(data: bytes | str) -> hl7.Message:
    """The message as python-hl7 reads it (an independent parser)."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return hl7.parse("\r".join(line for line in text.split("\r") if line.strip()))


def ctx_for(data: bytes | str, c: Clinic | None = None) -> V2Context:
    """As a clinic configures the sender: the authorities of PID-3 name its MRNs."""
    c = c or clinic()
    msg = theirs(data)
    authorities = set()
    for seg in msg:
        if str(seg[0]) == "PID" and len(seg) > 3:
            for rep in str(seg[3]).split("~"):
                parts = rep.split("^")
                if len(parts) > 3:
                    authorities.add(parts[3])
    return V2Context(map=MapContext(clinic=c),
                     namespaces={a.split("&")[0]: c.mrn_namespace for a in authorities if a})


def uscore_problems(resource: JSON, corpus: Path) -> list[str]:
    return [p for v in ("6.1.0", "7.0.0") for p in uscore.check(resource, corpus, v)]


def resources(bundle: JSON, rtype: str) -> list[JSON]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]
