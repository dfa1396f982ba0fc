"""``mafhir iis``: check a registry's connection, run the stand-in IIS.

``warnings`` lists the doses a registry accepted with warnings (kept in the outbox's audit
trail). ``ping NAME`` calls the registry's ``connectivityTest`` (SOAP) or opens its MLLP port,
exit 0 when it answers, 75 when it does not (may work later), 2 for a configuration
problem. ``standin`` serves the loopback IIS (SOAP and MLLP) in the foreground for a
clinic's conformance testing; its credentials come from
``MAFHIR_IIS_STANDIN_USERNAME`` / ``MAFHIR_IIS_STANDIN_PASSWORD`` (default ``mafhir``:
it listens on loopback only).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading

import click

from mafhir.errors import MafhirError, exit_code

__all__ = ["iis_group"]


@click.group("iis")
def iis_group() -> None:
    """Immunization registries (IIS): doses out (VXU), history and forecast back (QBP)."""


@iis_group.command("ping")
@click.argument("name")
@click.option("--config", "config_path", default=None, metavar="PATH",
              help="mafhir.toml to read [iis.NAME] from (default: $MAFHIR_CONFIG, "
                   "./mafhir.toml).")
def ping_command(name: str, config_path: str | None) -> None:
    """Is registry NAME reachable? (SOAP connectivityTest, or an MLLP connection)."""
    from pathlib import Path

    from .config import load_iis
    from .soap import SoapClient

    try:
        config = load_iis(name, Path(config_path) if config_path else None)
        if config.transport == "soap":
            client = SoapClient(config.url, config.credentials(), config.facility_id,
                                timeout=config.timeout, verify=config.verify)
            try:
                echo = client.connectivity_test("mafhir ping")
            finally:
                client.close()
            click.echo(f"{name}: connectivityTest answered ({echo!r})")
        else:
            host, _, port = config.mllp.rpartition(":")
            try:
                socket.create_connection((host, int(port)), timeout=config.timeout).close()
            except OSError as exc:
                from mafhir.errors import TransientError

                raise TransientError(f"MLLP {config.mllp}: cannot connect "
                                     f"({type(exc).__name__})") from None
            click.echo(f"{name}: MLLP port {config.mllp} accepts connections")
    except MafhirError as exc:
        for line in (str(p) for p in exc.problems) if exc.problems else [str(exc)]:
            click.echo(f"error: {line}", err=True)
        sys.exit(exit_code(exc))


@iis_group.command("warnings")
@click.option("--db", default="mafhir.db", show_default=True,
              help="The outbox (a SQLite file or a PostgreSQL URL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def warnings_command(db: str, as_json: bool) -> None:
    """Doses a registry accepted with warnings (AE with W only): what it said, by item."""
    import json

    from mafhir.outbox import open_store

    store = open_store(db)
    try:
        for item in store.items_in("delivered"):
            if not item.destination.startswith("iis:"):
                continue
            said = [json.loads(a["resource"]).get("outcomeDesc") for a in store.audit_of(item.id)
                    if a["resource_type"] == "AuditEvent"]
            if not said or not said[-1]:
                continue
            if as_json:
                click.echo(json.dumps({"id": item.id, "destination": item.destination,
                                       "source": item.source, "warnings": said[-1]}))
            else:
                click.echo(f"{item.id}\t{item.destination}\t{item.source}\t{said[-1]}")
    finally:
        store.close()


@iis_group.command("standin")
@click.option("--port", default=8089, show_default=True,
              help="SOAP port on 127.0.0.1 (0: any free one, printed).")
@click.option("--mllp-port", default=None, type=int, help="Also serve MLLP on this port.")
@click.option("--facility", "facilities", multiple=True,
              help="Accept only these facility ids (default: any).")
def standin_command(port: int, mllp_port: int | None, facilities: tuple[str, ...]) -> None:
    """Serve the loopback IIS stand-in until Ctrl-C (SOAP, and MLLP with --mllp-port)."""
    from .standin import StandinIIS

    standin = StandinIIS(username=os.environ.get("MAFHIR_IIS_STANDIN_USERNAME", "mafhir"),
                         password=os.environ.get("MAFHIR_IIS_STANDIN_PASSWORD", "mafhir"),
                         facilities=set(facilities) or None, soap_port=port,
                         mllp_port=mllp_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with standin:
        click.echo(f"IIS stand-in: SOAP {standin.soap_url}" +
                   (f", MLLP {standin.mllp_address[0]}:{standin.mllp_address[1]}"
                    if standin.mllp_address else ""), err=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        click.echo(f"IIS stand-in: {len(standin.registry.doses())} doses held, "
                   f"{len(standin.registry.receipts)} messages accepted", err=True)
