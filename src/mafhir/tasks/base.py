"""The base of every task model: the clinic's words for one piece of MA work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..errors import Problem

__all__ = ["FieldError", "TaskId", "TaskModel", "refuse"]

#: A cross-field rule's refusal: the field's location in the task, and why.
FieldError = tuple[tuple[str | int, ...], str]

#: The clinic's own id of one task; business identifiers are derived from it.
TaskId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$",
        description="The clinic's unique id of this task (letters, digits, . _ : -; 1-64).",
    ),
]


class TaskModel(BaseModel):
    """A task of one kind, told apart from others by its ``task`` field."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: The value of the ``task`` field that selects this model.
    kind: ClassVar[str] = ""

    task: str
    id: TaskId

    def warnings(self) -> list[Problem]:
        """Soft problems (implausible but possible values); the task still maps."""
        return []


def refuse(title: str, errors: Sequence[FieldError]) -> None:
    """Raise the refusals of a cross-field rule as one pydantic error, each at its own field,
    so that the pipeline reports ``task[i].<field>``; nothing when there are none."""
    if errors:
        raise ValidationError.from_exception_data(title, [
            InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc,
                             input=None)
            for loc, message in errors
        ])
