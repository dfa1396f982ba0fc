"""From arriving bytes to an ACK: parse, deduplicate, store, process, acknowledge.

Transport-free (the MLLP listener and the tests call :meth:`Receiver.receive` alike).
The order is the guarantee: the message is committed to the store *before* it is
processed and acknowledged, so a positive ACK only ever covers stored bytes. A re-send
(same sender, MSH-10 and bytes) gets the stored ACK back without being processed again;
one whose processing is over is answered as over (its original answer, or none when its
MSH-15 wanted none), never "still being processed". Other bytes under a used MSH-10 are
a message of their own: processed, and acknowledged with an ERR of severity W (code
205) naming the earlier row, so neither the sender nor the operator misses the reuse.
Whatever a handler does (an exception included), the receiver answers with an ACK and
goes on; logs name message types and row ids, never content.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from ..errors import InputError, Problem, unexpected
from .ack import Response, ack_bytes, ack_for, ack_for_unreadable, as_problem
from .message import MAX_MESSAGE_BYTES, Message, check_header, parse
from .mllp import Rejected

if TYPE_CHECKING:  # the store (SQLAlchemy) loads with the listener, not with convert
    from .store import MessageStore

__all__ = ["Handler", "Outcome", "Receiver", "is_acknowledgment"]

log = logging.getLogger(__name__)

Status = Literal["processed", "error", "rejected", "review", "retry"]
#: Problems here make a refusal of the header itself: CR in enhanced mode.
_HEADER = ("MSH-9", "MSH-10", "MSH-11", "MSH-12")
ORIGINAL = {"processed": "AA", "error": "AE", "review": "AE", "rejected": "AR", "retry": "AR"}


@dataclass(frozen=True)
class Outcome:
    """What processing made of a message: ``problems`` (why it is not processed; each
    Problem's code gives its ERR-3) and ``warnings`` (gaps it was processed despite, ERR
    severity W). Both hold plain Problems; anything else is refused when the Outcome is
    made (a TypeError naming the fix), not when its ACK is written."""

    status: Status
    problems: tuple[Problem, ...] = ()
    result: object = field(default=None, compare=False)
    #: The application response to send instead of a bare ACK (ORL^O22…), if any.
    response: Response | None = field(default=None, compare=False)
    warnings: tuple[Problem, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "problems", tuple(as_problem(p) for p in self.problems))
        object.__setattr__(self, "warnings", tuple(as_problem(p) for p in self.warnings))


Handler = Callable[[Message], Outcome]


def is_acknowledgment(msg: Message) -> bool:
    """An ACK, or an application response that carries MSA (ORL^O22, RRE^O12…): a peer
    answering a message mafhir sent. It is never application-acknowledged in turn."""
    return msg.msh.get(9, 1) == "ACK" or msg.first("MSA") is not None


def _wanted(condition: str, ok: bool) -> bool:
    """Enhanced mode: does MSH-15/16 (AL, NE, ER, SU) ask for this acknowledgment?
    (An absent or unknown condition is '' here and gets the default, AL.)"""
    condition = condition or "AL"
    return condition == "AL" or (condition == "ER" and not ok) or (condition == "SU" and ok)


class Receiver:
    """Turns one message's bytes into its ACK bytes (None when enhanced mode wants none)."""

    def __init__(self, store: MessageStore, handler: Handler,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 max_bytes: int = MAX_MESSAGE_BYTES, wait_for_duplicate: float = 30.0) -> None:
        self.store = store
        self.handler = handler
        self.clock = clock
        self.max_bytes = max_bytes
        self.wait_for_duplicate = wait_for_duplicate
        self._live: set[int] = set()  # rows this receiver is processing right now
        self._live_lock = threading.Lock()

    def receive(self, raw: bytes) -> bytes | None:
        now = self.clock()
        try:
            msg = parse(raw, self.max_bytes)
        except InputError as exc:
            return self._quarantine(raw, list(exc.problems), now)
        header = check_header(msg)
        if not msg.control_key:
            return self._quarantine(raw, header, now, msg)
        claim = self.store.claim(msg.sender, msg.control_key, msg.type, raw, now)
        if claim.duplicate and not claim.finished:
            with self._live_lock:
                orphan = claim.id not in self._live
            if orphan and self.store.take_over(
                    claim.id, raw, now - timedelta(seconds=self.wait_for_duplicate)):
                # stored but never finished (the process stopped mid-way): process it now
                log.info("%s (row %d) was stored but not finished: processing it",
                         msg.type, claim.id)
                from .store import Claim

                claim = Claim(claim.id, duplicate=False)
        if claim.duplicate:
            log.info("duplicate %s (row %d): original ACK returned", msg.type, claim.id)
            if claim.finished:  # its answer is final, none included (MSH-15 NE)
                return claim.ack
            finished, ack = self.store.wait_finished(claim.id, self.wait_for_duplicate)
            if finished:
                return ack
            # still being processed elsewhere: not committed yet, re-send
            return ack_bytes(ack_for(msg, "CE" if msg.enhanced_mode else "AR", now, (Problem(
                "MSH-10", "this message is still being processed; send it again later",
                "transient"),)), msg)
        warnings: tuple[Problem, ...] = ()
        if claim.conflicts_with is not None:
            log.warning("%s (row %d) reuses the control id of row %d for other content: "
                        "kept as a message of its own", msg.type, claim.id,
                        claim.conflicts_with)
            warnings = (Problem("MSH-10", f"this control id was used before for other "
                                          f"content (row {claim.conflicts_with}); kept and "
                                          f"processed as a message of its own", "duplicate"),)
        with self._live_lock:
            self._live.add(claim.id)
        try:
            return self._process(msg, header, claim.id, now, warnings)
        finally:
            with self._live_lock:
                self._live.discard(claim.id)

    def _process(self, msg: Message, header: list[Problem], row_id: int,
                 now: datetime, warnings: tuple[Problem, ...] = ()) -> bytes | None:
        if header:
            outcome = Outcome("rejected", tuple(header))
        else:
            try:
                outcome = self.handler(msg)
            except Exception as exc:  # a handler bug must never stop the listener
                # the log gets its type and where it was raised, never its text (it may
                # quote the PID); the sender's ACK only the type (no internals)
                log.error("handler failed on %s (row %d): %s", msg.type, row_id,
                          unexpected(exc))
                outcome = Outcome("error", (Problem("", f"internal error: "
                                                        f"{type(exc).__name__}",
                                                    "processing"),))
        if warnings:
            outcome = replace(outcome, warnings=warnings + outcome.warnings)
        return self._acknowledge(msg, row_id, outcome, now)

    def _acknowledge(self, msg: Message, row_id: int, outcome: Outcome,
                     now: datetime) -> bytes | None:
        problems = list(outcome.problems)
        warnings = list(outcome.warnings)
        lines = [str(p) for p in problems] + [f"warning: {w}" for w in warnings]
        severity = "W" if outcome.status == "review" else "E"
        app = ORIGINAL[outcome.status]
        if not msg.enhanced_mode:
            ack = ack_bytes(ack_for(msg, app, now, problems, severity=severity,
                                    response=outcome.response, warnings=warnings), msg)
            self.store.finish(row_id, outcome.status, ack, lines)
            _said(msg, row_id, outcome.status, app, len(warnings))
            return ack
        # enhanced mode: the commit ACK says "safely stored" (CR: header not acceptable);
        # the application ACK is kept with the message (reply_status pending) until the
        # ReplySender has delivered it back to the sender on a connection of its own.
        commit = "CR" if outcome.status == "rejected" and any(
            p.code == "not-supported" or p.location.startswith(_HEADER) for p in problems) \
            else "CE" if outcome.status == "retry" else "CA"
        # retry (a transient failure): CE tells the sender to send it again, and the re-send
        # is processed; CA would tell it the message is safe here while nothing ever
        # processes the row again
        reply = None
        if _wanted(msg.accept_ack_type, commit == "CA"):
            reply = ack_bytes(ack_for(msg, commit, now, problems if commit != "CA" else (),
                                      severity=severity), msg)
        app_ack = None
        if commit == "CA" and _wanted(msg.app_ack_type, app == "AA") \
                and not is_acknowledgment(msg):
            app_ack = ack_bytes(ack_for(msg, app, now, problems, severity=severity,
                                        response=outcome.response, commit_wanted=True,
                                        warnings=warnings), msg)
        self.store.finish(row_id, outcome.status, reply or app_ack, lines, app_ack)
        _said(msg, row_id, outcome.status, commit + (f", application ACK {app} pending"
                                                     if app_ack else ""), len(warnings))
        return reply

    def reject(self, rejected: Rejected) -> bytes:
        """Keep input that broke the MLLP framing (its first bytes, with its size) and
        answer it with an AR naming the reason (the limit, for a frame too large)."""
        now = self.clock()
        problem = Problem("MLLP", rejected.reason, rejected.code)
        kept = [str(problem)]
        if len(rejected.raw) < rejected.size:
            kept.append(f"MLLP: at least {rejected.size} bytes received; the first "
                        f"{len(rejected.raw)} are kept")
        ack = ack_bytes(ack_for_unreadable(rejected.raw, [problem], now), None)
        row = self.store.quarantine(rejected.raw, kept, ack, now)
        log.warning("MLLP input rejected as row %d (%s)", row, rejected.code)
        return ack

    def _quarantine(self, raw: bytes, problems: list[Problem], now: datetime,
                    msg: Message | None = None) -> bytes:
        enhanced = bool(msg and msg.enhanced_mode)
        # enhanced mode: a header it cannot take is CR; read but not committable (no
        # MSH-10 to keep it by) is CE
        code = None
        if enhanced and not any(p.location.startswith(("MSH-9", "MSH-11", "MSH-12"))
                                for p in problems):
            code = "CE"
        ack = ack_bytes(ack_for_unreadable(raw, problems, now, enhanced, code), None)
        row = self.store.quarantine(raw, [str(p) for p in problems], ack, now,
                                    msg.type if msg else None)
        log.warning("quarantined unreadable input as row %d: %s", row,
                    "; ".join(p.location for p in problems))
        return ack


def _said(msg: Message, row_id: int, status: str, ack: str, warnings: int) -> None:
    """One line per message handled: type, control id, sender, what became of it and the
    ACK — names of systems and codes only, never a field of the patient's."""
    log.info("%s %s from %s → %s, ACK %s%s (row %d)", msg.type, msg.control_id,
             msg.sender_name or "?", status, ack,
             f", {warnings} warning(s)" if warnings else "", row_id)
