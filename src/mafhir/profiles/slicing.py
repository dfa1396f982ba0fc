"""Slicing: which slice each value belongs to, and the slice rules (cardinality per
slice, closed/open/openAtEnd, ordered).

A slice's discriminator values come from its definition: the fixed or pattern value at
the discriminator path (``value``/``pattern``), the allowed types (``type``), the
profile (``profile``), or whether the element must exist (``exists``). A slice whose
discriminator cannot be read here (a FHIRPath function in the path, say) is not used to
assign values, and its own cardinality is then reported as not checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .matching import matches, values_at
from .tree import Elem

if TYPE_CHECKING:
    from .run import Run

__all__ = ["assign"]

_UNREADABLE = object()


def _target(slice_: Elem, path: str) -> Elem | None:
    current = slice_
    if path in ("$this", ""):
        return current
    for name in path.split("."):
        nxt = current.children.get(name)
        if nxt is None:
            return None
        current = nxt
    return current


def _expected(elem: Elem, names: list[str]) -> list[Any] | None:
    """The values a slice fixes at a path: its own fixed/pattern there, one on an element
    above it (read down the rest of the path), or one in a slice below (coding:code)."""
    want = elem.fixed or elem.pattern
    if want is not None:
        found = values_at(want[1], ".".join(names))
        return found or None
    if not names:
        return None
    child = elem.children.get(names[0])
    if child is None:
        return None
    for candidate in (child, *child.slices):
        below = _expected(candidate, names[1:])
        if below:
            return below
    return None


def _test(slice_: Elem, kind: str, path: str, run: Run) -> Any:
    """A predicate on an item for one discriminator, or _UNREADABLE."""
    if path.endswith(".resolve()") or "(" in path:
        return _UNREADABLE
    target = _target(slice_, path)
    if kind in ("value", "pattern"):
        if target is None and path == "url" and slice_.types and slice_.types[0][1]:
            url = slice_.types[0][1][0]  # an extension slice: the url is its profile's
            return lambda item: url in values_at(item, "url")
        expected = _expected(slice_, [] if path == "$this" else path.split("."))
        if expected is not None:
            return lambda item: any(matches(v, e) for v in values_at(item, path)
                                    for e in expected)
        if target is None:
            return _UNREADABLE
        if target.binding is not None and target.binding[0] == "required":
            vs = run.defs.valueset(target.binding[1])
            if vs is None:
                return _UNREADABLE
            from .terminology import member

            code = target.types[0][0] if target.types else "code"
            return lambda item: any(member(vs, v, code)[0] is True
                                    for v in values_at(item, path))
        return _UNREADABLE
    if kind == "type":
        if target is None or not target.types:
            return _UNREADABLE
        allowed = target.type_codes
        return lambda item: _item_type(item) in allowed
    if kind == "exists":
        if target is None:
            return _UNREADABLE
        must = target.min > 0
        never = target.max == 0
        if not must and not never:
            return _UNREADABLE
        return lambda item: bool(values_at(item, path)) == must
    if kind == "profile":
        if target is None or not target.types or not target.types[0][1]:
            return _UNREADABLE
        profiles = target.types[0][1]
        return lambda item: isinstance(item, dict) and any(
            run.conforms(item, p) for p in profiles)
    return _UNREADABLE


def _item_type(item: Any) -> str:
    if isinstance(item, tuple):
        return str(item[1])
    if isinstance(item, dict) and isinstance(item.get("resourceType"), str):
        return str(item["resourceType"])
    return ""


def assign(elem: Elem, flat: list[tuple[str, Any, str]], run: Run,
           parent: str) -> list[Elem]:
    """The definition each value is checked against (its slice, else ``elem``), after
    reporting the slicing rules' breaches."""
    assert elem.slicing is not None
    discriminators, ordered, rules = elem.slicing
    tests: list[tuple[Elem, list[Any] | None]] = []
    for slice_ in elem.slices:
        made = [_test(slice_, kind, path, run) for kind, path in discriminators]
        tests.append((slice_, None if not made or _UNREADABLE in made else made))
    out: list[Elem] = []
    positions: list[int] = []
    counts = [0] * len(tests)
    unmatched = late = False
    for where, value, code in flat:
        probe = (value, code) if elem.choice and any(k == "type" and p == "$this"
                                                     for k, p in discriminators) else value
        chosen = -1
        for index, (_slice, preds) in enumerate(tests):
            if preds is not None and all(_call(p, probe) for p in preds):
                chosen = index
                break
        if chosen < 0:
            if rules == "closed":
                run.add("error", "structure", where, elem,
                        f"matches none of the slices of {elem.id}, and the slicing is "
                        "closed", "slicing")
            elif rules == "openAtEnd":
                unmatched = True
            out.append(elem)
            continue
        if unmatched:
            late = True  # a slice's value after one matching no slice
        counts[chosen] += 1
        positions.append(chosen)
        out.append(tests[chosen][0])
    if ordered and positions != sorted(positions):
        run.add("error", "structure", parent, elem,
                f"the values of {elem.id} are not in the order of its slices", "slicing")
    if late:
        run.add("error", "structure", parent, elem,
                f"{elem.id}: values matching no slice must come after the slices",
                "slicing")
    for (slice_, preds), count in zip(tests, counts, strict=True):
        name = slice_.slice_name
        if preds is None:
            if slice_.min > 0:
                run.add("information", "informational", parent, slice_,
                        f"slice {name}: its discriminator cannot be evaluated here; "
                        "its cardinality is not checked", "slicing")
            continue
        if count < slice_.min:
            run.add("error", "required", parent, slice_,
                    f"slice {name} ({slice_.id}): minimum required = {slice_.min}, but "
                    f"only found {count}", "slicing")
        elif slice_.max >= 0 and count > slice_.max:
            run.add("error", "structure", parent, slice_,
                    f"slice {name} ({slice_.id}): max allowed = {slice_.max}, but found "
                    f"{count}", "slicing")
    return out


def _call(pred: Any, probe: Any) -> bool:
    return bool(pred(probe))
