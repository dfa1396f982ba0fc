"""The MA's words for lab work: a lab order, and the specimen collected for it."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from mafhir.tasks import PatientRef, TaskModel
from mafhir.tasks.common import PractitionerRef

from .codes import BODY_SITES, COLLECTION_METHODS, ORDER_TESTS, SPECIMEN_TYPES

__all__ = ["LabOrder", "LabTest", "SpecimenCollection"]

_MODEL = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
_Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")]
TestName = Literal[tuple(ORDER_TESTS)]
SpecimenType = Literal[tuple(SPECIMEN_TYPES)]
Method = Literal[tuple(COLLECTION_METHODS)]
BodySite = Literal[tuple(BODY_SITES)]


class LabTest(BaseModel):
    """One test: a short name the clinic uses, or any LOINC order code."""

    model_config = _MODEL

    name: TestName | None = Field(default=None, description="e.g. cbc, cmp, hba1c, urinalysis")
    loinc: str | None = Field(default=None, pattern=r"^\d{1,7}-\d$",
                              description="LOINC order code when not one of the names")
    display: str | None = None

    @model_validator(mode="after")
    def _one_code(self) -> LabTest:
        if (self.name is None) == (self.loinc is None):
            raise ValueError("give either 'name' or 'loinc'")
        return self

    @property
    def code(self) -> tuple[str, str]:
        if self.name is not None:
            return ORDER_TESTS[self.name]
        assert self.loinc is not None
        return self.loinc, self.display or ""


class LabOrder(TaskModel):
    """Tests ordered from the reference lab (→ one US Core ServiceRequest per test)."""

    kind: ClassVar[str] = "lab_order"

    task: Literal["lab_order"]
    patient: PatientRef
    ordered: AwareDatetime = Field(description="When the provider ordered (authoredOn, ORC-9)")
    requester: PractitionerRef = Field(description="Ordering provider (ORC-12)")
    tests: list[LabTest] = Field(min_length=1, max_length=20)
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    diagnoses: list[Annotated[str, Field(pattern=r"^[A-TV-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")]] \
        = Field(default_factory=list, max_length=12,
                description="ICD-10-CM codes (reasonCode, DG1-3), e.g. E11.9")
    fasting: bool | None = Field(default=None, description="Patient fasting (v2-0916)")
    specimens: list[_Id] = Field(default_factory=list,
                                 description="Ids of specimen_collection tasks for this order")
    visit: _Id | None = Field(default=None, description="The visit (appointment id)")
    lab: str | None = Field(default=None, description="Name of the performing lab")
    note: str | None = Field(default=None, max_length=2000)
    cancel: bool = Field(default=False, description="Cancel this order (ORC-1 CA; revoked)")

    def placer_number(self, index: int) -> str:
        """The placer order number of test ``index`` (ORC-2 / OBR-2)."""
        return self.id if len(self.tests) == 1 else f"{self.id}-{index + 1}"


class SpecimenCollection(TaskModel):
    """A specimen the MA collected and labelled (→ US Core Specimen)."""

    kind: ClassVar[str] = "specimen_collection"

    task: Literal["specimen_collection"]
    patient: PatientRef
    order: _Id | None = Field(default=None, description="The lab_order task id it is for")
    type: SpecimenType
    method: Method | None = None
    body_site: BodySite | None = None
    collected: AwareDatetime
    collector: PractitionerRef | None = None
    label: str | None = Field(default=None, min_length=1, max_length=64,
                              description="Container/label id printed on the tube")
    note: str | None = Field(default=None, max_length=2000)
