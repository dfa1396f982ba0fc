"""What a server's CapabilityStatement says, as far as sending and reading need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Capabilities"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Capabilities:
    """What the server's CapabilityStatement says, as far as sending and reading need."""

    fhir_version: str
    formats: frozenset[str]
    system: frozenset[str]
    resources: dict[str, frozenset[str]]
    conditional_create: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, cs: JSON) -> Capabilities:
        rest: JSON = next((r for r in cs.get("rest", []) if r.get("mode", "server") == "server"),
                          {})
        resources = {
            r["type"]: frozenset(i.get("code") for i in r.get("interaction", []))
            for r in rest.get("resource", []) if isinstance(r, dict) and r.get("type")
        }
        cond = frozenset(r["type"] for r in rest.get("resource", [])
                         if isinstance(r, dict) and r.get("conditionalCreate"))
        return cls(str(cs.get("fhirVersion", "")), frozenset(cs.get("format", [])),
                   frozenset(i.get("code") for i in rest.get("interaction", [])), resources,
                   cond)

    @property
    def send_mode(self) -> str:
        """``transaction``, ``batch`` or ``single``: the best way this server offers."""
        if "transaction" in self.system:
            return "transaction"
        if "batch" in self.system:
            return "batch"
        return "single"

    def supports(self, resource_type: str, interaction: str) -> bool:
        if not self.resources:  # a server that lists nothing is taken at its word elsewhere
            return True
        return interaction in self.resources.get(resource_type, frozenset())
