"""A40 merge end to end, on SQLite and on a real PostgreSQL: a result filed under patient
A in the local store and one still waiting in the outbox for A both end up under B once
the EHR merges A into B; a re-sent A40 changes nothing more."""

from __future__ import annotations

import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mafhir.connectors.local import LocalStore
from mafhir.context import Clinic, MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.convert import convert
from mafhir.hl7v2.routing import HandlerSetup, RoutingHandler
from mafhir.identity import identifier_query
from mafhir.io import dumps, loads
from mafhir.outbox.model import NewItem
from mafhir.outbox.store import open_store
from mafhir.plugins import get_registry, reset

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests"))
from store_helpers import BACKENDS, locations

CLINIC = Clinic(name="Maple Street Family Clinic", system="urn:mafhir:test:merge")
CTX = V2Context(map=MapContext(clinic=CLINIC), tz=ZoneInfo("America/Chicago"),
                namespaces={"CLINIC": CLINIC.mrn_namespace})


def oru(mrn: str, control: str, filler: str) -> str:
    return (f"MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|{control}|"
            f"P|2.5.1\rPID|1||{mrn}^^^CLINIC^MR||Doe^Jane||19800101|F\r"
            f"OBR|1|ord-{filler}|{filler}^QUEST|4548-4^HbA1c^LN|||20261127080000-0500|||||||||||"
            f"||||20261127090000-0500|||F\r"
            f"OBX|1|NM|4548-4^HbA1c^LN||6.9|%^percent^UCUM|4.0-5.6|H|||F\r")


A04 = ("MSH|^~\\&|EHR|CLINIC|MAFHIR|CLINIC|20261127100000-0500||ADT^A04^ADT_A01|R-1|P|2.5.1\r"
       "EVN|A04|20261127100000-0500\rPID|1||B-200^^^CLINIC^MR||Doe^Jane^Q||19800101|F\r"
       "PV1|1|O\r")


def a40(control: str) -> str:
    return (f"MSH|^~\\&|EHR|CLINIC|MAFHIR|CLINIC|20261127110000-0500||ADT^A40^ADT_A39|{control}"
            f"|P|2.5.1\rEVN|A40|20261127110000-0500\r"
            f"PID|1||B-200^^^CLINIC^MR||Doe^Jane^Q||19800101|F\r"
            f"MRG|A-100^^^CLINIC^MR\r")


@pytest.fixture(params=BACKENDS)
def at(request, tmp_path):
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield locations(request.param, tmp_path, stack)


def test_a40_moves_results_in_the_store_and_the_outbox_to_the_survivor(at):
    reset()
    registry = get_registry()
    store = LocalStore(at("store"))
    box = open_store(at("outbox"))
    try:
        # a result delivered for A, and B registered by the EHR
        store.send(convert(registry, parse(oru("A-100", "L-1", "ACC-1")), CTX).bundle)
        setup = HandlerSetup(registry, CTX, store.send,
                             settings={"adt.local-store": at("store"),
                                       "adt.outbox": at("outbox")})
        handler = RoutingHandler(setup)
        assert handler(parse(A04)).status == "processed"
        a_id = store.find("Patient", CLINIC.mrn_namespace, "A-100")["id"]
        b_id = store.find("Patient", CLINIC.mrn_namespace, "B-200")["id"]
        assert a_id != b_id
        before = {r["resourceType"] for r in store.search(patient=f"Patient/{a_id}")}
        assert {"Observation", "DiagnosticReport"} <= before
        # a second result for A still waiting in the outbox
        pending = convert(registry, parse(oru("A-100", "L-2", "ACC-2")), CTX).bundle
        box.enqueue([NewItem("fhir:https://ehr.example/fhir", "okey-a", "idem-a",
                             dumps(pending), "test", "lab")])
        old_q = identifier_query(CLINIC.mrn_namespace, "A-100")
        new_q = identifier_query(CLINIC.mrn_namespace, "B-200")

        outcome = handler(parse(a40("M-1")))
        assert outcome.status == "processed", outcome.problems

        under_a = [r["resourceType"] for r in store.search(patient=f"Patient/{a_id}")
                   if r["resourceType"] != "Patient"]
        under_b = {r["resourceType"] for r in store.search(patient=f"Patient/{b_id}")}
        assert under_a == []
        assert {"Observation", "DiagnosticReport"} <= under_b
        obs = next(r for r in store.search("Observation"))
        assert obs["subject"]["reference"] == f"Patient/{b_id}"
        patient_a = store.read("Patient", a_id)
        assert patient_a["active"] is False
        assert patient_a["link"] == [{"other": {"reference": f"Patient/{b_id}"},
                                      "type": "replaced-by"}]
        assert store.read("Patient", b_id)["link"] == [
            {"other": {"reference": f"Patient/{a_id}"}, "type": "replaces"}]
        (item,) = box.items_in("pending")
        text = item.payload.decode()
        assert f"Patient?{old_q}" not in text.replace("\\u007c", "|")
        refs = [e["resource"].get("subject", {}).get("reference")
                for e in loads(item.payload)["entry"]]
        assert f"Patient?{new_q}" in refs

        # the same A40 again: nothing more moves
        versions = {r["id"]: r["meta"]["versionId"] for r in store.search("Observation")}
        assert handler(parse(a40("M-2"))).status == "processed"
        assert {r["id"]: r["meta"]["versionId"] for r in store.search("Observation")} == \
            versions
        assert box.items_in("pending")[0].payload == item.payload
        assert store.read("Patient", a_id)["link"] == patient_a["link"]
        handler.close()
    finally:
        store.close()
        box.close()
        reset()


def test_a40_without_mrg_is_an_error_naming_mrg(tmp_path, monkeypatch):
    monkeypatch.delenv("MAFHIR_OUTBOX", raising=False)
    reset()
    registry = get_registry()
    handler = RoutingHandler(HandlerSetup(registry, CTX, None))
    no_mrg = a40("M-3").replace("MRG|A-100^^^CLINIC^MR\r", "")
    outcome = handler(parse(no_mrg))
    assert outcome.status == "error"
    assert [(p.location, p.code) for p in outcome.problems] == [("MRG", "required")]
    empty = a40("M-4").replace("MRG|A-100^^^CLINIC^MR", "MRG|")
    assert [(p.location, p.code) for p in handler(parse(empty)).problems] == \
        [("MRG-1", "required")]
    # an id of an authority the clinic does not map is never merged on: review
    foreign = a40("M-5").replace("A-100^^^CLINIC^MR", "A-100^^^OTHERLAB^MR")
    held = handler(parse(foreign))
    assert held.status == "review"
    assert [(p.location, p.code) for p in held.problems] == [("MRG-1", "business-rule")]
    # a good A40 with no local store or outbox configured says nothing was re-pointed
    done = handler(parse(a40("M-6")))
    assert done.status == "processed"
    assert [(p.location, p.code) for p in done.warnings] == [("MRG-1", "incomplete")]
    handler.close()
    reset()
