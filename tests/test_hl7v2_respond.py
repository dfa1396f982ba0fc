"""A converter's ``respond`` has one signature, ``(message, ack_code, status)``: an older
plugin's ``respond(message, ack_code)`` is adapted when it is registered (issue 12 item 1),
so the listener never inspects signatures per call. Both go through a real plugin
registration and the ConvertHandler, then a real listener's ACK bytes."""

from __future__ import annotations

import types

import hl7
import pytest

from mafhir import hookimpl, plugins
from mafhir.hl7v2 import ConvertHandler, MessageStore, MLLPClient, MLLPListener, Receiver, V2Context
from mafhir.hl7v2.ack import Response
from mafhir.hl7v2.message import parse
from mafhir.registry import Converter
from test_hl7v2_listener_convert import adt
from test_hl7v2_transport import load_example

CALLS: list[tuple] = []


def old_respond(msg, ack_code):
    """A plugin written before the status existed: two parameters."""
    CALLS.append(("old", ack_code))
    return Response(("ZRS", "Z01", "ZRS_Z01"), [["ZRS", ack_code]])


def new_respond(msg, ack_code, status):
    CALLS.append(("new", ack_code, status))
    return Response(("ZRS", "Z01", "ZRS_Z01"), [["ZRS", ack_code, status]])


@pytest.fixture
def registry_with(request, monkeypatch):
    monkeypatch.setenv("MAFHIR_DISABLE_PLUGINS", "hl7v2_adt")  # it registers ADT^A04 too
    example = load_example("register_converters")
    module = types.ModuleType("respond_plugin")

    @hookimpl
    def register_converters(register):
        register(Converter("hl7v2", "ADT^A04", to_fhir=example.adt_to_fhir,
                           respond=request.param))

    module.register_converters = register_converters
    plugins.reset()
    plugins.register(module, name="respond-plugin")
    CALLS.clear()
    yield plugins.get_registry()
    plugins.reset()


@pytest.mark.parametrize("registry_with", [old_respond], indirect=True)
def test_an_old_two_argument_respond_is_adapted_at_registration(registry_with):
    respond = registry_with.converters["hl7v2:ADT^A04"].respond
    assert respond is not old_respond
    response = respond(parse(adt("R-1")), "AA", "processed")  # the one signature
    assert response.segments == [["ZRS", "AA"]] and CALLS == [("old", "AA")]


@pytest.mark.parametrize("registry_with", [new_respond], indirect=True)
def test_a_three_argument_respond_is_kept_as_it_is(registry_with):
    assert registry_with.converters["hl7v2:ADT^A04"].respond is new_respond


@pytest.mark.parametrize(("registry_with", "expected"),
                         [(old_respond, [("old", "AA")]),
                          (new_respond, [("new", "AA", "processed")])],
                         indirect=["registry_with"])
def test_the_listener_answers_with_either_plugins_response(registry_with, expected, tmp_path):
    handler = ConvertHandler(registry_with, V2Context())
    store = MessageStore(tmp_path / "in.sqlite")
    with MLLPListener("127.0.0.1", 0, Receiver(store, handler)) as listener, \
            MLLPClient(*listener.address) as client:
        reply = client.send(adt("R-2"))
    msg = hl7.parse(reply.decode())
    assert str(msg.segment("MSH")[9]) == "ZRS^Z01^ZRS_Z01"
    assert str(msg.segment("MSA")[1]) == "AA"
    assert expected == CALLS
    zrs = msg.segment("ZRS")
    assert str(zrs[1]) == "AA"
    if expected[0][0] == "new":
        assert str(zrs[2]) == "processed"


# ---------------------------------------------------------------------- plain Problems
def test_an_outcome_takes_plain_problems_and_refuses_a_kind_pair_by_name():
    from mafhir.errors import Problem
    from mafhir.hl7v2 import Outcome

    problem = Problem("OBX[1]-5", "not a number", "value")
    assert Outcome("error", (problem,)).problems == (problem,)
    with pytest.raises(TypeError, match=r"Problem\(location, message, code\) instead of a "
                                        r"\(Problem, kind\) pair"):
        Outcome("error", ((problem, "datatype"),))
    with pytest.raises(TypeError, match="not str"):
        Outcome("processed", (), warnings=("kept without units",))
