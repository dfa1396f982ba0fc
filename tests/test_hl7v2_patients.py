"""Outbound OML/ORM/RDE carry the patient the clinic has, not a bare MRN.

A task for a known patient names only the MRN. The channel reads that Patient from the
clinic's local store or its FHIR server and PID carries name, birth date, sex, address,
phone, race and ethnicity. Each message is sent over a real MLLP socket and what arrived
is read back independently with python-hl7; expected values are the Patient's own.
"""

from __future__ import annotations

import uuid
from typing import Any

import hl7
import requests

from mafhir.bundle import create, transaction
from mafhir.connectors.mllp import MLLPConnector
from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import Message, MessageStore, MLLPListener, Outcome, Receiver, V2Context
from mafhir.hl7v2.patients import lookup_for
from mafhir.outbox.local import LocalStore
from mafhir.pipeline import Failed, Pipeline
from mafhir.plugins import get_registry

JSON = dict[str, Any]
NPI = "1234567893"
CDC = "urn:oid:2.16.840.1.113883.6.238"


def _clinic() -> Clinic:
    return Clinic(name="Maple Street Family Clinic", system=f"urn:mafhir:test:{uuid.uuid4()}",
                  npi=NPI)


def _patient(c: Clinic, mrn: str) -> JSON:
    def ext(url: str, code: str, display: str) -> JSON:
        return {"url": f"http://hl7.org/fhir/us/core/StructureDefinition/{url}",
                "extension": [{"url": "ombCategory", "valueCoding": {
                    "system": CDC, "code": code, "display": display}},
                    {"url": "text", "valueString": display}]}

    return {"resourceType": "Patient",
            "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/"
                                 "us-core-patient"]},
            "extension": [ext("us-core-race", "2054-5", "Black or African American"),
                          ext("us-core-ethnicity", "2186-5", "Not Hispanic or Latino")],
            "identifier": [{"system": f"{c.system}/mrn", "value": mrn}],
            "name": [{"family": "Okafor", "given": ["Grace", "Ada"]}],
            "gender": "female", "birthDate": "1968-02-11",
            "address": [{"line": ["12 Elm St"], "city": "Springfield", "state": "IL",
                         "postalCode": "62701", "country": "US"}],
            "telecom": [{"system": "phone", "value": "217-555-0142"}]}


def _bundle(task: JSON, c: Clinic) -> JSON:
    entries = []
    for result in Pipeline(get_registry(), MapContext(clinic=c)).run([(0, task)]):
        assert not isinstance(result, Failed), result.problems
        entries += result.entries
    bundle = transaction(entries)
    assert not [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    return bundle


class Side:
    """The receiving system on a real loopback socket: keeps the raw text it received."""

    def __init__(self, path) -> None:
        self.texts: list[str] = []
        self.listener = MLLPListener("127.0.0.1", 0, Receiver(MessageStore(path), self))

    def __call__(self, msg: Message) -> Outcome:
        self.texts.append(msg.text)
        return Outcome("processed")


def _pid(text: str) -> Any:
    return hl7.parse(text.replace("\n", "\r")).segment("PID")


def _assert_demographics(pid: Any, mrn: str) -> None:
    assert str(pid[3][0][0]) == mrn
    assert (str(pid[5][0][0]), str(pid[5][0][1]), str(pid[5][0][2])) == \
        ("Okafor", "Grace", "Ada")
    assert str(pid[7]) == "19680211"
    assert str(pid[8]) == "F"
    assert (str(pid[10][0][0]), str(pid[10][0][2])) == ("2054-5", "CDCREC")
    assert [str(pid[11][0][k]) for k in (0, 2, 3, 4, 5)] == \
        ["12 Elm St", "Springfield", "IL", "62701", "US"]
    assert str(pid[13][0][0]) == "217-555-0142"
    assert (str(pid[22][0][0]), str(pid[22][0][2])) == ("2186-5", "CDCREC")


def _prescription(rx_id: str, mrn: str) -> dict:
    """A prescription task for the patient with ``mrn`` (the clinic's words)."""
    return {"task": "prescription", "id": rx_id, "patient": {"mrn": mrn},
            "written": "2026-11-27T10:12:00-05:00",
            "prescriber": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
            "medication": {"rxnorm": "314076"},
            "sig": {"text": "Take 1 tablet by mouth once daily"},
            "quantity": {"value": 30, "unit": "{tbl}"}, "days_supply": 30, "refills": 0,
            "pharmacy": {"ncpdp_id": "1234567", "name": "Main Street Pharmacy"}}


def _store_with_patient(tmp_path, clinic, mrn: str):
    """A local store holding the clinic's Patient ``mrn``; its path."""
    path = tmp_path / "store.db"
    store = LocalStore(path)
    store.send(transaction([create(_patient(clinic, mrn))]))
    store.close()
    return path


def test_rde_o11_pid_carries_the_patient_read_from_the_local_store(tmp_path):
    from mafhir_pharmacy.channels import V2Pharmacy

    c = _clinic()
    store_path = _store_with_patient(tmp_path, c, "MS-20001")
    task = _prescription("rx-1", "MS-20001")
    bundle = _bundle(task, c)
    side = Side(tmp_path / "pharmacy.db")
    ctx = V2Context(map=MapContext(clinic=c))
    with side.listener as listener:
        host, port = listener.address
        channel = V2Pharmacy(f"{host}:{port}", ctx=ctx, timeout=10,
                             patients=lookup_for(f"local:{store_path}"))
        assert channel.send(bundle)["acks"][0]["ack"] == "AA"
        channel.close()
    (text,) = side.texts
    _assert_demographics(_pid(text), "MS-20001")


def test_oml_o21_pid_carries_the_patient_read_from_the_fhir_server(tmp_path, fhir_base_url,
                                                                    monkeypatch):
    c = _clinic()
    created = requests.post(f"{fhir_base_url}/Patient", json=_patient(c, "MS-20002"),
                            headers={"Content-Type": "application/fhir+json"}, timeout=30)
    assert created.status_code == 201, created.text
    task = {"task": "lab_order", "id": "ord-1", "patient": {"mrn": "MS-20002"},
            "ordered": "2026-11-27T09:10:00-05:00",
            "requester": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
            "tests": [{"name": "hba1c"}], "priority": "routine"}
    bundle = _bundle(task, c)
    monkeypatch.setenv("MAFHIR_PATIENTS", fhir_base_url)
    side = Side(tmp_path / "lab.db")
    with side.listener as listener:
        host, port = listener.address
        connector = MLLPConnector(f"{host}:{port}/OML^O21",
                                  ctx=V2Context(map=MapContext(clinic=c)))
        assert connector.send(bundle)["ack"] == "AA"
        connector.close()
    (text,) = side.texts
    _assert_demographics(_pid(text), "MS-20002")


def test_mafhir_convert_to_hl7v2_fills_pid_from_the_clinics_patients(tmp_path, monkeypatch):
    """``mafhir convert --to hl7v2`` reads the Patient a task names only by MRN from where
    the clinic keeps it ($MAFHIR_PATIENTS), as the connectors do."""
    import json

    from click.testing import CliRunner

    from mafhir.cli.main import build_cli

    c = _clinic()
    store_path = _store_with_patient(tmp_path, c, "MS-20002")
    task = _prescription("rx-2", "MS-20002")
    (tmp_path / "rx.json").write_text(json.dumps(task))
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    monkeypatch.setenv("MAFHIR_PATIENTS", f"local:{store_path}")
    result = CliRunner().invoke(build_cli(), [
        "convert", "--to", "hl7v2", "--message", "RDE^O11", "--clinic",
        str(tmp_path / "clinic.json"), str(tmp_path / "rx.json")])
    assert result.exit_code == 0, result.output
    _assert_demographics(_pid(result.stdout), "MS-20002")
