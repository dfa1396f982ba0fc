"""A small, independent reader of StructureDefinition snapshots, for tests only.

It checks a resource against what a profile's snapshot says — cardinality (min/max),
fixed and pattern values, and slices told apart by value/pattern discriminators — reading
the profiles from the public corpus (US Core 7.0.0 files and the 6.1.0 package). It
shares no code with mafhir's own rules, so agreeing with it is evidence, not an echo.
Extensions and element types it cannot resolve are skipped, not guessed.
"""

from __future__ import annotations

import json
import tarfile
from functools import lru_cache
from pathlib import Path
from typing import Any

JSON = dict[str, Any]


@lru_cache(maxsize=16)
def _package(tgz: str, kind: str = "StructureDefinition") -> dict[str, JSON]:
    """The package's resources of one kind (StructureDefinition, ValueSet) by canonical."""
    out: dict[str, JSON] = {}
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            if name.startswith(f"{kind}-") and name.endswith(".json"):
                resource = json.load(tar.extractfile(member))
                out[resource["url"]] = resource
    return out


def _in_valueset(node: Any, vs: JSON) -> bool:
    """Does a CodeableConcept have a coding the ValueSet's compose includes? A slice
    told apart by a required binding (US Core "slicing by value sets") is matched so."""
    codings = node.get("coding", []) if isinstance(node, dict) else []
    for include in vs.get("compose", {}).get("include", []):
        listed = {c["code"] for c in include.get("concept", [])}
        for c in codings:
            if c.get("system") == include.get("system") and (
                    not listed or c.get("code") in listed):
                return True
    return False


def profiles(corpus: Path, version: str) -> dict[str, JSON]:
    """US Core StructureDefinitions by canonical URL, for '6.1.0' or '7.0.0'."""
    return _package(str(corpus / "us-core" / "packages" / f"hl7.fhir.us.core-{version}.tgz"))


def _matches(node: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every value in the pattern is present in the node."""
    if isinstance(pattern, dict):
        return isinstance(node, dict) and all(
            k in node and _matches(node[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        items = node if isinstance(node, list) else [node]
        return all(any(_matches(n, p) for n in items) for p in pattern)
    return node == pattern


def _children(node: Any, name: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    # FHIR JSON: a primitive with only extensions (a data-absent-reason) is written as
    # ``_name`` alone, and is present all the same.
    if name.endswith("[x]"):
        stem = name[:-3]
        values = [v for k, v in node.items()
                  if k.lstrip("_").startswith(stem) and k.lstrip("_")[len(stem):][:1].isupper()
                  and not (k.startswith("_") and k[1:] in node)]
    else:
        values = [node[name]] if name in node else [node[f"_{name}"]] if f"_{name}" in node \
            else []
    out: list[Any] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _constraint(element: JSON) -> tuple[str, Any] | None:
    for key, value in element.items():
        if key.startswith(("fixed", "pattern")):
            return key, value
    return None


class Snapshot:
    def __init__(self, sd: JSON, valuesets: dict[str, JSON] | None = None) -> None:
        self.url = sd["url"]
        self.elements = {e["id"]: e for e in sd["snapshot"]["element"]}
        self.valuesets = valuesets or {}

    def _in_slice(self, node: Any, parent_id: str, slice_id: str) -> bool:
        slicing = self.elements.get(parent_id, {}).get("slicing", {})
        discriminators = slicing.get("discriminator", [])
        if not discriminators:
            return False
        for disc in discriminators:
            path = disc["path"]
            if disc["type"] not in ("value", "pattern"):
                return False  # type/profile/exists discriminators are not handled
            where = slice_id if path == "$this" else f"{slice_id}.{path}"
            element = self.elements.get(where)
            constraint = _constraint(element) if element else None
            values = [node] if path == "$this" else self._at(node, path.split("."))
            binding = (element or {}).get("binding", {})
            if constraint is None and disc["type"] == "pattern" and \
                    binding.get("strength") == "required" and \
                    binding.get("valueSet") in self.valuesets:
                vs = self.valuesets[binding["valueSet"]]
                if not any(_in_valueset(v, vs) for v in values):
                    return False
                continue
            if constraint is None:
                return False
            if not any(_matches(v, constraint[1]) for v in values):
                return False
        return True

    def _at(self, node: Any, names: list[str]) -> list[Any]:
        nodes = [node]
        for name in names:
            nodes = [c for n in nodes for c in _children(n, name)]
        return nodes

    def nodes(self, resource: JSON, element_id: str) -> list[tuple[Any, Any]]:
        """(parent, node) pairs for an element id like ``Observation.component:systolic.code``."""
        segments = element_id.split(".")
        current: list[tuple[Any, Any]] = [(None, resource)]
        prefix = segments[0]
        for seg in segments[1:]:
            name, _, slice_name = seg.partition(":")
            parent_id = f"{prefix}.{name}"
            nxt = []
            for _, node in current:
                for child in _children(node, name):
                    if slice_name and not name.endswith("[x]") and not self._in_slice(
                            child, parent_id, f"{prefix}.{seg}"):
                        continue
                    nxt.append((node, child))
            if slice_name and name.endswith("[x]"):
                nxt = [(p, c) for p, c in nxt]  # type slices: keep all of that choice
            current = nxt
            prefix = f"{prefix}.{seg}"
        return current

    def problems(self, resource: JSON) -> list[str]:
        out: list[str] = []
        for eid, element in self.elements.items():
            if "." not in eid or "extension" in eid or "modifierExtension" in eid:
                continue
            parent_id = eid.rsplit(".", 1)[0]
            last = eid.rsplit(".", 1)[1]
            if ":" in last and last.split(":")[0].endswith("[x]"):
                continue  # type slices repeat the choice element's rules
            parents = [n for _, n in self.nodes(resource, parent_id)] if "." in parent_id \
                else [resource]
            found = self.nodes(resource, eid)
            minimum = element.get("min", 0)
            maximum = element.get("max", "*")
            for parent in parents:
                count = sum(1 for p, _ in found if p is parent)
                if count < minimum:
                    out.append(f"{eid}: min {minimum}, found {count}")
                if maximum != "*" and count > int(maximum):
                    out.append(f"{eid}: max {maximum}, found {count}")
            constraint = _constraint(element)
            if constraint:
                kind, value = constraint
                for _, node in found:
                    ok = node == value if kind.startswith("fixed") else _matches(node, value)
                    if not ok:
                        out.append(f"{eid}: {kind} not met")
        return out


def check(resource: JSON, corpus: Path, version: str) -> list[str]:
    """Problems of ``resource`` against every US Core profile it claims, in ``version``."""
    sds = profiles(corpus, version)
    valuesets = _package(str(corpus / "us-core" / "packages" / f"hl7.fhir.us.core-{version}.tgz"),
                         "ValueSet")
    out = []
    for url in resource.get("meta", {}).get("profile", []):
        sd = sds.get(url.split("|")[0])
        if sd is None:
            out.append(f"{url}: not a US Core {version} profile")
            continue
        snapshot = Snapshot(sd, valuesets)
        out.extend(f"[{version} {sd['id']}] {p}" for p in snapshot.problems(resource))
    return out
