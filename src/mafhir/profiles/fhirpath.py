"""FHIRPath invariants of the profiles: holds (True), violated (False) or cannot tell (None).

Why this module: the StructureDefinitions state their invariants in FHIRPath, so the validator
evaluates them instead of hand-coding each one. The engine is fhirpathpy (maintained, pure
Python, R4 model), compiled once per expression. Where fhirpathpy has a gap, it is filled here
or the answer is None — an invariant the engine cannot decide is never reported as violated:

- ``hasValue()``, ``htmlChecks()`` and ``resolve()`` are added as functions (fhirpathpy has none
  of them); ``resolve()`` finds contained resources and Bundle entries, and otherwise answers a
  stub of the type the reference names (enough for ``resolve() is Practitioner``).
- ``conformsTo()``, ``memberOf()``, ``lowBoundary()``, ``comparable()`` ... are not implemented
  (they need the profile engine or a terminology server): None.
- The R4 invariants present on every element or resource (ele-1, ext-1, dom-2..dom-6,
  txt-1/txt-2) run as native Python: ele-1 needs ``hasValue()``, dom-3 needs a two-argument
  ``trace()`` and ``as()`` over collections, and natively each costs well under a microsecond
  where fhirpathpy takes 10-30 µs (and ele-1 runs once per element).

Result rules (FHIRPath's boolean evaluation of a collection): ``[true]``/``[false]`` are the
answer; an empty result holds (FHIRPath's "unknown": nothing to check — an absent element is the
cardinality rule's business; the HL7 Java validator counts it as a failure); one non-boolean
item holds; several items, or an engine error, are None.
"""

from __future__ import annotations

import contextvars
import importlib.util
import json
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from .fhirpath_compiler import (
    FALLBACKS,
    RAW,
    TYPE_TEST,
    Compiled,
    Env,
    Failed,
    Item,
    compile_fhirpath,
    is_choice,
    member_keys,
    use_model,
    use_resolve,
    vacuity,
)
from .fhirpath_compiler import verdict as compiled_verdict

if TYPE_CHECKING:  # at run time: loaded by _load_fhirpathpy, on the first fallback
    from fhirpathpy.engine import do_eval
    from fhirpathpy.engine.invocations import invocation_registry as base_invocation_registry
    from fhirpathpy.engine.invocations.constants import constants
    from fhirpathpy.engine.nodes import ResourceNode
    from fhirpathpy.parser import parse

__all__ = ["NATIVE_KEYS", "UNSUPPORTED", "Check", "Guard", "checker", "evaluate", "guard",
           "is_native"]

JSON = dict[str, Any]
_PRIMITIVES = frozenset((
    "boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary",
    "instant", "date", "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt",
    "positiveInt", "uuid"))


def _untyped_model(r4: JSON) -> JSON:
    """fhirpathpy's R4 model, plus choice elements seen from a focus of unknown type.

    fhirpathpy finds ``value`` in ``valueQuantity`` only through the focus's path
    (``Observation.component.value``). A caller that gives no path (a validator walking JSON)
    still gets choice elements one level down: every choice name of R4 is added under the
    unknown path ``_``, the plain key first (``Identifier.value`` is no choice), with the type
    each suffix names (``_.valueQuantity`` -> Quantity).
    """
    choices: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    for path, suffixes in r4["choiceTypePaths"].items():
        stem = path.rsplit(".", 1)[-1]
        known = choices.setdefault(f"_.{stem}", [""])
        for suffix in suffixes:
            if suffix not in known:
                known.append(suffix)
            lower = suffix[:1].lower() + suffix[1:]
            types[f"_.{stem}{suffix}"] = lower if lower in _PRIMITIVES else suffix
    return {**r4, "choiceTypePaths": {**r4["choiceTypePaths"], **choices},
            "path2Type": {**r4["path2Type"], **types}}


def _r4_model() -> JSON:
    """fhirpathpy's R4 model (``fhirpathpy.models.models["r4"]``), read from its files the
    way that module reads them, without importing fhirpathpy: the compiled closures need the
    model, while fhirpathpy's engine and parser (most of its import time) load only when an
    expression falls back to it (see :func:`_load_fhirpathpy`)."""
    spec = importlib.util.find_spec("fhirpathpy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fhirpathpy is not installed")
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "models", "r4")
    model: JSON = {}
    for name in os.listdir(folder):
        if name.endswith(".json"):
            with open(os.path.join(folder, name)) as fd:
                model[name[:-5]] = json.loads(fd.read())
    return model


_R4_BASE = _r4_model()
_R4 = _untyped_model(_R4_BASE)


def _datatype_index(r4: JSON) -> dict[str, frozenset[str]]:
    """JSON key -> the R4 data types having an element of that name (choices expanded:
    ``valueQuantity`` -> Extension...). Data types only: their chain reaches Element."""
    parents = r4["type2Parent"]

    def is_datatype(name: str) -> bool:
        while name in parents:
            name = parents[name]
            if name == "Element":
                return True
        return False

    index: dict[str, set[str]] = {}
    for path in r4["path2Type"]:
        owner, _, name = path.partition(".")
        if name and "." not in name and owner[:1].isupper() and is_datatype(owner):
            index.setdefault(name, set()).add(owner)
    for path, suffixes in r4["choiceTypePaths"].items():
        owner, _, name = path.partition(".")
        if name and "." not in name and is_datatype(owner):
            for suffix in suffixes:
                index.setdefault(f"{name}{suffix}", set()).add(owner)
    return {k: frozenset(v) for k, v in index.items()}


_DATATYPES = _datatype_index(_R4_BASE)
_COMMON = frozenset(("id", "extension", "modifierExtension", "fhir_comments"))


@lru_cache(maxsize=1024)
def _datatype_of(keys: frozenset[str]) -> str | None:
    """The one R4 data type whose elements hold all ``keys`` (Quantity for value, unit,
    system, code), else None: an ambiguous object (``{"text": ...}``) stays untyped."""
    own = [k[1:] if k[:1] == "_" else k for k in keys]
    candidates: frozenset[str] | None = None
    for key in own:
        if key in _COMMON:
            continue
        found = _DATATYPES.get(key, frozenset())
        candidates = found if candidates is None else candidates & found
        if not candidates:
            return None
    if not candidates:
        return None
    parents = _R4["type2Parent"]
    for candidate in candidates:  # Quantity among Age, Count, Duration...: their ancestor

        def line(name: str) -> set[str]:
            seen = {name}
            while name in parents:
                name = parents[name]
                seen.add(name)
            return seen

        if all(candidate in line(other) for other in candidates):
            return candidate
    return None
_XHTML = "{http://www.w3.org/1999/xhtml}"

#: Functions of FHIRPath/FHIR that fhirpathpy lacks and this module does not add: an
#: invariant using one is answered None (cannot evaluate).
UNSUPPORTED = ("conformsTo", "memberOf", "subsumes", "subsumedBy", "lowBoundary",
               "highBoundary", "comparable", "getValue", "elementDefinition", "slice",
               "checkModifiers")


class _Unsupported(Exception):
    """Raised inside an evaluation by a function this module does not support."""


def _unsupported(name: str) -> Callable[..., Any]:
    def fn(inputs: list[Any], *args: Any) -> Any:
        raise _Unsupported(name)
    return fn


# The resource and root resource of the evaluation in progress, for resolve(): fhirpathpy hands
# user functions only their input, not the evaluation context.
_SCOPE: contextvars.ContextVar[tuple[JSON, JSON]] = contextvars.ContextVar("fhirpath_scope")


# --- added functions -------------------------------------------------------------------------

def _has_value(inputs: list[Any], *args: Any) -> bool:
    """hasValue(): a single primitive with a value (a complex element is never "a value").

    fhirpathpy hands a primitive's ``_name`` object (its extensions) as an item of its own
    beside the value; dicts are left out for that reason.
    """
    values = [i for i in inputs if not isinstance(i, dict)]
    return len(values) == 1 and values[0] is not None


def _resolve(inputs: list[Any], *args: Any) -> list[ResourceNode]:
    """resolve(): the resources that references (or canonical/uri strings) point at, as typed
    nodes (a bare dict would have no FHIR type for ``is``/``ofType``)."""
    resource, root = _SCOPE.get(({}, {}))
    out: list[ResourceNode] = []
    for item in inputs:
        ref = item.get("reference") if isinstance(item, dict) else item
        if isinstance(ref, str):
            found = _find(ref, resource, root)
            if found is not None:
                out.append(ResourceNode.create_node(found))
    return out


_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


def _find(ref: str, resource: JSON, root: JSON) -> JSON | None:
    """A reference's target within the resource (contained) or its Bundle, else a typed stub."""
    if ref.startswith("#"):
        if ref == "#":
            return root
        for holder in (resource, root):
            for c in holder.get("contained", []) or []:
                if isinstance(c, dict) and c.get("id") == ref[1:]:
                    return c
        return None
    if root.get("resourceType") == "Bundle":
        for entry in root.get("entry", []) or []:
            target = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(target, dict):
                continue
            if entry.get("fullUrl") == ref:
                return target
            m = _REF.search(ref)
            if m and target.get("resourceType") == m[1] and target.get("id") == m[2]:
                return target
    m = _REF.search(ref)
    return {"resourceType": m[1], "id": m[2]} if m else None


_ALLOWED_TAGS = frozenset((
    "a", "abbr", "acronym", "b", "big", "blockquote", "br", "caption", "cite", "code", "col",
    "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "li", "ol", "p", "pre", "q", "samp", "small", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "ul", "var"))


def _html_problems(div: Any) -> tuple[bool, bool]:
    """(txt-1 holds, txt-2 holds) for a narrative's XHTML ``div``.

    txt-1: well-formed XHTML, a ``div`` root, only the elements the FHIR narrative allows, no
    event attributes or ``javascript:`` links. txt-2: some non-whitespace text (or an image).
    """
    if not isinstance(div, str):
        return False, False
    try:
        top = ET.fromstring(div)
    except ET.ParseError:
        return False, False
    safe = top.tag == f"{_XHTML}div"
    content = False
    for node in top.iter():
        tag = node.tag if isinstance(node.tag, str) else ""
        local = tag[len(_XHTML):] if tag.startswith(_XHTML) else None
        if local not in _ALLOWED_TAGS:
            safe = False
        for name, value in node.attrib.items():
            bare = name.rsplit("}", 1)[-1].lower()
            if bare.startswith("on") or (bare in ("href", "src")
                                         and value.strip().lower().startswith("javascript:")):
                safe = False
        tail = (node.tail or "").strip() if node is not top else ""
        if local == "img" or (node.text or "").strip() or tail:
            content = True
    return safe, content


def _html_checks(inputs: list[Any], *args: Any) -> bool:
    """htmlChecks(): both narrative rules (txt-1 and txt-2) at once, for an unnamed caller."""
    if len(inputs) != 1:
        return False
    safe, content = _html_problems(inputs[0])
    return safe and content


_USER_FUNCTIONS: dict[str, dict[str, Any]] = {
    "hasValue": {"fn": _has_value},
    "resolve": {"fn": _resolve},
    "htmlChecks": {"fn": _html_checks},
    **{name: {"fn": _unsupported(name),
              "arity": {0: [], 1: ["AnyAtRoot"], 2: ["AnyAtRoot", "AnyAtRoot"]}}
       for name in UNSUPPORTED},
}


# --- native invariants -------------------------------------------------------------------------

def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or (
        isinstance(value, list) and all(_empty(v) for v in value))


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _ele_1(focus: Any, shadow: JSON | None) -> bool:
    """ele-1: a primitive has a value, or the element has a child other than ``id``."""
    if focus is not None and not isinstance(focus, dict | list):
        return True
    nodes = [focus] if isinstance(focus, dict) else []
    if isinstance(shadow, dict):
        nodes.append(shadow)
    return any(k not in ("id", "resourceType", "fhir_comments") and not _empty(v)
               for node in nodes for k, v in node.items())


def _ext_1(focus: Any) -> bool:
    """ext-1: an extension has nested extensions or a value[x], not both."""
    if not isinstance(focus, dict):
        return True
    has_ext = not _empty(focus.get("extension"))
    has_value = any(k.startswith("value") and k[5:6].isupper() and not _empty(v)
                    for k, v in focus.items())
    return has_ext != has_value


def _contained(focus: Any) -> list[JSON]:
    return [c for c in _items(focus.get("contained")) if isinstance(c, dict)] \
        if isinstance(focus, dict) else []


def _dom_2(focus: Any) -> bool:
    return all(_empty(c.get("contained")) for c in _contained(focus))


def _dom_4(focus: Any) -> bool:
    return all(_empty((c.get("meta") or {}).get("versionId"))
               and _empty((c.get("meta") or {}).get("lastUpdated")) for c in _contained(focus))


def _dom_5(focus: Any) -> bool:
    return all(_empty((c.get("meta") or {}).get("security")) for c in _contained(focus))


def _dom_6(focus: Any) -> bool:
    text = focus.get("text") if isinstance(focus, dict) else None
    return isinstance(text, dict) and not _empty(text.get("div"))


def _strings(node: Any, key: str | None = None) -> Iterator[tuple[str | None, str]]:
    """Every string value below ``node`` with the name of the element holding it."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)
    elif isinstance(node, str):
        yield key, node


def _local_references(node: Any) -> set[str]:
    """Every string value below ``node`` that starts with ``#`` (``_strings`` without a
    generator per level: dom-3 reads the whole resource)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item[:1] == "#":
            out.add(item)
    return out


def _dom_3(focus: Any, resource: JSON) -> bool:
    """dom-3: each contained resource is referenced from the resource, or refers to it (``#``).

    The expression looks for ``'#'+id`` among every ``reference`` and every canonical/uri/url
    value of ``%resource``; natively, any string value equal to ``#id`` counts (a string-typed
    element holding exactly ``#id`` is not met in practice).
    """
    contained = _contained(focus)
    if not contained:
        return True
    scope = resource if isinstance(resource, dict) and resource else focus
    targets = _local_references(scope)
    for c in contained:
        cid = c.get("id")
        if not isinstance(cid, str):
            continue  # '#'+id is empty: the expression does not select it
        if f"#{cid}" in targets:
            continue
        if any(key == "reference" and value == "#" for key, value in _strings(c)):
            continue
        return False
    return True


_NATIVE: dict[str, Callable[[Any, JSON, JSON | None, str | None], bool]] = {
    "hasValue() or (children().count() > id.count())":
        lambda f, r, s, k: _ele_1(f, s),
    "extension.exists() != value.exists()": lambda f, r, s, k: _ext_1(f),
    "contained.contained.empty()": lambda f, r, s, k: _dom_2(f),
    "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()":
        lambda f, r, s, k: _dom_4(f),
    "contained.meta.security.empty()": lambda f, r, s, k: _dom_5(f),
    "text.`div`.exists()": lambda f, r, s, k: _dom_6(f),
    "text.div.exists()": lambda f, r, s, k: _dom_6(f),
    "htmlChecks()": lambda f, r, s, k: (
        _html_problems(f)[0] if k == "txt-1" else _html_problems(f)[1] if k == "txt-2"
        else _html_checks([f])),
}
_DOM_3 = ("contained.where((('#'+id in (%resource.descendants().reference | "
          "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
          "%resource.descendants().as(url))) or descendants().where(reference = '#').exists() "
          "or descendants().where(as(canonical) = '#').exists() or "
          "descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id)"
          ".empty()")
_NATIVE[_DOM_3] = lambda f, r, s, k: _dom_3(f, r)

#: The R4 invariants evaluated natively (their R4 expression text selects the native code).
NATIVE_KEYS = ("ele-1", "ext-1", "dom-2", "dom-3", "dom-4", "dom-5", "dom-6", "txt-1", "txt-2")


def is_native(expression: str) -> bool:
    """Whether ``expression`` runs as native Python rather than through fhirpathpy."""
    return _native(expression) is not None


@lru_cache(maxsize=4096)
def _native(expression: str) -> Callable[[Any, JSON, JSON | None, str | None], bool] | None:
    """The native code for an R4 expression (matched on its text, whitespace aside)."""
    return _NATIVE.get(" ".join(expression.split()))


# --- fhirpathpy ---------------------------------------------------------------------------------

def _no_trace(label: str, items: Any) -> None:
    """trace() writes nothing: its items are patient data."""


def _untyped(item: Any) -> bool:
    """A node fhirpathpy cannot type: no path, or one below a focus of unknown type."""
    if not isinstance(item, ResourceNode):
        return False
    path = item.path
    return path is None or (path.startswith("_.") and path not in _R4["path2Type"])


def _watching(name: str) -> dict[str, Any]:
    """fhirpathpy's type test ``name``, noting in the context when it looked at a node of
    unknown type (whose "no" then means "cannot tell")."""
    entry: dict[str, Any] = dict(cast(dict[str, Any], base_invocation_registry[name]))
    test = entry["fn"]

    def fn(ctx: JSON, coll: Any, *args: Any) -> Any:
        if any(_untyped(item) for item in (coll if isinstance(coll, list) else [coll])):
            ctx["untyped_type_test"] = True
        return test(ctx, coll, *args)

    return {**entry, "fn": fn}


_TABLE: JSON = {}
_LOADING = threading.Lock()


def _load_fhirpathpy() -> None:
    """Import fhirpathpy's engine and parser into this module, once, on the first
    expression that falls back to it (the compiled closures answer all others)."""
    global do_eval, base_invocation_registry, constants, ResourceNode, parse
    with _LOADING:
        if _TABLE:
            return
        from fhirpathpy.engine import do_eval
        from fhirpathpy.engine.invocations import invocation_registry as base_invocation_registry
        from fhirpathpy.engine.invocations.constants import constants
        from fhirpathpy.engine.nodes import ResourceNode, TypeInfo
        from fhirpathpy.engine.util import process_user_invocation_table
        from fhirpathpy.parser import parse

        # fhirpathpy's type tests read the model from a class attribute that only is()/as()
        # set: set now, so ofType() answers the same before and after the first is()
        TypeInfo.model = _R4  # type: ignore[assignment]
        _TABLE.update({**process_user_invocation_table(_USER_FUNCTIONS),
                       **{name: _watching(name)
                          for name in ("ofType", "is", "as", "isOp", "asOp")}})


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> Callable[[Any, JSON], tuple[list[Any], bool]] | None:
    """The expression parsed once (None when fhirpathpy cannot parse it).

    Evaluated through fhirpathpy's ``do_eval`` with a context prepared here, not its
    ``compile()``: that re-wraps the user functions and converts the whole result to plain
    JSON on every call, about half the time of a small invariant; a verdict needs neither.
    """
    _load_fhirpathpy()
    try:
        tree = parse(expression)["children"][0]
    except Exception:
        return None

    def run(node: Any, variables: JSON) -> tuple[list[Any], bool]:
        """(the result, whether a type test met a node of unknown type)."""
        constants.reset()  # now()/today() fixed for one evaluation, as fhirpathpy does
        root = [node]
        ctx = {"dataRoot": root, "vars": {"ucum": "http://unitsofmeasure.org", **variables},
               "model": _R4, "userInvocationTable": _TABLE,
               "traceFn": _no_trace}  # fhirpathpy prints trace() to stdout: patient data
        return do_eval(ctx, root, tree), bool(ctx.get("untyped_type_test"))

    return run


class _NoShadow(dict[str, Any]):
    """A JSON object as fhirpathpy should see it: without its primitives' ``_name`` objects.

    fhirpathpy returns a primitive's ``_name`` object as an item of its own beside the value,
    so ``status = 'final'`` is false and ``status.count()`` is 2 when ``_status`` is present.
    This view leaves them out, lazily: a nested object is wrapped when fhirpathpy reaches it
    (and kept), so an invariant reading two elements of a large resource copies two levels,
    not the resource. The caller's JSON is never changed. The cost: no navigation into a
    primitive's extensions, which no R4 resource-level or US Core invariant does.
    """

    __slots__ = ()

    def __init__(self, source: JSON) -> None:
        super().__init__((k, v) for k, v in source.items() if k[:1] != "_")

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        hidden = _hide(value)
        if hidden is not value:
            super().__setitem__(key, hidden)
        return hidden

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 (self.get would recurse)

    def values(self) -> Any:
        return [self[k] for k in self]

    def items(self) -> Any:
        return [(k, self[k]) for k in self]


def _hide(value: Any) -> Any:
    if isinstance(value, _NoShadow):
        return value
    if isinstance(value, dict):
        return _NoShadow(value)
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return [_hide(v) for v in value]
    return value


def _choice_type_of(value: Any, resource: JSON) -> str | None:
    """The type of a primitive choice value, by the key holding this very object in the
    resource (``effectiveDateTime`` -> dateTime); None when no choice key, or several, hold
    it (small ints and one-letter strings are shared objects: never told apart)."""
    if isinstance(value, bool | int) or (isinstance(value, str) and len(value) < 2):
        return None
    found = _primitive_keys(resource).get(id(value))
    if found is None or found[0] is not value:
        return None
    types = {_R4["path2Type"].get(f"_.{key}") for key in found[1]}
    return types.pop() if len(types) == 1 and None not in types else None


# The last resources indexed, held (so the ids in their index stay theirs): a validator asks
# about one resource's primitives many times in a row.
_INDEXED: list[tuple[JSON, dict[int, tuple[Any, set[str]]]]] = []


def _primitive_keys(resource: JSON) -> dict[int, tuple[Any, set[str]]]:
    """id(primitive) -> (the primitive, the keys holding it) over the whole resource."""
    for held, known in _INDEXED:
        if held is resource:
            return known
    index: dict[int, tuple[Any, set[str]]] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, child in node.items():
                walk(child, k)
        elif isinstance(node, list):
            for child in node:
                walk(child, key)
        elif node is not None:
            index.setdefault(id(node), (node, set()))[1].add(key)

    walk(resource, "")
    _INDEXED.insert(0, (resource, index))
    del _INDEXED[4:]
    return index


@lru_cache(maxsize=4096)
def _uses_resource(expression: str) -> bool:
    """Whether the expression reads %resource/%rootResource or resolves references."""
    return "%" in expression or "resolve(" in expression


def _verdict(result: list[Any]) -> bool | None:
    if not result:
        return True
    if len(result) > 1:
        return None
    value = result[0].data if isinstance(result[0], ResourceNode) else result[0]
    return value if isinstance(value, bool) else True


# --- the compiled path: closures answering as fhirpathpy does ------------------------------------

_fast = compile_fhirpath
_FALLBACK = object()


def _compiled_resolve(found: list[Item], env: Env) -> list[Item]:
    """resolve() for the compiled path: the same targets as :func:`_resolve`."""
    out: list[Item] = []
    for value, _ in found:
        ref = value.get("reference") if isinstance(value, dict) else value
        if isinstance(ref, str):
            target = _find(ref, env.resource, env.root)
            if target is not None:
                path = target.get("resourceType")
                out.append((target, path if isinstance(path, str) else None))
    return out


use_model(_R4)
use_resolve(_compiled_resolve)


def _run_compiled(fast: Compiled, expression: str, focus: Any, resource: JSON, root: JSON,
                  path: str | None) -> Any:
    """The compiled closures' verdict, or ``_FALLBACK`` when fhirpathpy must answer."""
    start: Item = (focus, RAW) if isinstance(focus, dict) and "resourceType" in focus \
        else (focus, path)
    env = Env(start, resource, root)
    try:
        items = fast.run([start], env)
    except Failed:
        return None
    except Exception:  # Unfit, or anything the subset does not foresee: fhirpathpy answers
        FALLBACKS[expression] += 1
        return _FALLBACK
    verdict = compiled_verdict(items)
    if verdict is False and env.blind:
        return None
    return _trusted(verdict, expression, focus, path)


def evaluate(expression: str, focus: Any, resource: JSON, *, path: str | None = None,
             root: JSON | None = None, key: str | None = None,
             shadow: JSON | None = None) -> bool | None:
    """Whether the invariant ``expression`` holds on ``focus`` (None: cannot tell).

    ``focus`` is the element the constraint sits on, as JSON (a dict, a primitive value, or a
    resource); ``resource`` is ``%resource`` (the resource holding it) and ``root`` is
    ``%rootResource`` (the container of a contained resource, or the Bundle; defaults to
    ``resource``). ``path`` tells fhirpathpy the focus's type, needed to navigate choice
    elements and for ``is``: the element's path in its base resource (``Observation.component``)
    or, for a choice element's value, its concrete type (``dateTime``, ``Quantity``). ``key``
    (``txt-1``/``txt-2``) picks one of the two rules sharing ``htmlChecks()``. ``shadow`` is a
    primitive's ``_name`` object (its id/extensions), for ele-1. Never raises.

    Order: native code for the R4 invariants on every element; else the compiled closures
    (``fhirpath_compiler``); else, for what they leave, fhirpathpy.
    """
    root = resource if root is None else root
    native = _native(expression)
    if native is not None:
        try:
            return native(focus, resource, shadow, key)
        except Exception:
            return None
    fast = _fast(expression)
    if path is None and (fast.types if fast is not None else TYPE_TEST.search(expression)):
        # a caller that gives no type, and an expression that tests types (navigation alone
        # does without): an object's type is the one data type its keys fit; a primitive's,
        # the type its choice key names (effectiveDateTime -> dateTime), if it is found
        if isinstance(focus, dict) and "resourceType" not in focus:
            path = _datatype_of(frozenset(focus))
        elif focus is not None and not isinstance(focus, dict | list):
            path = _choice_type_of(focus, resource)
    if fast is not None:
        answer = _run_compiled(fast, expression, focus, resource, root, path)
        if answer is not _FALLBACK:
            return cast("bool | None", answer)
    return _by_fhirpathpy(expression, focus, resource, root, path)


def _by_fhirpathpy(expression: str, focus: Any, resource: JSON, root: JSON,
                   path: str | None) -> bool | None:
    """``evaluate``'s last resort: fhirpathpy itself (None when it cannot parse or fails)."""
    compiled = _compiled(expression)
    if compiled is None:
        return None
    seen = _hide(focus)
    # a resource goes in as itself: fhirpathpy filters a leading type name (``Patient.name``)
    # only on plain dicts, and takes the type from resourceType anyway
    node = seen if isinstance(seen, dict) and "resourceType" in seen \
        else ResourceNode.create_node(seen, path)
    try:
        if _uses_resource(expression):
            hidden = _hide(resource)
            resource, root = hidden, hidden if root is resource else _hide(root)
            token = _SCOPE.set((resource, root))
            try:
                result, blind = compiled(node, {"resource": resource, "rootResource": root,
                                                "context": node})
            finally:
                _SCOPE.reset(token)
        else:  # neither %resource nor resolve(): no view of the resource to make
            result, blind = compiled(node, {"context": node})
    except Exception:
        return None
    verdict = _verdict(result)
    if verdict is False and blind:
        return None  # a type test on a node of unknown type said no: cannot tell
    return _trusted(verdict, expression, focus, path)


def _trusted(verdict: bool | None, expression: str, focus: Any, path: str | None) -> bool | None:
    if verdict is False and path is None and isinstance(focus, dict) \
            and "resourceType" not in focus and _deep_choice(expression, focus):
        return None  # without the element's type a choice element may have looked absent
    return verdict


def _deep_choice(expression: str, focus: JSON) -> bool:
    """Whether a name in ``expression`` may be a choice element below the focus's own keys
    (``detail`` of ``detailQuantity`` two levels down), which an untyped walk cannot see.

    Below an extension or a choice value the walk is typed again (fhirpathpy types
    ``extension`` as Extension; ``_untyped_model`` types ``valueQuantity``): not looked at.
    """
    names = set(re.findall(r"[A-Za-z_]\w*", expression))
    typed = _R4["path2Type"]

    def walk(node: Any, depth: int) -> bool:
        if isinstance(node, list):
            return any(walk(v, depth) for v in node)
        if not isinstance(node, dict):
            return False
        for key, value in node.items():
            if key in ("extension", "modifierExtension") or (depth == 0 and f"_.{key}" in typed):
                continue
            if depth > 0 and key not in names and any(
                    c.isupper() and key[:i] in names for i, c in enumerate(key)):
                return True
            if walk(value, depth + 1):
                return True
        return False

    return walk(focus, 0)



# --- one invariant, prepared once: for a caller that evaluates it at many values -----------------

Check = Callable[[Any, JSON], "bool | None"]
Guard = Callable[[Any], bool]


@lru_cache(maxsize=4096)
def checker(expression: str) -> Check:
    """``lambda focus, resource: evaluate(expression, focus, resource)``, with what
    ``evaluate`` looks up per call (native code? compiled closures? a type to derive?)
    decided once: the compiled walk calls an invariant per value, and the lookups were a
    good part of its cost."""
    native = _native(expression)
    if native is not None:
        def run_native(focus: Any, resource: JSON) -> bool | None:
            try:
                return native(focus, resource, None, None)
            except Exception:
                return None
        return run_native
    fast = _fast(expression)
    if fast is not None and not fast.types:  # no type to derive: straight to the closures
        def run_fast(focus: Any, resource: JSON) -> bool | None:
            answer = _run_compiled(fast, expression, focus, resource, resource, None)
            if answer is _FALLBACK:
                return _by_fhirpathpy(expression, focus, resource, resource, None)
            return cast("bool | None", answer)
        return run_fast

    def run_any(focus: Any, resource: JSON) -> bool | None:
        return evaluate(expression, focus, resource)
    return run_any


def _typed_call(expression: str) -> bool:
    """Whether ``evaluate`` derives a type for an untyped object focus (then a choice
    element's keys depend on the type it finds)."""
    fast = _fast(expression)
    return bool(fast.types if fast is not None else TYPE_TEST.search(expression))


def _navigation(name: str, typed: bool) -> Callable[[Any], Any]:
    """What navigation from a focus to ``name`` finds there, as the evaluation does: the
    first non-null of the keys it reads (None: nothing; ``_UNSURE``: not known here)."""
    if not is_choice(name):
        def plain(focus: Any) -> Any:
            return focus.get(name) if type(focus) is dict else None
        return plain
    by_type: dict[Any, tuple[str, ...]] = {}

    def choice(focus: Any) -> Any:
        if type(focus) is not dict:
            return None
        rtype = focus.get("resourceType", _UNSURE) if "resourceType" in focus else None
        if rtype is not None and not isinstance(rtype, str):
            return _UNSURE  # the evaluation leaves the compiled subset
        if rtype is None and typed:
            return _UNSURE  # its keys depend on the type evaluate derives
        keys = by_type.get(rtype)
        if keys is None:
            keys = by_type[rtype] = member_keys(name, rtype)
        for key in keys:
            value = focus.get(key)
            if value is not None:
                return value
        return None
    return choice


_UNSURE = object()


def _literal(name: str, present: bool, typed: bool) -> Guard:
    """A test of one condition of :func:`fhirpath_compiler.vacuity` (False: not known)."""
    if "." in name:  # Appointment.status: only on an Appointment handed in as itself
        rtype, _, member = name.partition(".")
        inner = _literal(member, present, typed)

        def of_type(focus: Any) -> bool:
            return type(focus) is dict and focus.get("resourceType") == rtype \
                and inner(focus)
        return of_type
    if not is_choice(name):  # the commonest: one key, read directly
        if present:
            def has(focus: Any) -> bool:
                value = focus.get(name) if type(focus) is dict else None
                return value is not None and (type(value) is not list or (
                    bool(value) and all(v is not None for v in value)))
            return has

        def lacks(focus: Any) -> bool:
            value = focus.get(name) if type(focus) is dict else None
            return value is None or (type(value) is list and not value)
        return lacks
    find = _navigation(name, typed)
    if present:
        def found(focus: Any) -> bool:
            value = find(focus)
            if value is None or value is _UNSURE:
                return False
            return type(value) is not list or (
                bool(value) and all(v is not None for v in value))
        return found

    def absent(focus: Any) -> bool:
        value = find(focus)
        return value is None or (type(value) is list and not value)
    return absent


@lru_cache(maxsize=4096)
def guard(expression: str) -> Guard | None:
    """A key test on the focus that is True only where ``expression`` cannot be violated
    (``contained.contained.empty()`` on a resource without ``contained``), derived from
    the expression's tree (``fhirpath_compiler.vacuity``), so the caller needs no
    evaluation there; None when no such test is known. False says nothing: evaluate.
    Expressions with the same conditions share one test (dom-2..dom-5)."""
    conditions = vacuity(expression)
    if _native(expression) is not None:
        # native code reads "empty" its own way (``_empty``: [{}] is empty there): only
        # absence, which every reading shares, is taken from the tree
        conditions = frozenset(c for c in conditions if not any(p for _n, p in c))
    return _guard(conditions, _typed_call(expression))


@lru_cache(maxsize=4096)
def _guard(conditions: frozenset[frozenset[tuple[str, bool]]], typed: bool) -> Guard | None:
    terms = [tuple(_literal(name, present, typed) for name, present in sorted(conj))
             for conj in conditions]
    if not terms:
        return None
    if any(not term for term in terms):
        return lambda focus: True
    if all(len(term) == 1 for term in terms):
        tests = tuple(term[0] for term in terms)
        if len(tests) == 1:
            return tests[0]

        def any_of(focus: Any) -> bool:
            for test in tests:  # noqa: SIM110 (a loop: no generator per call)
                if test(focus):
                    return True
            return False
        return any_of

    def some(focus: Any) -> bool:
        return any(all(test(focus) for test in term) for term in terms)
    return some
