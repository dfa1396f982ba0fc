"""Base R4 structure for types no package at hand defines, derived from fhir.resources.

The R4 core package is not shipped (only a subset is available), so the structure of
data types (HumanName, CodeableConcept, Identifier...) and of resources without a core
StructureDefinition comes from the fhir.resources (R4B) models, read through the tables
``mafhir.validation.fastpath`` already compiles. The result is in the compiler's element
format, one level deep: cardinality, type names, choice groups, and the complete code
lists the models carry for required bindings (as value sets named
``urn:mafhir:model-enum:<Type>.<element>``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["ENUM_PREFIX", "derive_structure"]

JSON = dict[str, Any]
ENUM_PREFIX = "urn:mafhir:model-enum:"
#: The canonical base of core definitions, which derived structures pretend to be.
CORE = "http://hl7.org/fhir/StructureDefinition/"


@lru_cache(maxsize=256)
def derive_structure(type_name: str) -> tuple[JSON, dict[str, JSON]] | None:
    """(compiled structure, its enum value sets) for ``type_name``, or None."""
    # imported here: mafhir.validation imports this package (no circle at import time), and
    # the tables load the fhir.resources models, which a run may not need
    from ..validation.fastpath import type_table

    node = type_table(type_name)
    if node is None:
        return None
    elements: list[JSON] = [{"id": type_name, "min": 0, "max": -1}]
    valuesets: dict[str, JSON] = {}
    grouped: dict[str, tuple[str, bool]] = {}
    for names, needed in node.choices:
        for name in names:
            spec = node.fields.get(name)
            if spec is not None and spec.fhir_type:
                stem = name[: -len(spec.fhir_type)] if name.lower().endswith(
                    spec.fhir_type.lower()) else name
                grouped[name] = (stem, needed)
    choices: dict[str, JSON] = {}
    required = set(node.required)
    for name, spec in node.fields.items():
        if name.startswith("_") or not spec.fhir_type:
            continue
        if name in grouped:
            stem, needed = grouped[name]
            element = choices.get(stem)
            if element is None:
                element = choices[stem] = {"id": f"{type_name}.{stem}[x]",
                                           "min": 1 if needed else 0, "max": 1, "types": []}
                elements.append(element)
            element["types"].append([spec.fhir_type, [], []])
            continue
        element = {"id": f"{type_name}.{name}", "min": 1 if name in required else 0,
                   "max": -1 if spec.many else 1, "types": [[spec.fhir_type, [], []]]}
        if spec.enum:
            url = f"{ENUM_PREFIX}{type_name}.{name}"
            valuesets[url] = {"codes": {"": list(spec.enum)}, "open": []}
            element["binding"] = ["required", url]
        elements.append(element)
    kind = "resource" if "resourceType" not in node.fields and type_name[:1].isupper() \
        and _is_resource(type_name) else "complex-type"
    structure = {"url": CORE + type_name, "version": "4.0.1", "name": type_name,
                 "type": type_name, "kind": kind, "base": "", "derivation": "",
                 "abstract": False, "elements": elements, "derived": True}
    return structure, valuesets


def _is_resource(type_name: str) -> bool:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return bool(get_fhir_model_class(type_name).has_resource_base())
    except Exception:  # not a model name
        return False
