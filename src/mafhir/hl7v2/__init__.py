"""The shared HL7 v2 layer every v2 plugin uses (lab, immunization registry, pharmacy).

One module per job: :mod:`.escape` (delimiters, escape sequences), :mod:`.message`
(parse), :mod:`.build` (write, with python-hl7), :mod:`.datatypes` (v2 ⇄ FHIR datatypes),
:mod:`.ack` (ACKs), :mod:`.mllp` (framing, client), :mod:`.store` (SQLite store,
duplicates), :mod:`.receiver` (store → process → ACK), :mod:`.listener` (MLLP server),
:mod:`.convert` (converters at work), :mod:`.cli` (``convert`` and ``listen``).
Nothing here knows a message type: plugins add those with ``register_converters``.
"""

from typing import TYPE_CHECKING

from ..lazyexports import exporter

# Two functions share their module's name (``convert``, ``escape``): once a module named so
# is imported, Python sets the package attribute to the module, so these two are bound
# here, eagerly (both modules are light), and win over their modules.
from .convert import convert
from .escape import escape

if TYPE_CHECKING:  # the names for type checkers; at run time they load on first use
    from .ack import Ack, Response, ack_for, read_ack
    from .build import Reps, build_message, msh
    from .context import V2Context
    from .convert import Converted, ConvertHandler, convert, from_fhir, to_fhir
    from .escape import Separators, escape, unescape
    from .listener import MLLPListener
    from .message import Message, Segment, Value, check_header, parse
    from .mllp import FrameReader, MLLPClient, frame
    from .receiver import Outcome, Receiver
    from .replies import ReplySender
    from .routing import HandlerSetup, RoutingHandler
    from .store import MessageStore

__all__ = [
    "Ack",
    "ConvertHandler",
    "Converted",
    "FrameReader",
    "HandlerSetup",
    "MLLPClient",
    "MLLPListener",
    "Message",
    "MessageStore",
    "Outcome",
    "Receiver",
    "ReplySender",
    "Reps",
    "Response",
    "RoutingHandler",
    "Segment",
    "Separators",
    "V2Context",
    "Value",
    "ack_for",
    "build_message",
    "check_header",
    "convert",
    "escape",
    "frame",
    "from_fhir",
    "msh",
    "parse",
    "read_ack",
    "to_fhir",
    "unescape",
]

#: Each public name and the module it lives in: importing the package costs nothing;
#: a name loads its module when first used (``mafhir --help`` need not load SQLAlchemy).
_EXPORTS = {
    "Ack": ".ack",
    "Response": ".ack",
    "ack_for": ".ack",
    "read_ack": ".ack",
    "Reps": ".build",
    "build_message": ".build",
    "msh": ".build",
    "V2Context": ".context",
    "Converted": ".convert",
    "ConvertHandler": ".convert",
    "convert": ".convert",
    "from_fhir": ".convert",
    "to_fhir": ".convert",
    "Separators": ".escape",
    "escape": ".escape",
    "unescape": ".escape",
    "MLLPListener": ".listener",
    "Message": ".message",
    "Segment": ".message",
    "Value": ".message",
    "check_header": ".message",
    "parse": ".message",
    "FrameReader": ".mllp",
    "MLLPClient": ".mllp",
    "frame": ".mllp",
    "Outcome": ".receiver",
    "Receiver": ".receiver",
    "ReplySender": ".replies",
    "HandlerSetup": ".routing",
    "RoutingHandler": ".routing",
    "MessageStore": ".store",
}


__getattr__ = exporter(__name__, globals(), _EXPORTS)
