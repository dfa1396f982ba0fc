"""Enhanced-mode application ACKs, delivered back to their senders.

In enhanced mode (MSH-15/16 valued) the listener answers on the connection with a
commit ACK (CA: "safely stored") and owes the sender an *application* ACK (AA/AE/AR, or
an ORL^O22…) once the message is processed. That answer is a message of its own, sent
to the sender's MLLP address over a connection mafhir opens. :class:`ReplySender` drains
the store's pending application ACKs in the background: an answer counts as delivered
when the sender commit-accepts it (the ACK's MSH-15 is ``AL``); an unreachable sender,
no reply, CE/CR, or a CA for another message leaves it pending and it is tried again with
backoff (1 s doubling to 60 s). The pending state and the backoff live in the store, so a
restart resumes where it stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from ..errors import MafhirError
from .ack import read_ack
from .message import parse
from .mllp import MLLPClient
from .store import MessageStore, PendingReply

__all__ = ["ReplySender", "parse_routes"]

log = logging.getLogger(__name__)
ANY = "*"


def parse_routes(specs: list[str] | tuple[str, ...],
                 split: Callable[[str], tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """``HOST:PORT`` (every sender) or ``APP^FACILITY=HOST:PORT`` (one sender: MSH-3/MSH-4
    of its messages) → the store's sender key → address."""
    routes: dict[str, tuple[str, int]] = {}
    for spec in specs:
        sender, sep, address = spec.rpartition("=")
        if not sep:
            routes[ANY] = split(address)
        else:
            app, _, facility = sender.partition("^")
            routes[f"{app}|{facility}"] = split(address)
    return routes


class ReplySender:
    """Delivers pending application ACKs to ``routes`` (sender key or ``*`` → address)."""

    def __init__(self, store: MessageStore, routes: Mapping[str, tuple[str, int]],
                 timeout: float = 10.0, poll: float = 0.2, backoff: float = 1.0,
                 max_backoff: float = 60.0) -> None:
        self.store = store
        self.routes = dict(routes)
        self.timeout = timeout
        self.poll = poll
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._clients: dict[tuple[str, int], MLLPClient] = {}
        self._unrouted: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def address_for(self, sender: str) -> tuple[str, int] | None:
        return self.routes.get(sender) or self.routes.get(ANY)

    def _warn_unrouted(self) -> None:
        if ANY in self.routes:
            return
        for sender in self.store.pending_senders():
            if sender not in self.routes and sender not in self._unrouted:
                self._unrouted.add(sender)
                log.warning("application ACKs for sender %r are kept: no --ack-to address "
                            "for it", sender.replace("|", "^"))

    def deliver_pending(self) -> int:
        """One pass over the pending ACKs that are due; returns how many were delivered.

        Only routed senders' ACKs are read, and only those due (their backoff over), so
        neither crowds out the rest; an address that fails once is skipped for the rest
        of the pass (one dead peer costs one timeout per pass, not one per ACK).
        """
        self._warn_unrouted()
        senders = None if ANY in self.routes else list(self.routes)
        delivered = 0
        down: set[tuple[str, int]] = set()
        for reply in self.store.pending_replies(senders=senders, due_at=time.time()):
            if self._stop.is_set():
                break
            address = self.address_for(reply.sender)
            if address is None or address in down:
                continue
            if self._send(reply, address):
                delivered += 1
            else:
                down.add(address)
        return delivered

    def _send(self, reply: PendingReply, address: tuple[str, int]) -> bool:
        client = self._clients.get(address)
        if client is None:
            # one reconnect within a send: a peer may have closed an idle kept-alive link
            client = self._clients[address] = MLLPClient(*address, timeout=self.timeout,
                                                         retries=1)
        try:
            sent_id = parse(reply.app_ack).control_id
            answer = read_ack(client.send(reply.app_ack))
        except (MafhirError, ValueError) as exc:  # unreachable, no reply, not an ACK
            error = f"{type(exc).__name__}: {exc}"
        else:
            if answer.code in ("CA", "AA") and answer.acked_id == sent_id:
                self.store.reply_result(reply, True)
                return True
            if answer.code in ("CA", "AA"):
                error = f"the sender's answer acknowledges {answer.acked_id!r}, not {sent_id!r}"
            else:
                error = f"the sender answered {answer.code}: " \
                        f"{'; '.join(answer.errors) or answer.text or 'no reason'}"[:500]
        wait = min(self.max_backoff, self.backoff * 2.0 ** reply.attempts)
        self.store.reply_result(reply, False, error, time.time() + wait)
        log.warning("application ACK (row %d) not delivered, next try in %.0f s: %s",
                    reply.id, wait, error.split(":")[0])
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_pending()
            except Exception as exc:  # the store failed: keep the listener up, try later
                log.error("reply sender: %s", type(exc).__name__)
            self._stop.wait(self.poll)

    def start(self) -> ReplySender:
        self._thread = threading.Thread(target=self._run, daemon=True, name="mllp-replies")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.timeout + 5)  # one send, one reconnect
        for client in self._clients.values():
            client.close()
        self._clients.clear()
