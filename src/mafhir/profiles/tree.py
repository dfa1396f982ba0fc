"""The compiled element list of a structure, as a tree the engine walks.

Built once per structure from the compiler's flat list (element ids such as
``Observation.component:systolic.code``): children by name, slices under the element
they slice, ``contentReference`` resolved to the referenced element's children.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Elem", "Structure", "build"]

JSON = dict[str, Any]


class Elem:
    """One element definition: what the engine checks at one place in a resource."""

    __slots__ = (
        "allowed",
        "binding",
        "children",
        "choice",
        "constraints",
        "fixed",
        "id",
        "index",
        "max",
        "min",
        "ms",
        "name",
        "pattern",
        "ref",
        "slice_name",
        "slices",
        "slicing",
        "type_codes",
        "types",
    )

    def __init__(self, data: JSON) -> None:
        self.id: str = data["id"]
        last = _segments(self.id)[-1]
        self.name: str = last.split(":", 1)[0]
        self.choice: bool = self.name.endswith("[x]")
        self.slice_name: str = data.get("slice", "")
        self.min: int = data.get("min", 0)
        self.max: int = data.get("max", -1)
        self.types: list[tuple[str, list[str], list[str]]] = [
            (t[0], t[1], t[2]) for t in data.get("types", [])]
        self.type_codes = frozenset(t[0] for t in self.types)
        self.fixed: tuple[str, Any] | None = tuple(data["fixed"]) if "fixed" in data \
            else None
        self.pattern: tuple[str, Any] | None = tuple(data["pattern"]) if "pattern" in data \
            else None
        self.binding: tuple[str, str] | None = tuple(data["binding"]) if "binding" in data \
            else None
        self.constraints: list[tuple[str, str, str, str]] = [
            (c[0], c[1], c[2], c[3]) for c in data.get("constraints", [])]
        self.ms: bool = data.get("ms", False)
        self.slicing: tuple[list[tuple[str, str]], bool, str] | None = None
        if "slicing" in data:
            d, ordered, rules = data["slicing"]
            self.slicing = ([(x[0], x[1]) for x in d], ordered, rules)
        self.ref: str = data.get("ref", "")
        self.children: dict[str, Elem] = {}
        self.slices: list[Elem] = []
        #: (names, choice stems) of the JSON keys its children allow; the engine's cache
        self.allowed: tuple[frozenset[str], tuple[str, ...]] | None = None
        #: (children by JSON key, children checked even when absent); the engine's cache
        self.index: tuple[dict[str, Elem], tuple[Elem, ...], tuple[Elem, ...]] | None = None

    def __repr__(self) -> str:
        return f"Elem({self.id})"


class Structure:
    """A compiled StructureDefinition: its metadata and its root element."""

    __slots__ = (
        "abstract",
        "base",
        "derivation",
        "derived",
        "kind",
        "name",
        "root",
        "type",
        "url",
        "version",
    )

    def __init__(self, data: JSON) -> None:
        self.url: str = data["url"]
        self.version: str = data.get("version", "")
        self.name: str = data.get("name", "")
        self.type: str = data.get("type", "")
        self.kind: str = data.get("kind", "")
        self.base: str = data.get("base", "")
        self.derivation: str = data.get("derivation", "")
        self.abstract: bool = data.get("abstract", False)
        self.derived: bool = data.get("derived", False)  # from the models, not an SD
        self.root = build(data["elements"])

    @property
    def label(self) -> str:
        return f"{self.name or self.url}" + (f"|{self.version}" if self.version else "")


def _segments(element_id: str) -> list[str]:
    """Split an element id on the dots outside slice names (``a.b:x.y`` -> a, b:x, y)."""
    out: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(element_id):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "." and depth == 0:
            out.append(element_id[start:i])
            start = i + 1
    out.append(element_id[start:])
    return out


def build(elements: list[JSON]) -> Elem:
    """The tree of a flat element list (snapshot order: parents before children)."""
    root = Elem(elements[0])
    by_id: dict[str, Elem] = {root.id: root}
    for data in elements[1:]:
        elem = Elem(data)
        segments = _segments(elem.id)
        parent = by_id.get(".".join(segments[:-1]))
        if parent is None:
            continue  # an id this reader cannot place (e.g. an old renamed choice)
        last = segments[-1]
        by_id[elem.id] = elem
        if ":" in last:
            name = last.split(":", 1)[0]
            base = parent.children.get(name)
            if base is None or "/" in last:  # re-slices are checked as their parent slice
                continue
            base.slices.append(elem)
        else:
            parent.children[last] = elem
    for elem in by_id.values():
        if elem.ref and not elem.children:
            target = by_id.get(elem.ref)
            if target is not None:
                elem.children = target.children
    return root
