"""FHIR profile validation driven by the StructureDefinitions of FHIR packages.

``Validator.default().validate(resource)`` checks a resource (JSON dict) against its
claimed profiles, named profiles, or the base R4 definitions, and returns ``Issue``s.
"""

from .issue import Issue
from .validator import Validator, install_package, installed_packages

__all__ = ["Issue", "Validator", "install_package", "installed_packages"]
