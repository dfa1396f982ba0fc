"""The base of every task model: the clinic's words for one piece of MA work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..errors import CODES, Problem

__all__ = ["FieldError", "TaskId", "TaskModel", "refuse_at"]

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


def refuse_at(model: str, errors: Sequence[FieldError],
              code: str = "value_error") -> None:
    """Raise one validation error per ``(location, message)``, each at the field it is
    about (so the pipeline reports ``task[i].<field>``); nothing when ``errors`` is empty.

    Cross-field rules use this instead of a bare ``ValueError``, which pydantic would
    place on the whole task. ``code`` is a problem code (:data:`mafhir.errors.CODES`)
    that the refusal keeps, or pydantic's generic ``value_error``.
    """
    if not errors:
        return
    kind = code if code in CODES else "value_error"
    raise ValidationError.from_exception_data(model, [
        InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)
        for loc, message in errors
    ])
