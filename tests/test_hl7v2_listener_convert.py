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
def registry():
    """ADT^A04 by the documented example; ZWN adds a warning, ZBR a business-rule refusal."""
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
    assert result.stderr.strip() == f"warning: {GAP}"
    assert "Zweistein" not in result.stderr and '"resourceType": "Bundle"' in result.stdout
    strict = CliRunner().invoke(build_cli(), ["convert", "--from", "hl7v2", "--strict",
                                              str(source)])
    assert strict.exit_code == 2
    assert strict.stderr.strip() == f"error: {GAP}" and "Bundle" not in strict.stdout
