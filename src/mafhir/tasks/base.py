"""The base of every task model: the clinic's words for one piece of MA work."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import Problem

__all__ = ["TaskId", "TaskModel"]

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
