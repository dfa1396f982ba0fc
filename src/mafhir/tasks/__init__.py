"""Task models: the clinic's words for each piece of MA work."""

from .base import TaskId, TaskModel
from .common import Address, ClinicianRef, LocationRef, PatientRef, PractitionerRef

__all__ = ["Address", "ClinicianRef", "LocationRef", "PatientRef", "PractitionerRef", "TaskId",
           "TaskModel"]
