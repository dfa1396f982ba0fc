"""Converters at work: look them up, run them, and the listener's handler built on them.

:class:`ConvertHandler` is the default :data:`~mafhir.hl7v2.receiver.Handler`: the message
type picks a registered converter, the Bundle made is validated (structure and US Core)
and delivered through a connector. What a problem's code says decides the outcome,
never its English text:

- a converter's InputError: ``business-rule`` problems (an identifier namespace the
  clinic does not map, no time zone configured) hold the message for **review** (kept,
  AE, ERR with the reason, not delivered); an unknown message type is **rejected**
  (AR); anything else is an **error** (AE, ERR-3 from each problem's code);
- a result for a patient the clinic does not know is held for review (AE, ERR 204 on
  PID-3), not delivered;
- a :class:`Converted` with ``warnings`` (gaps it was kept despite) is processed (AA,
  one ERR of severity W each), unless the handler is ``strict``: then an error (AE),
  not delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from ..errors import CODES, InputError, MafhirError, Problem
from ..registry import Converter, Registry
from ..resourceset import ResourceSet
from .context import V2Context
from .message import Message
from .receiver import ORIGINAL, Outcome, Status
from .terminology import local_systems, local_systems_from_settings

__all__ = ["FORMAT", "ConvertHandler", "Converted", "convert", "from_fhir", "patient_identifiers",
           "to_fhir"]

log = logging.getLogger(__name__)
JSON = dict[str, Any]
FORMAT = "hl7v2"


def _converter(registry: Registry, message_type: str, direction: str) -> Converter:
    conv = registry.converters.get(f"{FORMAT}:{message_type}")
    if conv is None or getattr(conv, direction) is None:
        known = sorted(c.message_type for c in registry.converters.values()
                       if c.format == FORMAT and getattr(c, direction) is not None)
        raise InputError([Problem("MSH-9" if direction == "to_fhir" else "message",
                                  f"no converter for {message_type or 'this message type'} "
                                  f"(known: {', '.join(known) or 'none'})", "not-supported")])
    return conv


@dataclass(frozen=True)
class Converted:
    """A converter's result: the Bundle, and the gaps it kept the message despite
    (``warnings``: an element a profile wants that the source does not have, code
    ``incomplete``). Keeping a real message with a flag beats losing it; ``--strict``
    refuses instead. A converter returns either a Bundle or a :class:`Converted`."""

    bundle: JSON
    warnings: tuple[Problem, ...] = ()


def convert(registry: Registry, msg: Message, ctx: V2Context,
            settings: Mapping[str, str] | None = None) -> Converted:
    """The conversion of ``msg`` with its warnings (InputError naming segment and field).

    ``settings`` (``--set``) name the sender's local code systems
    (``code-system.APP^FACILITY.99XYZ=URI``): applied for this message only, so a local
    code keeps the system its sender is configured with instead of an ``urn:``."""
    conv = _converter(registry, msg.type, "to_fhir")
    assert conv.to_fhir is not None
    with local_systems(local_systems_from_settings(settings or {}, msg.sender_name)):
        result = conv.to_fhir(msg, ctx)
    return result if isinstance(result, Converted) else Converted(result)


def to_fhir(registry: Registry, msg: Message, ctx: V2Context) -> JSON:
    """The transaction Bundle for ``msg`` (InputError naming segment and field)."""
    return convert(registry, msg, ctx).bundle


def from_fhir(registry: Registry, message_type: str, resources: ResourceSet,
              ctx: V2Context) -> str:
    """The v2 message of ``message_type`` for FHIR ``resources``."""
    conv = _converter(registry, message_type, "from_fhir")
    assert conv.from_fhir is not None
    return conv.from_fhir(resources, ctx)


def patient_identifiers(bundle: JSON) -> Iterator[tuple[str, str]]:
    """(system, value) of every ``Patient?identifier=`` reference in the Bundle."""
    from ..identity import identifier_from_reference

    seen: set[str] = set()

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith("Patient?identifier="):
                yield ref
            for v in node.values():
                if isinstance(v, (dict, list)):
                    yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)

    refs = list(walk(bundle))
    for entry in bundle.get("entry", []):  # a Patient made from PID: its match key
        request = entry.get("request") or {}
        url = str(request.get("url", ""))
        query = request.get("ifNoneExist") or (url[8:] if url.startswith("Patient?") else "")
        if entry.get("resource", {}).get("resourceType") == "Patient" and query:
            refs.append(f"Patient?{query}")
    for ref in refs:
        if ref not in seen:
            seen.add(ref)
            parsed = identifier_from_reference(ref)
            if parsed is not None:
                yield parsed[1], parsed[2]


class ConvertHandler:
    """Convert, validate, check the patient, deliver: one message's :class:`Outcome`."""

    def __init__(self, registry: Registry, ctx: V2Context,
                 deliver: Callable[[JSON], Any] | None = None,
                 patient_known: Callable[[str, str], bool] | None = None,
                 strict: bool = False, settings: Mapping[str, str] | None = None) -> None:
        self.registry = registry
        #: ``--set`` settings: the senders' local code systems (``code-system.…``)
        self.settings = dict(settings or {})
        self.ctx = ctx
        self.deliver = deliver
        self.patient_known = patient_known
        self.strict = strict

    def __call__(self, msg: Message) -> Outcome:
        outcome = self._handle(msg)
        conv = self.registry.converters.get(f"{FORMAT}:{msg.type}")
        if conv is not None and conv.respond is not None:
            try:
                code = ORIGINAL[outcome.status]
                response = conv.respond(msg, code, outcome.status)  # one signature
                outcome = replace(outcome, response=response)
            except Exception as exc:  # a bare ACK still answers the message
                log.warning("no %s response: %s", msg.type, type(exc).__name__)
        return outcome

    def checked(self, msg: Message) -> Outcome:
        """Convert and validate only (no patient check, no delivery, no reply): what
        ``mafhir convert`` reports for each message. ``processed`` carries the Bundle and
        its warnings; otherwise the problems say why not."""
        try:
            converted = convert(self.registry, msg, self.ctx, self.settings)
        except InputError as exc:
            return _refusal(exc.problems)
        bundle, warnings = converted.bundle, tuple(converted.warnings)
        if warnings and self.strict:
            return Outcome("error", warnings, bundle)
        from ..validation import check_bundle  # the models load when a message comes

        errors = check_bundle(bundle, self.registry.profiles, errors_only=True)
        if errors:
            return Outcome("error", tuple(
                Problem(i.expression, i.diagnostics, i.code if i.code in CODES else "invalid")
                for i in errors[:20]), bundle)
        return Outcome("processed", (), bundle, warnings=warnings)

    def _handle(self, msg: Message) -> Outcome:
        outcome = self.checked(msg)
        if outcome.status != "processed":
            return outcome
        bundle, warnings = cast(JSON, outcome.result), outcome.warnings
        if self.patient_known is not None:
            for system, value in patient_identifiers(bundle):
                if not self.patient_known(system, value):
                    return Outcome("review", (Problem(
                        "PID-3", "the patient is not known to the clinic; held for review",
                        "not-found"),), bundle)
        if self.deliver is not None:
            try:
                self.deliver(bundle)
            except MafhirError as exc:
                status: Status = "retry" if exc.transient else "error"
                log.warning("delivery of %s failed (%s)", msg.type, type(exc).__name__)
                return Outcome(status, (Problem("", f"delivery failed ({type(exc).__name__})",
                                                "transient" if exc.transient
                                                else "processing"),), bundle)
        return Outcome("processed", (), bundle, warnings=warnings)


def _refusal(problems: tuple[Problem, ...]) -> Outcome:
    """A converter's InputError as an outcome: no converter for the type → rejected;
    business-rule problems → review; the rest → error (each problem keeps its code)."""
    if any(p.location.startswith("MSH-9") for p in problems):
        return Outcome("rejected", tuple(
            p if p.code != "invalid" else Problem(p.location, p.message, "not-supported")
            for p in problems))
    if any(p.code == "business-rule" for p in problems):
        return Outcome("review", problems)
    return Outcome("error", problems)
