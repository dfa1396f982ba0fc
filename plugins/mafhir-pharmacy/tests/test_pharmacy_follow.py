"""Following a prescription without SEKMET: when to subscribe at all, how long to wait for
a first notification before polling again, and the rest-hook receiver's handling of bad
``Content-Length`` headers on a real loopback socket. (That a Subscription works end to
end is proven against SEKMET in test_pharmacy_fhir.py.)"""

from __future__ import annotations

import logging
import socket
from datetime import datetime
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

import mafhir_pharmacy.channels as channels
from mafhir_pharmacy.channels import (
    MAX_NOTIFICATION_BYTES,
    DispenseStatus,
    FhirPharmacy,
    NotificationReceiver,
    notify_window,
    on_this_machine,
)


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:8080/fhir", True),
    ("http://127.0.0.2:8080/fhir", True),  # all of 127.0.0.0/8 is loopback
    ("http://localhost:8080/fhir", True),
    ("http://LOCALHOST/fhir", True),
    ("http://[::1]:8080/fhir", True),
    ("https://pharmacy.example.invalid/fhir", False),
    ("http://localhost.example.invalid/fhir", False),
    ("http://10.1.2.9:8080/fhir", False),
    ("http://[2001:db8::1]/fhir", False),
    ("not a url", False),
])
def test_only_a_server_on_this_machine_is_subscribed_to(url, local):
    assert on_this_machine(url) is local


@pytest.mark.parametrize(("timeout", "interval", "given", "window"), [
    (600.0, 0.2, None, 5.0),  # a few intervals, at least 5 s — not the whole wait
    (600.0, 2.0, None, 10.0),  # five poll intervals
    (3.0, 0.2, None, 3.0),  # never beyond the wait
    (600.0, 0.2, 1.5, 1.5),  # as asked
    (1.0, 0.2, 30.0, 1.0),
])
def test_notify_window(timeout, interval, given, window):
    assert notify_window(timeout, interval, given) == window


class ScriptedPharmacy(FhirPharmacy):
    """A FhirPharmacy whose server is a script: ``follow`` returns the states in turn (the
    last one repeats), the Subscription is recorded, not created. No network."""

    def __init__(self, states: list[str], base_url: str = "http://127.0.0.1:8080/fhir"):
        self.client = SimpleNamespace(base_url=base_url)
        self.clinic_system = "urn:mafhir:test:follow"
        self.pickup_days = 14
        self.states = list(states)
        self.follows = 0
        self.subscribed: list[str] = []
        self.deleted: list[str] = []

    def follow(self, rx_id: str, now: datetime | None = None) -> DispenseStatus:
        self.follows += 1
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return DispenseStatus(state, "MedicationRequest/mr-1",
                              "MedicationDispense/md-1" if state == "dispensed" else None)

    def _subscribe(self, prescription: str, endpoint: str, end: datetime) -> str | None:
        self.subscribed.append(prescription)
        return "sub-1"

    def _unsubscribe(self, sub_id: str) -> None:
        self.deleted.append(sub_id)


class ScriptedReceiver:
    """Stands in for the loopback receiver: each ``wait`` returns at once with the next
    scripted answer (True: a notification came; then False for ever) and records how
    long it was asked to wait."""

    url = "http://127.0.0.1:9/mafhir/notify/x"

    def __init__(self, notified: list[bool]) -> None:
        self.notified = list(notified)
        self.waits: list[float] = []

    def __call__(self) -> ScriptedReceiver:  # the class is called to make one
        return self

    def __enter__(self) -> ScriptedReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.notified.pop(0) if self.notified else False


def test_no_notification_then_polling_within_the_window_not_the_whole_wait(monkeypatch,
                                                                          caplog):
    """A 600 s wait, polling every 0.2 s, and a Subscription that never fires: the reader
    waits 5 s for a first notification (the default window), then polls — and finds the
    dispense on the first poll after the window, long before the 600 s are up."""
    receiver = ScriptedReceiver([])
    monkeypatch.setattr(channels, "NotificationReceiver", receiver)
    pharmacy = ScriptedPharmacy(["pending", "pending", "pending", "dispensed"])
    with caplog.at_level(logging.WARNING, logger="mafhir_pharmacy.follow"):
        status = pharmacy.wait_for_dispense("rx-1", timeout=600, interval=0.2,
                                            subscribe=True)
    assert (status.state, status.via) == ("dispensed", "poll")
    # look, subscribe, look again, wait ≤ 5 s for a notification, poll, wait 0.2 s, poll
    assert pharmacy.follows == 4
    assert [round(w, 1) for w in receiver.waits] == [5.0, 0.2]
    assert pharmacy.deleted == ["sub-1"]
    assert any("no notification from Subscription/sub-1 within 5.0s" in r.getMessage()
               for r in caplog.records)


def test_a_late_notification_still_wakes_a_read(monkeypatch):
    """Polling after the window; a notification during a poll interval wakes the read
    that finds the dispense (``via`` subscription)."""
    receiver = ScriptedReceiver([False, False, True])  # window, interval, then notified
    monkeypatch.setattr(channels, "NotificationReceiver", receiver)
    pharmacy = ScriptedPharmacy(["pending"] * 4 + ["dispensed"])
    status = pharmacy.wait_for_dispense("rx-1", timeout=600, interval=0.2, subscribe=True)
    assert (status.state, status.via) == ("dispensed", "subscription")
    assert pharmacy.follows == 5


def test_a_remote_server_is_polled_without_a_subscription(monkeypatch, caplog):
    def no_receiver() -> None:
        raise AssertionError("a receiver was started for a remote server")

    monkeypatch.setattr(channels, "NotificationReceiver", no_receiver)
    pharmacy = ScriptedPharmacy(["pending", "pending", "dispensed"],
                                base_url="http://pharmacy.example.invalid/fhir")
    slept: list[float] = []
    with caplog.at_level(logging.WARNING, logger="mafhir_pharmacy.follow"):
        status = pharmacy.wait_for_dispense("rx-1", timeout=600, interval=0.2,
                                            sleep=slept.append, subscribe=True)
    assert (status.state, status.via) == ("dispensed", "poll")
    assert (pharmacy.subscribed, slept) == ([], [0.2, 0.2])
    assert [r.getMessage() for r in caplog.records] == [
        "the pharmacy server is not on this machine; following by polling"]


# ---------------------------------------------------------------- the rest-hook receiver
def raw_request(url: str, length: str | None, body: bytes = b"", method: str = "POST") -> int:
    """One HTTP request written by hand on a socket (so any header can be sent); the
    status code answered (0: the connection closed without an answer)."""
    parts = urlsplit(url)
    head = f"{method} {parts.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" \
           "Content-Type: application/fhir+json\r\nConnection: close\r\n"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        sock.shutdown(socket.SHUT_WR)  # a read to EOF ends here instead of hanging
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def test_receiver_refuses_bad_content_length_and_keeps_a_bounded_record():
    with NotificationReceiver() as receiver:
        answers = {length: raw_request(receiver.url, length, b'{"resourceType": "X"}')
                   for length in ("-1", "abc", "1e3", "", str(MAX_NOTIFICATION_BYTES + 1),
                                  "9" * 5000)}
        assert answers == {"-1": 413, "abc": 400, "1e3": 400, "": 400,
                           str(MAX_NOTIFICATION_BYTES + 1): 413, "9" * 5000: 413}
        assert receiver.count == 0 and not receiver.wait(0)  # none of them woke a reader
        body = b'{"resourceType": "MedicationDispense", "id": "md-1"}'
        assert raw_request(receiver.url, str(len(body)), body) == 200
        assert raw_request(receiver.url + "/MedicationDispense/md-1", "0",
                           method="PUT") == 200  # an empty ping
        assert raw_request(receiver.url.rsplit("/", 1)[0] + "/other", "0") == 404
        assert receiver.wait(0)
        assert (receiver.count, receiver.last) == (2, None)
        assert not hasattr(receiver, "received")  # no list that grows per notification
