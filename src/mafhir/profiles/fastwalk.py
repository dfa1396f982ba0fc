"""The engine's "no error" verdict, from plans compiled once per element.

``engine.validate_resource`` interprets the element tree on every call: it builds a path
string for every value, gathers ``(key, value, type)`` tuples, looks up each item's
definition, and records issues as it goes. On the hot path (the pipeline checking what the
mappers wrote) nearly every resource is clean, and the only answer wanted is "clean or
not" (every resource mafhir writes draws dom-6's warning: it carries no narrative).
This module compiles each element, the first time it is met, into a small plan —
the JSON keys a node allows and the child each names, cardinality, the JSON kinds of its
type, fixed and pattern values, the value set of its binding (resolved once), reference
targets, slice discriminators as predicates, and the definition its children come from —
and walks the resource dict along those plans without paths or issue objects.

Its answer is one-sided: :func:`clean` says True only when the interpretive engine would
report no error (warnings and notes are not its business); at the first
finding, or anything it is unsure of, it says False and the caller runs the engine, which
then gives the exact findings. Invariants and reference targets go through the engine's
own evaluator and functions (``checks.error_invariants``, ``checks.reference``), so both
roads judge them the same; a warning's invariant is not evaluated here at all. The plans
live on the definitions (``Definitions.plans``), so they are built once per profile and
shared by every resource of it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import orjson

from ..io import json_default, kept
from . import checks
from .checks import CODED, STRING_TYPES, equal, error_invariants, reference
from .matching import matches
from .run import Run
from .terminology import ValueSet, member
from .tree import Elem, Structure

__all__ = ["clean"]

JSON = dict[str, Any]


class _Finding(Exception):
    """The walk met an error the engine would report (or could): stop, say not clean."""


_NO = _Finding()
_UNSET: Any = object()
_PLAIN, _EXT_ONLY, _CHOICE, _SKIP, _UNSURE = range(5)
#: JSON kinds of FHIR types (R4 JSON): (python types, is a bool excluded)
_KINDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "boolean": ((bool,), False), "integer": ((int,), True), "positiveInt": ((int,), True),
    "unsignedInt": ((int,), True), "decimal": ((int, float, Decimal), True)}
#: the same as exact Python types (a bool is not an int here)
_EXACT: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "integer": (int,), "positiveInt": (int,), "unsignedInt": (int,),
    "decimal": (int, float, Decimal)}
_MANY = sys.maxsize
#: values remembered per node plan, at most (then forgotten at once: memory stays flat)
_MEMO_SIZE = 2048
#: the longest JSON text (or string) remembered: codes and references recur, documents not
_MEMO_TEXT = 2048


def _text(value: Any) -> bytes | None:
    """The memo key of a value: ``io.dumps`` without its wrapper (the same bytes), None
    when it cannot be written, carries a null (a NaN is written null too: not a key to
    trust) or is too long to be worth remembering (a PDF)."""
    try:
        text: bytes = orjson.dumps(value, default=json_default)
    except (TypeError, ValueError):
        return None
    if b"null" in text or len(text) > _MEMO_TEXT:
        return None
    return text


def _kind(code: str) -> tuple[tuple[type, ...], bool] | None:
    """``checks.kind_ok`` as a table: the types a value of ``code`` may be; None: any."""
    found = _KINDS.get(code)
    if found is not None:
        return found
    if code in STRING_TYPES:
        return (str,), False
    if code[:1].isupper():
        return (dict,), False
    return None


class _Item:
    """One value against one element definition, with one type (``engine._item``)."""

    __slots__ = ("bad", "binding", "code", "derived", "elem", "ext_nodes", "fixed", "fn",
                 "invariants", "kind", "memo", "no_bool", "node", "owner", "pattern",
                 "reads_around", "references", "resource")

    def __init__(self, elem: Elem, code: str, derived: bool, owner: str, run: Run) -> None:
        if not code and elem.types:
            code = elem.types[0][0]
        self.elem, self.code, self.derived, self.owner = elem, code, derived, owner
        self.bad = code.startswith("?")
        kind = _kind(code)
        self.kind: tuple[type, ...] | None = kind[0] if kind is not None else None
        self.no_bool = kind[1] if kind is not None else False
        self.fixed = elem.fixed[1] if elem.fixed is not None else _UNSET
        self.pattern = elem.pattern[1] if elem.pattern is not None else _UNSET
        self.binding: tuple[str, ValueSet | None] | None = None
        if elem.binding is not None and (not elem.choice or code in CODED):
            strength, url = elem.binding
            vs = run.defs.valueset(url)
            if vs is None and strength == "required":
                vs = run.defs.model_enum(owner, elem.name)
            self.binding = (strength, vs)
        targets = [t for c, _p, ts in elem.types if c == "Reference" for t in ts]
        types = {run.defs.type_of(t) for t in targets}
        self.references = code == "Reference" and bool(targets) and not (
            "Resource" in types or None in types)
        # only those that can make an error (not ele-1 and its like, not warnings)
        self.invariants = error_invariants(elem)
        self.reads_around = _reads_around(elem)
        self.resource = code in ("Resource", "DomainResource")
        self.node: _Node | None = _UNSET
        self.ext_nodes: dict[str, _Node | None] = {}
        self.memo: set[Any] = set()
        self.fn = self._specialize()

    def _specialize(self) -> Callable[[Any, Run], None]:
        """The cheapest function that does what :meth:`check` does for this plan: most
        values are a primitive with nothing but its JSON kind to check, or an object with
        nothing but its children (``type(v) is`` is stricter than ``isinstance``: a
        doubt, never a wrong yes)."""
        code = self.code
        if self.bad or self.fixed is not _UNSET or self.pattern is not _UNSET \
                or self.binding is not None or self.references or self.invariants is not None \
                or self.resource:
            return self.check
        exact = _EXACT.get(code) or ((str,) if code in STRING_TYPES else None)
        if exact is not None:
            if len(exact) == 1:
                only = exact[0]

                def one_type(value: Any, run: Run) -> None:
                    if type(value) is not only:
                        raise _NO
                return one_type

            def some_type(value: Any, run: Run) -> None:
                if type(value) not in exact:
                    raise _NO
            return some_type
        if not code[:1].isupper():
            return self.check
        general = self.check
        node_for = self._node_for
        dumps = orjson.dumps

        def complex_value(value: Any, run: Run) -> None:
            if type(value) is not dict or (len(value) == 1 and "id" in value):
                raise _NO
            if "resourceType" in value:
                general(value, run)
                return
            node = self.node
            if node is _UNSET:
                node = node_for(value, run)
            if node is None:
                return
            memo = node.memo
            if memo is None:
                node._walk(value, run)
                return
            try:  # _Node.walk inline: a look-up that hits (most do) costs one dump
                text: bytes | None = dumps(value, default=json_default)
            except (TypeError, ValueError):
                text = None
            if text is not None:
                if text in memo:
                    return
                if b"null" in text or len(text) > _MEMO_TEXT:
                    text = None
            before = run.context_reads
            node._walk(value, run)
            if text is not None and run.context_reads == before:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo.add(kept(text))
        return complex_value

    def check(self, value: Any, run: Run) -> None:
        """Raise at an error; a string or an object found clean without a look around it
        is remembered (a string as itself, an object by its JSON text), as the nodes do."""
        kind = type(value)
        if kind is str:
            key: Any = value if len(value) <= _MEMO_TEXT else None
        elif kind is dict:
            try:
                key = orjson.dumps(value, default=json_default)
            except (TypeError, ValueError):
                key = None
            # only keys that pass the test below are ever remembered: look up first
            if key is not None and key in self.memo:
                return
            if key is not None and (b"null" in key or len(key) > _MEMO_TEXT):
                key = None
        else:
            self._check(value, run, False)
            return
        memo = self.memo
        if key is not None and key in memo:
            return
        before = run.context_reads
        self._check(value, run, key is not None)
        if key is not None and run.context_reads == before:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo.add(kept(key) if type(key) is bytes else key)

    def _check(self, value: Any, run: Run, remembered: bool) -> None:
        if value is None:
            return  # present only as its extension: the engine does not look further
        if self.bad:
            raise _NO
        kind = self.kind
        if kind is not None and (not isinstance(value, kind)
                                 or (self.no_bool and type(value) is bool)):
            raise _NO
        is_dict = type(value) is dict
        if is_dict and len(value) == 1 and "id" in value:
            raise _NO  # ele-1
        if self.fixed is not _UNSET and not equal(value, self.fixed):
            raise _NO
        if self.pattern is not _UNSET and not matches(value, self.pattern):
            raise _NO
        if self.binding is not None:
            _binding(value, self.binding, self.code)
        if self.references and isinstance(value, dict):
            if run.bundle:  # the target may be in it: not the value's alone
                run.context_reads += 1
            before = len(run.issues)
            reference(value, self.elem, "", run)
            if len(run.issues) > before:
                raise _NO
        if self.invariants is not None:
            if self.reads_around:
                run.context_reads += 1
            if self.invariants(value, run):
                raise _NO
        if self.resource or (is_dict and "resourceType" in value
                             and self.code not in STRING_TYPES):
            if isinstance(value, dict):
                _resource(value, run, ())
            return
        if not isinstance(value, dict):
            return
        node = self._node_for(value, run)
        if node is not None:
            if remembered:
                node._walk(value, run)  # this value's text is remembered here already
            else:
                node.walk(value, run)

    def _node_for(self, value: JSON, run: Run) -> _Node | None:
        """``engine._definition``, remembered: the plan of the definition of the item's
        children (an extension's, by its url, is looked up once per url)."""
        if self.node is not _UNSET:
            return self.node
        elem, code = self.elem, self.code
        if not elem.children and code == "Extension" and not any(
                c == code and p for c, p, _t in elem.types):
            url = value.get("url")
            key = url if isinstance(url, str) else ""
            if key not in self.ext_nodes:
                found = run.defs.structure(url) if isinstance(url, str) else None
                if found is not None and found.type == "Extension":
                    self.ext_nodes[key] = _plan(run, found.root, self.derived or found.derived,
                                                code, False)
                else:
                    base = run.defs.base(code)
                    self.ext_nodes[key] = None if base is None else _plan(
                        run, base.root, self.derived or base.derived, code, False)
            return self.ext_nodes[key]
        self.node = None
        if elem.children:
            self.node = _plan(run, elem, self.derived, code, False)
            return self.node
        for c, profiles, _targets in elem.types:
            if c == code and profiles:
                found = run.defs.structure(profiles[0])
                if found is not None:
                    self.node = _plan(run, found.root, self.derived or found.derived, code,
                                      False)
                    return self.node
        base = run.defs.base(code) if code else None
        if base is not None:
            self.node = _plan(run, base.root, self.derived or base.derived, code, False)
        return self.node


def _binding(value: Any, binding: tuple[str, ValueSet | None], code: str) -> None:
    """``checks.binding``: raise where it would report an error (an extensible binding
    only warns)."""
    strength, vs = binding
    if vs is None:
        return  # "not checked": a note
    verdict, coded = member(vs, value, code)
    if verdict is True or (verdict is None and coded):
        return
    if verdict is None:
        if strength == "required" and code == "CodeableConcept":
            raise _NO
        return
    if strength == "required":
        raise _NO


def _reads_around(elem: Elem) -> bool:
    """Does an invariant of ``elem`` that can make an error look beyond the value
    (``%resource``, ``%rootResource``, ``resolve()``)? The others are functions of the value
    alone (a warning is not evaluated here at all)."""
    return any("%" in c[3] or "resolve(" in c[3] for c in elem.constraints
               if c[1] != "warning")


class _Element:
    """One child element of a node: cardinality, slicing, and the plan of its values."""

    __slots__ = (
        "around",
        "assigned",
        "choice",
        "clean",
        "derived",
        "elem",
        "items",
        "max",
        "min",
        "owner",
        "required_slices",
        "slice_invariants",
        "slicing",
        "tests",
    )

    def __init__(self, elem: Elem, derived: bool, owner: str) -> None:
        self.elem, self.derived, self.owner = elem, derived, owner
        self.min, self.max, self.choice = elem.min, elem.max, elem.choice
        self.slicing = elem.slicing is not None and bool(elem.slices)
        self.items: dict[Any, _Item] = {}  # (slice id, type code) -> plan
        self.tests: list[tuple[Elem, list[Any] | None]] | None = None
        #: per slice: the sliced element's invariants the slice does not repeat
        self.slice_invariants: dict[int, checks.Fails | None] = {
            id(s): error_invariants(elem, frozenset(c[0] for c in s.constraints))
            for s in elem.slices}
        self.required_slices = _UNSET
        self.around = _reads_around(elem)
        #: (type code, JSON text of the values) -> the slice of each, as ``_assign`` found
        self.assigned: dict[tuple[str, bytes], list[Elem]] = {}
        #: (type code, JSON text of the values) found clean here by themselves (as the
        #: nodes remember objects: nothing below looked around them)
        self.clean: set[tuple[str, bytes]] = set()

    def item(self, target: Elem, code: str, run: Run) -> _Item:
        key = (id(target), code)
        found = self.items.get(key)
        if found is None:
            found = self.items[key] = _Item(target, code, self.derived, self.owner, run)
        return found

    def values(self, values: list[Any] | tuple[Any, ...], code: str, run: Run) -> None:
        """Every value of the element (one key's): cardinality checked by the caller."""
        elem = self.elem
        if not self.slicing:
            plan = self.item(elem, code, run)
            for value in values:
                plan.check(value, run)
            return
        if elem.constraints and any(v is None for v in values):
            raise _NO  # keep the odd case on the engine's road
        text = _text(values)
        if text is None:
            self._values(values, self._assign(values, code, run), code, run)
            return
        key = (code, text)
        if key in self.clean:
            return  # these values were found clean here by themselves
        found = self.assigned.get(key)
        if found is None:
            found = self._assign(values, code, run)
            if len(self.assigned) >= _MEMO_SIZE:
                self.assigned.clear()
            self.assigned[(code, kept(text))] = found
        before = run.context_reads
        self._values(values, found, code, run)
        if run.context_reads == before:
            if len(self.clean) >= _MEMO_SIZE:
                self.clean.clear()
            self.clean.add((code, kept(text)))

    def _values(self, values: list[Any] | tuple[Any, ...], targets: list[Elem], code: str,
                run: Run) -> None:
        """Each value against its slice (``targets``, as :meth:`_assign` found them)."""
        elem = self.elem
        for value, target in zip(values, targets, strict=True):
            self.item(target, code, run).fn(value, run)
            if target is not elem and value is not None:
                fails = self.slice_invariants[id(target)]
                if fails is not None:
                    if self.around:
                        run.context_reads += 1
                    if fails(value, run):
                        raise _NO

    def _slice_tests(self, run: Run) -> list[tuple[Elem, list[Any] | None]]:
        if self.tests is None:
            from .slicing import _UNREADABLE, _test

            elem = self.elem
            assert elem.slicing is not None
            discriminators = elem.slicing[0]
            if any(kind == "profile" for kind, _path in discriminators):
                raise _NO  # its test asks the run's Bundle: not one to remember
            tests: list[tuple[Elem, list[Any] | None]] = []
            for slice_ in elem.slices:
                made = [_test(slice_, kind, path, run) for kind, path in discriminators]
                tests.append((slice_, None if not made or _UNREADABLE in made else made))
            self.tests = tests
        return self.tests

    def _assign(self, values: Iterable[Any], code: str, run: Run) -> list[Elem]:
        """``slicing.assign``: raise where it would report."""
        elem = self.elem
        assert elem.slicing is not None
        discriminators, ordered, rules = elem.slicing
        tests = self._slice_tests(run)
        by_type = elem.choice and any(k == "type" and p == "$this" for k, p in discriminators)
        out: list[Elem] = []
        positions: list[int] = []
        counts = [0] * len(tests)
        unmatched = False
        for value in values:
            probe = (value, code) if by_type else value
            chosen = -1
            for index, (_slice, preds) in enumerate(tests):
                if preds is not None and all(p(probe) for p in preds):
                    chosen = index
                    break
            if chosen < 0:
                if rules == "closed":
                    raise _NO
                if rules == "openAtEnd":
                    unmatched = True
                out.append(elem)
                continue
            if unmatched:
                raise _NO  # a slice's value after one matching no slice
            counts[chosen] += 1
            positions.append(chosen)
            out.append(tests[chosen][0])
        if ordered and positions != sorted(positions):
            raise _NO
        for (slice_, preds), count in zip(tests, counts, strict=True):
            if preds is not None and (count < slice_.min
                                      or (slice_.max >= 0 and count > slice_.max)):
                raise _NO
        return out

    def absent(self, run: Run) -> None:
        """The element is not there: a minimum, or a required slice one can test, fails."""
        if self.min > 0:
            raise _NO
        if self.slicing:
            if self.required_slices is _UNSET:
                self.required_slices = any(preds is not None and s.min > 0
                                           for s, preds in self._slice_tests(run))
            if self.required_slices:
                raise _NO


_Key = tuple[int, "_Element", str, "Callable[[Any, Run], None] | None", int, int]


class _Node:
    """A JSON object against an element's children (``engine._node``)."""

    __slots__ = ("always", "keys", "loose_stems", "memo", "resource_level", "strict")

    def __init__(self, elem: Elem, derived: bool, owner: str, resource_level: bool,
                 run: Run) -> None:
        self.strict = not derived and bool(elem.children)
        self.resource_level = resource_level
        keys: dict[str, _Key] = {}
        plans: dict[int, _Element] = {}
        stems: list[str] = []

        def entry(kind: int, plan: _Element, code: str) -> _Key:
            fn = None if plan.slicing or kind in (_EXT_ONLY, _SKIP) else \
                plan.item(plan.elem, code, run).fn
            return (kind, plan, code, fn, plan.min, plan.max if plan.max >= 0 else _MANY)

        for child in elem.children.values():
            plan = plans[id(child)] = _Element(child, derived, owner)
            if child.choice:
                stem = child.name[:-3]
                stems.append(stem)
                for code in child.type_codes:
                    suffix = code[:1].upper() + code[1:]
                    keys[stem + suffix] = entry(_CHOICE, plan, code)
                    keys["_" + stem + suffix] = entry(_SKIP, plan, "")
            else:
                code = child.types[0][0] if len(child.types) == 1 else ""
                keys[child.name] = entry(_PLAIN, plan, code)
                keys["_" + child.name] = entry(_EXT_ONLY, plan, code)
        # a plain name a choice stem also reads (``_items`` would count it twice): unsure
        for key, (kind, plan, code, _fn, lo, hi) in list(keys.items()):
            bare = key[1:] if key.startswith("_") else key
            if kind in (_PLAIN, _EXT_ONLY) and any(
                    bare.startswith(s) and bare[len(s):][:1].isupper() for s in stems):
                keys[key] = (_UNSURE, plan, code, None, lo, hi)
        self.keys = keys
        self.loose_stems = tuple(stems)
        #: JSON texts of values found clean here by themselves (not a whole resource:
        #: those recur whole only as the pipeline's own cache knows them)
        self.memo: set[bytes] | None = None if resource_level else set()
        #: (plan, is a choice, its key, its extension key) of the elements that must be
        #: there (the names written once, not per object)
        self.always = tuple((plans[id(c)], c.choice, c.name, "_" + c.name)
                            for c in elem.children.values()
                            if c.min > 0 or any(s.min > 0 for s in c.slices))

    def walk(self, data: JSON, run: Run) -> None:
        """Raise at an error; a value found clean without a look around it (no
        invariant, reference or contained resource below) is remembered by its JSON text,
        and the same text is clean here again (the same codes, the same identifiers
        recur in most resources)."""
        memo = self.memo
        if memo is None:
            self._walk(data, run)
            return
        try:
            text: bytes | None = orjson.dumps(data, default=json_default)
        except (TypeError, ValueError):
            text = None
        if text is not None:
            if text in memo:
                return
            if b"null" in text or len(text) > _MEMO_TEXT:  # a NaN is written null
                text = None  # too: not a key to trust; a big one (a PDF): not worth it
        before = run.context_reads
        self._walk(data, run)
        if text is not None and run.context_reads == before:
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo.add(kept(text))

    def _walk(self, data: JSON, run: Run) -> None:
        keys = self.keys
        choices: set[int] | None = None
        for key, value in data.items():
            entry = keys.get(key)
            if entry is None:
                if key == "resourceType" and self.resource_level:
                    continue
                bare = key[1:] if key.startswith("_") else key
                if self.strict or any(bare.startswith(s) and bare[len(s):][:1].isupper()
                                      for s in self.loose_stems):
                    raise _NO  # not an element, or a choice of a type not allowed
                continue
            kind, plan, code, fn, lo, hi = entry
            if value is None:
                raise _NO
            if kind == _PLAIN:
                pass
            elif kind == _CHOICE:
                if choices is None:
                    choices = set()
                if id(plan) in choices:
                    raise _NO  # two types of one choice: more than its max
                choices.add(id(plan))
            elif kind == _EXT_ONLY:
                if key[1:] in data:
                    continue  # the value is there: the engine reads the value only
                if plan.slicing:
                    raise _NO
                count = len(value) if type(value) is list else 1
                if count < lo or count > hi:
                    raise _NO
                continue
            elif kind == _SKIP:
                continue
            else:
                raise _NO
            if type(value) is list:
                count = len(value)
                if count < lo or count > hi:
                    raise _NO
                if fn is None:
                    plan.values(value, code, run)
                else:
                    for item in value:
                        fn(item, run)
            else:
                if lo > 1 or hi < 1:
                    raise _NO
                if fn is None:
                    plan.values((value,), code, run)
                else:
                    fn(value, run)
        for plan, choice, name, ext_name in self.always:
            if choice:
                if choices is None or id(plan) not in choices:
                    plan.absent(run)
            elif name not in data and ext_name not in data:
                plan.absent(run)


def _plan(run: Run, elem: Elem, derived: bool, owner: str, resource_level: bool) -> _Node:
    plans: dict[Any, _Node] = run.defs.plans
    key = (id(elem), derived, owner, resource_level)
    found = plans.get(key)
    if found is None:
        found = plans[key] = _Node(elem, derived, owner, resource_level, run)
    return found


def _root_invariants(run: Run, root: Elem) -> checks.Fails | None:
    """The resource-level invariants of a structure, prepared once per definitions."""
    key = ("invariants", id(root))
    plans: dict[Any, Any] = run.defs.plans
    found = plans.get(key, _UNSET)
    if found is _UNSET:
        found = plans[key] = error_invariants(root)
    return found


def _chosen(resource: JSON, run: Run, explicit: Iterable[Structure]) -> list[Structure]:
    """``engine.validate_resource``'s choice of structures; raise where it would report
    an error. Remembered per (type, explicit structures, claimed URLs): the definitions
    remember each structure they look up, so the same question has the same answer."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        raise _NO
    explicit = tuple(explicit)
    meta = resource.get("meta")
    claims = meta.get("profile", []) if isinstance(meta, dict) else []
    if type(claims) is list and all(type(url) is str for url in claims):
        key = (rtype, tuple(map(id, explicit)), tuple(claims))
        memo: dict[Any, Any] | None = run.defs.plans.get("chosen")
        if memo is None:
            memo = run.defs.plans["chosen"] = {}
        found = memo.get(key)
        if found is not None:
            return found[0]
        chosen = _choose(rtype, claims, run, explicit)
        if len(memo) >= _MEMO_SIZE:
            memo.clear()
        memo[key] = (chosen, explicit)  # the structures stay alive with their ids
        return chosen
    return _choose(rtype, claims, run, explicit)


def _choose(rtype: str, claims: Any, run: Run, explicit: tuple[Structure, ...]
            ) -> list[Structure]:
    chosen = [s for s in explicit if s.type == rtype]
    for url in claims if isinstance(claims, list) else []:
        if not isinstance(url, str):
            raise _NO
        found = run.defs.structure(url)
        if found is None:
            continue  # "not installed": a warning at most
        if found.type != rtype:
            raise _NO
        if found not in chosen:
            chosen.append(found)
    if not chosen:
        base = run.defs.base(rtype)
        if base is None:
            raise _NO
        chosen = [base]
    return chosen


def _resource(resource: JSON, run: Run, explicit: Iterable[Structure]) -> None:
    run.context_reads += 1
    outer = run.resource
    run.resource = resource
    try:
        for structure in _chosen(resource, run, explicit):
            outer_structure, run.structure = run.structure, structure
            try:
                fails = _root_invariants(run, structure.root)
                if fails is not None and fails(resource, run):
                    raise _NO
                _plan(run, structure.root, structure.derived, structure.type,
                      True).walk(resource, run)
            finally:
                run.structure = outer_structure
    finally:
        run.resource = outer


def clean(resource: JSON, run: Run, explicit: Iterable[Structure] = ()) -> bool:
    """True only when ``engine.validate_resource(resource, run, …, explicit)`` would
    report no error; False at the first one, or at a doubt. ``run`` may
    gather issues meanwhile: use a fresh one for the engine after a False."""
    try:
        _resource(resource, run, explicit)
    except _Finding:
        return False
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
        return False  # junk the engine is better placed to describe
    return True

