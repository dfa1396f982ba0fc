"""Every RDE, RDS and OMP message of the public corpus converts to US Core without an
error, or is refused for a named, correct reason.

Real v2.8 prescriptions name the prescriber in PRT, leave ORC-12 empty and give the
pharmacy its own id: they are kept, and what US Core wants that they lack is reported
as an ``incomplete`` warning naming the field. What came out is compared with the message
read independently by python-hl7, and checked by the test kit's own US Core reader
(``tests/uscore.py``, 6.1.0 and 7.0.0), not by mafhir's validator alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hl7
import pytest
from helpers_pharmacy import clinic, corpus_dir

from mafhir.context import MapContext
from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.plugins import get_registry
from mafhir.validation import check_bundle

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
import uscore

TYPES = ("RDE", "RDS", "OMP")


def _theirs(data: bytes) -> hl7.Message:
    text = data.decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
    return hl7.parse("\r".join(line for line in text.split("\r") if line.strip()))


def _messages() -> list[Path]:
    root = corpus_dir() / "hl7v2"
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "edge-cases" not in path.parts:
            head = path.read_bytes()[:4000].decode("utf-8-sig", "replace")
            msh = next((line for line in head.replace("\n", "\r").split("\r")
                        if line.startswith("MSH")), "")
            fields = msh.split("|")
            if len(fields) > 8 and fields[8].split("^")[0] in TYPES:
                out.append(path)
    return out


def _ctx() -> V2Context:
    """As a clinic configures this sender: its MRN comes under assigning authority
    ``test1`` (PID-3.4 of the corpus messages)."""
    c = clinic()
    return V2Context(map=MapContext(clinic=c), namespaces={"test1": c.mrn_namespace})


@pytest.mark.corpus
def test_the_corpus_has_the_real_prescriptions():
    names = {p.name for p in _messages()}
    assert {"RDE-O11-01.hl7", "RDE-O11-02.hl7", "RDE-O25-01.hl7", "RDE-O25-02.hl7"} <= names


@pytest.mark.corpus
def test_every_corpus_rde_rds_omp_converts_or_is_refused_by_name():
    registry = get_registry()
    converted, refused = [], []
    for path in _messages():
        data = path.read_bytes()
        theirs = _theirs(data)
        kind = f"{theirs.segment('MSH')[9][0][0]}^{theirs.segment('MSH')[9][0][1]}"
        try:
            result = convert(registry, parse(data), _ctx())
        except InputError as exc:
            # refused: only a message type mafhir does not take, and it says which
            assert [(p.location, f"no converter for {kind}" in p.message)
                    for p in exc.problems] == [("MSH-9", True)], (path.name, exc.problems)
            refused.append(kind)
            continue
        converted.append(path.name)
        errors = [i for i in check_bundle(result.bundle, registry.profiles)
                  if i.severity in ("error", "fatal")]
        assert errors == [], (path.name, [str(i) for i in errors])
        for entry in result.bundle["entry"]:
            for version in ("6.1.0", "7.0.0"):
                assert uscore.check(entry["resource"], corpus_dir(), version) == [], \
                    (path.name, entry["resource"]["resourceType"])
        # every gap is named, coded incomplete, and points at the field the source lacks
        orcs = [s for s in theirs if str(s[0]) == "ORC"]
        for w in result.warnings:
            assert w.code == "incomplete"
            n = int(w.location.split("[")[1].split("]")[0])
            assert w.location == f"ORC[{n}]-12" and not str(orcs[n - 1][12]).strip()
    assert sorted(converted) == ["RDE-O11-01.hl7", "RDE-O11-02.hl7", "RDE-O25-01.hl7",
                                 "RDE-O25-02.hl7"]
    assert refused == ["RDS^O13", "RDS^O13"]  # dispense reports: no converter, said so


@pytest.mark.corpus
def test_corpus_rde_o11_keeps_the_patient_pid_names():
    data = (corpus_dir() / "hl7v2/rde-rds/microsoft-fhir-converter/RDE-O11-01.hl7").read_bytes()
    result = convert(get_registry(), parse(data), _ctx())
    (patient,) = [e["resource"] for e in result.bundle["entry"]
                  if e["resource"]["resourceType"] == "Patient"]
    pid = _theirs(data).segment("PID")
    assert patient["name"][0]["family"] == str(pid[5][0][0][0])  # FN.1 of the first XPN
    assert patient["name"][0]["given"][0] == str(pid[5][0][1])
    assert patient["birthDate"] == f"{str(pid[7])[:4]}-{str(pid[7])[4:6]}-{str(pid[7])[6:8]}"
    assert patient["gender"] == {"M": "male", "F": "female"}[str(pid[8])]
    assert patient["identifier"][0]["value"] == str(pid[3][0][0])
    mr = next(e for e in result.bundle["entry"]
              if e["resource"]["resourceType"] == "MedicationRequest")
    assert mr["resource"]["subject"]["reference"] == \
        next(e["fullUrl"] for e in result.bundle["entry"]
             if e["resource"]["resourceType"] == "Patient")


@pytest.mark.corpus
def test_corpus_rde_o25_is_kept_with_the_pharmacys_own_id_and_no_owner():
    data = (corpus_dir() / "hl7v2/rde-rds/microsoft-fhir-converter/RDE-O25-02.hl7").read_bytes()
    result = convert(get_registry(), parse(data), _ctx())
    theirs = _theirs(data)
    orcs = [s for s in theirs if str(s[0]) == "ORC"]
    tasks = [e["resource"] for e in result.bundle["entry"]
             if e["resource"]["resourceType"] == "Task"]
    assert len(tasks) == len(orcs) == 2
    for task in tasks:
        assert task["owner"] == {"extension": [{
            "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
            "valueCode": "unknown"}]}
    rxe40 = next(s for s in theirs if str(s[0]) == "RXE")[40]
    orgs = [e["resource"] for e in result.bundle["entry"]
            if e["resource"]["resourceType"] == "Organization"]
    assert [(i["value"], o["name"]) for o in orgs for i in o["identifier"]] == \
        [(str(rxe40[0][0]), str(rxe40[0][1]))]  # LF_CPM, its own name: kept, not refused
    assert orgs[0]["identifier"][0]["system"] == "urn:mafhir:v2-0396:L"  # table 0396 'L'
    assert [(w.location, w.code) for w in result.warnings] == [
        ("ORC[1]-12", "incomplete"), ("ORC[2]-12", "incomplete")]
