"""Values read exactly or refused: ``\\Xhh\\`` escapes in the declared character set, local
times at a daylight-saving change, a birth time with no zone (review findings)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.datatypes import DtmError, read_dtm
from mafhir.hl7v2.patient import patient_from_pid

NY = ZoneInfo("America/New_York")
MRN = V2Context().map.clinic.mrn_namespace


def pid_message(name: bytes, charset: str = "", birth: str = "19800101") -> bytes:
    return (b"MSH|^~\\&|REG|CLINIC|MAFHIR|CLINIC|20261127093000-0500||ADT^A04|1|P|2.5.1"
            + (b"||||||" + charset.encode() if charset else b"") + b"\r"
            + b"PID|1||12345^^^CLIN^MR||Kowalska^" + name + b"||" + birth.encode() + b"|F")


@pytest.mark.parametrize(("charset", "escaped", "expected"), [
    ("8859/2", b"\\XA3\\ucja", "Łucja"),      # A3 is Ł in ISO 8859-2 (£ in Latin-1)
    ("8859/15", b"\\XA4\\", "€"),             # A4 is € in ISO 8859-15 (¤ in Latin-1)
    ("UNICODE UTF-8", b"\\XC581\\ucja", "Łucja"),
    ("", b"\\XC581\\ucja", "Łucja"),     # none declared: UTF-8 as before
])
def test_hex_escapes_are_bytes_of_the_declared_character_set(charset, escaped, expected):
    msg = parse(pid_message(escaped, charset))
    assert msg.first("PID").get(5, 2) == expected


def test_a_hex_escape_not_valid_in_the_declared_set_is_kept_as_written():
    msg = parse(pid_message(b"\\XFF\\a", "UNICODE UTF-8"))
    assert msg.first("PID").get(5, 2) == "\\XFF\\a"


@pytest.mark.parametrize("local", ["20260308023000",   # clocks forward: never happens
                                   "20261101013000"])  # clocks back: happens twice
def test_a_local_time_at_a_daylight_saving_change_is_refused_not_guessed(local):
    with pytest.raises(DtmError) as err:
        read_dtm(local, NY)
    assert err.value.code == "business-rule" and "UTC offset" in err.value.reason


def test_times_around_the_change_and_with_offsets_are_read_as_before():
    assert read_dtm("20260308013000", NY) == "2026-03-08T01:30:00-05:00"
    assert read_dtm("20260308033000", NY) == "2026-03-08T03:30:00-04:00"
    assert read_dtm("20261101013000-0400", NY) == "2026-11-01T01:30:00-04:00"


def test_a_birth_time_with_no_zone_keeps_the_birth_date_and_reports_the_time():
    ctx = V2Context(namespaces={"CLIN": MRN})
    msg = parse(pid_message(b"Anna", birth="198001010000"))
    found = patient_from_pid(msg.first("PID"), ctx, msg.sender_name, None)
    assert found.resource["birthDate"] == "1980-01-01"
    assert "_birthDate" not in found.resource
    assert [(w.location, w.code) for w in found.warnings if w.location == "PID-7"] == \
        [("PID-7", "incomplete")]


def test_a_resend_after_retry_is_not_taken_over_by_a_second_listener(tmp_path):
    """Two listeners on one store. A message's first try ended ``retry``; its re-send is
    being processed by listener 1 when another copy reaches listener 2: listener 2 must
    not take the row over as an orphan (that would deliver the result twice)."""
    import threading
    from datetime import UTC, datetime, timedelta

    from mafhir.hl7v2 import MessageStore, Outcome, Receiver

    raw = (b"MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|M1|P|"
           b"2.5.1\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane\rOBX|1|NM|4548-4^HbA1c^LN||6.9|%|||||F")
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    now = [start]
    inside, release = threading.Event(), threading.Event()
    deliveries: list[str] = []

    def handler(msg):
        if not deliveries and not inside.is_set() and now[0] == start:
            return Outcome("retry")  # the EHR was down
        deliveries.append(threading.current_thread().name)
        inside.set()
        release.wait(30)
        return Outcome("processed")

    path = tmp_path / "in.sqlite"
    one = Receiver(MessageStore(path), handler, clock=lambda: now[0], wait_for_duplicate=0.2)
    two = Receiver(MessageStore(path), handler, clock=lambda: now[0], wait_for_duplicate=0.2)
    assert b"MSA|AR|M1" in one.receive(raw)
    now[0] = start + timedelta(minutes=10)  # the sender re-sends much later
    first = threading.Thread(target=one.receive, args=(raw,), name="listener-1")
    first.start()
    assert inside.wait(30)
    answer = two.receive(raw)  # a second copy, while listener 1 is still delivering
    release.set()
    first.join(30)
    assert deliveries == ["listener-1"]
    assert b"MSA|AA" not in answer


def test_enhanced_mode_answers_a_transient_failure_ce_and_processes_the_resend(tmp_path):
    """CA would tell the sender the message is safe here while nothing processes it
    again; CE makes it re-send, and the re-send is processed (review finding)."""
    from mafhir.hl7v2 import MessageStore, Outcome, Receiver, read_ack

    raw = (b"MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|E1|P|"
           b"2.5.1|||AL|AL\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane\rOBX|1|NM|4548-4^HbA1c^LN||6.9|%")
    outcomes = iter([Outcome("retry"), Outcome("processed")])
    store = MessageStore(tmp_path / "in.sqlite")
    receiver = Receiver(store, lambda m: next(outcomes))
    first = read_ack(receiver.receive(raw))
    assert first.code == "CE" and store.pending_reply_count() == 0
    second = read_ack(receiver.receive(raw))
    assert second.code == "CA" and store.pending_reply_count() == 1  # the AA, owed back
