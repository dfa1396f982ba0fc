"""Answers owed to pharmacies go out by themselves after the decision, and are not lost.

v2: ``mafhir pharmacy decide REQ --approve --answer pharmacy-v2:HOST:PORT`` while the
pharmacy is down keeps the RRE^O26 pending (exit 75); ``mafhir pharmacy answer`` delivers it
to a real loopback MLLP stand-in once it is up — once, with table 0119's ORC-1 and the
request's ids."""

from __future__ import annotations

import json
import socket
import threading
from datetime import datetime

import hl7
from click.testing import CliRunner
from helpers_pharmacy import (
    PharmacyStandIn,
    clinic,
    namespaces,
    prescription,
    rde_o25,
    refill_request,
)

from mafhir.cli.main import build_cli
from mafhir.context import MapContext
from mafhir.hl7v2 import V2Context, parse
from mafhir.testing import free_port
from mafhir_pharmacy.answers import deliver_answers
from mafhir_pharmacy.tasks import PrescriptionTask, RefillRequestTask
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
        V2Context(map=MapContext(clinic=c), namespaces=namespaces(c)))
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


class NoMsaPharmacy:
    """A broken pharmacy system on a raw loopback socket: it takes each MLLP frame and
    answers with an HL7 message that has no MSA segment (so no ACK code can be read)."""

    REPLY = (b"\x0bMSH|^~\\&|RXSYS|MAINST|MAFHIR|CLINIC|20261220113000-0500||ACK^O26^ACK|"
             b"G-1|P|2.5.1\r\x1c\r")

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        self._sock.settimeout(0.1)  # so the accept loop sees the stop flag
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = b""
                while not data.endswith(b"\x1c\r"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.frames.append(data)
                conn.sendall(self.REPLY)

    @property
    def target(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    def __enter__(self) -> NoMsaPharmacy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._sock.close()


DECIDED = datetime.fromisoformat("2026-12-20T11:30:00-05:00")


def owed(tmp_path, *requests: str) -> LocalWorklist:
    """A worklist holding rx-5001 and one v2 refill request for it per id given."""
    worklist = LocalWorklist(tmp_path / "wl.sqlite")
    worklist.add_prescription(PrescriptionTask.model_validate(prescription()))
    for n, rid in enumerate(requests, start=1):
        worklist.add_request(RefillRequestTask.model_validate(
            refill_request(rid, message_id=f"RF-5{n}")))
    return worklist


def test_one_bad_answer_does_not_stop_the_others(tmp_path):
    c = clinic()
    worklist = owed(tmp_path, "rr-1", "rr-2", "rr-3")
    with NoMsaPharmacy() as broken, \
            PharmacyStandIn(tmp_path / "pharmacy.sqlite") as good:
        targets = {"rr-1": f"pharmacy-v2:{broken.target}",  # a reply without MSA
                   "rr-2": "pharmacy-v2:rx-host",  # stored by a listener setting, no port
                   "rr-3": f"pharmacy-v2:{good.target}"}
        for rid, target in targets.items():
            worklist.decide(rid, "denied", DECIDED, f"{rid}-d", reason="too-soon",
                            answer_to=target)
        done = deliver_answers(worklist, c, timeout=10)
        received = list(good.received)
    assert [(d.request, d.status) for d in done] == [
        ("rr-1", "pending"), ("rr-2", "refused"), ("rr-3", "sent")]
    assert done[0].detail == "the pharmacy's reply could not be read (ValueError)"
    assert done[1].detail.startswith("pharmacy-v2 needs HOST:PORT")
    assert len(broken.frames) == 1  # the first was tried …
    (answer,) = received  # … and the last one still went out
    assert (answer.type, answer.first("MSA").get(2)) == ("RRE^O26", "RF-53")
    # every attempt is recorded, the reason with it
    assert [(a[0], a[2], a[3], a[4]) for a in worklist.answers(None)] == [
        ("rr-1", "pending", 1, "the pharmacy's reply could not be read (ValueError)"),
        ("rr-2", "refused", 1, done[1].detail),
        ("rr-3", "sent", 1, done[2].detail)]
    worklist.close()


def test_an_error_outside_the_send_keeps_the_answer_pending_by_its_class(tmp_path,
                                                                          monkeypatch):
    """Building the answer fails with patient data in the message: the answer stays
    pending with the error's class only, and the next one is still sent."""
    import mafhir_pharmacy.answers as answers

    real = answers.from_fhir
    calls: list[int] = []

    def first_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("Okafor, Grace MS-10022")
        return real(*args, **kwargs)

    monkeypatch.setattr(answers, "from_fhir", first_fails)
    worklist = owed(tmp_path, "rr-1", "rr-2")
    with PharmacyStandIn(tmp_path / "pharmacy.sqlite") as good:
        for rid in ("rr-1", "rr-2"):
            worklist.decide(rid, "denied", DECIDED, f"{rid}-d", reason="too-soon",
                            answer_to=f"pharmacy-v2:{good.target}")
        done = deliver_answers(worklist, clinic(), timeout=10)
        received = list(good.received)
    assert [(d.request, d.status, d.detail) for d in done] == [
        ("rr-1", "pending", "not sent (KeyError); kept to try again"),
        ("rr-2", "sent", done[1].detail)]
    assert [m.first("MSA").get(2) for m in received] == ["RF-52"]
    assert "Okafor" not in str(worklist.answers(None))
    worklist.close()


def test_ar_from_the_pharmacy_means_not_now(tmp_path):
    worklist = owed(tmp_path, "rr-1")
    with PharmacyStandIn(tmp_path / "pharmacy.sqlite", outcome="retry") as busy:
        worklist.decide("rr-1", "denied", DECIDED, "rr-1-d", reason="too-soon",
                        answer_to=f"pharmacy-v2:{busy.target}")
        (done,) = deliver_answers(worklist, clinic(), timeout=10)
        assert len(busy.received) == 1
    assert (done.status, done.detail.split(":")[0]) == (
        "pending", "the pharmacy answered AR (not now)")
    assert [a[2:4] for a in worklist.answers(None)] == [("pending", 1)]
    worklist.close()


def test_answer_target_without_a_port_is_refused_before_deciding(tmp_path):
    clinic_file, wl, request = on_worklist(tmp_path, "RF-43")
    decided = invoke("pharmacy", "decide", request.id, "--approve", "--answer",
                     "pharmacy-v2:rx-host", "--worklist", wl, "--clinic", str(clinic_file))
    assert decided.exit_code == 2, decided.output
    assert "--answer" in decided.output
    assert "pharmacy-v2 needs HOST:PORT" in decided.output
    worklist = LocalWorklist(wl)
    assert worklist.state(request.id) == "requested"  # nothing was decided
    assert worklist.answers(None) == []
    worklist.close()
