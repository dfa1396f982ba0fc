"""What plugins register, checked in one place.

A :class:`Registry` is built once from the loaded plugins. It refuses two registrations
of the same name and says which plugins collided.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .errors import PluginError

if TYPE_CHECKING:
    from .bundle import Entry
    from .context import MapContext
    from .hl7v2.convert import Converted
    from .resourceset import ResourceSet
    from .tasks.base import TaskModel
    from .validation.issues import Issue

__all__ = ["CAPABILITIES", "Connector", "ConnectorSpec", "Converter", "Delivery", "Lifecycle",
           "Mapper", "MessageHandler", "Profile", "Registry", "UsesClinic", "capabilities_of",
           "with_status"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Lifecycle:
    """A state machine over tasks that change one thing (an appointment, a refill).

    ``key`` names the thing; ``step`` takes the current state (None when unknown) and
    returns the new one, raising :class:`mafhir.errors.TransitionError` when the task
    is not allowed from there.
    """

    key: Callable[[TaskModel], str]
    step: Callable[[TaskModel, str | None], str]


@dataclass(frozen=True)
class Mapper:
    """One task kind: its input model and its pure mappers.

    ``to_fhir(task, ctx)`` returns the transaction entries for the task.
    ``from_fhir(resources)`` reads tasks of this kind back out of FHIR resources.
    """

    kind: str
    model: type[TaskModel]
    # Any: each mapper takes its own task class (a Callable over TaskModel would refuse it)
    to_fhir: Callable[[Any, MapContext], Sequence[Entry]]
    from_fhir: Callable[[ResourceSet], Sequence[TaskModel]]
    description: str = ""
    lifecycle: Lifecycle | None = None
    #: The unit of work a task belongs to (e.g. ``lab:ORDER-ID`` for a lab order and the
    #: specimens collected for it), or None. Tasks of one unit in one input travel as one
    #: outbox item — one transaction, one v2 message — as they would in one ``map``.
    unit: Callable[[Any], str | None] | None = None


@dataclass(frozen=True)
class Profile:
    """The rules of one profile, checked on resources that claim it in ``meta.profile``."""

    url: str
    resource_type: str
    check: Callable[[JSON], Iterable[Issue]]
    title: str = ""


#: The optional capabilities a connector may declare in its ``capabilities`` attribute,
#: and what each promises. Core relies on a capability only when it is declared (never on
#: an attribute it happens to find), and the conformance kit
#: (:func:`mafhir.testing.check_contract`) checks that each declared one is really there.
CAPABILITIES: dict[str, str] = {
    "configure": "configure(*, timeout=None, max_attempts=None): how long one request may "
                 "take and how many attempts send makes itself (the outbox asks for 1: it "
                 "reschedules failures instead of sleeping in a worker)",
    "use_clinic": "use_clinic(clinic): write for this clinic (MSH-4, order-number "
                  "namespaces), as `mafhir sync --clinic` says",
    "whole_bundles": "each Bundle goes out whole as one message and the answer carries no "
                     "server ids: the outbox sends it as it is, with no per-entry ledger",
    "search": "search(resource_type, params) -> Iterator[dict]: every matching resource of "
              "every page, one page in memory at a time",
}


class Connector(Protocol):
    """A destination for transaction Bundles.

    The contract the conformance kit (``mafhir.testing.connector_suite`` and
    ``check_contract``) tests: ``send`` returns only when the destination accepted every
    entry, in the order ``send`` was called; otherwise it raises a
    :class:`mafhir.errors.MafhirError` whose ``.transient`` says whether retrying may help,
    with ``.status`` (the HTTP status, or None), ``.outcome`` (the server's
    OperationOutcome as a dict, or None) and ``.retry_after`` (seconds the destination
    asked to wait, or None). Anything more is an optional capability, declared by name in
    ``capabilities`` (a frozenset of :data:`CAPABILITIES` keys; none when absent) and
    described there. See docs/connectors.md.
    """

    def send(self, bundle: JSON) -> JSON:
        """Deliver one Bundle; return the server's response Bundle or a summary."""

    def close(self) -> None:
        """Release connections and files."""


class UsesClinic(Protocol):
    """The ``use_clinic`` capability (see :data:`CAPABILITIES`): call only when declared."""

    def use_clinic(self, clinic: Any) -> None:
        """Write for ``clinic`` (MSH-4, order-number namespaces)."""


@dataclass
class Delivery:
    """One send of one Bundle, as the ``deliver_bundle`` hook sees it.

    Defined here, beside :class:`Connector`, so that the hook specifications name it
    without importing the outbox (``mafhir.outbox.delivery`` re-exports it).
    ``bundle`` may be changed by wrappers before the send; ``response`` is set by the
    innermost implementation (the connector's answer). ``item_id``, ``source`` and
    ``attempt`` say which outbox item this is; ``notes`` is free for plugins.
    """

    destination: str
    bundle: JSON
    connector: Connector
    item_id: int = 0
    source: str = ""
    attempt: int = 1
    response: JSON | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def capabilities_of(connector: object) -> frozenset[str]:
    """The optional capabilities ``connector`` declares (see :data:`CAPABILITIES`)."""
    declared = getattr(connector, "capabilities", None)
    return frozenset(declared) if isinstance(declared, (frozenset, set, tuple, list)) \
        else frozenset()


@dataclass(frozen=True)
class ConnectorSpec:
    """A named way to build a :class:`Connector` from a target string.

    ``schemes`` are the URL schemes whose destinations this connector takes whole
    (``http``/``https`` for a FHIR REST connector): ``--to https://…`` goes to the spec
    that claims ``https``, whatever its name. A bare destination name (a server of
    ``mafhir.toml``) goes to the one that claims ``https``.
    """

    name: str
    factory: Callable[[str], Connector]
    description: str = ""
    schemes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Converter:
    """One message type of another format (HL7 v2, X12…), read into FHIR and/or written from it.

    ``to_fhir(message, ctx)`` turns a parsed message into a transaction Bundle;
    ``from_fhir(resources, ctx)`` writes the message for a :class:`ResourceSet`. Either
    may be None (a one-way converter). Known by ``format:message_type`` (``hl7v2:ORU^R01``).
    ``respond(message, ack_code, status)``, when given, is the application response a
    receiver sends instead of a bare ACK (an :class:`mafhir.hl7v2.Response`: ORL^O22 for
    OML^O21), or None for a bare ACK; ``status`` is the outcome (``processed``, ``error``,
    ``review``, ``rejected``, ``retry``) for a response that must tell "held" from "refused".
    An older plugin's ``respond(message, ack_code)`` is adapted once, when it is
    registered (:func:`with_status`), so callers know one signature.
    """

    format: str
    message_type: str
    to_fhir: Callable[[Any, Any], JSON | Converted] | None = None
    from_fhir: Callable[[ResourceSet, Any], str] | None = None
    description: str = ""
    respond: Callable[[Any, str, str], Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.format}:{self.message_type}"


def with_status(converter: Converter) -> Converter:
    """``converter`` with a ``respond`` that takes ``(message, ack_code, status)``: an
    older plugin's two-argument one is wrapped (the status is not passed on), once here
    at registration, instead of being told apart at every call."""
    respond = converter.respond
    if respond is None:
        return converter
    try:
        params = list(inspect.signature(respond).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: take it as it is
        return converter
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params):
        return converter

    def respond_with_status(message: Any, ack_code: str, status: str) -> Any:
        return respond(message, ack_code)  # type: ignore[call-arg]

    return dataclasses.replace(converter, respond=respond_with_status)


@dataclass(frozen=True)
class MessageHandler:
    """What a listener does with inbound messages of some types, in place of the default
    (convert with the registered :class:`Converter`, validate, deliver the Bundle).

    A refill request is not a Bundle to deliver but an item on the MA's worklist, so the
    pharmacy plugin registers one for ``RDE^O25`` and ``OMP^O09``. ``factory(setup)``
    is called once per listener with a :class:`mafhir.hl7v2.HandlerSetup` (registry,
    context, delivery, settings) and returns the handler: ``handler(message) -> Outcome``,
    with an optional ``close()``. Known by ``format:message_type`` for each type.
    """

    format: str
    message_types: tuple[str, ...]
    factory: Callable[[Any], Callable[[Any], Any]]
    description: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"{self.format}:{t}" for t in self.message_types)


@dataclass
class Registry:
    """Everything the plugins registered, by name."""

    mappers: dict[str, Mapper] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    connectors: dict[str, ConnectorSpec] = field(default_factory=dict)
    converters: dict[str, Converter] = field(default_factory=dict)
    handlers: dict[str, MessageHandler] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    def _add(self, table: dict[str, Any], what: str, name: str, item: Any, owner: str) -> None:
        if name in table:
            raise PluginError(
                f"plugin '{owner}' registers {what} '{name}', already registered by "
                f"'{self.owners[(what, name)]}'"
            )
        table[name] = item
        self.owners[(what, name)] = owner

    def add_mapper(self, mapper: Mapper, owner: str) -> None:
        from .tasks.base import TaskModel

        if not isinstance(mapper, Mapper):
            raise PluginError(f"plugin '{owner}' registered {mapper!r}, not a Mapper")
        if not (isinstance(mapper.model, type) and issubclass(mapper.model, TaskModel)):
            raise PluginError(f"plugin '{owner}': mapper '{mapper.kind}' model is not a TaskModel")
        if mapper.model.kind != mapper.kind:
            raise PluginError(
                f"plugin '{owner}': mapper '{mapper.kind}' has a model for '{mapper.model.kind}'"
            )
        self._add(self.mappers, "task kind", mapper.kind, mapper, owner)

    def add_profile(self, profile: Profile, owner: str) -> None:
        if not isinstance(profile, Profile):
            raise PluginError(f"plugin '{owner}' registered {profile!r}, not a Profile")
        self._add(self.profiles, "profile", profile.url, profile, owner)

    def add_connector(self, spec: ConnectorSpec, owner: str) -> None:
        if not isinstance(spec, ConnectorSpec):
            raise PluginError(f"plugin '{owner}' registered {spec!r}, not a ConnectorSpec")
        for scheme in spec.schemes:
            other = self.connector_for_scheme(scheme)
            if other is not None:
                raise PluginError(f"plugin '{owner}': connector '{spec.name}' claims "
                                  f"{scheme}:// destinations, already claimed by connector "
                                  f"'{other.name}' of '{self.owners[('connector', other.name)]}'")
        self._add(self.connectors, "connector", spec.name, spec, owner)

    def connector_for_scheme(self, scheme: str) -> ConnectorSpec | None:
        """The connector that claims URL ``scheme`` (only one may), or None."""
        return next((c for c in self.connectors.values() if scheme in c.schemes), None)

    def add_converter(self, converter: Converter, owner: str) -> None:
        if not isinstance(converter, Converter):
            raise PluginError(f"plugin '{owner}' registered {converter!r}, not a Converter")
        if converter.to_fhir is None and converter.from_fhir is None:
            raise PluginError(f"plugin '{owner}': converter '{converter.key}' converts nothing")
        self._add(self.converters, "converter", converter.key, with_status(converter), owner)

    def add_handler(self, handler: MessageHandler, owner: str) -> None:
        if not isinstance(handler, MessageHandler):
            raise PluginError(f"plugin '{owner}' registered {handler!r}, not a MessageHandler")
        if not handler.message_types:
            raise PluginError(f"plugin '{owner}': a MessageHandler names no message type")
        for key in handler.keys:
            self._add(self.handlers, "message handler", key, handler, owner)

    def mapper(self, kind: str) -> Mapper:
        try:
            return self.mappers[kind]
        except KeyError:
            known = ", ".join(sorted(self.mappers)) or "none"
            raise PluginError(f"no task kind '{kind}' is registered (known: {known})") from None
