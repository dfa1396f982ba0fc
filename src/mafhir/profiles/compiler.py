"""Compile package definitions into the engine's own compact tables.

A StructureDefinition snapshot is hundreds of KB of prose, mappings and repeated
constraints; the engine needs per element only its id, cardinality, types, fixed or
pattern value, binding, constraints, slicing and must-support flag. ValueSets are
expanded here, once, into ``{system: [codes]}`` (from the package's expansion, else
from ``compose.include`` over CodeSystems the packages define); a system that cannot
be expanded is listed as *open* and its codes are "not checked", never rejected.
The result is plain JSON, so it can ship gzipped with mafhir and be cached on disk.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .packages import Package

__all__ = ["FORMAT", "compile_package", "compile_structure", "compile_valueset",
           "load_compiled", "write_compiled"]

JSON = dict[str, Any]
#: Bumped when the compiled format changes; older tables are recompiled, not misread.
FORMAT = 1
_FHIRPATH_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


def _element(e: JSON) -> JSON:
    out: JSON = {"id": e.get("id") or e["path"]}
    if "min" in e:
        out["min"] = int(e["min"])
    if "max" in e:
        out["max"] = -1 if e["max"] == "*" else int(e["max"])
    if e.get("sliceName"):
        out["slice"] = e["sliceName"]
    types = []
    for t in e.get("type", []) or []:
        code = _FHIRPATH_TYPES.get(t.get("code", ""), t.get("code", ""))
        types.append([code, t.get("profile", []), t.get("targetProfile", [])])
    if types:
        out["types"] = types
    for key, value in e.items():
        if key.startswith("fixed"):
            out["fixed"] = [key[5:], value]
        elif key.startswith("pattern"):
            out["pattern"] = [key[7:], value]
    binding = e.get("binding")
    if binding and binding.get("valueSet") and binding.get("strength") in ("required",
                                                                           "extensible"):
        out["binding"] = [binding["strength"], binding["valueSet"]]
    constraints = [[c["key"], c.get("severity", "error"), c.get("human", ""),
                    c.get("expression", "")]
                   for c in e.get("constraint", []) or [] if c.get("key")]
    if constraints:
        out["constraints"] = constraints
    if e.get("mustSupport"):
        out["ms"] = True
    slicing = e.get("slicing")
    if slicing:
        out["slicing"] = [[[d.get("type", "value"), d.get("path", "$this")]
                           for d in slicing.get("discriminator", []) or []],
                          bool(slicing.get("ordered", False)), slicing.get("rules", "open")]
    if e.get("contentReference"):
        out["ref"] = e["contentReference"].split("#", 1)[-1]
    return out


def compile_structure(sd: JSON) -> JSON | None:
    """A StructureDefinition with a snapshot, compiled; None without one."""
    elements = (sd.get("snapshot") or {}).get("element")
    if not elements:
        return None
    return {
        "url": sd["url"], "version": sd.get("version", ""), "name": sd.get("name", ""),
        "type": sd.get("type", ""), "kind": sd.get("kind", ""),
        "base": sd.get("baseDefinition", ""), "derivation": sd.get("derivation", ""),
        "abstract": bool(sd.get("abstract", False)),
        "elements": [_element(e) for e in elements],
    }


def _concepts(concepts: Iterable[JSON], parent: str | None,
              into: dict[str, str | None]) -> None:
    for c in concepts:
        if "code" in c:
            into[c["code"]] = parent
        _concepts(c.get("concept", []) or [], c.get("code"), into)


class _Systems:
    """CodeSystems by URL as {code: parent}, for expanding ``compose``; complete ones only."""

    def __init__(self, packages: Iterable[Package]) -> None:
        self.codes: dict[str, dict[str, str | None]] = {}
        for package in packages:
            for cs in package.unique("CodeSystem"):
                if cs.get("content") not in (None, "complete") or not cs.get("url"):
                    continue
                table: dict[str, str | None] = {}
                _concepts(cs.get("concept", []) or [], None, table)
                self.codes[cs["url"]] = table

    def below(self, system: str, root: str, include_root: bool) -> set[str] | None:
        table = self.codes.get(system)
        if table is None or root not in table:
            return None
        out = {root} if include_root else set()
        for code in table:
            parent = table[code]
            seen: set[str] = set()
            while parent is not None and parent not in seen:
                if parent == root:
                    out.add(code)
                    break
                seen.add(parent)
                parent = table.get(parent)
        return out


def compile_valueset(vs: JSON, systems: _Systems, valuesets: dict[str, JSON],
                     depth: int = 0) -> JSON:
    """``{"codes": {system: [code...]}, "open": [system...]}``; an *open* system (or the
    marker ``"*"`` for a value set that could not be read) means "cannot check"."""
    codes: dict[str, set[str]] = {}
    open_: set[str] = set()
    expansion = (vs.get("expansion") or {}).get("contains")
    limited = any(p.get("name") == "limitedExpansion"
                  for p in (vs.get("expansion") or {}).get("parameter", []) or [])
    if expansion and not limited:
        stack = list(expansion)
        while stack:
            c = stack.pop()
            if c.get("system") and c.get("code") and not c.get("abstract"):
                codes.setdefault(c["system"], set()).add(c["code"])
            stack.extend(c.get("contains", []) or [])
        return {"codes": {s: sorted(v) for s, v in sorted(codes.items())}, "open": []}
    compose = vs.get("compose") or {}
    for include in compose.get("include", []) or []:
        system = include.get("system")
        for ref in include.get("valueSet", []) or []:
            inner = valuesets.get(ref) or valuesets.get(str(ref).split("|")[0])
            if inner is None or depth > 8:
                open_.add("*")
                continue
            sub = compile_valueset(inner, systems, valuesets, depth + 1)
            for s, cs in sub["codes"].items():
                codes.setdefault(s, set()).update(cs)
            open_.update(sub["open"])
        if not system:
            continue
        if include.get("concept"):
            codes.setdefault(system, set()).update(c["code"] for c in include["concept"])
            continue
        filters = include.get("filter", []) or []
        if not filters:
            table = systems.codes.get(system)
            if table is None:
                open_.add(system)
            else:
                codes.setdefault(system, set()).update(table)
            continue
        found: set[str] | None = None
        for f in filters:
            op, value = f.get("op"), f.get("value", "")
            part = (systems.below(system, value, op == "is-a")
                    if f.get("property") == "concept" and op in ("is-a", "descendant-of")
                    else None)
            if part is None:
                found = None
                break
            found = part if found is None else found & part
        if found is None:
            open_.add(system)
        else:
            codes.setdefault(system, set()).update(found)
    for exclude in compose.get("exclude", []) or []:
        system = exclude.get("system")
        if system in codes and exclude.get("concept"):
            codes[system] -= {c["code"] for c in exclude["concept"]}
        elif system:
            open_.add(system)  # an exclusion we cannot compute: do not claim certainty
    return {"codes": {s: sorted(v) for s, v in sorted(codes.items())}, "open": sorted(open_)}


def compile_package(package: Package, context: Iterable[Package] = ()) -> JSON:
    """One package compiled; ``context`` (its dependencies) lends CodeSystems and
    ValueSets for expansions, but only this package's definitions are written."""
    every = [package, *context]
    systems = _Systems(every)
    valuesets: dict[str, JSON] = {}
    for p in reversed(every):
        valuesets.update(p.definitions["ValueSet"])
    structures = {}
    for sd in package.unique("StructureDefinition"):
        compiled = compile_structure(sd)
        if compiled is not None:
            structures[sd["url"]] = compiled
    expanded = {vs["url"]: compile_valueset(vs, systems, valuesets)
                for vs in package.unique("ValueSet") if vs.get("url")}
    return {"format": FORMAT, "name": package.name, "version": package.version,
            "structures": dict(sorted(structures.items())),
            "valuesets": dict(sorted(expanded.items()))}


def write_compiled(compiled: JSON, path: Path) -> None:
    """Deterministic bytes (sorted keys, no gzip timestamp), so a regeneration can be
    compared with what ships."""
    data = json.dumps(compiled, sort_keys=True, separators=(",", ":")).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                mtime=0, compresslevel=9) as out:
        out.write(data)


def load_compiled(path: Path) -> JSON:
    with gzip.open(path, "rb") as stream:
        data: JSON = json.loads(stream.read())
    return data
