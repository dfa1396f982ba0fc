"""The FHIR REST plugin runs mafhir's connector conformance kit on itself."""

from __future__ import annotations

from mafhir.testing import AuthSpec, connector_suite
from mafhir_fhir_rest import (
    BearerAuth,
    FhirClient,
    FhirRestConnector,
    Secret,
    SigningKey,
    SmartBackendAuth,
)


def with_auth(base_url: str, spec: AuthSpec) -> FhirRestConnector:
    if spec.kind == "bearer":
        auth = BearerAuth(Secret(spec.token or "", "test"))
    else:
        key = SigningKey.from_pem_file(spec.key_file, algorithm=spec.algorithm)
        auth = SmartBackendAuth(spec.token_url, spec.client_id, key, spec.scope)
    return FhirRestConnector(FhirClient(base_url, auth=auth))


TestKit = connector_suite("fhir-rest", auth_factory=with_auth)
