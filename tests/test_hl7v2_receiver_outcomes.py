"""Each handler outcome gets the acknowledgment HL7 gives it (v2.5.1 §2.9, table 0008):
a unit test of the receiver alone, so a receiver answering AA for a message held for
review is caught here and not only end to end."""

from __future__ import annotations

import pytest

from mafhir.errors import Problem
from mafhir.hl7v2 import MessageStore, Outcome, Receiver, read_ack

RAW = (b"MSH|^~\\&|LAB|QUEST|MAFHIR|CLINIC|20261127093000-0500||ORU^R01^ORU_R01|{id}|P|"
       b"2.5.1|||{modes}\rPID|1||MS-1^^^CLINIC^MR||Doe^Jane\rOBX|1|NM|4548-4^HbA1c^LN||6.9|%")
HELD = Problem("PID-3", "the patient is not known to the clinic; held for review",
               "business-rule")


def message(control_id: str, modes: str = "") -> bytes:
    return RAW.replace(b"{id}", control_id.encode()).replace(b"{modes}", modes.encode())


@pytest.mark.parametrize(("outcome", "expected"), [
    (Outcome("processed"), "AA"),
    (Outcome("review", (HELD,)), "AE"),
    (Outcome("error", (Problem("OBX[1]-5", "is not a number", "value"),)), "AE"),
    (Outcome("rejected", (Problem("MSH-12", "version 9.9 is not supported",
                                  "not-supported"),)), "AR"),
    (Outcome("retry", (Problem("", "the EHR is down", "transient"),)), "AR"),
])
def test_original_mode_answers_each_outcome_with_its_code(tmp_path, outcome, expected):
    store = MessageStore(tmp_path / "in.sqlite")
    ack = read_ack(Receiver(store, lambda m: outcome).receive(message("O-1")))
    assert ack.code == expected
    (row,) = list(store.messages())
    assert row.status == outcome.status


def test_enhanced_mode_commits_a_message_held_for_review_and_owes_an_ae(tmp_path):
    store = MessageStore(tmp_path / "in.sqlite")
    receiver = Receiver(store, lambda m: Outcome("review", (HELD,)))
    assert read_ack(receiver.receive(message("E-1", "AL|AL"))).code == "CA"
    (owed,) = store.pending_replies()
    ack = read_ack(owed.app_ack)
    assert ack.code == "AE" and any("PID-3" in e for e in ack.errors)
