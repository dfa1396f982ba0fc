"""A compiled acceptance check with the R4B models' verdict, without building the models.

Building a ``fhir.resources`` model costs a Python ``__init__``, a null scan, a choice
scan and a required-element scan per nested element — most of what validating a Bundle
costs. This module reads the same models once (their fields, aliases, cardinality,
required elements, choice groups and primitive types) into plain tables and walks a
resource's JSON against them.

It only ever says **yes** (the models would accept this resource) or **not sure**
(``False``): anything it does not model exactly — a ``_field`` extension sibling, a
``null``, an abstract ``Resource`` (contained, Bundle.entry.resource), a nested
``resourceType``, a value of an unexpected JSON kind, a model with validators of its own —
is not sure, and the caller then builds the model, which gives the verdict and the
messages. Primitive values are checked by the very pydantic types the models declare
(one ``TypeAdapter`` per type), so a primitive accepted here is one the model accepts.
``tests/test_validation_fastpath.py`` compares both verdicts on the corpus and on broken
variants of it.

A yes also says that no string holds a control character FHIR forbids (which the models
let through): the JSON text each complex value is remembered by is looked at for one, and
each primitive string when its type's check runs, so a clean resource needs no pass of
its own for them.
"""

from __future__ import annotations

import re
import threading
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from orjson import dumps as _dumps
from pydantic import TypeAdapter

from ..io import json_default, kept

__all__ = ["CONTROL_CHARACTERS", "ESCAPED_CONTROL", "accepts", "type_table"]

#: What a FHIR string may not hold: control characters other than tab, CR and LF (R4
#: §2.24.0.1 string: "[ \\r\\n\\t\\S]+"). The models let them through, so mafhir checks.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

#: A forbidden control character as JSON writes it (``\\u0000``…, ``\\b``, ``\\f``), not
#: preceded by an escaped backslash.
ESCAPED_CONTROL = re.compile(
    rb"(?<!\\)(?:\\\\)*\\(?:u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F])|[bf])")

#: The model configuration the tables assume; a model configured otherwise is not compiled.
_CONFIG = {"extra": "forbid", "validate_assignment": True, "populate_by_name": True}
#: The validators every FHIR model has, which the tables reproduce.
_VALIDATORS = {"reject_null_complex_elements", "validate_after_model_construction"}


class _Unsupported(Exception):
    """A model (or a field type) the tables do not reproduce exactly."""


@dataclass(slots=True)
class _Field:
    many: bool
    node: _Node | None = None  # a complex type
    primitive: int = -1  # index into _ADAPTERS
    resource: bool = False  # any resource, by its resourceType (contained)
    fhir_type: str = ""  # the FHIR type's name (code, Quantity, Resource...)
    enum: tuple[str, ...] = ()  # the codes of a complete required binding, if any
    #: a complex type's model getter, until the type is first met (then ``node``); _UNFIT
    #: when it cannot be compiled
    target: Any = None


@dataclass(slots=True)
class _Node:
    fields: dict[str, _Field] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: required primitives the model also takes as their ``_name`` extension alone (a
    #: data-absent-reason in place of a value): name → the ``_name`` alias
    required_ext: dict[str, str] = field(default_factory=dict)
    choices: tuple[tuple[tuple[str, ...], bool], ...] = ()  # (aliases, one required)
    any_of: tuple[str, ...] = ()  # at least one of these present (a primitive's extension)
    #: JSON texts of values that fit (the same codes and identifiers recur in most
    #: resources); bounded, forgotten at once when full
    memo: set[bytes] = field(default_factory=set)
    #: derived once the node is filled in (``_finish``): ``required`` as a set, every
    #: choice alias, and the choice groups of which one must be present
    required_keys: frozenset[str] = frozenset()
    choice_keys: frozenset[str] = frozenset()
    needed_choices: tuple[tuple[str, ...], ...] = ()


#: FHIR primitive types some models declare as bare Python types.
_PLAIN: dict[Any, str] = {bool: "Boolean", int: "Integer", Decimal: "Decimal", str: "String"}
_ADAPTERS: list[TypeAdapter[Any]] = []
_ADAPTER_INDEX: dict[Any, int] = {}
_NODES: dict[type, _Node] = {}
_BAD: set[type] = set()
_LOCK = threading.Lock()  # a node is visible in _NODES before it is filled in
_UNFIT = object()  # a field's type the tables do not reproduce: present means not sure


def _adapter(annotation: Any) -> int:
    key = repr(annotation)
    if key not in _ADAPTER_INDEX:
        _ADAPTER_INDEX[key] = len(_ADAPTERS)
        _ADAPTERS.append(TypeAdapter(annotation))
    return _ADAPTER_INDEX[key]


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the element type, is it a list) of a field annotation, Optional removed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise _Unsupported(repr(annotation))
        return _unwrap(args[0])
    if origin is list:
        (item,) = typing.get_args(annotation)
        inner, many = _unwrap(item)
        if many:
            raise _Unsupported(repr(annotation))
        return inner, True
    return annotation, False


def _field(annotation: Any) -> _Field:
    inner, many = _unwrap(annotation)
    klass = getattr(inner, "get_model_klass", None)
    if klass is None:
        marks = getattr(inner, "__metadata__", ())
        name = type(marks[0]).__name__ if marks else _PLAIN.get(inner, "")
        return _Field(many, primitive=_adapter(inner), fhir_type=name[:1].lower() + name[1:])
    # the model's class is named after its FHIR type (fhir.resources' ``_model_klass`` path):
    # the type is compiled when a resource first has the field, not with its parent — a
    # Patient without extensions need not load every type Extension.value[x] names
    path = getattr(inner, "_model_klass", None)
    rtype = path.rsplit(".", 1)[-1] if isinstance(path, str) else ""
    if not rtype:
        target = klass()
        rtype = getattr(target, "__resource_type__", "")
        if rtype not in ("Resource", "DomainResource"):
            return _Field(many, node=_compile(target), fhir_type=rtype)
    if rtype == "Resource":
        return _Field(many, resource=True, fhir_type=rtype)
    if rtype == "DomainResource":
        raise _Unsupported("an abstract domain resource")
    return _Field(many, fhir_type=rtype, target=klass)


def _resolve(spec: _Field) -> _Node | None:
    """The table of a complex-type field, compiled the first time it is needed; None when
    the tables do not reproduce its type (then a value of it is not sure)."""
    with _LOCK:
        if spec.target is None:
            return spec.node
        if spec.target is _UNFIT:
            return None
        try:
            spec.node = _compile(spec.target())
        except Exception:  # _Unsupported, or a model that fails: the models decide
            spec.target = _UNFIT
            return None
        spec.target = None
        return spec.node


def _primitive_extension() -> _Node:
    """``_field``, a primitive's extension sibling (FHIRPrimitiveExtension): ``id`` and
    ``extension``, one of them present (its own validator; ``fhir_comments`` not modelled)."""
    model = get_fhir_model_class("FHIRPrimitiveExtension")
    if model in _NODES:
        return _NODES[model]
    fields = model.model_fields
    if set(fields) != {"fhir_comments", "id", "extension"} or set(
            model.__pydantic_decorators__.model_validators) != _VALIDATORS | {
            "validate_extension_or_fhir_comment_required"}:
        raise _Unsupported("FHIRPrimitiveExtension")
    node = _Node({"id": _field(fields["id"].annotation),
                  "extension": _field(fields["extension"].annotation)},
                 any_of=("id", "extension"))
    _NODES[model] = node
    return node


def _compile(model: type) -> _Node:
    if model in _NODES:
        return _NODES[model]
    if model in _BAD:
        raise _Unsupported(model.__name__)
    config = dict(model.model_config)  # type: ignore[attr-defined]
    decorators = model.__pydantic_decorators__  # type: ignore[attr-defined]
    if config != _CONFIG or set(decorators.model_validators) != _VALIDATORS \
            or decorators.field_validators or decorators.validators \
            or decorators.root_validators:
        raise _Unsupported(model.__name__)
    node = _NODES[model] = _Node()
    try:
        sample = model.model_construct()  # type: ignore[attr-defined]
        required = [name for name, info in model.model_fields.items()  # type: ignore[attr-defined]
                    if info.is_required()]
        required += [name for name, _ext in sample.get_required_fields()]
        alias = {name: info.alias or name
                 for name, info in model.model_fields.items()}  # type: ignore[attr-defined]
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            extra = info.json_schema_extra or {}
            base = model.model_fields.get(name[:-5])  # type: ignore[attr-defined]
            if name.endswith("__ext") and base is not None:
                if not _unwrap(base.annotation)[1]:  # a list's siblings hold nulls: not sure
                    node.fields[alias[name]] = _Field(False, node=_primitive_extension())
                continue
            if not extra.get("element_property"):
                continue  # fhir_comments: present means not sure
            try:
                node.fields[alias[name]] = spec = _field(info.annotation)
                enum = extra.get("enum_values") or ()
                if enum and "+" not in enum:  # "+": the model lists only some codes
                    spec.enum = tuple(enum)
            except _Unsupported:
                continue  # left out of the table: not sure when present
        node.required = tuple(alias[name] for name in required)
        node.required_ext = {alias[name]: alias[ext]
                             for name, ext in sample.get_required_fields()
                             if ext in alias and alias[ext] in node.fields}
        node.choices = tuple(
            (tuple(alias[f] for f in names),
             model.model_fields[names[0]].json_schema_extra["one_of_many_required"]  # type: ignore[attr-defined]
             is True)
            for names in sample.get_one_of_many_fields().values())
        node.required_keys = frozenset(node.required)
        node.choice_keys = frozenset(n for names, _ in node.choices for n in names)
        node.needed_choices = tuple(names for names, needed in node.choices if needed)
    except Exception:
        # nodes compiled meanwhile may hold this unfinished one: start again without it
        _BAD.add(model)
        _NODES.clear()
        raise
    return node


@lru_cache(maxsize=512)
def _resource_node(resource_type: str) -> _Node | None:
    with _LOCK:
        try:
            model = get_fhir_model_class(resource_type)
            if not model.has_resource_base():  # a data type named as a resource
                return None
            return _compile(model)
        except Exception:  # whatever the reason, the models decide
            return None


def type_table(type_name: str) -> _Node | None:
    """The compiled table of any FHIR type (data type or resource) the R4B models define,
    for the profile validator: base R4 structure where no StructureDefinition is at hand."""
    with _LOCK:
        try:
            return _compile(get_fhir_model_class(type_name))
        except Exception:  # not a model, or one the tables do not reproduce
            return None


def _primitive_ok(index: int, kind: type, value: Any) -> bool:
    """Does the model's own primitive type accept ``value``? Remembered per value, except
    for Decimals: 1.0 and 1.00 are equal keys but not the same text."""
    if kind is Decimal:
        return _validate(index, value)
    return _remembered(index, kind, value)


#: 8,192 values: codes, systems and units recur and stay; ids and times rarely do, and a
#: larger memo (65,536) kept filling until ~15,000 tasks, 15 MB over the streaming budget.
@lru_cache(maxsize=8192)
def _remembered(index: int, kind: type, value: Any) -> bool:
    """``kind`` keeps True apart from 1 (equal as keys); a string with a forbidden control
    character is not sure either (see the module's docstring)."""
    if kind is str and CONTROL_CHARACTERS.search(value):
        return False
    return _validate(index, value)


def _validate(index: int, value: Any) -> bool:
    try:
        _ADAPTERS[index].validate_python(value)
    except Exception:  # ValidationError, or a type that fails on junk (Url on an int)
        return False
    return True


#: A table's memo of fitting values: at most this many texts, each at most this long.
_MEMO_SIZE = 2048
_MEMO_TEXT = 2048


def _fits(node: _Node, data: dict[str, Any]) -> bool:
    """Does ``data`` (a ``node`` value, resourceType removed) fit the table? Each complex
    value is first looked up by its exact JSON text in its type's memo (Decimals digit for
    digit; a text holding null is not kept: a NaN is written so too), as the same codes
    and references recur in most resources."""
    fields = node.fields
    memo_text = _MEMO_TEXT
    items: list[Any] | tuple[Any]
    for key, value in data.items():
        spec = fields.get(key)
        if spec is None:
            return False
        kind = type(value)
        if kind is list:
            if not spec.many:
                return False
            items = value
        elif spec.many or value is None:
            return False
        elif spec.primitive >= 0:  # the commonest case, without a loop
            if kind is dict or not _primitive_ok(spec.primitive, kind, value):
                return False
            continue
        else:
            items = (value,)
        if spec.primitive >= 0:
            index = spec.primitive
            for item in items:
                kind = type(item)
                if kind is dict or kind is list or item is None \
                        or not _primitive_ok(index, kind, item):
                    return False
            continue
        if spec.resource:
            for item in items:
                if type(item) is not dict or not accepts(item):
                    return False
            continue
        sub = spec.node if spec.target is None else _resolve(spec)
        if sub is None:
            return False
        memo = sub.memo
        for item in items:
            # _fits_remembered, inlined: one call less per subtree (most are memo hits)
            if type(item) is not dict:
                return False
            try:
                text = _dumps(item, default=json_default)
            except (TypeError, ValueError):
                if not _fits(sub, item):
                    return False
                continue
            if text in memo:
                continue
            if (b"\\" in text and ESCAPED_CONTROL.search(text)) or not _fits(sub, item):
                return False
            if len(text) <= memo_text and b"null" not in text:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo.add(kept(text))  # not orjson's 4 KiB buffer
    if node.required and not data.keys() >= node.required_keys:
        for name in node.required:
            if name not in data:
                ext = node.required_ext.get(name)  # extension-only: the model wants `extension`
                if ext is None or type(data.get(ext)) is not dict \
                        or not data[ext].get("extension"):
                    return False
    if node.any_of and not any(name in data for name in node.any_of):
        return False
    if node.choices and not node.choice_keys.isdisjoint(data):
        for names, _needed in node.choices:
            if sum(1 for n in names if n in data) > 1:
                return False
    if node.needed_choices:
        for names in node.needed_choices:
            if not any(n in data for n in names):
                return False
    return True



def accepts(resource: dict[str, Any]) -> bool:
    """True only when the R4B model of ``resource["resourceType"]`` accepts ``resource``
    and no string in it holds a forbidden control character; False when it may not (then
    build the model for the verdict, and look for the characters)."""
    rtype = resource.get("resourceType")
    if type(rtype) is not str:
        return False
    node = _resource_node(rtype)
    if node is None:
        return False
    if "resourceType" in node.fields:
        return False
    body = dict(resource)
    del body["resourceType"]
    try:
        return _fits(node, body)
    except (TypeError, RecursionError):  # an unhashable value, a very deep tree
        return False
