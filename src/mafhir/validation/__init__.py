"""Validation of FHIR JSON: structure (R4) and the rules of the profiles mafhir emits."""

from .issues import Issue, has_errors, operation_outcome
from .validator import check_bundle, check_document, check_profiles, check_resource

__all__ = [
    "Issue",
    "check_bundle",
    "check_document",
    "check_profiles",
    "check_resource",
    "has_errors",
    "operation_outcome",
]
