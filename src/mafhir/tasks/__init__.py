"""Task models: the clinic's words for each piece of MA work."""

from .base import TaskId, TaskModel
from .common import Address, LocationRef, PatientRef, PractitionerRef

__all__ = ["Address", "LocationRef", "PatientRef", "PractitionerRef", "TaskId", "TaskModel"]
