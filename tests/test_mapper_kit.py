"""The mapper conformance kit (issue 19, item 12): the built-in task kinds keep the
contract on the clinic day; a mapper that breaks it — random identifiers, an invalid
resource, a reader that loses a field — is named for each, by sample and reason."""

from __future__ import annotations

import json
import types
import uuid
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest

from mafhir import Mapper, hookimpl, plugins
from mafhir.bundle import create
from mafhir.clinic import load_clinic
from mafhir.context import MapContext
from mafhir.fhirtypes import identifier
from mafhir.mappers.common import patient_refs
from mafhir.tasks import PatientRef, TaskModel
from mafhir.testing import check_mapper, mapper_suite

DAY = Path(__file__).resolve().parents[1] / "fixtures" / "clinic-day"
CTX = MapContext(clinic=load_clinic(str(DAY / "clinic.json")))
SAMPLES = [json.loads(x) for x in (DAY / "day.ndjson").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["vitals", "immunization", "appointment", "coverage",
                                  # issue 18 part B (w10)
                                  "phone_call", "reminder", "follow_up"])
def test_the_built_in_kinds_keep_the_mapper_contract(kind):
    # the day's one vitals task with a time and no offset is refused on purpose (quarantine)
    samples = [s for s in SAMPLES if s["task"] == kind and s.get("id") != "vitals-208"]
    assert samples
    assert check_mapper(kind, samples, CTX) == []


class Note(TaskModel):
    """A note the MA wrote (a test kind)."""

    kind: ClassVar[str] = "kit_note"
    task: Literal["kit_note"]
    patient: PatientRef
    text: str
    status: str = "completed"


def _note(task: Note, ctx: MapContext, ident: str) -> list[Any]:
    patient = patient_refs(task.patient, ctx)
    doc = {"resourceType": "Communication",
           "identifier": [identifier(ctx.clinic.task_system("kit-note"), ident)],
           "status": task.status, "subject": patient.ref,
           "payload": [{"contentString": task.text}]}
    return [*patient.entries, create(doc)]


def _read(resources: Any, lose_text: bool = False) -> list[Note]:
    out = []
    for c in resources.of_type("Communication"):
        out.append(Note(task="kit_note", id=c["identifier"][0]["value"],
                        patient={"mrn": "MS-1"}, status=c["status"],
                        text="" if lose_text else c["payload"][0]["contentString"]))
    return out


SAMPLE = {"task": "kit_note", "id": "n-1", "patient": {"mrn": "MS-1"}, "text": "called back"}


@pytest.fixture
def with_mapper():
    def install(to_fhir, from_fhir):
        module = types.ModuleType("kit_test_plugin")

        @hookimpl
        def register_mappers(register):
            register(Mapper("kit_note", Note, to_fhir, from_fhir, "a test kind"))

        module.register_mappers = register_mappers  # type: ignore[attr-defined]
        plugins.reset()
        plugins.register(module, name="kit-test")

    yield install
    plugins.reset()


def test_a_mapper_that_keeps_the_contract_passes(with_mapper):
    with_mapper(lambda t, c: _note(t, c, t.id), _read)
    assert check_mapper("kit_note", [SAMPLE], CTX) == []
    suite = mapper_suite("kit_note", [SAMPLE], CTX)()
    suite.test_mapper_contract()  # the generated pytest class runs the same check


def test_random_identifiers_are_named(with_mapper):
    with_mapper(lambda t, c: _note(t, c, str(uuid.uuid4())), _read)
    problems = check_mapper("kit_note", [SAMPLE], CTX, round_trip=False)
    assert problems == ["kit_note sample 0: to_fhir is not deterministic (two runs wrote "
                        "different FHIR: random ids or the clock?)"]


def test_an_invalid_resource_is_named_with_its_path(with_mapper):
    with_mapper(lambda t, c: _note(t, c, t.id), _read)
    problems = check_mapper("kit_note", [{**SAMPLE, "status": ""}], CTX)  # code: not empty
    assert any(p.startswith("kit_note sample 0: ") and "status" in p for p in problems), \
        problems


def test_a_reader_that_loses_a_field_is_named(with_mapper):
    with_mapper(lambda t, c: _note(t, c, t.id), lambda r: _read(r, lose_text=True))
    problems = check_mapper("kit_note", [SAMPLE], CTX)
    assert len(problems) == 1 and "round trip" in problems[0] and "called back" in problems[0]
    with pytest.raises(AssertionError, match="round trip"):
        mapper_suite("kit_note", [SAMPLE], CTX)().test_mapper_contract()
