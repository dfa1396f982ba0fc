"""``mafhir convert`` and ``mafhir listen``: the v2 layer on the command line.

Both are generic: the message types come from the converters plugins register.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..cli.options import clinic_option
from ..clinic import load_clinic
from ..context import MapContext
from ..errors import EXIT_INPUT, EXIT_OK, InputError, MafhirError, Problem
from ..io import dumps, iter_documents
from ..pipeline import Failed, Pipeline
from ..plugins import get_registry
from ..redact import CREDENTIALS_IN_URL, carries_credentials
from ..registry import Connector
from ..resourceset import ResourceSet
from ..validation import check_bundle
from .ack import read_ack
from .context import V2Context, default_tz
from .convert import ConvertHandler, from_fhir
from .convert_many import Result, convert_each, iter_inputs, result_line, write_bundle
from .listener import MLLPListener
from .message import MAX_MESSAGE_BYTES
from .mllp import MLLPClient
from .patients import close_lookup, default_lookup, with_patients
from .receiver import Receiver

__all__ = ["convert_command", "listen_command", "open_connector", "run_listener",
           "split_address"]

JSON = dict[str, Any]


def split_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def open_connector(spec: str) -> Connector:
    """``NAME:TARGET`` (``dir:./lab-results``, ``fhir-rest:https://ehr/fhir``) → a connector."""
    name, sep, target = spec.partition(":")
    connectors = get_registry().connectors
    if not sep or name not in connectors:
        raise click.BadParameter(f"expected CONNECTOR:TARGET with a connector among "
                                 f"{', '.join(sorted(connectors))}")
    return connectors[name].factory(target)


def _pair(text: str) -> tuple[str, str]:
    app, _, facility = text.partition("^")
    return app, facility


def _fail(problems: Any) -> None:
    for p in problems:
        click.echo(f"error: {p}", err=True)
    sys.exit(2)


def _resources(path: str, ctx: MapContext) -> ResourceSet:
    """FHIR resources from a Bundle/resources file, or from MA tasks mapped first."""
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    with stream:
        docs = list(iter_documents(stream, label=path))
    if not docs:  # name the file, as every command does for an empty input
        _fail([Problem(path, "holds no FHIR resource or task", "required")])
    items: list[tuple[str | None, JSON]] = []
    tasks = []
    for index, doc in docs:
        if isinstance(doc, InputError):
            _fail(doc.problems)
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            items += [(e.get("fullUrl"), e["resource"]) for e in doc.get("entry", [])
                      if "resource" in e]
        elif isinstance(doc, dict) and "resourceType" in doc:
            items.append((None, doc))
        else:
            tasks.append((index, doc))
    if tasks:
        failures: list[Problem] = []
        for result in Pipeline(get_registry(), ctx).run(tasks):
            if isinstance(result, Failed):
                failures += result.problems
            else:
                items += [(e.full_url, e.resource) for e in result.entries]
        if failures:
            _fail(failures)
    return ResourceSet(items)


def receiver_options(fn: Any) -> Any:
    """--tz, --sender-tz and --namespace: how a receiver reads its senders' times and
    identifiers (shared by ``convert`` and ``listen``)."""
    for option in reversed((
        click.option("--tz", default=None, help="IANA zone of v2 times without an offset for "
                     "every sender (default $MAFHIR_TZ, else the clinic's time_zone; with "
                     "none such times are refused, never taken as UTC), e.g. "
                     "America/Chicago."),
        click.option("--sender-tz", "sender_tz", multiple=True, metavar="SENDER=ZONE",
                     help="IANA zone of one sender's times (SENDER: MSH-3^MSH-4, MSH-4 or "
                          "MSH-3). Repeatable."),
        click.option("--namespace", "namespaces", multiple=True,
                     metavar="[SENDER|]AUTHORITY=SYSTEM",
                     help="Identifier system of an assigning authority (CX-4 namespace or "
                          "universal id); map the clinic's MRN authority to the clinic's "
                          "MRN system. SENDER| (MSH-3^MSH-4, MSH-4 or MSH-3) scopes it to "
                          "one sender; without it, it holds for every sender. Repeatable."),
    )):
        fn = option(fn)
    return fn


@click.command("convert")
@click.argument("sources", nargs=-1, required=True, metavar="FILE|DIR|-...",
                type=click.Path(allow_dash=True))
@click.option("--from", "source_format", metavar="FORMAT",
              help="Read a message of this format (hl7v2, or one a plugin registers, "
                   "e.g. x12); print its FHIR transaction Bundle.")
@click.option("--to", "target_format", metavar="FORMAT",
              help="Read FHIR (a Bundle, resources, or MA tasks); print this format.")
@click.option("--message", "message_type", help="The message to write, e.g. OML^O21.")
@receiver_options
@click.option("--mllp", default=None, metavar="HOST:PORT",
              help="With --to: send the message over MLLP and print the ACK.")
@click.option("--receiving", default="", metavar="APP^FACILITY",
              help="With --to: MSH-5/MSH-6 (the lab's application and facility).")
@click.option("--strict", is_flag=True, help="With --from: refuse a message converted with "
              "warnings (elements a profile wants that it lacks) instead of printing it.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="With --from: a sender's local code system, "
                   "code-system.APP^FACILITY.99XYZ=URI (as listen takes it). Repeatable.")
@click.option("--ndjson", is_flag=True, help="With --from: one Bundle per line and a result "
              "line per message on stderr even for a single message (a live stdin stream "
              "is then written as each message ends).")
@click.option("--out", "out_dir", default=None, metavar="DIR",
              type=click.Path(file_okay=False),
              help="With --from: write each message's Bundle to DIR as "
                   "ORDER-CONTROLID.json (000001-MSG0001.json) instead of stdout.")
@clinic_option
def convert_command(sources: tuple[str, ...], source_format: str | None,
                    target_format: str | None, message_type: str | None, tz: str | None,
                    sender_tz: tuple[str, ...], namespaces: tuple[str, ...],
                    mllp: str | None, receiving: str, strict: bool,
                    settings: tuple[str, ...], ndjson: bool, out_dir: str | None,
                    clinic_path: str | None) -> None:
    """Convert HL7 v2 messages to FHIR (--from hl7v2) or FHIR to HL7 v2 (--to hl7v2).

    --from hl7v2 takes files of one message or many (split at MSH, FHS/BHS batches taken
    apart), folders (their files in name order) and '-' (stdin, converted as it arrives).
    One message in all: its Bundle, as pretty JSON. Many: one Bundle per line (NDJSON, or
    files with --out) and one result line per message on stderr (index, file, MSH-9,
    MSH-10, ok/error/review/rejected and why); a bad message never stops the others.

    Bad input exits 2 with one line per problem naming the segment and field; warnings
    (gaps the Bundle was kept despite) go to stderr, and with --strict exit 2 instead.
    Many messages: exit 0 when every one converted, 2 when any was refused (the others
    are written).
    """
    if bool(source_format) == bool(target_format):
        raise click.UsageError("give exactly one of --from hl7v2 or --to hl7v2")
    v2_in = source_format == "hl7v2"
    if not v2_in and len(sources) != 1:
        raise click.UsageError(f"{'--from ' + str(source_format) if source_format else '--to'}"
                               f" takes one FILE (several: only --from hl7v2)")
    source = sources[0]
    if not v2_in and (ndjson or out_dir):  # never silently ignored
        raise click.UsageError(f"{'--ndjson' if ndjson else '--out'}: only with --from hl7v2")
    if (source_format or target_format) != "hl7v2":  # a format another plugin registers
        _convert_other(source, source_format, target_format, message_type, clinic_path)
        return
    # an option that does nothing in this direction is an error, never silently ignored
    wrong = [name for name, given, direction in (
        ("--mllp", mllp, "--to"), ("--receiving", receiving, "--to"),
        ("--message", message_type, "--to"), ("--strict", strict, "--from"),
        ("--set", settings, "--from")) if given and (direction == "--to") == bool(source_format)]
    if wrong:
        raise click.UsageError(f"{', '.join(wrong)}: only with "
                               f"{'--to' if source_format else '--from'} hl7v2 (not ignored)")
    missing = [s for s in sources if s != "-" and not Path(s).exists()] if v2_in else []
    if missing:  # before anything is converted: nothing half done
        raise click.BadParameter(f"Path {missing[0]!r} does not exist.",
                                 param_hint="FILE|DIR|-...")
    try:
        ctx = V2Context(map=MapContext(clinic=load_clinic(clinic_path)), tz=default_tz(tz),
                        receiving=_pair(receiving),
                        sender_tz=_pairs(sender_tz, "--sender-tz"),
                        namespaces=_pairs(namespaces, "--namespace"))
        registry = get_registry()
        if source_format:
            handler = ConvertHandler(registry, ctx, strict=strict, settings=_settings(settings))
            many = bool(ndjson or out_dir or len(sources) > 1
                        or any(s != "-" and Path(s).is_dir() for s in sources))
            _convert_v2(convert_each(handler, iter_inputs(sources)), many, out_dir)
            return
        if not message_type:
            raise click.UsageError("--to hl7v2 needs --message (e.g. OML^O21)")
        text = from_fhir(registry, message_type, _with_patients(_resources(source, ctx.map)),
                         ctx)
    except InputError as exc:
        _fail(exc.problems)
        return
    except MafhirError as exc:
        raise click.ClickException(str(exc)) from exc
    if not mllp:
        sys.stdout.write(text.replace("\r", "\n"))
        return
    host, port = split_address(mllp)
    # no answer is the CLI boundary's to report: one line, exit 75 (try later) when it is
    # transient, as `mafhir hl7 send` and `send` exit (docs/errors.md)
    with MLLPClient(host, port) as client:
        ack = read_ack(client.send(text))
    click.echo(json.dumps({"ack": ack.code, "acknowledges": ack.acked_id,
                           "errors": list(ack.errors)}))
    sys.exit(0 if ack.accepted else 1)


def _convert_v2(results: Iterator[Result], many: bool, out_dir: str | None) -> None:
    """Print what became of the messages: one message in all (and not ``many``) exactly as
    ``convert`` always has; otherwise each Bundle as it is made and a line per message."""
    if not many:
        first = next(results)  # a source without a message is a Result too
        second = next(results, None)
        if second is None:
            if not first.ok:
                _fail(first.problems)
            for warning in first.warnings:  # location and reason: no patient data
                click.echo(f"warning: {warning}", err=True)
            sys.stdout.buffer.write(dumps(first.bundle, pretty=True) + b"\n")
            return
        results = itertools.chain((first, second), results)
    folder = Path(out_dir) if out_dir else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    warned = 0
    for result in results:
        counts[result.status] += 1
        if result.ok:
            warned += bool(result.warnings)
            if folder is not None:
                write_bundle(folder, result)
            else:
                sys.stdout.buffer.write(dumps(result.bundle) + b"\n")
                sys.stdout.buffer.flush()
        click.echo(result_line(result), err=True)
    total = sum(counts.values())
    refused = total - counts["processed"]
    why = ", ".join(f"{counts[s]} {s}" for s in ("error", "review", "rejected") if counts[s])
    click.echo(f"converted {counts['processed']} of {total} message(s)"
               f"{f' ({warned} with warnings)' if warned else ''}"
               f"{f'; refused {refused} ({why})' if refused else ''}"
               f"{f'; Bundles in {folder}' if folder is not None else ''}", err=True)
    sys.exit(EXIT_INPUT if refused else EXIT_OK)


def _convert_other(source: str, source_format: str | None, target_format: str | None,
                   message_type: str | None, clinic_path: str | None) -> None:
    """``convert`` for a format other than HL7 v2 (X12…), through its registered
    :class:`~mafhir.registry.Converter`: the text goes to ``to_fhir`` as it is (the
    format's plugin parses it), FHIR to ``from_fhir``; the v2 options do not apply."""
    registry = get_registry()
    fmt = str(source_format or target_format)
    known = sorted({c.format for c in registry.converters.values()})
    if fmt not in known:
        raise click.UsageError(f"no converter for format {fmt!r} (known: {', '.join(known)})")
    reading = source_format is not None
    found = [c for c in registry.converters.values() if c.format == fmt
             and (c.to_fhir if reading else c.from_fhir) is not None
             and (message_type is None or c.message_type == message_type)]
    if len(found) != 1:
        types = ", ".join(sorted(c.message_type for c in registry.converters.values()
                                 if c.format == fmt))
        raise click.UsageError(f"name the message with --message ({fmt}: {types})")
    try:
        ctx = V2Context(map=MapContext(clinic=load_clinic(clinic_path)))
        if reading:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
            try:  # never a silent replacement character: a byte that is not text is an error
                text_in = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                _fail([Problem(source, f"is not UTF-8 text (byte {exc.start})", "structure")])
                return
            bundle = found[0].to_fhir(text_in, ctx)  # type: ignore[misc]
            errors = check_bundle(bundle, registry.profiles,  # type: ignore[arg-type]
                                  errors_only=True)
            if errors:
                _fail(Problem(i.expression, i.diagnostics, i.code) for i in errors)
            sys.stdout.buffer.write(dumps(bundle, pretty=True) + b"\n")
            return
        text = found[0].from_fhir(_with_patients(_resources(source, ctx.map)), ctx)  # type: ignore[misc]
    except InputError as exc:
        _fail(exc.problems)
        return
    except MafhirError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.stdout.write(text)


def _with_patients(resources: ResourceSet) -> ResourceSet:
    """The resources plus each Patient they name only by MRN, read from where the clinic
    keeps it ($MAFHIR_PATIENTS, else ./mafhir-store.db), as the v2 connectors do: PID
    carries the patient the clinic has, not a bare MRN."""
    try:
        lookup = default_lookup()
    except ValueError as exc:  # a source that cannot be searched for patients
        raise InputError([Problem("MAFHIR_PATIENTS", str(exc), "not-supported")]) from None
    try:
        return with_patients(resources, [r.get("subject") or r.get("for") or r.get("patient")
                                         for r in resources], lookup)
    finally:
        close_lookup(lookup)


def _pairs(pairs: tuple[str, ...], hint: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a table (sender zones, assigning-authority systems)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=hint)
        out[key.strip()] = value.strip()
    return out


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        settings[key.strip()] = value
    return settings


def run_listener(address: str, *, store_path: str, destination: str | None,
                 check_patient: bool, tz: str | None, clinic_path: str | None,
                 settings: dict[str, str], ack_to: tuple[str, ...] = (),
                 what: str = "", strict: bool = False,
                 max_bytes: int = MAX_MESSAGE_BYTES, max_connections: int = 64,
                 frame_timeout: float = 30.0, sender_tz: dict[str, str] | None = None,
                 namespaces: dict[str, str] | None = None) -> None:
    """Serve MLLP until stopped: store, route (plugin handlers, else convert and deliver),
    acknowledge, and send enhanced-mode application ACKs back to ``ack_to``."""
    from .replies import ReplySender, parse_routes
    from .routing import HandlerSetup, RoutingHandler

    if destination and carries_credentials(destination):  # as sync refuses it: one line
        _fail([Problem("--to", CREDENTIALS_IN_URL, "security")])
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = split_address(address)
    try:
        ctx = V2Context(map=MapContext(clinic=load_clinic(clinic_path)), tz=default_tz(tz),
                        sender_tz=sender_tz or {}, namespaces=namespaces or {})
        registry = get_registry()
        routes = parse_routes(ack_to, split_address)
    except MafhirError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        connector = open_connector(destination) if destination else None
    except InputError as exc:  # a connector's own refusal of its target: bad input
        _fail(exc.problems)
        return
    known = None
    if connector is not None and check_patient and hasattr(connector, "search"):
        search = connector.search

        def known(system: str, value: str) -> bool:
            return next(iter(search("Patient", {"identifier": f"{system}|{value}"})),
                        None) is not None

    handler = RoutingHandler(HandlerSetup(registry, ctx, connector.send if connector else None,
                                          known, settings, strict=strict))
    from .store import MessageStore  # SQLAlchemy: `listen` needs it, `convert` does not

    store = MessageStore(store_path)
    listener = MLLPListener(host, port, Receiver(store, handler, max_bytes=max_bytes),
                            frame_timeout=frame_timeout, max_connections=max_connections)
    replies = ReplySender(store, routes).start()
    routed = ", ".join(sorted(handler.routes)) or "none"
    click.echo(f"listening for MLLP on {listener.address[0]}:{listener.address[1]} "
               f"(store {store.path}{what}; plugin handlers: {routed}; application ACKs "
               f"to {', '.join(f'{h}:{p}' for h, p in routes.values()) or 'none (kept)'})",
               err=True)
    try:
        listener.serve_until_stopped()
    finally:
        replies.stop()
        try:
            handler.close()
        finally:
            if connector is not None:
                connector.close()
            click.echo(f"stopped; messages by status: {store.counts()}; application ACKs "
                       f"pending: {store.pending_reply_count()}", err=True)
            store.close()


@click.command("listen")
@click.option("--mllp", "address", required=True, metavar="HOST:PORT",
              help="Listen for HL7 v2 over MLLP here (port 0: any free port).")
@click.option("--store", "store_path", default="mafhir-hl7v2.sqlite", show_default=True,
              help="SQLite file or PostgreSQL URL (postgresql://…) every message is "
                   "stored in before it is acknowledged.")
@click.option("--to", "destination", default=None, metavar="CONNECTOR:TARGET",
              help="Deliver converted Bundles here, e.g. dir:./results or "
                   "fhir-rest:https://ehr.example/fhir (default: store only).")
@click.option("--check-patient/--no-check-patient", default=True, show_default=True,
              help="Hold results for patients the destination does not know for review "
                   "(needs a connector that can search).")
@click.option("--ack-to", "ack_to", multiple=True, metavar="[APP^FACILITY=]HOST:PORT",
              help="Where enhanced-mode application ACKs go back: one address for every "
                   "sender, or per sender (MSH-3^MSH-4). Repeatable.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A setting for plugin handlers, e.g. pharmacy.worklist=refills.sqlite. "
                   "Repeatable.")
@click.option("--strict", is_flag=True, help="A message converted with warnings (elements a "
              "profile wants that it lacks) is an error (AE, not delivered) instead of AA "
              "with ERR severity W.")
@click.option("--max-bytes", type=click.IntRange(1024), default=MAX_MESSAGE_BYTES,
              show_default=True, help="The largest message taken; a larger frame gets one "
              "AR naming this limit and is skipped.")
@click.option("--max-connections", type=click.IntRange(1), default=64, show_default=True,
              help="Connections served at once; beyond it a new one gets an AR (try again "
              "later) and is closed.")
@click.option("--frame-timeout", type=click.FloatRange(0.1), default=30.0, show_default=True,
              help="Seconds a started frame may take to arrive whole; a slower one is "
              "rejected and its connection closed.")
@receiver_options
@clinic_option
def listen_command(address: str, store_path: str, destination: str | None,
                   check_patient: bool, ack_to: tuple[str, ...], settings: tuple[str, ...],
                   tz: str | None, sender_tz: tuple[str, ...], namespaces: tuple[str, ...],
                   strict: bool, max_bytes: int, max_connections: int,
                   frame_timeout: float, clinic_path: str | None) -> None:
    """Receive HL7 v2 over MLLP: store, convert or hand to a plugin, acknowledge (Ctrl-C
    stops). Results go to --to; refill requests to the pharmacy worklist."""
    run_listener(address, store_path=store_path, destination=destination,
                 check_patient=check_patient, tz=tz, clinic_path=clinic_path,
                 settings=_settings(settings), ack_to=ack_to, strict=strict,
                 max_bytes=max_bytes, max_connections=max_connections,
                 frame_timeout=frame_timeout, sender_tz=_pairs(sender_tz, "--sender-tz"),
                 namespaces=_pairs(namespaces, "--namespace"))
