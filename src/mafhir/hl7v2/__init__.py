"""The shared HL7 v2 layer every v2 plugin uses (lab, immunization registry, pharmacy).

One module per job: :mod:`.escape` (delimiters, escape sequences), :mod:`.message`
(parse), :mod:`.build` (write, with python-hl7), :mod:`.datatypes` (v2 ⇄ FHIR datatypes),
:mod:`.ack` (ACKs), :mod:`.mllp` (framing, client), :mod:`.store` (SQLite store,
duplicates), :mod:`.receiver` (store → process → ACK), :mod:`.listener` (MLLP server),
:mod:`.convert` (converters at work), :mod:`.cli` (``convert`` and ``listen``).
Nothing here knows a message type: plugins add those with ``register_converters``.
"""

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
