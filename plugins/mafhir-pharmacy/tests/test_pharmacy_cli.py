"""The commands, as the README shows them: `mafhir pharmacy send/worklist/decide` and
`mafhir convert` for RDE^O11, RDE^O25 and RRE^O26 (MLLP to a pharmacy stand-in)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from helpers_pharmacy import PharmacyStandIn, clinic, namespaces, prescription, rde_o25

from mafhir.cli.main import build_cli
from mafhir.context import MapContext
from mafhir.hl7v2 import MessageStore, MLLPClient, MLLPListener, Receiver, V2Context, read_ack
from mafhir.plugins import get_registry
from mafhir_pharmacy.worklist import LocalWorklist, RefillHandler


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args))


def test_prescription_out_refill_in_answer_out(tmp_path):
    c = clinic()
    clinic_file = tmp_path / "clinic.json"
    clinic_file.write_text(c.model_dump_json())
    (tmp_path / "rx.json").write_text(json.dumps(prescription()))
    wl = str(tmp_path / "wl.sqlite")
    with PharmacyStandIn(tmp_path / "pharmacy.sqlite") as pharmacy:
        sent = invoke("pharmacy", "send", str(tmp_path / "rx.json"), "--via",
                      f"pharmacy-v2:{pharmacy.target}", "--worklist", wl, "--clinic",
                      str(clinic_file))
        assert sent.exit_code == 0, sent.output
        assert json.loads(sent.stdout)["result"]["acks"][0]["ack"] == "AA"
        (order,) = pharmacy.received
        assert order.first("ORC").get(2, 3) == f"{c.system}/prescription"
        assert order.msh.get(4) == "Maple Street Family Clinic"  # --clinic reached MSH-4

    # the pharmacy's refill request, converted on its own …
    (tmp_path / "refill.hl7").write_bytes(
        rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RF-1"))
    converted = invoke("convert", "--from", "hl7v2", "--clinic", str(clinic_file),
                       "--namespace", f"CLINIC={c.mrn_namespace}", str(tmp_path / "refill.hl7"))
    assert converted.exit_code == 0, converted.output
    types = [e["resource"]["resourceType"] for e in json.loads(converted.stdout)["entry"]]
    assert types.count("Task") == 1 and types.count("Communication") == 1

    # … and received on the clinic's listener onto the worklist
    worklist = LocalWorklist(wl)
    store = MessageStore(tmp_path / "clinic.sqlite")
    ctx = V2Context(map=MapContext(clinic=c), namespaces=namespaces(c))
    handler = RefillHandler(get_registry(), ctx, worklist)
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address, timeout=10) as client:
        assert read_ack(client.send((tmp_path / "refill.hl7").read_bytes())).code == "AA"
    worklist.close()
    store.close()
    listed = invoke("pharmacy", "worklist", "--worklist", wl, "--status", "requested")
    (item,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (item["prescription"], item["status"]) == ("rx-5001", "requested")

    decided = invoke("pharmacy", "decide", item["request"], "--deny", "needs-appointment",
                     "--at", "2026-12-20T11:30:00-05:00", "--worklist", wl)
    assert decided.exit_code == 0, decided.output
    (tmp_path / "decision.json").write_text(decided.stdout)
    again = invoke("pharmacy", "decide", item["request"], "--approve", "--worklist", wl)
    assert again.exit_code == 2 and "was already answered ('denied')" in again.output

    with PharmacyStandIn(tmp_path / "pharmacy2.sqlite") as pharmacy:
        answered = invoke("convert", "--to", "hl7v2", "--message", "RRE^O26", "--clinic",
                          str(clinic_file), "--receiving", "RXSYS^MAINST", "--mllp",
                          pharmacy.target, str(tmp_path / "decision.json"))
        assert answered.exit_code == 0, answered.output
        (answer,) = pharmacy.received
    assert answer.type == "RRE^O26" and answer.first("MSA").get(2) == "RF-1"
    assert (answer.first("ORC").get(1), answer.first("ORC").get(16)) == \
        ("DF", "needs-appointment")


def test_bad_tasks_exit_2_naming_the_field(tmp_path):
    (tmp_path / "rx.json").write_text(json.dumps(prescription(quantity={"value": 30})))
    result = invoke("pharmacy", "send", str(tmp_path / "rx.json"), "--via",
                    "pharmacy-v2:127.0.0.1:9", "--worklist", str(tmp_path / "wl.sqlite"))
    assert result.exit_code == 2
    assert "task[0].quantity: a quantity needs a unit" in result.output
    assert "Okafor" not in result.output


def test_convert_prints_each_validation_error_with_one_prefix(tmp_path, monkeypatch):
    """`mafhir convert` printed 'error: error: …' for a Bundle that failed validation."""
    from mafhir import validation
    from mafhir.validation.issues import Issue

    c = clinic()
    (tmp_path / "refill.hl7").write_bytes(
        rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", "RF-1"))
    # the converter imports check_bundle from mafhir.validation when a message comes
    monkeypatch.setattr(validation, "check_bundle", lambda bundle, profiles, **_: [
        Issue("error", "invariant", "Bundle.entry[0].resource.owner", "is required")])
    (tmp_path / "clinic.json").write_text(c.model_dump_json())
    result = invoke("convert", "--from", "hl7v2", str(tmp_path / "refill.hl7"), "--clinic",
                    str(tmp_path / "clinic.json"), "--namespace", f"CLINIC={c.mrn_namespace}")
    assert result.exit_code == 2
    assert result.stderr == "error: Bundle.entry[0].resource.owner: is required\n"
