"""Answers owed to pharmacies go out by themselves after the decision, and are not lost.

v2: ``mafhir pharmacy decide REQ --approve --answer pharmacy-v2:HOST:PORT`` while the
pharmacy is down keeps the RRE^O26 pending (exit 75); ``mafhir pharmacy answer`` delivers it
to a real loopback MLLP stand-in once it is up — once, with table 0119's ORC-1 and the
request's ids."""

from __future__ import annotations

import json

import hl7
from click.testing import CliRunner
from helpers_pharmacy import PharmacyStandIn, clinic, prescription, rde_o25

from mafhir.cli.main import build_cli
from mafhir.context import MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.testing import free_port
from mafhir_pharmacy.tasks import PrescriptionTask
from mafhir_pharmacy.v2in import refill_request_tasks
from mafhir_pharmacy.worklist import LocalWorklist


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args))


def on_worklist(tmp_path, control_id: str):
    """A clinic file, and a worklist holding rx-5001 and the pharmacy's request for it."""
    c = clinic()
    clinic_file = tmp_path / "clinic.json"
    clinic_file.write_text(c.model_dump_json())
    wl = str(tmp_path / "wl.sqlite")
    worklist = LocalWorklist(wl)
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    (request,) = refill_request_tasks(
        parse(rde_o25(f"rx-5001^MAFHIR^{c.system}/prescription^URI", control_id)),
        V2Context(map=MapContext(clinic=c)))
    worklist.add_request(request)
    worklist.close()
    return clinic_file, wl, request


def test_rre_o26_is_kept_while_the_pharmacy_is_down_then_sent_once(tmp_path):
    clinic_file, wl, request = on_worklist(tmp_path, "RF-41")

    port = free_port()  # nothing listens there yet: the pharmacy is down
    decided = invoke("pharmacy", "decide", request.id, "--approve", "--refills", "2",
                     "--id", "rx-5001-r1", "--at", "2026-12-20T11:30:00-05:00",
                     "--answer", f"pharmacy-v2:127.0.0.1:{port}", "--worklist", wl,
                     "--clinic", str(clinic_file))
    assert decided.exit_code == 75, decided.output
    assert json.loads(decided.stdout)["decision"] == "approved"
    assert "pending" in decided.stderr
    worklist = LocalWorklist(wl)
    assert [a[:3] for a in worklist.answers("pending")] == [
        (request.id, f"pharmacy-v2:127.0.0.1:{port}", "pending")]
    assert worklist.state(request.id) == "approved"  # the decision itself is made
    worklist.close()

    with PharmacyStandIn(tmp_path / "pharmacy.sqlite", port=port) as pharmacy:
        first = invoke("pharmacy", "answer", "--worklist", wl, "--clinic", str(clinic_file))
        again = invoke("pharmacy", "answer", "--worklist", wl, "--clinic", str(clinic_file))
        received = list(pharmacy.received)
    assert first.exit_code == 0, first.output
    assert "sent" in first.stderr
    assert again.exit_code == 0 and again.stderr == ""  # nothing owed any more
    (answer,) = received  # exactly once
    m = hl7.parse(answer.text.replace("\n", "\r").strip("\r"))
    assert str(m.segment("MSH")[9]) == "RRE^O26^RRE_O26"
    assert str(m.segment("MSA")[2]) == "RF-41"  # the request's MSH-10
    orc, rxe = m.segment("ORC"), m.segment("RXE")
    # table 0119: AF "order/service refill request approval" (RF is the request itself)
    assert str(orc[1]) == "AF"
    assert str(orc[2][0][0]) == "rx-5001"  # the prescription the pharmacy asked about
    assert (str(rxe[12]), str(rxe[15])) == ("2", "rx-5001-r1")
    worklist = LocalWorklist(wl)
    assert worklist.answers("pending") == []
    assert [a[2] for a in worklist.answers(None)] == ["sent"]
    worklist.close()


def test_a_refused_answer_is_marked_with_the_reason(tmp_path):
    clinic_file, wl, request = on_worklist(tmp_path, "RF-42")
    with PharmacyStandIn(tmp_path / "pharmacy.sqlite", outcome="error") as pharmacy:
        decided = invoke("pharmacy", "decide", request.id, "--deny", "needs-appointment",
                         "--answer", f"pharmacy-v2:{pharmacy.target}", "--worklist", wl,
                         "--clinic", str(clinic_file))
        (got,) = pharmacy.received
    assert got.first("ORC").get(1) == "DF"
    assert decided.exit_code == 1, decided.output
    assert "refused" in decided.stderr and "AE" in decided.stderr
    worklist = LocalWorklist(wl)
    assert [a[2] for a in worklist.answers(None)] == ["refused"]
    worklist.close()
