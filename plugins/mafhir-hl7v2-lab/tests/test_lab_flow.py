"""The whole lab interface, with real parts: an order leaves as OML^O21 over MLLP, the
result ORU^R01 comes back on the listener and becomes linked US Core FHIR in the EHR
(SEKMET) — a correction replaces, a duplicate is not processed twice, an unknown
patient's result waits for review. And `mafhir listen` delivering to a folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from helpers_hl7v2_lab import (
    clinic,
    lab_order,
    oru,
    registry_fixture,  # noqa: F401 - the fixture
    specimen,
    v2ctx,
)
from test_lab_tasks import mapped

from mafhir.cli.main import build_cli
from mafhir.hl7v2 import (
    ConvertHandler,
    MessageStore,
    MLLPClient,
    MLLPListener,
    Outcome,
    Receiver,
    parse,
    read_ack,
)

MAFHIR = Path(sys.executable).parent / "mafhir"


def one(found):
    found = list(found)
    assert len(found) == 1, found
    return found[0]


def test_order_out_result_in_linked_in_the_ehr(registry, fhir_base_url, tmp_path):
    c = clinic()  # identifier namespaces no other test uses
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    bundle, _ = mapped(registry, lab_order(), specimen(), c=c)
    (tmp_path / "order.json").write_text(json.dumps(bundle))
    ehr = registry.connectors["fhir-rest"].factory(fhir_base_url)
    ehr.send(bundle)  # the order, its specimen and the new patient are in the EHR
    order_sr = one(ehr.search("ServiceRequest",
                              {"identifier": f"{c.system}/lab_order|ord-7001"}))

    # 1. the order leaves as OML^O21 over MLLP (a listener stands in for the lab)
    received = []

    def lab(msg):
        received.append(msg)
        return Outcome("processed")

    lab_store = MessageStore(tmp_path / "lab.sqlite")
    with MLLPListener("127.0.0.1", 0, Receiver(lab_store, lab)) as lab_side:
        host, port = lab_side.address
        result = CliRunner().invoke(build_cli(), [
            "convert", "--to", "hl7v2", "--message", "OML^O21", str(tmp_path / "order.json"),
            "--mllp", f"{host}:{port}", "--clinic", str(tmp_path / "clinic.json"),
            "--receiving", "LABSYS^QUESTLAB"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ack"] == "AA"
    (order,) = received
    assert order.type == "OML^O21" and order.msh.get(5) == "LABSYS"
    assert order.first("SPM").get(4) == "122555007"
    placer, mrn_field = order.first("ORC").raw(2), order.first("PID").raw(3)

    # 2. the lab's result arrives on mafhir's listener and goes to the EHR
    def known(system, value):
        return next(iter(ehr.search("Patient", {"identifier": f"{system}|{value}"})),
                    None) is not None

    handler = ConvertHandler(registry, v2ctx(c), ehr.send, known)
    store = MessageStore(tmp_path / "clinic.sqlite")
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address) as client:
        first = client.send(oru(placer, mrn_field, "R-1"))
        assert read_ack(first).code == "AA"
        assert client.send(oru(placer, mrn_field, "R-1")) == first  # a re-send: same ACK
        dr_id = f"{c.system}/v2/order/fill/QUESTLAB|ACC-889"
        report = one(ehr.search("DiagnosticReport", {"identifier": dr_id}))
        assert report["basedOn"] == [{"reference": f"ServiceRequest/{order_sr['id']}"}]
        assert report["status"] == "final"
        assert report["subject"]["reference"] == order_sr["subject"]["reference"]
        results = list(ehr.search("Observation",
                                  {"based-on": f"ServiceRequest/{order_sr['id']}"}))
        assert len(results) == 4
        a1c = next(o for o in results if o["code"]["coding"][0]["code"] == "4548-4")
        assert a1c["valueQuantity"]["value"] == 6.9
        assert a1c["note"] == [{"text": "Repeat in 3 months\nper ADA guidance"}]
        glucose = next(o for o in results if o["code"]["coding"][0]["code"] == "2345-7")
        assert glucose["valueQuantity"]["comparator"] == ">"
        still = one(ehr.search("ServiceRequest", {"identifier": f"{c.system}/lab_order|"
                                                                f"ord-7001"}))
        assert still["id"] == order_sr["id"] and still["status"] == "active"

        # 3. a corrected result replaces the first one
        assert read_ack(client.send(oru(placer, mrn_field, "R-2", status="C",
                                        value="7.1"))).code == "AA"
        again = one(ehr.search("DiagnosticReport", {"identifier": dr_id}))
        assert again["id"] == report["id"] and again["status"] == "corrected"
        results = list(ehr.search("Observation",
                                  {"based-on": f"ServiceRequest/{order_sr['id']}"}))
        assert len(results) == 4
        a1c = next(o for o in results if o["code"]["coding"][0]["code"] == "4548-4")
        assert (a1c["valueQuantity"]["value"], a1c["status"]) == (7.1, "corrected")

        # 4. a result for a patient the clinic does not know waits for review
        stranger = f"NOBODY-1^^^MAFHIR&{c.system}/mrn&URI^MR"
        held = read_ack(client.send(oru(placer.replace("ord-7001", "ord-9"), stranger, "R-3")))
        assert held.code == "AE" and "PID-3" in held.errors[0]
        assert parse(held.text).first("ERR").get(3, 1) == "204"
    assert store.find("LABSYS|QUESTLAB", "R-3").status == "review"
    assert store.counts() == {"processed": 2, "review": 1}
    assert not list(ehr.search("ServiceRequest", {"identifier": f"{c.system}/lab_order|ord-9"}))
    ehr.close()


def test_mafhir_listen_delivers_to_a_folder(tmp_path):
    c = clinic()
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    proc = subprocess.Popen(
        [str(MAFHIR), "listen", "--mllp", "127.0.0.1:0", "--store",
         str(tmp_path / "s.sqlite"), "--to", f"dir:{tmp_path / 'out'}", "--clinic",
         str(tmp_path / "clinic.json"), "--namespace", f"X={c.mrn_namespace}"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "MAFHIR_TZ": "America/Chicago"})
    try:
        line = proc.stderr.readline()
        while line.startswith("warning:"):  # e.g. no clinic configured
            line = proc.stderr.readline()
        assert line.startswith("listening for MLLP on "), line
        host, port = line.split()[4].rsplit(":", 1)
        placer = f"ord-1^MAFHIR^{c.system}/lab_order^URI"
        with MLLPClient(host, int(port), timeout=20) as client:
            assert read_ack(client.send(oru(placer, "MS-1^^^X^MR", "L-1"))).code == "AA"
            bad = read_ack(client.send(b"MSH|^~\\&|X\rPID|1\r"))
            assert bad.code == "AR"
            assert read_ack(client.send(oru(placer, "MS-1^^^X^MR", "L-2"))).code == "AA"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert "'processed': 2" in err and "'rejected': 1" in err
    assert "O'Brien" not in err  # no patient data in the log
    bundles = sorted((tmp_path / "out" / "bundles").glob("*.json"))
    assert len(bundles) == 2
    reports = [json.loads(x) for x in
               (tmp_path / "out" / "DiagnosticReport.ndjson").read_text().splitlines()]
    # the PID's Patient travels with the result, matched on the clinic MRN
    entries = [e for b in bundles for e in json.loads(b.read_text())["entry"]]
    patients = {e["fullUrl"]: e for e in entries if e["resource"]["resourceType"] == "Patient"}
    assert len(reports) == 1 and reports[0]["subject"]["reference"] in patients
    patient = patients[reports[0]["subject"]["reference"]]
    assert patient["request"]["ifNoneExist"] == f"identifier={c.system}/mrn|MS-1"
    assert reports[0]["issued"] == "2026-11-28T06:10:00-05:00"  # OBR-22


def test_listen_refuses_a_bad_address():
    result = CliRunner().invoke(build_cli(), ["listen", "--mllp", "nowhere"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output


def test_convert_needs_one_direction(tmp_path):
    (tmp_path / "x").write_text("{}")
    result = CliRunner().invoke(build_cli(), ["convert", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--from hl7v2 or --to hl7v2" in result.output
