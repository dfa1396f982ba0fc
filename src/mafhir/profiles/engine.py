"""Check a resource (a plain JSON dict) against compiled profiles.

One walk over the resource per profile: cardinality, types and choice types, fixed and
pattern values, slicing, bindings, references, extensions, invariants (through
``mafhir.profiles.fhirpath``, when present) and, on request, must-support. No model
object is built; the tables are compiled once per structure and reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .checks import CODED, STRING_TYPES, binding, equal, invariants, kind_ok, reference, show
from .matching import matches
from .run import Run
from .tree import Elem, Structure

__all__ = ["check", "validate_resource"]

JSON = dict[str, Any]


def _type_of(key: str, elem: Elem) -> str | None:
    """The type a JSON key names for a choice element (``valueQuantity`` -> Quantity)."""
    stem = elem.name[:-3]
    suffix = key[len(stem):]
    for code in elem.type_codes:
        if code[:1].upper() + code[1:] == suffix:
            return code
    return None


def _items(data: JSON, elem: Elem) -> list[tuple[str, Any, str]]:
    """(JSON key, value, type code) of every value of ``elem`` in ``data``."""
    out: list[tuple[str, Any, str]] = []
    if elem.choice:
        stem = elem.name[:-3]
        for key in data:
            if key.startswith(stem) and key[len(stem):][:1].isupper():
                code = _type_of(key, elem) or "?" + key[len(stem):]
                out.append((key, data[key], code))
        return out
    value = data.get(elem.name)
    code = elem.types[0][0] if len(elem.types) == 1 else ""
    if value is None:
        if f"_{elem.name}" in data:  # a primitive with only an extension
            ext = data[f"_{elem.name}"]
            count = len(ext) if isinstance(ext, list) else 1
            return [(elem.name, None, code)] * count
        return out
    out.append((elem.name, value, code))
    return out


def _allowed_keys(elem: Elem) -> tuple[frozenset[str], tuple[str, ...]]:
    names = set()
    stems = []
    for name in elem.children:
        if name.endswith("[x]"):
            stems.append(name[:-3])
        else:
            names.add(name)
            names.add("_" + name)
    return frozenset(names), tuple(stems)


def _unknown(data: JSON, elem: Elem, path: str, run: Run, resource_level: bool) -> None:
    allowed = elem.allowed
    if allowed is None:
        allowed = elem.allowed = _allowed_keys(elem)
    names, stems = allowed
    for key in data:
        if key in names or (resource_level and key == "resourceType"):
            continue
        bare = key[1:] if key.startswith("_") else key
        if any(bare.startswith(s) and bare[len(s):][:1].isupper() for s in stems):
            continue
        run.add("error", "structure", f"{path}.{key}", elem,
                f"{key} is not an element of {elem.id}", "structure")


def check(resource: JSON, structure: Structure, run: Run, path: str) -> None:
    """Issues of ``resource`` against ``structure``, appended to ``run.issues``."""
    outer, run.structure = run.structure, structure
    try:
        if structure.root.constraints:
            invariants(resource, structure.root, path, run)
        _node(resource, structure.root, path, run, resource_level=True,
              derived=structure.derived, owner=structure.type)
    finally:
        run.structure = outer


def _definition(elem: Elem, item: Any, type_code: str, run: Run) -> tuple[Elem, bool] | None:
    """The element whose children describe ``item``: the snapshot's own, else the type's
    profile, else a known extension's definition, else the base type."""
    if elem.children:
        return elem, False
    for code, profiles, _targets in elem.types:
        if code == type_code and profiles:
            found = run.defs.structure(profiles[0])
            if found is not None:
                return found.root, found.derived
    if type_code == "Extension" and isinstance(item, dict):
        url = item.get("url")
        found = run.defs.structure(url) if isinstance(url, str) else None
        if found is not None and found.type == "Extension":
            return found.root, found.derived
    base = run.defs.base(type_code) if type_code else None
    if base is None:
        return None
    return base.root, base.derived


def _node(data: JSON, elem: Elem, path: str, run: Run, resource_level: bool = False,
          derived: bool = False, owner: str = "") -> None:
    """``data`` (a JSON object) against ``elem``'s children; ``owner`` is its FHIR type."""
    if not derived and elem.children:
        _unknown(data, elem, path, run, resource_level)
    index = elem.index
    if index is None:
        index = elem.index = _index(elem)
    by_key, stems, always = index
    seen: set[int] = set()
    for child in always:
        seen.add(id(child))
        _element(data, child, path, run, derived, owner)
    if run.must_support:
        for child in elem.children.values():
            if child.ms and id(child) not in seen:
                seen.add(id(child))
                _element(data, child, path, run, derived, owner)
    for key in data:
        found = by_key.get(key)
        if found is None:
            bare = key[1:] if key.startswith("_") else key
            found = next((c for c in stems if bare.startswith(c.name[:-3])
                          and bare[len(c.name) - 3:][:1].isupper()), None)
        if found is not None and id(found) not in seen:
            seen.add(id(found))
            _element(data, found, path, run, derived, owner)


def _index(elem: Elem) -> tuple[dict[str, Elem], tuple[Elem, ...], tuple[Elem, ...]]:
    """Children by JSON key, choice children, and those to check even when absent (a
    minimum, or a slice with one): an absent optional element needs no visit."""
    by_key: dict[str, Elem] = {}
    stems = []
    always = []
    for child in elem.children.values():
        if child.choice:
            stems.append(child)
        else:
            by_key[child.name] = by_key["_" + child.name] = child
        if child.min > 0 or any(s.min > 0 for s in child.slices):
            always.append(child)
    return by_key, tuple(stems), tuple(always)


def _element(data: JSON, elem: Elem, path: str, run: Run, derived: bool, owner: str) -> None:
    items = _items(data, elem)
    count = 0
    for _k, v, _t in items:
        count += len(v) if type(v) is list else 1
    if count < elem.min:
        run.add("error", "required", f"{path}.{elem.name.replace('[x]', '')}", elem,
                f"{elem.id}: minimum required = {elem.min}, but only found {count}",
                "cardinality")
    elif elem.max >= 0 and count > elem.max:
        key, first = items[0][0], items[0][1]
        where = f"{path}.{key}[{elem.max}]" if isinstance(first, list) else f"{path}.{key}"
        run.add("error", "structure", where, elem,
                f"{elem.id}: max allowed = {elem.max}, but found {count}", "cardinality")
    if not items:
        if run.must_support and elem.ms:
            run.add("information", "informational", f"{path}.{elem.name}", elem,
                    f"must-support element {elem.id} is absent", "must-support")
        if elem.slicing is None or not any(s.min for s in elem.slices):
            return
    flat: list[tuple[str, Any, str]] = []
    for key, value, code in items:
        if isinstance(value, list):
            flat.extend((f"{path}.{key}[{i}]", v, code) for i, v in enumerate(value))
        else:
            flat.append((f"{path}.{key}", value, code))
    if elem.slicing is not None and elem.slices:
        from .slicing import assign

        targets = assign(elem, flat, run, f"{path}.{elem.name.replace('[x]', '')}")
    else:
        targets = [elem] * len(flat)
    for (where, value, code), target in zip(flat, targets, strict=True):
        _item(value, target, code, where, run, derived, owner)
        if target is not elem and elem.constraints and value is not None:
            # an item in a slice is still an item of the sliced element: its constraints
            # hold too (us-core-26, provenance-1), but those the slice repeats only once
            own = frozenset(c[0] for c in target.constraints)
            invariants(value, elem, where, run, skip=own)


def _item(value: Any, elem: Elem, code: str, path: str, run: Run, derived: bool,
          owner: str) -> None:
    if value is None:  # present only as an extension
        return
    if code.startswith("?"):
        run.add("error", "structure", path, elem,
                f"type {code[1:]} is not allowed for {elem.id}", "type")
        return
    if not code and elem.types:
        code = elem.types[0][0]
    if not kind_ok(value, code):
        run.add("error", "structure", path, elem,
                f"{elem.id} is of type {code}, not a JSON {type(value).__name__}", "type")
        return
    if type(value) is dict and value.keys() == {"id"}:
        # ele-1 (every element has a value or children), which the engine does not run
        # through FHIRPath: an element holding only its id has neither
        run.add("error", "invariant", path, elem,
                "All FHIR elements must have a @value or children", "ele-1")
    if elem.fixed is not None and not equal(value, elem.fixed[1]):
        run.add("error", "value", path, elem,
                f"value must be exactly {show(elem.fixed[1])}", "fixed")
    if elem.pattern is not None and not matches(value, elem.pattern[1]):
        run.add("error", "value", path, elem,
                f"value must match pattern {show(elem.pattern[1])}", "pattern")
    if elem.binding is not None and (not elem.choice or code in CODED):
        binding(value, elem, code, path, run, owner)
    if code == "Reference" and isinstance(value, dict):
        reference(value, elem, path, run)
    if elem.constraints:
        invariants(value, elem, path, run)
    if code in ("Resource", "DomainResource") or (isinstance(value, dict)
                                                  and "resourceType" in value
                                                  and code not in STRING_TYPES):
        if isinstance(value, dict):
            validate_resource(value, run, path, explicit=())
        return
    if not isinstance(value, dict):
        return
    found = _definition(elem, value, code, run)
    if found is not None:
        _node(value, found[0], path, run, derived=derived or found[1], owner=code)


def validate_resource(resource: JSON, run: Run, path: str,
                      explicit: Iterable[Structure]) -> None:
    """``resource`` against the profiles chosen for it (explicit ones of its type, its
    ``meta.profile`` claims, else the base definition)."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        run.add("error", "structure", path, None, "has no resourceType", "structure")
        return
    outer = run.resource
    run.resource = resource
    try:
        chosen = [s for s in explicit if s.type == rtype]
        meta = resource.get("meta")
        claims = meta.get("profile", []) if isinstance(meta, dict) else []
        for i, url in enumerate(claims if isinstance(claims, list) else []):
            found = run.defs.structure(url) if isinstance(url, str) else None
            if found is None and str(url).split("|")[0] in run.elsewhere:
                continue
            if found is None:
                run.add("warning", "not-supported", f"{path}.meta.profile[{i}]", None,
                        f"profile {url} is not installed, so not checked; add its package "
                        "with `mafhir ig add FILE.tgz`", "profile")
            elif "|" in url and found.version != url.split("|", 1)[1]:
                run.add("warning", "not-supported", f"{path}.meta.profile[{i}]", None,
                        f"version {url.split('|', 1)[1]} of {url.split('|', 1)[0]} is not "
                        f"installed; checked against version {found.version} instead",
                        "profile")
            if found is None:
                continue
            if found.type != rtype:
                run.add("error", "invalid", f"{path}.meta.profile[{i}]", None,
                        f"{url} is a profile of {found.type}, not {rtype}", "profile")
            elif found not in chosen:
                chosen.append(found)
        if not chosen:
            base = run.defs.base(rtype)
            if base is None:
                run.add("error", "structure", path, None,
                        f"{rtype} is not a known resource type", "structure")
                return
            chosen = [base]
        for structure in chosen:
            check(resource, structure, run, path)
    finally:
        run.resource = outer
