"""CAQH CORE Phase II connectivity (rule version 2.2.0): the two envelopes, both ways.

A real-time 270 goes in one of two envelopes, and the answer comes back in the same one:

* **SOAP 1.2** (``application/soap+xml``): ``COREEnvelopeRealTimeRequest`` in the
  ``http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd`` namespace, the X12 in ``Payload``
  (CDATA), username/password in a WS-Security ``UsernameToken`` (PasswordText) when the
  partner uses passwords;
* **HTTP MIME multipart** (``multipart/form-data``): one part per field, ``UserName`` and
  ``Password`` as parts.

Fields: ``PayloadType`` (``X12_270_Request_005010X279A1``; the answer
``X12_271_Response_005010X279A1``, ``X12_TA1_Response_00501X231A1`` or
``X12_999_Response_005010X231A1``), ``ProcessingMode`` ``RealTime``, ``PayloadID`` (a
UUID), ``TimeStamp`` (xsd:dateTime, UTC), ``SenderID``, ``ReceiverID``,
``CORERuleVersion`` ``2.2.0``, ``Payload``; the answer adds ``ErrorCode``
(``Success`` or the reason) and ``ErrorMessage``. XML is read with defusedxml (no
entities, no external references): the answer comes from outside.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET

from mafhir.errors import InputError, Problem

__all__ = [
    "CORE_NS",
    "PAYLOAD_270",
    "PAYLOAD_271",
    "PAYLOAD_999",
    "PAYLOAD_TA1",
    "RULE_VERSION",
    "SOAP_NS",
    "CoreMessage",
    "build_mime",
    "build_soap",
    "parse_mime",
    "parse_soap",
]

SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"
CORE_NS = "http://www.caqh.org/SOAP/WSDL/CORERule2.2.0.xsd"
WSSE_NS = ("http://docs.oasis-open.org/wss/2004/01/"
           "oasis-200401-wss-wssecurity-secext-1.0.xsd")
PASSWORD_TEXT = ("http://docs.oasis-open.org/wss/2004/01/"
                 "oasis-200401-wss-username-token-profile-1.0#PasswordText")
RULE_VERSION = "2.2.0"
PAYLOAD_270 = "X12_270_Request_005010X279A1"
PAYLOAD_271 = "X12_271_Response_005010X279A1"
PAYLOAD_999 = "X12_999_Response_005010X231A1"
PAYLOAD_TA1 = "X12_TA1_Response_00501X231A1"
_FIELDS = ("PayloadType", "ProcessingMode", "PayloadID", "TimeStamp", "SenderID",
           "ReceiverID", "CORERuleVersion")


@dataclass(slots=True)
class CoreMessage:
    """One CORE envelope's fields (a request or a response)."""

    payload_type: str
    payload: str
    sender_id: str
    receiver_id: str
    payload_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: str = field(default_factory=lambda: datetime.now(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"))
    processing_mode: str = "RealTime"
    rule_version: str = RULE_VERSION
    error_code: str | None = None  # responses: Success or the reason
    error_message: str | None = None
    username: str | None = None  # requests, when the partner uses passwords
    password: str | None = None

    def fields(self) -> dict[str, str]:
        out = {"PayloadType": self.payload_type, "ProcessingMode": self.processing_mode,
               "PayloadID": self.payload_id, "TimeStamp": self.timestamp,
               "SenderID": self.sender_id, "ReceiverID": self.receiver_id,
               "CORERuleVersion": self.rule_version}
        if self.error_code is not None:
            out["ErrorCode"] = self.error_code
            out["ErrorMessage"] = self.error_message or ""
        return out

    def __repr__(self) -> str:  # never the payload (PHI) nor the password
        return (f"CoreMessage({self.payload_type}, id={self.payload_id}, "
                f"error={self.error_code!r})")


def build_soap(msg: CoreMessage, response: bool = False) -> bytes:
    """The SOAP 1.2 envelope of ``msg``."""
    header = ""
    if msg.username is not None and msg.password is not None:
        header = (f'<soapenv:Header><wsse:Security xmlns:wsse="{WSSE_NS}" '
                  'soapenv:mustUnderstand="true"><wsse:UsernameToken>'
                  f"<wsse:Username>{escape(msg.username)}</wsse:Username>"
                  f'<wsse:Password Type="{PASSWORD_TEXT}">{escape(msg.password)}'
                  "</wsse:Password></wsse:UsernameToken></wsse:Security></soapenv:Header>")
    body = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in msg.fields().items())
    payload = msg.payload.replace("]]>", "]]]]><![CDATA[>")
    element = "COREEnvelopeRealTimeResponse" if response else "COREEnvelopeRealTimeRequest"
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            f'xmlns:soapenv="{SOAP_NS}" xmlns:cor="{CORE_NS}">{header}<soapenv:Body>'
            f"<cor:{element}>{body}<Payload><![CDATA[{payload}]]></Payload></cor:{element}>"
            "</soapenv:Body></soapenv:Envelope>").encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_soap(data: bytes) -> CoreMessage:
    """A SOAP 1.2 CORE envelope (request or response); a Fault is an InputError."""
    try:
        root = SafeET.fromstring(data)
    except Exception as exc:  # defusedxml's and expat's errors alike
        raise InputError([Problem("soap", f"not well-formed XML ({type(exc).__name__})",
                                  "structure")]) from None
    if _local(root.tag) != "Envelope" or not root.tag.startswith("{" + SOAP_NS):
        raise InputError([Problem("soap", "not a SOAP 1.2 Envelope", "structure")])
    body = next((c for c in root if _local(c.tag) == "Body"), None)
    if body is None or len(body) == 0:
        raise InputError([Problem("soap:Body", "is missing or empty", "structure")])
    content = body[0]
    if _local(content.tag) == "Fault":
        reason = " ".join(t.strip() for t in content.itertext() if t.strip())[:300]
        raise InputError([Problem("soap:Fault", reason or "a SOAP fault", "processing")])
    values = {_local(c.tag): (c.text or "") for c in content}
    user = password = None
    header = next((c for c in root if _local(c.tag) == "Header"), None)
    if header is not None:
        for node in header.iter():
            if _local(node.tag) == "Username":
                user = node.text or ""
            elif _local(node.tag) == "Password":
                password = node.text or ""
    return _message(values, "soap", user, password)


def _message(values: dict[str, str], where: str, user: str | None,
             password: str | None) -> CoreMessage:
    missing = [f for f in ("PayloadType", "PayloadID", "Payload") if not values.get(f)]
    if missing and not values.get("ErrorCode"):
        raise InputError([Problem(f"{where}:{f}", "is missing", "required") for f in missing])
    return CoreMessage(
        payload_type=values.get("PayloadType", ""), payload=values.get("Payload", ""),
        sender_id=values.get("SenderID", ""), receiver_id=values.get("ReceiverID", ""),
        payload_id=values.get("PayloadID", ""), timestamp=values.get("TimeStamp", ""),
        processing_mode=values.get("ProcessingMode", ""),
        rule_version=values.get("CORERuleVersion", ""),
        error_code=values.get("ErrorCode"), error_message=values.get("ErrorMessage"),
        username=user if user is not None else values.get("UserName"),
        password=password if password is not None else values.get("Password"))


def build_mime(msg: CoreMessage) -> tuple[bytes, str]:
    """The multipart/form-data body of ``msg`` and its Content-Type (with the boundary)."""
    boundary = f"mafhir-{uuid.uuid4().hex}"
    values = msg.fields()
    if msg.username is not None and msg.password is not None:
        values["UserName"] = msg.username
        values["Password"] = msg.password
    values["Payload"] = msg.payload
    parts = []
    for name, value in values.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n")
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


def parse_mime(data: bytes, content_type: str) -> CoreMessage:
    """A multipart/form-data CORE message (request or response)."""
    if not content_type.lower().startswith("multipart/form-data") or "boundary=" not in \
            content_type:
        raise InputError([Problem("Content-Type", "is not multipart/form-data with a "
                                  "boundary", "structure")])
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + data)
    values: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            raw = part.get_payload(decode=True)
            values[name] = raw.decode("utf-8", "replace").removesuffix("\r\n") \
                if isinstance(raw, bytes) else str(part.get_payload())
    if not values:
        raise InputError([Problem("multipart", "holds no form fields", "structure")])
    return _message(values, "mime", None, None)
