"""One listener, many message types: each to the plugin handler registered for it.

``mafhir listen`` serves a lab's results and a pharmacy's refill requests on one port.
Results are converted and delivered (:class:`~mafhir.hl7v2.convert.ConvertHandler`, the
default); a type a plugin claimed with ``register_handlers`` (RDE^O25 → the refill
worklist) goes to that plugin's handler; an acknowledgment (MSH-9 ``ACK``: a peer's
enhanced-mode application ACK to a message mafhir sent) is kept in the store and
commit-accepted, never converted; so is an application response that carries MSA
(ORL^O22, RRE^O12…) for which no plugin registered a handler. Plugin handlers are built
on the first message of their type, so a lab-only listener never opens the pharmacy's
worklist.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..registry import MessageHandler, Registry
from .context import V2Context
from .convert import FORMAT, ConvertHandler
from .message import Message
from .receiver import Handler, Outcome, is_acknowledgment
from .terminology import local_systems, local_systems_from_settings

__all__ = ["HandlerSetup", "RoutingHandler"]

log = logging.getLogger(__name__)
JSON = dict[str, Any]


@dataclass(frozen=True)
class HandlerSetup:
    """What a plugin's handler factory gets: the listener's registry, context, delivery
    (the ``--to`` connector's ``send``, or None), patient check and ``--set`` settings."""

    registry: Registry
    ctx: V2Context
    deliver: Callable[[JSON], Any] | None = None
    patient_known: Callable[[str, str], bool] | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    #: ``--strict``: a conversion with warnings (gaps kept despite) is an error, not
    #: processed with a W in the ACK.
    strict: bool = False


class RoutingHandler:
    """The listener's handler: plugin handlers by message type, conversion for the rest."""

    def __init__(self, setup: HandlerSetup) -> None:
        self.setup = setup
        self.default = ConvertHandler(setup.registry, setup.ctx, setup.deliver,
                                      setup.patient_known, strict=setup.strict,
                                      settings=setup.settings)
        self._specs: dict[str, MessageHandler] = {
            key.partition(":")[2]: spec for key, spec in setup.registry.handlers.items()
            if key.partition(":")[0] == FORMAT}
        self._built: dict[int, Handler] = {}
        self._lock = threading.Lock()

    @property
    def routes(self) -> dict[str, str]:
        """Message type → what takes it (for the listener's start-up line)."""
        return {t: spec.description or "plugin handler" for t, spec in self._specs.items()}

    def _handler(self, spec: MessageHandler) -> Handler:
        with self._lock:
            handler = self._built.get(id(spec))
            if handler is None:
                handler = self._built[id(spec)] = spec.factory(self.setup)
            return handler

    def __call__(self, msg: Message) -> Outcome:
        spec = self._specs.get(msg.type)
        if spec is not None:  # a plugin's handler reads codes under the sender's systems too
            with local_systems(local_systems_from_settings(self.setup.settings, msg.sender_name)):
                return self._handler(spec)(msg)
        if is_acknowledgment(msg):  # ACK, ORL^O22, RRE^O12… answering what mafhir sent
            msa = msg.first("MSA")
            log.info("%s %s received (kept in the store)", msg.type,
                     msa.get(1) if msa is not None else "without MSA")
            return Outcome("processed")
        return self.default(msg)

    def close(self) -> None:
        """Close what the plugin handlers opened (their worklists, connections)."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for handler in built:
            close = getattr(handler, "close", None)
            if close is not None:
                close()
