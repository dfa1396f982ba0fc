"""The checks one value gets against its element definition: JSON kind, fixed and
pattern values, binding, reference target, invariants."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from .run import Run
from .terminology import member
from .tree import Elem

__all__ = ["CODED", "STRING_TYPES", "Fails", "binding", "equal", "error_invariants",
           "invariants", "kind_ok", "reference", "show"]

JSON = dict[str, Any]

_NUMBER = (int, float, Decimal)  # mafhir's strict reader gives decimals as Decimal
_JSON_KIND: dict[str, tuple[type, ...]] = {
    "boolean": (bool,), "integer": (int,), "positiveInt": (int,), "unsignedInt": (int,),
    "decimal": _NUMBER,
}
STRING_TYPES = frozenset({
    "string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown",
    "base64Binary", "instant", "date", "dateTime", "time", "xhtml"})
#: The types a binding on a choice element applies to (not a string beside a Quantity).
CODED = frozenset({"code", "Coding", "CodeableConcept", "Quantity"})
#: Invariants the structure pre-check already decides (ele-1: every element has a value
#: or children), skipped so they are not evaluated at every node.
_SKIP = frozenset({"ele-1"})


def kind_ok(value: Any, code: str) -> bool:
    """Is ``value`` the JSON kind FHIR type ``code`` is written as (R4 JSON format)?"""
    kinds = _JSON_KIND.get(code)
    if kinds is not None:
        return isinstance(value, kinds) and (code == "boolean" or not isinstance(value, bool))
    if code in STRING_TYPES:
        return isinstance(value, str)
    if code[:1].isupper():
        return isinstance(value, dict)
    return True


def equal(value: Any, fixed: Any) -> bool:
    """``fixed[x]`` semantics: exactly the same, no element more or less."""
    if isinstance(fixed, dict):
        return isinstance(value, dict) and set(value) == set(fixed) and all(
            equal(value[k], v) for k, v in fixed.items())
    if isinstance(fixed, list):
        return isinstance(value, list) and len(value) == len(fixed) and all(
            equal(a, b) for a, b in zip(value, fixed, strict=True))
    return bool(value == fixed)


def show(value: Any) -> str:
    """A value for a message, cut short (patterns can be long)."""
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def binding(value: Any, elem: Elem, code: str, path: str, run: Run, owner: str) -> None:
    """Required: an error when the code is not in the value set; extensible: a warning
    when codings are given and none is; "not checked" when the set cannot be listed."""
    assert elem.binding is not None
    strength, url = elem.binding
    vs = run.defs.valueset(url)
    if vs is None and strength == "required":  # a core value set not shipped: the
        vs = run.defs.model_enum(owner, elem.name)  # models' code list, when complete
    if vs is None:
        run.add("information", "informational", path, elem,
                f"value set {url} is not available; binding not checked", "binding")
        return
    verdict, coded = member(vs, value, code)
    if verdict is True:
        return
    if verdict is None and coded:
        run.add("information", "informational", path, elem,
                f"codes of value set {url} cannot be expanded here; not checked", "binding")
        return
    if verdict is None and not coded:
        if strength == "required" and code == "CodeableConcept":
            run.add("error", "code-invalid", path, elem,
                    f"no code provided, and a code from {url} is required", "binding")
        return
    shown = value if isinstance(value, str) else _codes(value)
    if strength == "required":
        run.add("error", "code-invalid", path, elem,
                f"{shown} is not in the required value set {url}", "binding")
    else:
        run.add("warning", "code-invalid", path, elem,
                f"{shown} is not in the extensible value set {url}", "binding")


def _codes(value: JSON) -> str:
    codings = value.get("coding", [value]) if isinstance(value, dict) else []
    return ", ".join(f"{c.get('system', '')}#{c.get('code', '')}"
                     for c in codings if isinstance(c, dict)) or "no code"


def reference(value: JSON, elem: Elem, path: str, run: Run) -> None:
    """The target's type (from the reference or the Bundle entry) is one the element
    allows; a target in the same Bundle meets one of the target profiles."""
    ref = value.get("reference")
    if not isinstance(ref, str) or ref.startswith("#"):
        return
    targets = [t for code, _p, ts in elem.types if code == "Reference" for t in ts]
    if not targets:
        return
    target = run.bundle.get(ref)
    rtype = target.get("resourceType") if isinstance(target, dict) else None
    if rtype is None and "?" in ref:  # a conditional reference: Patient?identifier=...
        rtype = ref.split("?", 1)[0].rsplit("/", 1)[-1]
    elif rtype is None:
        parts = ref.split("/")
        if "_history" in parts:
            parts = parts[:parts.index("_history")]
        if len(parts) >= 2 and parts[-2][:1].isupper():
            rtype = parts[-2]
    if not isinstance(rtype, str):
        return
    types = {run.defs.type_of(t) for t in targets}
    if "Resource" in types or None in types:
        return
    if rtype not in types:
        run.add("error", "structure", f"{path}.reference", elem,
                f"refers to {rtype}, but {elem.id} allows only "
                f"{', '.join(sorted(t for t in types if t))}", "reference")
        return
    if isinstance(target, dict):
        profiles = [t for t in targets if run.defs.type_of(t) == rtype]
        if profiles and not any(run.conforms(target, p) for p in profiles):
            run.add("error", "structure", f"{path}.reference", elem,
                    f"the {rtype} it refers to conforms to none of {', '.join(profiles)}",
                    "reference")


def invariants(value: Any, elem: Elem, path: str, run: Run,
               skip: frozenset[str] = frozenset()) -> None:
    """Each constraint's FHIRPath (but those in ``skip``), by the FHIRPath engine when
    there is one."""
    for key, severity, human, expression in elem.constraints:
        if key in _SKIP or key in skip or not expression:
            continue
        if run.evaluate is None:
            run.not_evaluated.add(key)
            continue
        try:
            verdict = run.evaluate(expression, value, run.resource)
        except Exception:  # the FHIRPath engine's failure is not the resource's fault
            verdict = None
        if verdict is None:
            run.not_evaluated.add(key)
        elif verdict is False:
            run.add("warning" if severity == "warning" else "error", "invariant", path, elem,
                    human or expression, key)


#: ``fails(value, run)``: is one of an element's invariants violated at ``value`` as an error?
Fails = Callable[[Any, Run], bool]


def error_invariants(elem: Elem, skip: frozenset[str] = frozenset()) -> Fails | None:
    """:func:`invariants` for a caller that wants errors alone (the compiled walk), built
    once per element: None when no invariant of ``elem`` can make an error.

    Why: the walk evaluates invariants at nearly every value, and most of them cannot fail
    there. So a warning (dom-6: every resource mafhir writes lacks a narrative) is not
    evaluated — it makes no error, and the full road still reports it; an invariant about
    an element the value lacks (dom-2..dom-5 without ``contained``, obs-6 without
    ``value[x]``) is decided by a key test derived from its expression
    (``fhirpath.guard``); the rest call the evaluator's prepared function directly. A
    run with an evaluator of its own goes through :func:`invariants` as before."""
    wanted = [c for c in elem.constraints
              if c[0] not in _SKIP and c[0] not in skip and c[3] and c[1] != "warning"]
    if not wanted:
        return None
    try:
        from . import fhirpath
    except ImportError:  # no FHIRPath engine: the run's own evaluator (or none) decides
        fhirpath = None  # type: ignore[assignment]
    # grouped by their key test, in order of first use: dom-2..dom-5 share "no contained"
    groups: dict[Any, list[tuple[str, Any]]] = {}
    for c in wanted if fhirpath is not None else ():
        groups.setdefault(fhirpath.guard(c[3]), []).append((c[0], fhirpath.checker(c[3])))
    steps = tuple((vacuous, tuple(checks)) for vacuous, checks in groups.items())
    default = fhirpath.evaluate if fhirpath is not None else None

    def fails(value: Any, run: Run) -> bool:
        evaluate = run.evaluate
        if evaluate is None:
            return False  # each is "not evaluated": a note, no error
        if evaluate is not default:
            before = len(run.issues)
            invariants(value, elem, "", run, skip)
            return any(i.severity == "error" for i in run.issues[before:])
        resource = run.resource
        for vacuous, group in steps:
            if vacuous is not None and vacuous(value):
                continue
            for key, check in group:
                try:
                    verdict = check(value, resource)
                except Exception:  # the FHIRPath engine's failure is not the resource's
                    verdict = None
                if verdict is False:
                    return True
                if verdict is None:
                    run.not_evaluated.add(key)
        return False

    return fails
