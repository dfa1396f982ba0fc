"""FHIRPath invariants compiled to plain Python closures, answering exactly as fhirpathpy does.

Why: the profile engine evaluates an invariant at nearly every element it checks; through
fhirpathpy each costs 20-300 µs of tree walking, wrapper objects and context dicts, and that
was most of the validation time. Here an expression is parsed once (fhirpathpy's own parser,
so the grammar is the same) and turned into nested closures over plain JSON.

The target is fhirpathpy's behaviour as ``mafhir.profiles.fhirpath.evaluate`` drives it, not
the FHIRPath specification: the same navigation (choice elements and types through the R4
model, ``_name`` shadows unseen), the same type tests (``BackboneElement`` for nested paths, a
System type for computed values), the same quirks (dates compared as strings, ``where`` by
Python truth, ``|`` dropping the types of what it merges). Two outcomes leave the subset:

- :class:`Unfit` (at compile or run time): a construct or a value this module does not model
  (date literals, quantities, an object compared for equality...). The caller hands the
  expression to fhirpathpy, which answers; :data:`FALLBACKS` counts each such case.
- :class:`Failed`: fhirpathpy would raise here (a collection where a singleton is needed, a
  non-boolean under ``and``, a type test on a node of unknown path), and ``evaluate`` answers
  None for an exception; so does the caller, without asking fhirpathpy.

Equality with fhirpathpy is a test, not a belief: every invariant of the shipped tables on
every element the engine checks in the corpus examples, Synthea and the mutants
(tests/test_fhirpath_compiler.py), plus random JSON.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

__all__ = ["FALLBACKS", "RAW", "TYPE_TEST", "Compiled", "Env", "Failed", "Item", "Unfit",
           "compile_fhirpath", "use_model", "use_resolve", "verdict"]

JSON = dict[str, Any]

#: The path of a value that is no fhirpathpy ResourceNode: a literal, a computed value, or the
#: resource handed in as itself. fhirpathpy types those by their Python type (System types).
RAW = "\0raw"
Item = tuple[Any, Any]  # (JSON value, model path | None | RAW)

#: expression -> how many times it went to fhirpathpy (compile-time misses count once each).
FALLBACKS: Counter[str] = Counter()


class Unfit(Exception):
    """Outside the subset: fhirpathpy answers instead."""


class Failed(Exception):
    """Where fhirpathpy raises: the invariant cannot be evaluated (None)."""


class Env:
    """What one evaluation shares: the variables, the model, whether a type test was blind."""

    __slots__ = ("blind", "context", "resource", "root")

    def __init__(self, context: Item, resource: Any, root: Any) -> None:
        self.context = context
        self.resource = resource
        self.root = root
        self.blind = False  # a type test met a node of unknown type (its "no" is no answer)


Step = Callable[[list[Item], Env], list[Item]]


class Compiled:
    """One expression as closures; ``types``: it tests types (the focus's type matters)."""

    __slots__ = ("run", "types")

    def __init__(self, run: Step, types: bool) -> None:
        self.run = run
        self.types = types


def verdict(items: list[Item]) -> bool | None:
    """FHIRPath's boolean reading of a result, as ``fhirpath._verdict`` reads fhirpathpy's."""
    if not items:
        return True
    if len(items) > 1:
        return None
    value = items[0][0]
    return value if isinstance(value, bool) else True


# --- the model -----------------------------------------------------------------------------------

_MODEL: JSON = {}


def use_model(model: JSON) -> None:
    """The R4 model navigation and type tests use (``fhirpath``'s, with untyped choices)."""
    _MODEL.clear()
    _MODEL.update(model)


def _is_type(name: str, wanted: str) -> bool:
    """fhirpathpy's ``TypeInfo.is_type``: up the parents, or through path2Type."""
    parents, types = _MODEL["type2Parent"], _MODEL["path2Type"]
    current: str | None = name
    while current:
        if current == wanted:
            return True
        current = parents.get(current) or types.get(current)
    return False


def _type_info(item: Item) -> tuple[str, str]:
    """(namespace, name) of an item as fhirpathpy's ``TypeInfo.from_value`` gives it."""
    value, path = item
    if path is RAW:
        if isinstance(value, bool):
            return "System", "Boolean"
        if isinstance(value, int):
            return "System", "Integer"
        if isinstance(value, float | Decimal):
            return "System", "Decimal"
        if isinstance(value, str):
            return "System", "String"
        if isinstance(value, dict):
            return "System", "Object"
        raise Unfit("a raw value of another type")
    if path is None:
        raise Failed("a type test on a node without a type")  # None.is_(): AttributeError
    if not isinstance(path, str):
        raise Unfit("an odd path")
    if path.startswith("System."):
        return "System", path[7:]
    if "." not in path:
        return "FHIR", path
    return "FHIR", "BackboneElement"


def _untyped(item: Item) -> bool:
    path = item[1]
    return path is None or (path is not RAW and isinstance(path, str) and path.startswith("_.")
                            and path not in _MODEL["path2Type"])


def _type_test(spec: tuple[str | None, str]) -> Callable[[Item, Env], bool]:
    wanted_ns, wanted = spec

    def test(item: Item, env: Env) -> bool:
        namespace, name = _type_info(item)
        if wanted_ns is not None and namespace != wanted_ns:
            return False
        if namespace == "FHIR":
            return _is_type(name, wanted)
        return name == wanted

    return test


# --- values ------------------------------------------------------------------------------------

def _data(value: Any) -> Any:
    """fhirpathpy's ``util.get_data``: floats become Decimals."""
    return Decimal(str(value)) if isinstance(value, float) else value


def _node(value: Any, path: Any) -> Item:
    """A navigated value as fhirpathpy's ``ResourceNode``: a resource is typed by itself."""
    if isinstance(value, dict) and "resourceType" in value:
        rtype = value["resourceType"]
        if not isinstance(rtype, str):
            raise Unfit("a resourceType that is no string")
        return value, rtype
    return value, path


def _scalar_equal(a: Any, b: Any) -> bool:
    """``ResourceNode.__eq__``/``==`` on two data values; objects compared without their
    top-level ``_name`` shadows, as fhirpathpy sees them (deeper shadows: fhirpathpy's answer
    depends on what it looked at before, so not modelled)."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return False
        return _plain(a) == _plain(b)
    if isinstance(a, list) or isinstance(b, list):
        raise Unfit("a list value")
    return bool(a == b)


def _plain(value: JSON) -> JSON:
    for v in value.values():
        if _shadowed(v):
            raise Unfit("an object with shadows below its top level")
    return {k: v for k, v in value.items() if k[:1] != "_"}


def _shadowed(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k[:1] == "_" or _shadowed(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_shadowed(v) for v in value)
    return False


def _key(value: Any) -> str:
    """fhirpathpy's ``util.uniq`` key (JSON of the value as seen without shadows)."""
    try:
        return json.dumps(_unshadowed(value), sort_keys=True)
    except TypeError:
        raise Unfit("a value JSON cannot write") from None


def _unshadowed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unshadowed(v) for k, v in value.items() if k[:1] != "_"}
    if isinstance(value, list):
        return [_unshadowed(v) for v in value]
    return value


def _distinct(items: list[Item]) -> list[Item]:
    """fhirpathpy's ``distinct_fn``: nodes by their data's JSON, re-made without a path."""
    if all(path is not RAW for _, path in items):
        kept: dict[str, Any] = {}
        for value, _ in items:
            kept[_key(value)] = value
        return [_node(value, None) for value in kept.values()]
    if all(path is RAW for _, path in items):
        raws: dict[str, Any] = {}
        for value, _ in items:
            if isinstance(value, dict | list):
                raise Unfit("a raw object in a union")
            try:
                key = json.dumps(value, sort_keys=True)
            except TypeError:
                key = str(value)
            raws[key] = value
        return [(value, RAW) for value in raws.values()]
    raise Unfit("nodes and values mixed in a union")


def _boolean(items: list[Item]) -> bool | None:
    """A ``["Boolean"]`` parameter of and/or/xor/implies: empty, or exactly true/false."""
    if not items:
        return None
    if len(items) > 1:
        raise Failed("a collection where a boolean is needed")
    value = items[0][0]
    if value is True or value is False:
        return value
    raise Failed("not a boolean")


def _truth(value: bool | None) -> list[Item]:
    return [] if value is None else [(value, RAW)]


def _singleton_string(items: list[Item]) -> str:
    """``ensure_string_singleton``."""
    if len(items) == 1:
        value = items[0][0]
        if isinstance(value, str):
            return value
    raise Failed("not a single string")


def _without_shadow_pair(items: list[Item]) -> list[Item]:
    """``remove_duplicate_extension``: a second item holding "extension" is dropped."""
    if len(items) == 2 and items[1][1] is not RAW:
        data = items[1][0]
        try:
            if "extension" in data:
                return items[:1]
        except TypeError:
            raise Failed("'in' on a value") from None
    return items


def _number(value: Any) -> bool:
    return isinstance(value, int | Decimal) and not isinstance(value, bool)


# --- navigation --------------------------------------------------------------------------------

def _member(key: str) -> Step:
    """Navigation to ``key`` exactly as fhirpathpy's ``member_invocation`` does it."""
    if key == "length":
        raise Unfit("length as a member")
    capitalized = key[:1] == key[:1].upper()

    # per parent path: (the child's typed path, or for a choice element its JSON keys with
    # their typed paths); the model is fixed once loaded (use_model at import)
    plans: dict[Any, tuple[str, tuple[tuple[str, str], ...] | None]] = {}

    def plan(path: Any) -> tuple[str, tuple[tuple[str, str], ...] | None]:
        elsewhere, choices, types = (_MODEL["pathsDefinedElsewhere"], _MODEL["choiceTypePaths"],
                                     _MODEL["path2Type"])
        child = f"{path}.{key}" if path else f"_.{key}"
        child = elsewhere.get(child, child)
        actual = choices.get(child)
        if actual:
            keyed = tuple((f"{key}{suffix}", types.get(child + suffix, child + suffix))
                          for suffix in actual)
            return child, keyed
        if key == "extension":
            child = "Extension"
        return types.get(child, child), None

    def step(items: list[Item], env: Env) -> list[Item]:
        if capitalized and items:
            filtered = _type_filter(items, key)
            if filtered is not None:
                return filtered
        out: list[Item] = []
        for data, path in items:
            if not isinstance(data, dict):
                continue
            if path is RAW or "resourceType" in data:
                path = data.get("resourceType")
                if path is not None and not isinstance(path, str):
                    raise Unfit("a resourceType that is no string")
            found = plans.get(path)
            if found is None:
                found = plans[path] = plan(path)
            child, keyed = found
            value = None
            if keyed:
                for name, typed in keyed:
                    value = data.get(name)
                    if value is not None:
                        child = typed
                        break
            else:
                value = data.get(key)
            if value is None:
                continue
            if isinstance(value, list):
                for v in value:
                    if v is None:
                        raise Unfit("a list with gaps")
                    out.append(_node(v, child))
            else:
                out.append(_node(value, child))
        return out

    return step


def _type_filter(items: list[Item], key: str) -> list[Item] | None:
    """A capitalized name on the resource as handed in (raw): it selects the resource when
    its type is that name; on anything else fhirpathpy navigates (None here)."""
    out = []
    for value, path in items:
        if path is not RAW:
            return None  # x["resourceType"] on a ResourceNode: TypeError, so navigation
        if isinstance(value, dict):
            if "resourceType" not in value:
                raise Failed("no resourceType")  # KeyError
            if value["resourceType"] == key:
                out.append((value, key))
        elif isinstance(value, str | list):
            raise Unfit("a raw string or list under a type name")
        else:
            return None
    return out


# --- operators ------------------------------------------------------------------------------------

def _logic(op: str, left: Step, right: Step) -> Step:
    def step(items: list[Item], env: Env) -> list[Item]:
        a, b = _boolean(left(items, env)), _boolean(right(items, env))
        if op == "and":
            return _truth(False if False in (a, b) else None if None in (a, b) else True)
        if op == "or":
            return _truth(True if True in (a, b) else None if None in (a, b) else False)
        if op == "xor":
            return _truth(None if None in (a, b) else a != b)
        if a is False or b is True:  # implies
            return _truth(True)
        return _truth(None if a is None or b is None else b)

    return step


def _equals(a: list[Item], b: list[Item]) -> bool:
    """fhirpathpy's ``equality`` on two non-empty collections."""
    if len(a) != len(b):
        return False
    for _value, path in (a[0], b[0]):
        if path == "Quantity":
            raise Unfit("a Quantity compared (fhirpathpy converts it)")
    return _scalar_equal(a[0][0], b[0][0])


def _equality(op: str, left: Step, right: Step) -> Step:
    def step(items: list[Item], env: Env) -> list[Item]:
        a, b = left(items, env), right(items, env)
        if not a or not b:
            return []
        same = _equals(a, b)
        return _truth(same if op == "=" else not same)

    return step


def _membership(op: str, left: Step, right: Step) -> Step:
    def step(items: list[Item], env: Env) -> list[Item]:
        a, b = left(items, env), right(items, env)
        if op == "contains":
            a, b = b, a
            if not a:
                return []
            if not b:
                return _truth(False)
        else:
            if not a:
                return []
            if not b:
                return _truth(False)
        if len(a) > 1:
            raise Failed("a collection where one value is needed")
        return _truth(any(_scalar_equal(v, a[0][0]) for v, _ in b))

    return step


def _union(left: Step, right: Step) -> Step:
    def step(items: list[Item], env: Env) -> list[Item]:
        return _distinct(left(items, env) + right(items, env))

    return step


def _inequality(op: str, left: Step, right: Step) -> Step:
    def step(items: list[Item], env: Env) -> list[Item]:
        a, b = left(items, env), right(items, env)
        if not a or not b:
            return []
        a, b = _without_shadow_pair(a), _without_shadow_pair(b)
        if len(a) > 1 or len(b) > 1:
            raise Failed("a collection compared")
        x, y = _data(a[0][0]), _data(b[0][0])
        if x is None or y is None:
            return []
        if type(x) is not type(y) and not (_number(x) and _number(y)):
            raise Failed("values of different types compared")
        if not isinstance(x, str | int | Decimal):
            raise Unfit("a comparison of other values")
        if op == "<":
            return _truth(x < y)
        if op == ">":
            return _truth(x > y)
        if op == "<=":
            return _truth(x <= y)
        return _truth(x >= y)

    return step


def _arithmetic_operand(items: list[Item]) -> Any:
    """One operand of ``+``/``-``: a singleton, its data as fhirpathpy converts it."""
    items = _without_shadow_pair(items)
    if len(items) != 1:
        raise Failed("a collection in arithmetic")
    value, path = items[0]
    if path in ("date", "dateTime", "time", "instant", "Quantity") or isinstance(value, dict):
        raise Unfit("dates and quantities in arithmetic")
    return _data(value)


def _number_param(items: list[Item]) -> Any:
    """A ``Number`` parameter (``*``, ``mod``)."""
    if not items:
        return None
    if len(items) > 1:
        raise Failed("a collection where a number is needed")
    value = _data(items[0][0])
    if isinstance(value, bool) or not _number(value):
        raise Unfit("not a number")
    return value


def _arithmetic(op: str, left: Step, right: Step) -> Step:
    def step(items: list[Item], env: Env) -> list[Item]:
        a, b = left(items, env), right(items, env)
        if op in ("+", "-"):
            if not a or not b:
                return []
            x, y = _arithmetic_operand(a), _arithmetic_operand(b)
            if op == "+" and isinstance(x, str) and isinstance(y, str):
                return [(x + y, RAW)]
            if _number(x) and _number(y):
                return [(x + y if op == "+" else x - y, RAW)]
            raise Unfit("other operands")
        x, y = _number_param(a), _number_param(b)
        if x is None or y is None:
            return []
        if op == "*":
            return [(x * y, RAW)]
        if y == 0:  # mod
            return []
        return [(x % y, RAW)]

    return step


def _concatenate(left: Step, right: Step) -> Step:
    def one(items: list[Item]) -> str:
        if not items:
            return ""
        if len(items) > 1 or not isinstance(items[0][0], str):
            raise Failed("not a single string")
        return str(items[0][0])

    def step(items: list[Item], env: Env) -> list[Item]:
        return [(one(left(items, env)) + one(right(items, env)), RAW)]

    return step


def _type_operator(op: str, source: Step, spec: tuple[str | None, str]) -> Step:
    test = _type_test(spec)

    def step(items: list[Item], env: Env) -> list[Item]:
        found = source(items, env)
        return _typed(op, found, test, env)

    return step


def _typed(op: str, found: list[Item], test: Callable[[Item, Env], bool],
           env: Env) -> list[Item]:
    """``is``/``as``/``ofType`` on ``found``, noting a blind test as ``fhirpath`` does."""
    if any(_untyped(item) for item in found):
        env.blind = True
    if op == "ofType":
        return [item for item in found if test(item, env)]
    if not found:
        return []
    if len(found) > 1:
        raise Failed(f"a collection left of {op}")
    hit = test(found[0], env)
    if op == "is":
        return [(hit, RAW)]
    return found if hit else []  # as


# --- functions ------------------------------------------------------------------------------------

_INTEGER = re.compile(r"^[+-]?\d+$")


def _spec(node: JSON) -> tuple[str | None, str]:
    parts = str(node.get("text", "")).replace("`", "").split(".")
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise Unfit("a type name")


def _literal_string(node: JSON) -> str:
    """A function's parameter that must be a plain string literal."""
    literal = _build(node)[1]
    if literal is None or not isinstance(literal, str):
        raise Unfit("a parameter that is no string literal")
    return literal


def _literal_integer(node: JSON) -> int:
    literal = _build(node)[1]
    if not isinstance(literal, int) or isinstance(literal, bool):
        raise Unfit("a parameter that is no integer literal")
    return literal


_NO_PARAMS = frozenset(("exists", "empty", "not", "count", "first", "allTrue", "isDistinct",
                        "toString", "toInteger", "length", "hasValue", "resolve"))


def _function(name: str, params: list[JSON], resolve: Callable[[list[Item], Env], list[Item]]
              ) -> Callable[[list[Item], Env], list[Item]]:
    """The function ``name`` over its input collection (the one fhirpathpy hands it)."""
    if name in _NO_PARAMS and params and not (name == "exists" and len(params) == 1):
        raise Unfit(f"{name} with parameters")
    if name in ("where", "select", "all", "repeat") and len(params) != 1:
        raise Unfit(f"{name} arity")
    if name == "exists":
        if not params:
            return lambda found, env: [(bool(found), RAW)]
        where = _function("where", params, resolve)
        return lambda found, env: [(bool(where(found, env)), RAW)]
    if name == "empty":
        return lambda found, env: [(not found, RAW)]
    if name == "count":
        return lambda found, env: [(len(found), RAW)]
    if name == "first":
        return lambda found, env: found[:1]
    if name == "not":
        def not_(found: list[Item], env: Env) -> list[Item]:
            if len(found) != 1:
                return []
            value = found[0][0]
            if value is True or value is False:
                return [(not value, RAW)]
            raise Failed("not() of a non-boolean")
        return not_
    if name in ("where", "select", "all", "repeat"):
        criteria = _step(params[0])
        if name == "where":
            def where(found: list[Item], env: Env) -> list[Item]:
                out = []
                for item in found:
                    got = criteria([item], env)
                    if got and (got[0][1] is not RAW or got[0][0]):  # Python truth of got[0]
                        out.append(item)
                return out
            return where
        if name == "select":
            return lambda found, env: [x for item in found for x in criteria([item], env)]
        if name == "all":
            def all_(found: list[Item], env: Env) -> list[Item]:
                for item in found:
                    got = criteria([item], env)
                    if not (len(got) == 1 and got[0][0] == True):  # noqa: E712 (is_true)
                        return [(False, RAW)]
                return [(True, RAW)]
            return all_

        def repeat(found: list[Item], env: Env) -> list[Item]:
            out: list[Item] = []
            seen: set[tuple[str, Any]] = set()
            queue = list(found)
            while queue:
                item = queue.pop(0)
                new = []
                for got in criteria([item], env):
                    if got[1] is RAW:
                        raise Unfit("values in repeat()")
                    key = (_key(got[0]), got[1])
                    if key not in seen:
                        new.append((got, key))
                for got, key in new:
                    seen.add(key)
                    out.append(got)
                    queue.append(got)
            return out
        return repeat
    if name == "iif":
        if len(params) not in (2, 3):
            raise Unfit("iif arity")
        cond, ok = _step(params[0]), _step(params[1])
        fail = _step(params[2]) if len(params) == 3 else None

        def iif(found: list[Item], env: Env) -> list[Item]:
            got = cond(found, env)
            if len(got) == 1 and got[0][0] == True:  # noqa: E712 (is_true)
                return ok(found, env)
            return fail(found, env) if fail is not None else []
        return iif
    if name == "allTrue":
        def all_true(found: list[Item], env: Env) -> list[Item]:
            for value, _ in found:
                if type(value) is not bool:
                    raise Failed("allTrue() of a non-boolean")
            return [(all(value for value, _ in found), RAW)]
        return all_true
    if name == "isDistinct":
        return lambda found, env: [(len(found) == len(_distinct(found)), RAW)]
    if name == "intersect":
        if len(params) != 1 or not str(params[0].get("text", "")).startswith("%"):
            raise Unfit("intersect() with a parameter read from $this")
        other = _step(params[0])

        def intersect(found: list[Item], env: Env) -> list[Item]:
            theirs = other([env.context], env)
            hits = [item for item in found
                    if any(_scalar_equal(item[0], o[0]) for o in theirs)]
            out: list[Item] = []
            for item in hits:
                if not any(_scalar_equal(item[0], o[0]) for o in out):
                    out.append(item)
            return out
        return intersect
    if name in ("ofType", "is", "as"):
        if len(params) != 1:
            raise Unfit(f"{name} arity")
        test = _type_test(_spec(params[0]))
        return lambda found, env: _typed(name, found, test, env)
    if name == "toString":
        def to_string(found: list[Item], env: Env) -> list[Item]:
            if len(found) != 1:
                return []
            value = _data(found[0][0])
            if isinstance(value, dict | list):
                raise Unfit("toString() of an object")
            return [(str(value), RAW)]
        return to_string
    if name == "toInteger":
        def to_integer(found: list[Item], env: Env) -> list[Item]:
            if len(found) != 1:
                return []
            value = _data(found[0][0])
            if value is False or value is True:
                return [(int(value), RAW)]
            if _number(value):
                return [(value, RAW)] if int(value) == value else []
            if isinstance(value, str) and _INTEGER.match(value):
                return [(int(value), RAW)]
            return []
        return to_integer
    if name == "length":
        return lambda found, env: [] if not found else [(len(_singleton_string(found)), RAW)]
    if name == "substring":
        if len(params) not in (1, 2):
            raise Unfit("substring arity")
        start = _literal_integer(params[0])
        length = _literal_integer(params[1]) if len(params) == 2 else None

        def substring(found: list[Item], env: Env) -> list[Item]:
            if not found:
                return []
            text = _singleton_string(found)
            if start < 0 or start >= len(text):
                return []
            return [(text[start:] if length is None else text[start:start + length], RAW)]
        return substring
    if name in ("matches", "contains"):
        if len(params) != 1:
            raise Unfit(f"{name} arity")
        literal = _literal_string(params[0])
        if name == "matches":
            pattern = re.compile(literal, re.DOTALL)

            def matches(found: list[Item], env: Env) -> list[Item]:
                if not found or not literal:
                    return []
                return [(pattern.search(_singleton_string(found)) is not None, RAW)]
            return matches
        return lambda found, env: [] if not found else [
            (literal in _singleton_string(found), RAW)]
    if name == "hasValue":
        def has_value(found: list[Item], env: Env) -> list[Item]:
            values = [value for value, _ in found if not isinstance(value, dict)]
            return [(len(values) == 1 and values[0] is not None, RAW)]
        return has_value
    if name == "resolve":
        return resolve
    if name == "trace":
        if not params or len(params) > 2:
            raise Unfit("trace arity")
        _literal_string(params[0])
        return lambda found, env: found
    raise Unfit(f"function {name}")


# --- the tree -------------------------------------------------------------------------------------

#: resolve(), given by ``fhirpath`` (it knows contained resources and Bundles).
_RESOLVE: list[Callable[[list[Item], Env], list[Item]]] = []


def use_resolve(fn: Callable[[list[Item], Env], list[Item]]) -> None:
    _RESOLVE[:] = [fn]


def _resolve(found: list[Item], env: Env) -> list[Item]:
    if not _RESOLVE:
        raise Unfit("no resolve()")
    return _RESOLVE[0](found, env)


def _identity(items: list[Item], env: Env) -> list[Item]:
    return items


def _invocation(node: JSON, source: Step) -> Step:
    """A member or function invocation applied to what ``source`` gives."""
    kind = node["type"]
    if kind == "MemberInvocation":
        name = str(node["children"][0]["text"]).replace("`", "")
        if not name or name[0] in "$%":
            raise Unfit(name)
        member = _member(name)
        if source is _identity:
            return member
        return lambda items, env: member(source(items, env), env)
    if kind == "FunctionInvocation":
        functn = node["children"][0]
        name = str(functn["children"][0]["text"])
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
        fn = _function(name, params, _resolve)
        return lambda items, env: fn(source(items, env), env)
    if kind == "ThisInvocation":
        return source
    raise Unfit(kind)


def _literal(node: JSON) -> Any:
    kind, text = node["type"], str(node["text"])
    if kind == "StringLiteral" and "\\" not in text and len(text) >= 2:
        return text[1:-1]
    if kind == "BooleanLiteral":
        return text == "true"
    if kind == "NumberLiteral":
        number = Decimal(text)
        return int(number) if number == int(number) else number
    raise Unfit(kind)


_VARIABLES = ("resource", "rootResource", "context", "ucum")


def _constant(node: JSON) -> Step:
    name = str(node["children"][0]["text"]).replace("`", "")
    if name not in _VARIABLES:
        raise Unfit(f"%{name}")

    def step(items: list[Item], env: Env) -> list[Item]:
        if name == "context":
            return [env.context]
        if name == "ucum":
            return [("http://unitsofmeasure.org", RAW)]
        value = env.resource if name == "resource" else env.root
        return [] if value is None else [(value, RAW)]

    return step


def _build(node: JSON) -> tuple[Step, Any]:
    """(the closure, the literal value when the node is a literal, else None)."""
    kind = node.get("type")
    children = node.get("children", [])
    ops = node.get("terminalNodeText") or []
    if kind in ("TermExpression", "ParenthesizedTerm"):
        return _build(children[0])
    if kind == "LiteralTerm":
        value = _literal(children[0])
        item = [(value, RAW)]
        return (lambda items, env: item), value
    if kind == "ExternalConstantTerm":
        return _constant(children[0]), None
    if kind == "InvocationTerm":
        return _invocation(children[0], _identity), None
    if kind == "InvocationExpression":
        return _invocation(children[1], _step(children[0])), None
    if kind == "TypeExpression" and ops in (["is"], ["as"]):
        return _type_operator(ops[0], _step(children[0]), _spec(children[1])), None
    if len(ops) != 1 or len(children) != 2:
        raise Unfit(str(kind))
    op, left, right = ops[0], _step(children[0]), _step(children[1])
    if kind in ("OrExpression", "AndExpression", "ImpliesExpression", "XorExpression"):
        return _logic(op, left, right), None
    if kind == "EqualityExpression" and op in ("=", "!="):
        return _equality(op, left, right), None
    if kind == "MembershipExpression" and op in ("in", "contains"):
        return _membership(op, left, right), None
    if kind == "UnionExpression":
        return _union(left, right), None
    if kind == "InequalityExpression":
        return _inequality(op, left, right), None
    if kind == "AdditiveExpression" and op in ("+", "-"):
        return _arithmetic(op, left, right), None
    if kind == "AdditiveExpression" and op == "&":
        return _concatenate(left, right), None
    if kind == "MultiplicativeExpression" and op in ("*", "mod"):
        return _arithmetic(op, left, right), None
    raise Unfit(f"{kind} {op}")


def _step(node: JSON) -> Step:
    return _build(node)[0]


#: An expression that may test types (then the focus's type matters, not only its keys).
TYPE_TEST = re.compile(r"\bofType\(|\bis\b|\bas\b|\.is\(|\.as\(")


def _bare_this(node: JSON) -> bool:
    """Whether the expression starts with ``$this`` outside any operator or parameter:
    fhirpathpy has no ``$this`` there yet (an error), where the closures would give the input."""
    while node.get("type") in ("TermExpression", "InvocationExpression", "InvocationTerm"):
        node = node["children"][0]
    return node.get("type") == "ThisInvocation"


@lru_cache(maxsize=4096)
def compile_fhirpath(expression: str) -> Compiled | None:
    """The expression as closures, built once; None when it leaves the subset (counted in
    :data:`FALLBACKS`: fhirpathpy answers it)."""
    from fhirpathpy.parser import parse  # only here: the closures themselves need none of it

    try:
        tree = parse(expression)["children"][0]
        if _bare_this(tree):
            raise Unfit("$this before any operator")
        return Compiled(_step(tree), bool(TYPE_TEST.search(expression)))
    except Exception:
        FALLBACKS[expression] += 1
        return None


# --- vacuity: when an invariant cannot fail, read from its tree ----------------------------------

#: A condition on the focus: (member name, whether navigating to it gives something).
Literal = tuple[str, bool]
#: Conditions in disjunctive form: any one conjunction (all of its literals) suffices.
Dnf = frozenset[frozenset[Literal]]

_NEVER: Dnf = frozenset()
_ALWAYS: Dnf = frozenset((frozenset(),))
_MAX_TERMS = 8  # conditions past this are dropped: fewer ways out, never a wrong one


class _Shape:
    """What is known of a sub-expression's result, each as the focus conditions that make it
    so: [true] (``t``), [false] (``f``), empty (``e``), not empty (``n``), one integer
    ≥ 0 (``nat``: a count) or ≥ 1 (``pos``); ``number``: the value of a number literal.
    "So, or the evaluation fails" is enough here: a failure is no violation."""

    __slots__ = ("e", "f", "n", "nat", "number", "pos", "t")

    def __init__(self, t: Dnf = _NEVER, f: Dnf = _NEVER, e: Dnf = _NEVER,
                 n: Dnf = _NEVER, nat: Dnf = _NEVER, pos: Dnf = _NEVER,
                 number: Any = None) -> None:
        self.t, self.f, self.e, self.n = t, f, e, n
        self.nat, self.pos, self.number = nat, pos, number


_UNKNOWN = _Shape()


def _any(*parts: Dnf) -> Dnf:
    out = frozenset().union(*parts)
    return out if len(out) <= _MAX_TERMS else frozenset(sorted(out, key=len)[:_MAX_TERMS])


def _all(a: Dnf, b: Dnf) -> Dnf:
    out = set()
    for x in a:
        for y in b:
            both = x | y
            if not any((name, not present) in both for name, present in both):
                out.add(both)
    return _any(frozenset(out))


def _member_name(node: JSON) -> str | None:
    """The name of a navigation from the focus, when the term is one (not a type name:
    capitalized names may select the resource itself)."""
    if node.get("type") != "MemberInvocation":
        return None
    name = str(node["children"][0]["text"]).replace("`", "")
    if not name or name[0] in "$%" or name == "length" or name[:1] == name[:1].upper():
        return None
    return name


def _navigated(name: str) -> _Shape:
    return _Shape(e=frozenset((frozenset(((name, False),)),)),
                  n=frozenset((frozenset(((name, True),)),)))


def _type_head(node: JSON) -> str | None:
    """``Appointment`` in ``Appointment.status``: a type name the expression starts with."""
    while node.get("type") in ("TermExpression", "InvocationTerm"):
        node = node["children"][0]
    if node.get("type") != "MemberInvocation":
        return None
    name = str(node["children"][0]["text"])
    return name if name.isalpha() and name[:1].isupper() else None


def _shape_call(name: str, params: list[JSON], source: _Shape) -> _Shape:
    if name == "empty" and not params:
        return _Shape(t=source.e, f=source.n, n=_ALWAYS)
    if name == "exists":
        return _Shape(t=source.n if not params else _NEVER, f=source.e, n=_ALWAYS)
    if name in ("where", "select", "ofType", "repeat"):
        return _Shape(e=source.e)
    if name == "first" and not params:
        return _Shape(e=source.e, n=source.n)
    if name == "trace":
        return source
    if name == "not" and not params:
        return _Shape(t=source.f, f=source.t, e=source.e, n=_any(source.t, source.f))
    if name == "all":
        return _Shape(t=source.e, n=_ALWAYS)
    if name == "count" and not params:
        return _Shape(n=_ALWAYS, nat=_ALWAYS, pos=source.n)
    return _UNKNOWN


def _shape(node: JSON) -> _Shape:
    """The :class:`_Shape` of a parse-tree node (anything not modelled: nothing known)."""
    kind = node.get("type")
    children = node.get("children", [])
    ops = node.get("terminalNodeText") or []
    if kind in ("TermExpression", "ParenthesizedTerm"):
        return _shape(children[0])
    if kind == "LiteralTerm":
        literal = children[0]
        if literal.get("type") == "BooleanLiteral":
            truth = str(literal.get("text")) == "true"
            return _Shape(t=_ALWAYS if truth else _NEVER, f=_NEVER if truth else _ALWAYS,
                          n=_ALWAYS)
        if literal.get("type") == "NumberLiteral":
            try:
                number = _literal(literal)
            except Unfit:
                return _Shape(n=_ALWAYS)
            return _Shape(n=_ALWAYS, number=number)
        return _Shape(n=_ALWAYS)
    if kind == "InvocationTerm":
        name = _member_name(children[0])
        return _UNKNOWN if name is None else _navigated(name)
    if kind == "InvocationExpression":
        head, step = _type_head(children[0]), children[1]
        if head is not None:  # Appointment.status: status of the resource, if an Appointment
            name = _member_name(step)
            return _UNKNOWN if name is None else _navigated(f"{head}.{name}")
        source = _shape(children[0])
        if step.get("type") == "MemberInvocation":
            return _Shape(e=source.e)
        if step.get("type") == "FunctionInvocation":
            functn = step["children"][0]
            params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
            return _shape_call(str(functn["children"][0]["text"]), params, source)
        return _UNKNOWN
    if len(ops) != 1 or len(children) != 2:
        return _UNKNOWN
    op, a, b = ops[0], _shape(children[0]), _shape(children[1])
    if kind == "AndExpression" and op == "and":
        t, f = _all(a.t, b.t), _any(a.f, b.f)
        return _Shape(t=t, f=f, e=_any(_all(a.e, _any(b.e, b.t)), _all(a.t, b.e)),
                      n=_any(t, f))
    if kind == "OrExpression" and op == "or":
        t, f = _any(a.t, b.t), _all(a.f, b.f)
        return _Shape(t=t, f=f, e=_any(_all(a.e, _any(b.e, b.f)), _all(a.f, b.e)),
                      n=_any(t, f))
    if kind == "ImpliesExpression" and op == "implies":
        t, f = _any(a.f, b.t), _all(a.t, b.f)
        return _Shape(t=t, f=f, e=_any(_all(a.t, b.e), _all(a.e, _any(b.e, b.f))),
                      n=_any(t, f))
    if kind in ("OrExpression", "XorExpression") and op == "xor":
        t = _any(_all(a.t, b.f), _all(a.f, b.t))
        f = _any(_all(a.t, b.t), _all(a.f, b.f))
        return _Shape(t=t, f=f, e=_any(a.e, b.e), n=_any(t, f))
    if kind == "InequalityExpression" and op in ("<", ">", "<=", ">="):
        return _Shape(t=_at_least(op, a, b), e=_any(a.e, b.e))
    if kind == "EqualityExpression" and op in ("=", "!="):
        # two booleans (``start.exists() = end.exists()``): equal when both true or false
        same = _any(_all(a.t, b.t), _all(a.f, b.f))
        differ = _any(_all(a.t, b.f), _all(a.f, b.t))
        t, f = (same, differ) if op == "=" else (differ, same)
        return _Shape(t=t, f=f, e=_any(a.e, b.e), n=_any(t, f))
    if kind == "MembershipExpression" and op == "in":
        return _Shape(e=a.e)
    if kind == "MembershipExpression" and op == "contains":
        return _Shape(e=b.e)
    if kind == "UnionExpression":
        return _Shape(e=_all(a.e, b.e), n=_any(a.n, b.n))
    if kind == "AdditiveExpression" and op == "+":
        return _Shape(n=_all(a.nat, b.nat), nat=_all(a.nat, b.nat),
                      pos=_any(_all(a.pos, b.nat), _all(a.nat, b.pos)))
    return _UNKNOWN


def _at_least(op: str, a: _Shape, b: _Shape) -> Dnf:
    """When a count compared with a number literal is [true]: ``x.count() > 0`` where
    ``x`` is there, ``x.count() >= 0`` always (and the same written the other way)."""
    if op in ("<", "<="):  # 0 < x.count() is x.count() > 0
        op, a, b = (">" if op == "<" else ">="), b, a
    bound = b.number
    if bound is None or isinstance(bound, bool):
        return _NEVER
    if op == ">":
        return _any(a.pos if bound < 1 else _NEVER, a.nat if bound < 0 else _NEVER)
    return _any(a.pos if bound <= 1 else _NEVER, a.nat if bound <= 0 else _NEVER)


@lru_cache(maxsize=4096)
def vacuity(expression: str) -> Dnf:
    """The conditions on the focus's members under which ``expression`` cannot be violated:
    its result is then [true], empty, or an evaluation failure — never [false]. A condition
    is conjunctions of ``(name, present)``: navigating from the focus to ``name`` gives
    nothing (``present`` False) or something (``Type.name``: the focus is a resource of
    that type, and that). Read from the parse tree, so that an
    invariant about an element the focus lacks (``contained.contained.empty()``,
    ``dataAbsentReason.empty() or value.empty()``) is decided by a key test; empty when
    nothing is known (or the expression does not parse)."""
    from fhirpathpy.parser import parse

    try:
        tree = parse(expression)["children"][0]
    except Exception:
        return _NEVER
    shape = _shape(tree)
    return _any(shape.t, shape.e)


def member_keys(name: str, path: str | None) -> tuple[str, ...]:
    """The JSON keys navigation to ``name`` reads, in order, from an object of model path
    ``path`` (None: unknown type; a resource: its type), as :func:`_member` does: a choice
    element's keys (``valueQuantity``...), else the name itself."""
    child = f"{path}.{name}" if path else f"_.{name}"
    child = _MODEL["pathsDefinedElsewhere"].get(child, child)
    suffixes = _MODEL["choiceTypePaths"].get(child)
    if suffixes:
        return tuple(f"{name}{suffix}" for suffix in suffixes)
    return (name,)


def is_choice(name: str) -> bool:
    """Whether ``name`` is a choice element anywhere in the model (then which keys it reads
    depends on the type of the object navigated from)."""
    return f"_.{name}" in _MODEL["choiceTypePaths"]
