"""``mafhir messages``: the listener's inbound store from the command line.

What came in, from whom, what became of it and what was answered — the review queue,
rejected input, application ACKs still owed — without opening the database. Lists show
systems, codes and ids only; a message's own text (patient data) is shown only when asked
for by ``show ID --raw``, and that is said on stderr each time.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import EXIT_FAILED, EXIT_INPUT, MafhirError
from .store import MessageStore, StoredMessage

__all__ = ["messages_group"]

STATUSES = ("processed", "review", "error", "retry", "rejected", "received")


def _store_option(fn: Any) -> Any:
    return click.option("--store", "store_path", default="mafhir-hl7v2.sqlite",
                        show_default=True, envvar="MAFHIR_HL7V2_STORE",
                        help="The listener's store: SQLite file or PostgreSQL URL.")(fn)


def _ack_code(raw: bytes | None) -> str | None:
    if not raw:
        return None
    from .ack import read_ack

    try:
        return read_ack(raw).code
    except (ValueError, MafhirError):
        return "?"


def _summary(row: StoredMessage) -> dict[str, Any]:
    """A message without its text: header fields, outcome, answers, problems counted."""
    problems = _problems(row)
    return {"id": row.id, "received_at": row.received_at, "sender": row.sender,
            "type": row.message_type, "control_id": row.control_id, "status": row.status,
            "ack": _ack_code(row.ack), "app_ack": row.reply_status,
            "problems": len(problems), "duplicates": row.duplicates,
            "conflicts_with": row.conflicts_with}


def _problems(row: StoredMessage) -> list[str]:
    """The reasons kept with a message (one per line in the store): locations and codes,
    written without patient data."""
    return [p for p in (row.problems or "").split("\n") if p]


def _open(path: str) -> MessageStore:
    from pathlib import Path

    if "://" not in path and not Path(path).exists():
        click.echo(f"error: {path}: no such message store (mafhir listen --store)", err=True)
        sys.exit(EXIT_INPUT)
    return MessageStore(path)


@click.group("messages")
def messages_group() -> None:
    """The listener's inbound store: list, show and reprocess received messages."""


@messages_group.command("list")
@_store_option
@click.option("--status", type=click.Choice(STATUSES), default=None,
              help="Only this outcome (review: held for a person; rejected: unreadable).")
@click.option("--sender", default=None, help="Only this sender (MSH-3|MSH-4 as stored).")
@click.option("--type", "message_type", default=None, help="Only this type, e.g. ORU^R01.")
@click.option("--pending-acks", is_flag=True,
              help="Only messages whose application ACK is still owed (enhanced mode).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
def list_command(store_path: str, status: str | None, sender: str | None,
                 message_type: str | None, pending_acks: bool, limit: int,
                 as_json: bool) -> None:
    """Received messages, newest first: sender, type, control id, outcome and ACKs."""
    store = _open(store_path)
    try:
        total, rows = store.search(status=status, sender=sender, message_type=message_type,
                                   replies_pending=pending_acks, limit=limit)
    finally:
        store.close()
    if as_json:
        for row in rows:
            click.echo(json.dumps(_summary(row)))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"messages ({len(rows)} of {total})")
    for col in ("id", "received", "sender", "type", "control id", "status", "ACK", "app ACK",
                "problems"):
        table.add_column(col, overflow="fold")
    for row in rows:
        s = _summary(row)
        table.add_row(str(s["id"]), s["received_at"][:19], escape(s["sender"] or "?"),
                      escape(s["type"] or "?"), escape(s["control_id"] or "-"), s["status"],
                      s["ack"] or "-", s["app_ack"] or "-", str(s["problems"]))
    Console().print(table)


@messages_group.command("show")
@click.argument("row_id", type=click.IntRange(1, 2**63 - 1))
@_store_option
@click.option("--raw", is_flag=True,
              help="Also the message itself (it holds patient data: said on stderr).")
def show_command(row_id: int, store_path: str, raw: bool) -> None:
    """One received message (JSON): what became of it, why, and the ACKs sent."""
    store = _open(store_path)
    try:
        row = store.get(row_id)
    finally:
        store.close()
    if row is None:
        click.echo(f"error: no message {row_id}", err=True)
        sys.exit(EXIT_INPUT)
    doc = {**_summary(row), "problems": _problems(row),
           "attempts": row.attempts, "reply_attempts": row.reply_attempts,
           "reply_error": row.reply_error}
    if raw:
        from .charset import decode

        click.echo(f"warning: message {row_id} shown whole: it holds patient data", err=True)
        doc["raw"] = decode(row.raw).replace("\r", "\n")
    click.echo(json.dumps(doc, indent=2))


@messages_group.command("reprocess")
@click.argument("row_id", type=click.IntRange(1, 2**63 - 1))
@_store_option
@click.option("--listener", default=None, metavar="HOST:PORT",
              help="Send the stored message to this listener now (else it is processed "
                   "again when its sender sends it again).")
def reprocess_command(row_id: int, store_path: str, listener: str | None) -> None:
    """Process a message held for review, failed or retried again."""
    store = _open(store_path)
    try:
        row = store.get(row_id)
        if row is None:
            click.echo(f"error: no message {row_id}", err=True)
            sys.exit(EXIT_INPUT)
        if not store.mark_for_reprocessing(row_id):
            click.echo(f"error: message {row_id} is {row.status}: only error, review or retry "
                       f"messages with a control id are reprocessed", err=True)
            sys.exit(EXIT_INPUT)
        if listener is None:
            click.echo(f"message {row_id} marked for reprocessing: processed again when its "
                       f"sender sends it again (or give --listener)")
            return
        from .cli import split_address
        from .mllp import MLLPClient

        host, port = split_address(listener)
        with MLLPClient(host, port, timeout=30.0, retries=0) as client:
            ack = _ack_code(client.send(row.raw))
        after = store.get(row_id)
        status = after.status if after else "?"
        click.echo(f"message {row_id} reprocessed: now {status}, ACK {ack}")
        sys.exit(0 if status == "processed" else EXIT_FAILED)
    finally:
        store.close()
