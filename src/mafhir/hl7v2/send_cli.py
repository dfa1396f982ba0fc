"""``mafhir hl7 send`` and ``mafhir hl7 listen``: raw HL7 v2 files over MLLP.

A file of one message or of many (split at each MSH, batches taken apart) is sent message
by message on one connection; each ACK is printed as it comes — control id, message type,
ACK code and the receiver's error codes, never patient data — and the exit status says
whether every message was accepted (0), some were refused (1), or the receiver could not
be reached or did not answer (75).
"""

from __future__ import annotations

import json
import sys

import click

from ..errors import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL, MafhirError
from .ack import Ack, read_ack
from .batch import iter_messages
from .message import parse
from .mllp import MLLPClient

__all__ = ["hl7_group"]

APPLICATION_CODES = ("AA", "AE", "AR")


@click.group("hl7")
def hl7_group() -> None:
    """Raw HL7 v2 over MLLP: send files of messages, listen for them."""


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}", param_hint="--to")
    return host or "127.0.0.1", int(port)


def _line(label: str, msh10: str, kind: str, ack: Ack | None, note: str = "") -> dict:
    return {"message": label, "control_id": msh10, "type": kind,
            "ack": ack.code if ack else None,
            "acknowledges": ack.acked_id if ack else None,
            "errors": list(ack.errors) if ack else [], **({"note": note} if note else {})}


@hl7_group.command("send")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, allow_dash=True))
@click.option("--to", "to", required=True, metavar="HOST:PORT", help="The MLLP receiver.")
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds to wait for each ACK.")
@click.option("--wait-app-ack", is_flag=True,
              help="After a commit ACK (CA, enhanced mode), wait on the connection for the "
                   "application ACK (AA/AE/AR) and report that.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
def send_command(files: tuple[str, ...], to: str, timeout: float, wait_app_ack: bool,
                 as_json: bool) -> None:
    """Send HL7 v2 messages (files of one or many, folders, '-' for stdin) over MLLP and
    print each ACK. Exit 0 all accepted, 1 some refused, 75 no answer."""
    host, port = _address(to)
    refused = unanswered = sent = 0
    with MLLPClient(host, port, timeout=timeout, retries=0) as client:
        for label, data in iter_messages(files):
            try:
                msg = parse(data)
                msh10, kind = msg.msh.raw(10), msg.msh.raw(9)
            except MafhirError as exc:
                _say(as_json, _line(label, "", "", None, f"not sent: {exc}"))
                refused += 1
                continue
            try:
                ack = read_ack(client.send(data))
                note = ""
                if wait_app_ack and ack.code == "CA":
                    ack, note = _application_ack(client, msh10, timeout, ack)
            except MafhirError as exc:  # no answer: the rest would fare no better
                _say(as_json, _line(label, msh10, kind, None, f"no ACK: {exc}"))
                unanswered += 1
                break
            sent += 1
            if note:
                unanswered += 1
            elif not ack.accepted:
                refused += 1
            _say(as_json, _line(label, msh10, kind, ack, note))
    if not as_json:
        click.echo(f"{sent} sent, {refused} refused, {unanswered} without an answer",
                   err=True)
    sys.exit(EXIT_TEMPFAIL if unanswered else EXIT_FAILED if refused else EXIT_OK)


def _application_ack(client: MLLPClient, msh10: str, timeout: float, commit: Ack
                     ) -> tuple[Ack, str]:
    """The application ACK for ``msh10`` that follows a commit ACK on the same connection."""
    try:
        while True:
            reply = read_ack(client.receive(timeout))
            if reply.acked_id == msh10 and reply.code in APPLICATION_CODES:
                return reply, ""
    except (TimeoutError, OSError):
        return commit, f"no application ACK within {timeout:g} s (commit ACK only)"


def _say(as_json: bool, line: dict) -> None:
    if as_json:
        click.echo(json.dumps(line))
        return
    errors = f" {'; '.join(line['errors'])}" if line["errors"] else ""
    note = f" ({line['note']})" if line.get("note") else ""
    click.echo(f"{line['message']}: {line['type'] or '?'} {line['control_id'] or '?'} → "
               f"{line['ack'] or 'no ACK'}{errors}{note}")


def _listen_alias() -> click.Command:
    """``mafhir hl7 listen`` is ``mafhir listen`` (the same options and behaviour)."""
    from .cli import listen_command

    return listen_command


hl7_group.add_command(_listen_alias(), "listen")
