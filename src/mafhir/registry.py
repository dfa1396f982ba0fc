"""What plugins register, checked in one place.

A :class:`Registry` is built once from the loaded plugins. It refuses two registrations
of the same name and says which plugins collided.
"""

from __future__ import annotations

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

__all__ = ["Connector", "ConnectorSpec", "Converter", "Delivery", "Lifecycle", "Mapper",
           "MessageHandler", "Profile", "Registry"]

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


@dataclass(frozen=True)
class Profile:
    """The rules of one profile, checked on resources that claim it in ``meta.profile``."""

    url: str
    resource_type: str
    check: Callable[[JSON], Iterable[Issue]]
    title: str = ""


class Connector(Protocol):
    """A destination for transaction Bundles.

    The contract the conformance kit (``mafhir.testing.connector_suite``) tests:
    ``send`` returns only when the destination accepted every entry, in the order ``send``
    was called; otherwise it raises a :class:`mafhir.errors.MafhirError` whose
    ``.transient`` says whether retrying may help, with ``.status`` (the HTTP status, or
    None) and ``.outcome`` (the server's OperationOutcome as a dict, or None). Optionally a
    connector can read: ``search(resource_type, params) -> Iterator[dict]`` yields every
    matching resource of every page, one page in memory at a time. See docs/connectors.md.
    """

    def send(self, bundle: JSON) -> JSON:
        """Deliver one Bundle; return the server's response Bundle or a summary."""

    def close(self) -> None:
        """Release connections and files."""


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


@dataclass(frozen=True)
class ConnectorSpec:
    """A named way to build a :class:`Connector` from a target string."""

    name: str
    factory: Callable[[str], Connector]
    description: str = ""


@dataclass(frozen=True)
class Converter:
    """One message type of another format (HL7 v2, X12…), read into FHIR and/or written from it.

    ``to_fhir(message, ctx)`` turns a parsed message into a transaction Bundle;
    ``from_fhir(resources, ctx)`` writes the message for a :class:`ResourceSet`. Either
    may be None (a one-way converter). Known by ``format:message_type`` (``hl7v2:ORU^R01``).
    ``respond(message, ack_code[, status])``, when given, is the application response a
    receiver sends instead of a bare ACK (an :class:`mafhir.hl7v2.Response`: ORL^O22 for
    OML^O21), or None for a bare ACK; ``status`` is the outcome (``processed``, ``error``,
    ``review``, ``rejected``, ``retry``) for a response that must tell "held" from "refused".
    """

    format: str
    message_type: str
    to_fhir: Callable[[Any, Any], JSON | Converted] | None = None
    from_fhir: Callable[[ResourceSet, Any], str] | None = None
    description: str = ""
    respond: Callable[[Any, str], Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.format}:{self.message_type}"


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
        self._add(self.connectors, "connector", spec.name, spec, owner)

    def add_converter(self, converter: Converter, owner: str) -> None:
        if not isinstance(converter, Converter):
            raise PluginError(f"plugin '{owner}' registered {converter!r}, not a Converter")
        if converter.to_fhir is None and converter.from_fhir is None:
            raise PluginError(f"plugin '{owner}': converter '{converter.key}' converts nothing")
        self._add(self.converters, "converter", converter.key, converter, owner)

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
