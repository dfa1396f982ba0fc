"""mafhir schedule and registration feeds in: the EHR's SIU (appointments) and ADT
(registration, visits, merges) as FHIR."""

__version__ = "0.1.0"

__all__ = ["__version__"]
