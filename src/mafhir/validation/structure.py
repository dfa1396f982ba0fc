"""Structural validation against the FHIR models, kept within R4 4.0.1 on the wire.

``fhir.resources`` ships no R4 (4.0.1) model set that runs on pydantic 2; it ships R4B
(4.3.0). For every resource type mafhir emits, R4 and R4B have the same elements, so the
R4B models check R4 structure exactly. What R4B adds lives in resource types that R4 does
not have; those are refused here, so nothing R4B-only can pass as R4.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from ..io import dumps
from .fastpath import CONTROL_CHARACTERS, ESCAPED_CONTROL, accepts
from .issues import Issue

__all__ = ["CONTROL_CHARACTERS", "R4B_ONLY_TYPES", "check_structure", "control_characters"]

JSON = dict[str, Any]

#: Resource types that exist in R4B (4.3.0) but not in R4 (4.0.1).
R4B_ONLY_TYPES = frozenset({
    "AdministrableProductDefinition", "Citation", "ClinicalUseDefinition", "EvidenceReport",
    "Ingredient", "ManufacturedItemDefinition", "MedicinalProductDefinition",
    "NutritionProduct", "PackagedProductDefinition", "RegulatedAuthorization",
    "SubscriptionStatus", "SubscriptionTopic",
})


def control_characters(node: Any, path: str) -> Iterator[tuple[str, int]]:
    """(path, code point) of the first control character of every string in ``node``."""
    if isinstance(node, str):
        m = CONTROL_CHARACTERS.search(node)
        if m:
            yield path, ord(m.group())
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (str, dict, list)):
                yield from control_characters(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (str, dict, list)):
                yield from control_characters(value, f"{path}[{i}]")


@lru_cache(maxsize=256)
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def _path(rtype: str, loc: tuple[Any, ...]) -> str:
    out = rtype
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("__root__", "") or str(part).startswith("function-"):
            continue
        else:
            out += f".{part}"
    return out


def check_structure(resource: Any, where: str = "") -> list[Issue]:
    """Structure issues of one resource (JSON dict); empty when it is valid R4."""
    if not isinstance(resource, dict):
        return [Issue("error", "structure", where or "Resource", "is not a JSON object")]
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        return [Issue("error", "required", where or "Resource", "resourceType is missing")]
    base = where or rtype
    if rtype in R4B_ONLY_TYPES:
        why = f"{rtype} is not an R4 (4.0.1) resource type"
        return [Issue("error", "not-supported", base, why)]
    if accepts(resource):  # the models' verdict, and no control character, cheaply
        return []
    try:
        model = _model(rtype)
    except (KeyError, ValueError, AttributeError):
        return [Issue("error", "not-supported", base, f"unknown resource type '{rtype}'")]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err.get("loc", ()))
            msg = err.get("msg", "invalid")
            code = "required" if err.get("type") == "missing" else "structure"
            if err.get("type") == "extra_forbidden":
                msg = "unknown element"
            issues.append(Issue("error", code, _path(base, loc), msg))
        return issues
    except (KeyError, AttributeError, TypeError) as exc:
        # the models fail outright on some junk (a contained resource of an unknown type,
        # a JSON text where a primitive's extension belongs): still a finding, not a crash
        return [Issue("error", "structure", base,
                      f"is not valid R4 (the R4B models fail on it: {type(exc).__name__})")]
    text = dumps(resource)  # one C-speed pass; the paths are looked for only if found
    if not (b"\\u00" in text or b"\\b" in text or b"\\f" in text) \
            or not ESCAPED_CONTROL.search(text):
        return []
    return [Issue("error", "value", where, f"a string holds the control character "
                                           f"U+{point:04X}, which FHIR strings forbid")
            for where, point in control_characters(resource, base)]
