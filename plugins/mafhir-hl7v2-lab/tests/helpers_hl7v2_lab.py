"""Test data for the lab plugin: tasks, a clinic with its own namespaces, an ORU maker,
and an independent reading of OBX fields through python-hl7 (not mafhir's parser)."""

from __future__ import annotations

import uuid
from typing import Any

import hl7
import pytest

from mafhir.context import DEFAULT_CLINIC, Clinic, MapContext
from mafhir.hl7v2 import V2Context
from mafhir.plugins import get_registry, reset

JSON = dict[str, Any]
NPI = "1234567893"  # passes the Luhn check


def clinic(system: str | None = None) -> Clinic:
    return Clinic(name="Maple Street Family Clinic",
                  system=system or f"urn:mafhir:test:{uuid.uuid4()}", npi=NPI)


def ctx_for(c: Clinic) -> MapContext:
    return MapContext(clinic=c)


#: The zone the test senders are configured with (times without an offset are theirs).
ZONE = "America/New_York"


def v2ctx(c: Clinic = DEFAULT_CLINIC, authorities: tuple[str, ...] = ("X",), **extra: Any
          ) -> V2Context:
    """A receiver configured as a clinic would be: the senders' MRN authorities (``X`` in
    the messages written here) map to the clinic's MRN system, and a time zone is set."""
    from zoneinfo import ZoneInfo

    return V2Context(map=ctx_for(c), tz=ZoneInfo(ZONE),
                     namespaces={a: c.mrn_namespace for a in authorities}, **extra)


def mr_authorities(data: bytes) -> tuple[str, ...]:
    """The assigning authorities of the PID-3 identifiers typed MR, read with python-hl7:
    the configuration a clinic would write for a sender that echoes its MRN."""
    theirs = Theirs(data)
    found = []
    for pid in theirs.segments("PID"):
        for rep in theirs.reps(pid, 3):
            if theirs.comp_of(rep, 5) == "MR":
                hd = theirs.comp_of(rep, 4).split("&")
                found += [hd[0]] if hd[0] else hd[1:2]
    return tuple(a for a in found if a)


def lab_order(mrn: str = "MS-10022", order_id: str = "ord-7001", new_patient: bool = True,
              **extra: Any) -> JSON:
    patient: JSON = {"mrn": mrn}
    if new_patient:
        patient.update({"family": "O'Brien|Smith", "given": ["Ana^María"], "gender": "female",
                        "birth_date": "1961-04-02"})
    task = {"task": "lab_order", "id": order_id, "patient": patient,
            "ordered": "2026-11-27T09:10:00-05:00",
            "requester": {"npi": NPI, "family": "Reyes", "given": ["Lena"]},
            "tests": [{"name": "hba1c"}], "priority": "routine", "diagnoses": ["E11.9"],
            "fasting": True, "specimens": ["spec-7001"], "note": "Fasting since 22:00 & no meds"}
    task.update(extra)
    return task


def specimen(mrn: str = "MS-10022", order_id: str = "ord-7001", **extra: Any) -> JSON:
    task = {"task": "specimen_collection", "id": "spec-7001", "patient": {"mrn": mrn},
            "order": order_id, "type": "venous-blood", "method": "venipuncture",
            "body_site": "left-arm", "collected": "2026-11-27T09:20:00-05:00",
            "label": "TUBE-000731"}
    task.update(extra)
    return task


def oru(placer: str, mrn_field: str, control_id: str, status: str = "F", value: str = "6.9",
        extra_obx: str = "") -> bytes:
    """An ORU^R01 as a reference lab sends it, echoing the clinic's placer order number."""
    return (
        f"MSH|^~\\&|LABSYS|QUESTLAB|MAFHIR|CLINIC|20261128061500-0500||ORU^R01^ORU_R01|"
        f"{control_id}|P|2.5.1\r"
        f"PID|1||{mrn_field}||O'Brien\\F\\Smith^Ana||19610402|F\r"
        f"ORC|RE|{placer}|ACC-889^QUESTLAB\r"
        f"OBR|1|{placer}|ACC-889^QUESTLAB|4548-4^Hemoglobin A1c/Hemoglobin.total in Blood^LN"
        f"|||20261127092000-0500|||||||||||||||20261128061000-0500|||{status}\r"
        f"OBX|1|NM|4548-4^Hemoglobin A1c/Hemoglobin.total in Blood^LN||{value}|%^percent^UCUM|"
        f"4.0-5.6|H|||{status}|||20261127092000-0500||||||||Quest Diagnostics\r"
        f"NTE|1|L|Repeat in 3 months\\.br\\per ADA guidance\r"
        f"OBX|2|SN|2345-7^Glucose [Mass/volume] in Serum or Plasma^LN||>^400|mg/dL^^UCUM|"
        f"70-99|HH|||{status}\r"
        f"OBX|3|CWE|5778-6^Color of Urine^LN||371244009^Yellow^SCT|||N|||{status}\r"
        f"OBX|4|ST|8251-1^Service comment^LN||Specimen slightly hemolyzed|||||{status}\r"
        f"{extra_obx}"
        f"SPM|1|TUBE-000731&MAFHIR||122555007^Venous blood specimen^SCT|||VENIP^Venipuncture"
        f"^HL70488|368208006^Left upper arm structure^SCT|||||||||20261127092000-0500\r"
    ).encode()


class Theirs:
    """One message read with python-hl7: the independent reading the tests compare with."""

    def __init__(self, data: bytes) -> None:
        text = data.decode("utf-8-sig", "replace").replace("\r\n", "\r").replace("\n", "\r")
        lines = [s for s in text.split("\r") if s.strip()]
        joined: list[str] = []
        for line in lines:  # a field broken across lines continues the previous segment
            if joined and not (len(line) >= 4 and line[:3].isalnum() and line[:3].isupper()
                               and line[3] == joined[0][3]):
                joined[-1] += " " + line
            else:
                joined.append(line)
        self.msg = hl7.parse("\r".join(joined))
        self.comp = str(self.msg.separators[3])
        self.rep = str(self.msg.separators[2])

    def segments(self, name: str) -> list[Any]:
        try:
            return list(self.msg.segments(name))
        except KeyError:
            return []

    def field(self, seg: Any, n: int) -> str:
        return str(seg[n]) if n < len(seg) else ""

    def reps(self, seg: Any, n: int) -> list[str]:
        raw = self.field(seg, n)
        return [r for r in raw.split(self.rep) if r] if raw else []

    def comp_of(self, raw: str, c: int) -> str:
        parts = raw.split(self.comp)
        return self.msg.unescape(parts[c - 1]) if c <= len(parts) else ""


@pytest.fixture(scope="session", name="registry")
def registry_fixture():
    """The registry with every installed plugin loaded (imported by the test modules)."""
    reset()
    return get_registry()
