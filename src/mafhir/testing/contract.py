"""The declared connector contract, checked without a server.

:data:`mafhir.registry.CAPABILITIES` lists what a connector may declare in its
``capabilities``; core uses a capability only when it is declared. So a declared one that
is missing (or takes other arguments) fails at the first sync, and one that is present but
undeclared is silently never used: :func:`check_contract` reports both, by name, before
either can happen. ``connector_suite`` runs it as ``test_declared_contract``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..registry import CAPABILITIES

__all__ = ["check_contract"]

#: How core calls each callable capability (and ``send``/``close``): the arguments must bind.
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "send": (({"resourceType": "Bundle", "type": "transaction", "entry": []},), {}),
    "close": ((), {}),
    "configure": ((), {"timeout": 1.0, "max_attempts": 1}),
    "use_clinic": ((object(),), {}),
    "search": (("Patient", {}), {}),
}


def _binds(member: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    try:
        inspect.signature(member).bind(*args, **kwargs)
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): take it at its word
        return True
    return True


def _params(member: Callable[..., Any]) -> str:
    """The parameters only: annotations may name types the reader has not imported."""
    sig = inspect.signature(member)
    return str(sig.replace(return_annotation=inspect.Signature.empty,
                           parameters=[p.replace(annotation=inspect.Parameter.empty)
                                       for p in sig.parameters.values()]))


def _call(name: str) -> str:
    args, kwargs = CALLS[name]
    shown = [type(a).__name__ if not isinstance(a, str) else repr(a) for a in args]
    shown += [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"{name}({', '.join(shown)})"


def check_contract(connector: object) -> list[str]:
    """What ``connector`` breaks of the declared contract; empty when it keeps it.

    Each line names the capability and the reason: not a known capability, declared but
    missing, declared but not callable as core calls it, or present but not declared.
    """
    problems: list[str] = []
    raw: object = getattr(connector, "capabilities", frozenset())
    if not isinstance(raw, (frozenset, set, tuple, list)):
        return [f"capabilities: is a {type(raw).__name__}, not a set of capability names"]
    declared = set(raw)
    for name in sorted(declared - CAPABILITIES.keys()):
        problems.append(f"capabilities: '{name}' is not a known capability (known: "
                        f"{', '.join(sorted(CAPABILITIES))})")
    for name in ("send", "close", *sorted(declared & CALLS.keys())):
        member = getattr(connector, name, None)
        required = "required" if name in ("send", "close") else "declared"
        if member is None:
            problems.append(f"{name}: {required} but missing; core calls {_call(name)}")
        elif not callable(member):
            problems.append(f"{name}: {required} but not callable")
        elif not _binds(member, *CALLS[name]):
            problems.append(f"{name}: {required} but cannot be called as "
                            f"{_call(name)}: {name}{_params(member)}")
    for name in sorted(CALLS.keys() - declared - {"send", "close"}):
        if callable(getattr(connector, name, None)):
            problems.append(f"{name}: present but not declared in capabilities, so core "
                            "never uses it")
    if "whole_bundles" not in declared and getattr(connector, "whole_bundles", False):
        problems.append("whole_bundles: set as an attribute but not declared in "
                        "capabilities, so the outbox sends entry by entry")
    return problems
