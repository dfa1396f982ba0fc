"""``mafhir sync --to iis:NAME``: immunization tasks → outbox → the stand-in IIS, over SOAP
and over MLLP, on real loopback sockets; every ACK outcome where the outbox shows it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers_iis import (
    CLINIC,
    CREDENTIALS_ENV,
    MRN_SYSTEM,
    V2CTX,
    flu_shot,
    resources_of,
    running_standin,
    write_config,
)
from mafhir_iis.ack import read_iis_ack
from mafhir_iis.config import load_iis
from mafhir_iis.connector import IisConnector
from mafhir_iis.soap import Credentials, SoapClient
from mafhir_iis.standin import PatientQuery, StandinIIS
from mafhir_iis.vxu_out import VxuSettings, vxu_v04

from mafhir.cli.main import build_cli
from mafhir.outbox import open_store
from mafhir.testing import check_contract

MAFHIR = str(Path(sys.executable).parent / "mafhir")


def adult(mrn: str = "MRN-77", **over: Any) -> dict[str, Any]:
    """An adult with every field the guide expects: the registry answers AA."""
    ref = {"mrn": mrn, "system": MRN_SYSTEM, "family": "Roe", "given": ["Ann"],
           "birth_date": "1970-01-02", "gender": "female", "phone": "608-555-0101",
           "address": {"line": ["1 Main St"], "city": "Madison", "state": "WI",
                       "postal_code": "53703"}}
    ref.update(over)
    return ref


@pytest.fixture(name="standin")
def _standin() -> Iterator[StandinIIS]:
    with running_standin() as running:
        yield running


def sync(tmp: Path, tasks: list[dict[str, Any]], transport: str, standin: StandinIIS,
         env: dict[str, str] | None = None, attempts: int = 3) -> dict[str, Any]:
    """``mafhir sync --to iis:state`` in this process (the sockets are real; a process of
    its own is what the SIGKILL test needs, not this one)."""
    (tmp / "clinic.json").write_text(CLINIC.model_dump_json())
    (tmp / "doses.ndjson").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    config = write_config(tmp / "mafhir.toml", standin, transport=transport)
    run = CliRunner().invoke(build_cli(), [
        "sync", "--to", "iis:state", "--db", str(tmp / "outbox.db"), "--clinic",
        str(tmp / "clinic.json"), "--json", "--retry-base", "0.05", "--max-attempts",
        str(attempts), "--threads", "2", "--no-progress", str(tmp / "doses.ndjson")],
        env={**CREDENTIALS_ENV, "MAFHIR_CONFIG": str(config), **(env or {})})
    assert run.stdout, run.output
    return {"exit": run.exit_code, **json.loads(run.stdout)}


@pytest.mark.parametrize("transport", ["soap", "mllp"])
def test_doses_reach_the_registry_once_in_order(tmp_path, standin, transport):
    tasks = [flu_shot("imm-a1", patient=adult()),
             flu_shot("imm-a2", patient=adult(), vaccine={"cvx": "115"}, vis=[]),
             flu_shot("imm-b1", patient=adult("MRN-78", family="Poe"))]
    first = sync(tmp_path, tasks, transport, standin)
    assert (first["exit"], first["sent"], first["dead"]) == (0, 3, 0), first
    held = {d.filler_id: d for d in standin.registry.doses()}
    assert sorted(held) == ["imm-a1", "imm-a2", "imm-b1"]
    assert (held["imm-a2"].cvx, held["imm-a2"].patient.id) == ("115", "MRN-77")
    # one patient's doses (same day) arrived in the order they were given
    assert [d.filler_id for d in standin.registry.history(PatientQuery(id="MRN-77"))] == \
        ["imm-a1", "imm-a2"]
    again = sync(tmp_path, tasks, transport, standin)  # the outbox remembers: nothing sent
    assert again["sent"] == 0 and len(standin.registry.receipts) == 3
    if transport == "soap":
        assert standin.soap_requests == 3


def test_warnings_are_delivered_and_kept_with_the_delivery(tmp_path, standin):
    summary = sync(tmp_path, [flu_shot("imm-kid")], "soap", standin)  # a child, no NK1
    assert (summary["exit"], summary["sent"]) == (0, 1), summary
    assert [d.filler_id for d in standin.registry.doses()] == ["imm-kid"]
    store = open_store(str(tmp_path / "outbox.db"))
    try:
        [item] = store.items_in("delivered")
        events = [json.loads(a["resource"]) for a in store.audit_of(item.id)
                  if a["resource_type"] == "AuditEvent"]
    finally:
        store.close()
    assert events[-1]["outcome"] == "0"
    assert events[-1]["outcomeDesc"].startswith("accepted with warnings: NK1[1]: NK1: the "
                                                "responsible person of a minor is missing")
    listed = CliRunner().invoke(build_cli(), ["iis", "warnings", "--db",
                                              str(tmp_path / "outbox.db"), "--json"])
    [line] = [json.loads(x) for x in listed.stdout.splitlines()]
    assert (line["id"], line["destination"]) == (item.id, "iis:state")
    assert "NK1" in line["warnings"]


def test_an_error_is_dead_lettered_with_the_registrys_text(tmp_path, standin):
    # a dose dated before the patient's birth: the IIS answers AE with severity E
    task = flu_shot("imm-early", patient=adult(birth_date="2025-10-02"))
    summary = sync(tmp_path, [task], "soap", standin)
    assert (summary["exit"], summary["sent"], summary["dead"]) == (1, 0, 1), summary
    assert standin.registry.doses() == [] and standin.soap_requests == 1  # not retried
    store = open_store(str(tmp_path / "outbox.db"))
    try:
        [item] = store.items_in("dead")
    finally:
        store.close()
    assert "the registry refused the VXU^V04 (AE): RXA[1]-3: RXA-3: the administration " \
           "date is before the date of birth" in (item.reason or "")
    assert "application error 1 Illogical Date error" in (item.reason or "")


def test_a_security_fault_is_dead_at_once(tmp_path, standin):
    summary = sync(tmp_path, [flu_shot("imm-sec", patient=adult())], "soap", standin,
                   env={"IIS_TEST_PASSWORD": "not-the-password"})
    assert (summary["exit"], summary["dead"]) == (1, 1), summary
    assert standin.soap_requests == 1 and standin.registry.doses() == []
    store = open_store(str(tmp_path / "outbox.db"))
    try:
        [item] = store.items_in("dead")
    finally:
        store.close()
    assert "SecurityFault" in (item.reason or "")
    assert "not-the-password" not in (item.reason or "") + (item.last_error or "")


def test_a_connection_reset_is_retried_then_delivered_once(tmp_path, standin):
    standin.fail_next("reset", times=2)
    summary = sync(tmp_path, [flu_shot("imm-rst", patient=adult())], "soap", standin)
    assert (summary["exit"], summary["sent"], summary["dead"]) == (0, 1, 0), summary
    assert standin.soap_requests == 3
    assert [d.filler_id for d in standin.registry.doses()] == ["imm-rst"]
    assert len(standin.registry.receipts) == 1


def test_what_the_guide_requires_is_dead_lettered_before_sending(tmp_path, standin):
    no_dob = adult()
    del no_dob["birth_date"], no_dob["gender"], no_dob["family"], no_dob["given"]
    del no_dob["phone"], no_dob["address"]
    summary = sync(tmp_path, [flu_shot("imm-nodob", patient=no_dob)], "soap", standin)
    assert summary["dead"] == 1 and standin.soap_requests == 0
    store = open_store(str(tmp_path / "outbox.db"))
    try:
        [item] = store.items_in("dead")
    finally:
        store.close()
    assert "Patient.birthDate" in (item.reason or "") or \
        "Patient.name" in (item.reason or "")


def test_standin_command_serves_until_sigterm():
    proc = subprocess.Popen([MAFHIR, "iis", "standin", "--port", "0", "--mllp-port", "0"],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MAFHIR_IIS_STANDIN_PASSWORD": "pw",
                                 "MAFHIR_LOAD_PLUGINS": "iis"})
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("IIS stand-in: SOAP http://127.0.0.1:"), first
        url = first.split()[3].rstrip(",")
        client = SoapClient(url, Credentials("mafhir", "pw"), "ANY", timeout=5)
        assert client.connectivity_test("x") == "x"
        answer = read_iis_ack(client.submit(vxu_v04(resources_of(flu_shot()), V2CTX,
                                                     VxuSettings(facility_id="ANY"))))
        assert answer.code == "AE"  # the child has no NK1: kept, warned
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0
    assert "1 doses held, 1 messages accepted" in rest


def test_connector_keeps_the_declared_contract(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("IIS_TEST_USER", "clinic-user")
    monkeypatch.setenv("IIS_TEST_PASSWORD", "s3cret-pw")
    config = write_config(tmp_path / "mafhir.toml", standin)
    connector = IisConnector("state", config=load_iis("state", config))
    try:
        assert check_contract(connector) == []
    finally:
        connector.close()
