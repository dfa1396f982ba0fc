"""ACK^V04 (profile Z23) → what the outbox does with the VXU: delivered, with warnings, or dead.

The registry's answer decides, by the CDC guide's rules:

* ``AA`` — delivered (any ERR it carries is a warning, kept with the delivery);
* ``AE`` whose every ERR has severity ``W`` or ``I`` (ERR-4) — delivered with warnings:
  the dose is in the registry, and the warnings are returned so the outbox records them;
* ``AE`` with any ERR of severity ``E`` (or none given, or no ERR at all) — a
  :class:`~mafhir.errors.PermanentError`: the registry refused (part of) the message, and
  sending it again gives the same answer. The error names each ERR's location (ERR-2, as
  ``RXA[1]-5``), the registry's own text (ERR-8, or ERR-9 where real registries put it),
  the HL7 condition (ERR-3, table 0357)
  and the application error (ERR-5, table 0533, its meaning read from
  :data:`~mafhir_iis.codes.APPLICATION_ERRORS`);
* ``AR`` — permanent too (the message was rejected whole: bad MSH, unsupported version);
* an ACK to another message (MSA-2 is not the MSH-10 sent) — a
  :class:`~mafhir.errors.TransientError`: it says nothing about this VXU, and the
  registry keys doses by ORC-3, so sending again cannot duplicate one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mafhir.errors import InputError, PermanentError, TransientError
from mafhir.hl7v2 import parse
from mafhir.hl7v2.message import Segment

from .codes import APPLICATION_ERRORS

__all__ = ["IisAck", "IisError", "outcome", "read_iis_ack"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class IisError:
    """One ERR of the registry's ACK."""

    severity: str  # ERR-4: E error, W warning, I information ('' when not sent)
    location: str  # ERR-2 as SEG[seq]-field.component ('' when not sent)
    condition: str  # ERR-3 code and text (table 0357)
    application: str  # ERR-5 code and meaning (table 0533)
    text: str  # ERR-8: the registry's own words

    @property
    def is_error(self) -> bool:
        """An error unless the registry said W or I: a missing severity is not a warning."""
        return self.severity not in ("W", "I")

    def __str__(self) -> str:
        codes = "; ".join(c for c in (self.condition, self.application and
                                      f"application error {self.application}") if c)
        where = f"{self.location}: " if self.location else ""
        words = self.text or "no text given"
        return f"{where}{words}" + (f" [{codes}]" if codes else "")


@dataclass(frozen=True)
class IisAck:
    """An ACK^V04 as read: MSA-1, MSA-2, and its ERRs."""

    code: str
    acked_id: str
    errors: tuple[IisError, ...] = field(default=())
    text: str = ""  # MSA-3

    @property
    def warnings(self) -> tuple[IisError, ...]:
        return tuple(e for e in self.errors if not e.is_error)


def _location(err: Segment) -> str:
    loc = err.v(2)
    seg, seq, fld, _rep, comp = (loc.c(i) for i in range(1, 6))
    if not seg:
        return ""
    out = seg + (f"[{seq}]" if seq else "")
    if fld:
        out += f"-{fld}" + (f".{comp}" if comp else "")
    return out


def _coded(err: Segment, n: int, table: dict[str, str] | None = None) -> str:
    value = err.v(n)
    code, text = value.c(1), value.c(2)
    if table is not None and code in table:
        text = table[code]  # the guide's meaning, whatever spelling the IIS sent
    return " ".join(p for p in (code, text) if p)


#: HL7 table 0517 (inform person indicator): what ERR-9 holds when it is used as defined.
_INFORM_PERSON = {"HD", "NPAT", "PAT", "USR"}


def _words(err: Segment) -> str:
    """The registry's text: ERR-8 (user message); else ERR-9 when it holds text rather
    than a table 0517 code (real IIS ACKs, the CDC guide's examples among them, put the
    message one field late); else ERR-7 (diagnostic information)."""
    late = err.get(9)
    if late.upper() in _INFORM_PERSON:
        late = ""
    return err.get(8) or late or err.get(7)


def read_iis_ack(text: str | bytes) -> IisAck:
    """The ACK's code, the id it acknowledges, and every ERR (a PermanentError when it is
    not an acknowledgment at all)."""
    try:
        msg = parse(text)
    except InputError as exc:
        raise PermanentError(f"the registry's answer is not an HL7 v2 message "
                             f"({exc.problems[0]})", code="structure") from None
    msa = msg.first("MSA")
    if msa is None:
        raise PermanentError("the registry's answer has no MSA segment", code="structure")
    errors = tuple(IisError(severity=e.get(4).upper(), location=_location(e),
                            condition=_coded(e, 3), application=_coded(e, 5,
                                                                       APPLICATION_ERRORS),
                            text=_words(e))
                   for e in msg.all("ERR"))
    return IisAck(msa.get(1).upper(), msa.text(2), errors, msa.get(3))


def outcome(ack: IisAck, control_id: str, message: str = "VXU^V04") -> JSON:
    """What the outbox records for a delivered VXU; raises when it was not delivered."""
    if ack.acked_id != control_id:
        raise TransientError(f"the registry's {ack.code or 'answer'} acknowledges another "
                             f"message, not this {message}; sending it again")
    reasons = "; ".join(str(e) for e in ack.errors if e.is_error) or ack.text or \
        "no reason given"
    if ack.code == "AA":
        return _delivered(ack, message, ack.errors)
    if ack.code == "AE" and ack.errors and not any(e.is_error for e in ack.errors):
        return _delivered(ack, message, ack.errors)
    if ack.code == "AE":
        raise PermanentError(f"the registry refused the {message} (AE): {reasons}",
                             code=_code_of(ack))
    if ack.code == "AR":
        raise PermanentError(f"the registry rejected the {message} (AR): {reasons}",
                             code=_code_of(ack))
    raise PermanentError(f"the registry answered {ack.code or 'nothing'} in MSA-1, which is "
                         f"not an acknowledgment code (AA, AE, AR)", code="structure")


def _delivered(ack: IisAck, message: str, warnings: tuple[IisError, ...]) -> JSON:
    out: JSON = {"message": message, "ack": ack.code, "acknowledges": ack.acked_id}
    if warnings:
        out["warnings"] = [str(w) for w in warnings]
    return out


#: ERR-3 (table 0357) → the problem code of mafhir.errors.CODES (docs/errors.md).
_CONDITION_CODES = {"100": "structure", "101": "required", "102": "value",
                    "103": "code-invalid", "200": "not-supported", "201": "not-supported",
                    "202": "not-supported", "203": "not-supported", "204": "not-found",
                    "205": "duplicate", "206": "processing", "207": "processing"}


def _code_of(ack: IisAck) -> str:
    for err in ack.errors:
        if err.is_error:
            return _CONDITION_CODES.get(err.condition.split(" ")[0], "business-rule")
    return "business-rule"
