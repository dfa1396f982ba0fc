"""The CDC IIS SOAP 1.2 envelopes (WSDL namespace ``urn:cdc:iisb:2011``), both ways.

The service has two operations that matter: ``submitSingleMessage`` (username, password,
facilityID, hl7Message → the ACK or RSP in ``return``) and ``connectivityTest``
(echoBack → ``return``), and four faults, each a ``soap:Fault`` whose ``Detail`` holds
one element with ``Code``, ``Reason`` and ``Detail``: ``SecurityFault``,
``MessageTooLargeFault``, ``UnsupportedOperationFault`` and the unknown fault
(``fault``, called UnknownFault in the guide). The envelopes are small and fixed, so
they are written and read here with the standard library rather than through a SOAP
toolkit that needs the WSDL file at run time; the client (:mod:`.soap`) and the stand-in
(:mod:`.standin`) share this one module.

Reading refuses a document type declaration: SOAP 1.2 forbids it (Part 1, §5), and
refusing it closes the entity-expansion attacks an XML parser is open to.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

__all__ = [
    "FAULTS",
    "NS",
    "SOAP12",
    "Envelope",
    "EnvelopeError",
    "Fault",
    "content_type",
    "fault",
    "read",
    "request",
    "response",
]

NS = "urn:cdc:iisb:2011"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
#: Fault element names in ``Detail`` → the guide's fault names.
FAULTS = {"SecurityFault": "SecurityFault", "MessageTooLargeFault": "MessageTooLargeFault",
          "UnsupportedOperationFault": "UnsupportedOperationFault", "fault": "UnknownFault",
          "UnknownFault": "UnknownFault"}
_ELEMENT = {"UnknownFault": "fault"}


class EnvelopeError(ValueError):
    """Bytes that are not a SOAP 1.2 envelope of this service (the reason, no content)."""


@dataclass(frozen=True)
class Envelope:
    """A body's operation (local name) and the text of each child element."""

    operation: str
    fields: dict[str, str] = field(repr=False)  # a password among them: never in a repr


@dataclass(frozen=True)
class Fault:
    """A SOAP fault: the guide's name (SecurityFault…), its Code, Reason and Detail."""

    name: str
    code: str
    reason: str
    detail: str
    sender: bool = False  # soap:Sender (the request was wrong) or soap:Receiver


def content_type(operation: str) -> str:
    """SOAP 1.2 over HTTP: the action travels in the media type."""
    return f'application/soap+xml; charset=utf-8; action="{NS}:{operation}"'


def _wrap(body: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body>{body}</soap:Body>'
            f'</soap:Envelope>').encode()


def _text(value: str) -> str:
    """XML text that reads back byte for byte: a parser turns a bare CR (HL7's segment
    separator) into LF, a character reference it keeps."""
    return escape(value, {"\r": "&#13;"})


def _elements(fields: list[tuple[str, str | None]]) -> str:
    return "".join(f"<{name}/>" if value is None else f"<{name}>{_text(value)}</{name}>"
                   for name, value in fields)


def request(operation: str, fields: list[tuple[str, str | None]]) -> bytes:
    """A request envelope: ``<operation xmlns=NS>`` with one child per field, in order."""
    return _wrap(f'<{operation} xmlns="{NS}">{_elements(fields)}</{operation}>')


def response(operation: str, value: str) -> bytes:
    """``<operationResponse><return>value</return></operationResponse>``."""
    return _wrap(f'<{operation}Response xmlns="{NS}"><return>{_text(value)}</return>'
                 f'</{operation}Response>')


def fault(f: Fault) -> bytes:
    """A fault envelope carrying ``f`` in its Detail."""
    element = _ELEMENT.get(f.name, f.name)
    role = "soap:Sender" if f.sender else "soap:Receiver"
    return _wrap(f'<soap:Fault><soap:Code><soap:Value>{role}</soap:Value></soap:Code>'
                 f'<soap:Reason><soap:Text xml:lang="en">{escape(f.reason)}</soap:Text>'
                 f'</soap:Reason><soap:Detail><{element} xmlns="{NS}">'
                 f'{_elements([("Code", f.code), ("Reason", f.reason), ("Detail", f.detail)])}'
                 f'</{element}></soap:Detail></soap:Fault>')


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def read(data: bytes) -> Envelope | Fault:
    """The body of a SOAP 1.2 envelope: its operation and fields, or its fault."""
    head = data[:2048].lower()
    if b"<!doctype" in head or b"<!entity" in data.lower():
        raise EnvelopeError("a SOAP message must not carry a document type declaration")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise EnvelopeError(f"not XML ({exc.msg if hasattr(exc, 'msg') else 'parse error'})"
                            ) from None
    if root.tag != f"{{{SOAP12}}}Envelope":
        raise EnvelopeError("not a SOAP 1.2 envelope (root element or namespace)")
    body = root.find(f"{{{SOAP12}}}Body")
    if body is None or len(body) == 0:
        raise EnvelopeError("the envelope has no Body content")
    first = body[0]
    if first.tag == f"{{{SOAP12}}}Fault":
        return _read_fault(first)
    return Envelope(_local(first.tag), {_local(c.tag): c.text or "" for c in first})


def _read_fault(node: ET.Element) -> Fault:
    value = node.findtext(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value") or ""
    reason = node.findtext(f"{{{SOAP12}}}Reason/{{{SOAP12}}}Text") or ""
    detail = node.find(f"{{{SOAP12}}}Detail")
    for child in detail if detail is not None else []:
        name = FAULTS.get(_local(child.tag))
        if name:
            fields = {_local(c.tag): c.text or "" for c in child}
            return Fault(name, fields.get("Code", ""), fields.get("Reason", "") or reason,
                         fields.get("Detail", ""), value.endswith("Sender"))
    return Fault("UnknownFault", "", reason, "", value.endswith("Sender"))
