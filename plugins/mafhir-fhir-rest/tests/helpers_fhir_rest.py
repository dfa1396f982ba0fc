"""Test data: small transaction Bundles like mafhir's, with per-test identifier systems."""

from __future__ import annotations

import uuid
from typing import Any

JSON = dict[str, Any]

MRN_VALUE = "MRN-7730041"
FAMILY = "Quillfeather"


def patient(system: str, value: str = MRN_VALUE, family: str = FAMILY) -> JSON:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}],
            "name": [{"family": family, "given": ["Rosalind"]}], "gender": "female",
            "birthDate": "1984-07-19"}


def heart_rate(system: str, value: str, subject: str, bpm: int = 72,
               when: str = "2026-03-04T09:15:00-05:00") -> JSON:
    return {"resourceType": "Observation", "identifier": [{"system": system, "value": value}],
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4",
                                 "display": "Heart rate"}]},
            "subject": {"reference": subject}, "effectiveDateTime": when,
            "valueQuantity": {"value": bpm, "unit": "beats/minute",
                              "system": "http://unitsofmeasure.org", "code": "/min"}}


def bundle(system: str, n_obs: int = 2, broken_at: int | None = None) -> JSON:
    """Patient (conditional create) + ``n_obs`` heart rates referencing it by urn:uuid."""
    pid = f"urn:uuid:{uuid.uuid4()}"
    entries: list[JSON] = [{"fullUrl": pid, "resource": patient(system),
                            "request": {"method": "POST", "url": "Patient",
                                        "ifNoneExist": f"identifier={system}|{MRN_VALUE}"}}]
    for i in range(n_obs):
        obs = heart_rate(system, f"hr-{i}", pid, 70 + i)
        if broken_at == i:
            del obs["status"]
        entries.append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": obs,
                        "request": {"method": "POST", "url": "Observation",
                                    "ifNoneExist": f"identifier={system}|hr-{i}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def count(client: Any, rtype: str, system: str) -> int:
    """How many resources of ``rtype`` carry an identifier in ``system`` (server-side)."""
    r = client.session.get(f"{client.base_url}/{rtype}",
                           params={"identifier": f"{system}|", "_summary": "count"})
    assert r.status_code == 200
    return int(r.json()["total"])
