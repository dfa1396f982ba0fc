"""Configuration names a sender by MSH-3.1/MSH-4.1; a namespace scoped to one sender never
files another sender's identifiers under the clinic's MRN, and identifiers made from a
message never carry raw v2 component separators (review findings)."""

from __future__ import annotations

import pytest

from mafhir.errors import InputError
from mafhir.hl7v2 import V2Context, parse
from mafhir.hl7v2.patient import patient_from_pid

MRN = V2Context().map.clinic.mrn_namespace


def adt(app: str, facility: str) -> bytes:
    return (f"MSH|^~\\&|{app}|{facility}|MAFHIR|CLINIC|20261127093000-0500||ADT^A04|1|P|2.5.1\r"
            f"PID|1||12345^^^MRN^MR||Doe^Jane||19800101|F").encode()


def patient_system(ctx: V2Context, app: str, facility: str) -> str:
    msg = parse(adt(app, facility))
    found = patient_from_pid(msg.first("PID"), ctx, msg.sender_name)
    return found.resource["identifier"][0]["system"]


@pytest.mark.parametrize("scope", ["REGSYS^CLINIC", "CLINIC", "REGSYS"])
def test_a_scoped_namespace_holds_for_its_sender_only(scope):
    ctx = V2Context(namespaces={f"{scope}|MRN": MRN})
    assert patient_system(ctx, "REGSYS", "CLINIC") == MRN
    with pytest.raises(InputError) as held:  # another sender's "MRN" is not the clinic's
        patient_system(ctx, "OUTSIDELAB", "QUEST")
    assert [(p.location, p.code) for p in held.value.problems] == [("PID-3", "business-rule")]


def test_an_unscoped_namespace_holds_for_every_sender_and_a_scoped_one_wins():
    other = "https://outside-lab.example/mrn"
    ctx = V2Context(namespaces={"MRN": MRN, "OUTSIDELAB^QUEST|MRN": other})
    assert patient_system(ctx, "REGSYS", "CLINIC") == MRN
    with pytest.raises(InputError):  # its own MRN namespace is not the clinic's: review
        patient_system(ctx, "OUTSIDELAB", "QUEST")


def test_sender_name_is_first_components_and_sender_is_whole():
    msg = parse(adt("ORDApp", "GHHSFacility^2.16.840.1.122848.1.30^ISO"))
    assert msg.sender_name == "ORDApp|GHHSFacility"
    assert msg.sender == "ORDApp|GHHSFacility^2.16.840.1.122848.1.30^ISO"
