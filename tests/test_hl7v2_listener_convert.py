"""Issue 10, the listener's part of conversion: the ConvertHandler uses ``convert()``;
business-rule problems hold for review, warnings are AA with ERR severity W (``--strict``:
AE, not delivered), and ``mafhir convert`` reports warnings on stderr or refuses."""

from __future__ import annotations

import types

import hl7
import pytest
from click.testing import CliRunner

from mafhir import hookimpl, plugins
from mafhir.cli.main import build_cli
from mafhir.errors import InputError, Problem
from mafhir.hl7v2 import (
    ConvertHandler,
    MessageStore,
    MLLPClient,
    MLLPListener,
    Receiver,
    V2Context,
)
from mafhir.hl7v2.convert import Converted
from mafhir.hl7v2.routing import HandlerSetup, RoutingHandler
from mafhir.registry import Converter
from test_hl7v2_transport import load_example

GAP = Problem("PID-8", "administrative sex is absent in the source", "incomplete")
RULE = Problem("PID-3.4", "the assigning authority is not mapped to a clinic system",
               "business-rule")


def adt(control_id: str, z: str = "") -> bytes:
    return (f"MSH|^~\\&|REG|X|MAFHIR|C|20261127||ADT^A04|{control_id}|P|2.5.1\r"
            f"PID|1||MS-9^^^C^MR||Zweistein^Jane||19800101|F\r{z}").encode()


@pytest.fixture
def registry(monkeypatch):
    """ADT^A04 by the documented example; ZWN adds a warning, ZBR a business-rule refusal."""
    monkeypatch.setenv("MAFHIR_DISABLE_PLUGINS", "hl7v2_adt")  # it registers ADT^A04 too
    example = load_example("register_converters")

    def to_fhir(msg, ctx):
        if msg.first("ZBR") is not None:
            raise InputError([RULE])
        bundle = example.adt_to_fhir(msg, ctx)
        return Converted(bundle, (GAP,)) if msg.first("ZWN") is not None else bundle

    module = types.ModuleType("warning_adt")

    @hookimpl
    def register_converters(register):
        register(Converter("hl7v2", "ADT^A04", to_fhir=to_fhir))

    module.register_converters = register_converters
    plugins.reset()
    plugins.register(module, name="warning-adt")
    yield plugins.get_registry()
    plugins.reset()


def errs(ack: bytes) -> list[tuple[str, str, str]]:
    """(ERR-2.1 segment, ERR-3.1 code, ERR-4 severity) read with python-hl7."""
    return [(str(s[2][0][0]), str(s[3][0][0]), str(s[4]))
            for s in hl7.parse(ack.decode()) if str(s[0]) == "ERR"]


def msa1(ack: bytes) -> str:
    return str(hl7.parse(ack.decode()).segment("MSA")[1])


@pytest.mark.parametrize("strict", [False, True])
def test_warnings_are_aa_with_err_w_or_with_strict_an_error_not_delivered(registry, tmp_path,
                                                                          store_at, strict):
    delivered: list[dict] = []
    handler = RoutingHandler(HandlerSetup(registry, V2Context(), delivered.append,
                                          strict=strict))
    store = MessageStore(store_at("in.sqlite"))
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address) as client:
        ack = client.send(adt("W-1", "ZWN|1\r"))
        clean = client.send(adt("W-2"))
    if strict:
        assert msa1(ack) == "AE" and errs(ack) == [("PID", "101", "E")]
        assert len(delivered) == 1  # only the clean one
        assert store.find("REG|X", "W-1").status == "error"
    else:
        assert msa1(ack) == "AA" and errs(ack) == [("PID", "101", "W")]
        assert len(delivered) == 2
        row = store.find("REG|X", "W-1")
        assert row.status == "processed" and row.problems == f"warning: {GAP}"
    assert msa1(clean) == "AA" and errs(clean) == []
    store.close()


def test_a_business_rule_problem_holds_the_message_for_review(registry, tmp_path, store_at):
    delivered: list[dict] = []
    store = MessageStore(store_at("in.sqlite"))
    ack = Receiver(store, ConvertHandler(registry, V2Context(), delivered.append)).receive(
        adt("R-1", "ZBR|1\r"))
    assert msa1(ack) == "AE" and errs(ack) == [("PID", "207", "W")]
    assert "assigning authority" in hl7.parse(ack.decode()).segment("ERR")[8][0]
    row = store.find("REG|X", "R-1")
    assert row.status == "review" and row.raw == adt("R-1", "ZBR|1\r") and not delivered
    store.close()


def test_convert_prints_warnings_without_patient_data_and_strict_refuses(registry, tmp_path):
    source = tmp_path / "adt.hl7"
    source.write_bytes(adt("C-1", "ZWN|1\r"))
    result = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", str(source)])
    assert result.exit_code == 0, result.output
    said = [x for x in result.stderr.splitlines() if not x.startswith("warning: no clinic")]
    assert said == [f"warning: {GAP}"]
    assert "Zweistein" not in result.stderr and '"resourceType": "Bundle"' in result.stdout
    strict = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", "--strict",
                                              str(source)])
    assert strict.exit_code == 2
    assert strict.stderr.strip() == f"error: {GAP}" and "Bundle" not in strict.stdout


def test_converted_and_convert_are_part_of_the_hl7v2_api(registry):
    """A plugin writes ``from mafhir.hl7v2 import Converted, convert`` (the package's API)."""
    import mafhir.hl7v2 as api

    assert {"Converted", "convert"} <= set(api.__all__)
    from mafhir.hl7v2 import Converted as Exported
    from mafhir.hl7v2 import convert, parse

    assert Exported is Converted
    result = convert(registry, parse(adt("API-1", "ZWN|1\r")), V2Context())
    assert isinstance(result, Exported) and result.warnings == (GAP,)
    assert [e["resource"]["resourceType"] for e in result.bundle["entry"]] == ["Patient"]


def test_mafhir_listen_uses_a_senders_configured_local_code_system(tmp_path):
    """``--set code-system.APP^FAC.99LAB=URI`` reaches conversion on a real listener: the
    configured sender's local code gets its system, another sender's the kept ``urn:``."""
    import json
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from mafhir.context import Clinic

    own = "https://questlab.example.org/codes"
    clinic = Clinic(name="Maple", system="https://maple.example.org/fhir/id")
    (tmp_path / "clinic.json").write_text(clinic.model_dump_json())

    def oru(sender: str, control_id: str) -> str:
        return (f"MSH|^~\\&|{sender}|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|"
                f"{control_id}|P|2.5.1\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane||19800101|F\r"
                f"OBR|1|ord-{control_id}|acc-{control_id}|4548-4^HbA1c^LN|||20261127090000-0500|||||||||||||||"
                "20261127093000-0500|||F\r"
                f"OBX|1|NM|4548-4^HbA1c^LN^A1C^{control_id}^99LAB||6.9|%^^UCUM|||||F|||"
                "20261127090000-0500\r")

    mafhir = Path(sys.executable).parent / "mafhir"
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [str(mafhir), "listen", "--mllp", "127.0.0.1:0", "--store", str(tmp_path / "in.sqlite"),
         "--to", f"dir:{out}", "--no-check-patient", "--clinic", str(tmp_path / "clinic.json"),
         "--namespace", f"CLINIC={clinic.mrn_namespace}",
         "--set", f"code-system.LABSYS^QUEST.99LAB={own}"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line.startswith("warning:"):  # e.g. no clinic configured
            line = proc.stderr.readline()
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", line).group(1))
        with MLLPClient("127.0.0.1", port, timeout=20) as client:
            for sender, cid in (("LABSYS|QUEST", "LS-1"), ("OTHER|LAB", "LS-2")):
                reply = client.send(oru(sender, cid))
                assert str(hl7.parse(reply.decode()).segment("MSA")[1]) == "AA", reply
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, rest
    # delivered before the AA was sent: the folder holds both now
    lines = (out / "Observation.ndjson").read_text().splitlines()
    local = {c["display"]: c["system"] for line in lines
             for c in json.loads(line)["code"]["coding"] if c["code"] == "A1C"}
    assert local == {"LS-1": own, "LS-2": "urn:mafhir:v2-0396:99LAB"}


def test_mafhir_convert_uses_a_senders_configured_local_code_system(tmp_path):
    import json

    from mafhir.context import Clinic

    own = "https://questlab.example.org/codes"
    clinic = Clinic(name="Maple", system="https://maple.example.org/fhir/id")
    (tmp_path / "clinic.json").write_text(clinic.model_dump_json())
    (tmp_path / "oru.hl7").write_text(
        "MSH|^~\\&|LABSYS|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|C-1|P|"
        "2.5.1\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane||19800101|F\r"
        "OBR|1|ord-1|acc-1|4548-4^HbA1c^LN|||20261127090000-0500\r"
        "OBX|1|NM|4548-4^HbA1c^LN^A1C^Hemoglobin A1c^99LAB||6.9|%^^UCUM|||||F\r")
    plugins.reset()
    result = CliRunner().invoke(build_cli(), [
        "convert", "--from", "hl7v2", str(tmp_path / "oru.hl7"), "--clinic",
        str(tmp_path / "clinic.json"), "--namespace", f"CLINIC={clinic.mrn_namespace}",
        "--set", f"code-system.LABSYS^QUEST.99LAB={own}"])
    assert result.exit_code == 0, result.output
    (obs,) = [e["resource"] for e in json.loads(result.stdout)["entry"]
              if e["resource"]["resourceType"] == "Observation"]
    assert [c["system"] for c in obs["code"]["coding"] if c["code"] == "A1C"] == [own]


@pytest.mark.parametrize("target", ["fhir-rest:https://u:s3cr3t-pw@ehr.example/fhir",
                                    "fhir-rest:https://ehr.example/fhir?access_token=s3cr3t-pw"])
def test_mafhir_listen_refuses_credentials_in_to_with_one_line(tmp_path, target):
    """As ``sync`` does: exit 2, one line naming --to and the reason, nothing stored, the
    secret not echoed (a real process: no listener is started)."""
    import subprocess
    import sys
    from pathlib import Path

    mafhir = Path(sys.executable).parent / "mafhir"
    done = subprocess.run(
        [str(mafhir), "listen", "--mllp", "127.0.0.1:0", "--store", str(tmp_path / "in.sqlite"),
         "--to", target], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --to: credentials in a URL")
    assert "s3cr3t-pw" not in done.stderr + done.stdout
    assert not (tmp_path / "in.sqlite").exists()
