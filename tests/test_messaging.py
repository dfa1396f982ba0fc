"""The ``messaging`` destination: reminders go out through the outbox to a real loopback
webhook (and to a delivery-ready NDJSON file), with retries and dead letters; the messages
are written out by hand here from the reminder tasks, not copied from the code."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mafhir.cli.main import build_cli
from mafhir.connectors.messaging import MessagingConnector, WebhookSender
from mafhir.errors import InputError

MRN = {"mrn": "MS-10024", "system": "urn:oid:2.16.840.1.113883.19.5"}
CLINIC = {"name": "Maple Street Family Clinic", "system": "https://maple.example.org/id",
          "phone": "555-201-4400"}


def reminder(n: int, start: str, **extra: Any) -> dict[str, Any]:
    return {"task": "reminder", "id": f"rem-{n}", "patient": MRN,
            "purpose": "appointment_reminder", "channel": "sms", "to": f"555-201-77{n:02d}",
            "scheduled": "2030-06-09T09:00:00-05:00",
            "appointment": {"id": f"appt-{n}", "start": start, "minutes": 20}, **extra}


TASKS = [reminder(1, "2030-06-10T09:30:00-05:00"), reminder(2, "2030-06-10T14:05:00-05:00")]
#: by hand: 2030-06-10 is a Monday
EXPECTED = [
    {"id": "https://maple.example.org/id/reminder|rem-1", "to": "555-201-7701",
     "channel": "sms", "when": "2030-06-09T09:00:00-05:00",
     "text": "Reminder from Maple Street Family Clinic: you have an appointment at 9:30 AM "
             "on Monday, June 10, 2030. Call 555-201-4400 to change it."},
    {"id": "https://maple.example.org/id/reminder|rem-2", "to": "555-201-7702",
     "channel": "sms", "when": "2030-06-09T09:00:00-05:00",
     "text": "Reminder from Maple Street Family Clinic: you have an appointment at 2:05 PM "
             "on Monday, June 10, 2030. Call 555-201-4400 to change it."},
]


class Hook:
    """A webhook on 127.0.0.1 that records what it got and answers from a script."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.answers = list(answers or [])
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = hook.answers.pop(0) if hook.answers else 200
                if status == 200:
                    hook.received.append((json.loads(body), dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def sync(tmp_path: Path, to: str, *extra: str, tasks: list[dict[str, Any]] = TASKS,
         env: dict[str, str] | None = None) -> Any:
    source = tmp_path / "tasks.ndjson"
    source.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    clinic = tmp_path / "clinic.json"
    clinic.write_text(json.dumps(CLINIC))
    return CliRunner().invoke(build_cli(), [
        "sync", str(source), "--db", str(tmp_path / "outbox.db"), "--to", to,
        "--clinic", str(clinic), "--json", "--retry-base", "0.01", *extra], env=env)


def test_reminders_go_out_through_the_outbox_to_a_webhook(tmp_path, hook):
    result = sync(tmp_path, f"messaging:{hook.url}", env={"MAFHIR_MESSAGING_TOKEN": "s3cret"})
    assert result.exit_code == 0, result.output
    assert sorted((m for m, _ in hook.received), key=lambda m: m["id"]) == EXPECTED
    for message, headers in hook.received:
        assert headers["Authorization"] == "Bearer s3cret"
        assert headers["Idempotency-Key"] == message["id"]
    assert "s3cret" not in result.output
    again = sync(tmp_path, f"messaging:{hook.url}")
    assert again.exit_code == 0 and len(hook.received) == 2  # the outbox remembers


def test_a_busy_webhook_is_retried_and_a_refusing_one_dead_lettered(tmp_path):
    busy = Hook(answers=[503, 503])
    try:
        result = sync(tmp_path, f"messaging:{busy.url}", "--threads", "1")
        assert result.exit_code == 0, result.output
        assert sorted(m["id"] for m, _ in busy.received) == [e["id"] for e in EXPECTED]
    finally:
        busy.close()
    refusing = Hook(answers=[400] * 20)
    try:
        (tmp_path / "b").mkdir()
        result = sync(tmp_path / "b", f"messaging:{refusing.url}")
        assert result.exit_code == 1
        summary = json.loads(result.output[result.output.index("{"):])
        assert summary["dead"] == 2 and summary["sent"] == 0
        assert refusing.received == []
    finally:
        refusing.close()


def test_reminders_go_to_a_delivery_file_once(tmp_path):
    out = tmp_path / "outgoing" / "reminders.ndjson"
    assert sync(tmp_path, f"messaging:{out}").exit_code == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(lines, key=lambda m: m["id"]) == EXPECTED
    again = sync(tmp_path, f"messaging:{out}", "--resend")
    assert again.exit_code == 0, again.output
    assert len(out.read_text().splitlines()) == 2  # sent again, written once


def test_a_sent_reminder_and_other_resources_send_nothing(tmp_path):
    out = tmp_path / "r.ndjson"
    sent = reminder(3, "2030-06-10T09:30:00-05:00", sent="2030-06-09T09:00:02-05:00")
    call = {"task": "phone_call", "id": "call-1", "patient": MRN, "direction": "outbound",
            "topic": "appointment", "outcome": "no_answer", "at": "2030-06-04T10:15:00-05:00"}
    result = sync(tmp_path, f"messaging:{out}", tasks=[sent, call])
    assert result.exit_code == 0, result.output
    assert not out.exists() or out.read_text() == ""


def test_a_request_mafhir_did_not_write_is_refused_naming_the_field(tmp_path):
    foreign = {"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {
        "resourceType": "CommunicationRequest", "status": "active",
        "identifier": [{"system": "urn:x", "value": "1"}],
        "payload": [{"contentString": "Your HbA1c was 9.1, call us"}]},
        "request": {"method": "POST", "url": "CommunicationRequest"}}]}
    connector = MessagingConnector(str(tmp_path / "r.ndjson"))
    with pytest.raises(InputError) as info:
        connector.send(foreign)
    assert info.value.problems[0].location == "Bundle.entry[0].resource.reasonCode"
    assert not (tmp_path / "r.ndjson").exists()


@pytest.mark.parametrize(("url", "code"), [("http://sms.example.org/hook", "security"),
                                           ("https://user:pw@sms.example.org/", "security")])
def test_a_webhook_must_be_tls_off_this_machine_and_carry_no_secret(url, code):
    with pytest.raises(InputError) as info:
        WebhookSender(url)
    assert info.value.problems[0].code == code and "pw" not in str(info.value)
