"""Pure mappers, task → FHIR and FHIR → task, one module per task kind."""
